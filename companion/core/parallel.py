r"""Data-parallel training on an existing distributed engine: ``torch.distributed`` (gloo) on CPU processes.

:func:`train_data_parallel` starts ``world_size`` processes with ``torch.multiprocessing``, forked by a
fork server (see ``_start_method``). The worker is a function of this module, because a new process
cannot import a function defined in a notebook cell. Each worker holds a replica of the model wrapped
in ``torch.nn.parallel.DistributedDataParallel`` and its own optimizer. Every global batch of
:math:`B` examples is cut into ``world_size`` shards; worker :math:`r` computes the gradient of its
shard, DDP all-reduces (averages) the gradients, and every replica takes the same optimizer step:

.. math::
    g = \frac{1}{W} \sum_{r=1}^{W} \frac{W}{B} \sum_{i \in S_r} \nabla \ell_i(\theta)
      = \frac{1}{B} \sum_{i=1}^{B} \nabla \ell_i(\theta) ,

the gradient one process would compute on the whole batch. So :math:`W` workers with batch :math:`b`
each take the same steps as one process with batch :math:`Wb`, up to the rounding of sums taken in
another order. The batches are drawn by :func:`companion.core.data.batches` with a generator seeded
``seed``, exactly as :func:`companion.core.train.fit` draws them.
"""

import copy
import datetime
import os
import socket
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from companion.core.device import make_generator


class WorkerError(RuntimeError):
    """A data-parallel worker raised, died or did not finish in time."""


@dataclass
class ParallelRun:
    """The outcome of :func:`train_data_parallel`."""

    state_dict: dict
    """The final weights of rank 0's replica (on the CPU)."""
    replicas: list[dict]
    """The final weights of every rank's replica; DDP keeps them identical."""
    seconds: float
    """Rank 0's wall time for the training loop alone (without starting processes)."""
    losses: list[float]
    """The loss of each global batch, averaged over the workers as the gradients are."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now: the operating system picks one when we bind to port 0."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _train_replica(
    rank, world_size, model, X, y, order, optimizer, options, loss_fn
) -> dict:
    """Train a DDP replica of ``model`` on shard ``rank`` of every batch in ``order``; return its results."""
    # a private copy: the model arrives in shared memory, and W optimizers must not all step one tensor
    ddp = nn.parallel.DistributedDataParallel(copy.deepcopy(model))
    opt = optimizer(ddp.parameters(), **options)
    losses = []
    start = time.perf_counter()
    for idx in order:
        shard = torch.tensor_split(idx, world_size)[rank]
        # the shard's share of the batch mean: (W / B) Σ_{i ∈ S_r} ℓ_i, so that DDP's average is (1/B) Σ_i ℓ_i
        loss = loss_fn(ddp(X[shard]), y[shard], reduction="sum") * (
            world_size / len(idx)
        )
        opt.zero_grad()
        loss.backward()  # DDP all-reduces (averages) the gradients during the backward pass
        opt.step()
        losses.append(loss.detach())
    seconds = time.perf_counter() - start
    # the batch losses averaged over workers, in one all-reduce at the end
    batch_losses = torch.stack(losses) if losses else torch.zeros(0, dtype=X.dtype)
    dist.all_reduce(batch_losses)
    state = {k: v.detach().cpu().clone() for k, v in ddp.module.state_dict().items()}
    return {
        "state_dict": state,
        "seconds": seconds,
        "losses": (batch_losses / world_size).tolist(),
    }


def _worker(
    rank,
    world_size,
    port,
    model,
    X,
    y,
    order,
    optimizer,
    options,
    loss_fn,
    timeout,
    out_dir,
):
    """One process: join the gloo group, train its replica (:func:`_train_replica`), save the results."""
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(
        1
    )  # W processes share the cores; one thread each avoids oversubscription
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    try:
        dist.init_process_group(
            "gloo",
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=timeout),
        )
        result = _train_replica(
            rank, world_size, model, X, y, order, optimizer, options, loss_fn
        )
    except BaseException:
        # when and why, for the parent: a worker's failure makes its peers fail too ("connection closed
        # by peer"), and the parent reports the earliest failure, the cause
        failure = f"{time.time()!r}\n{traceback.format_exc()}"
        (Path(out_dir) / f"failed{rank}.txt").write_text(failure)
        raise
    torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    # only on success, and only once the DDP replica is gone (a replica outliving its group can hang at
    # exit): a failed worker just exits and the parent stops the others, since leaving the group while
    # a peer waits in an all-reduce can block until the gloo timeout
    dist.destroy_process_group()


def _first_failure(out_dir: str) -> tuple[int, str] | None:
    """The rank and traceback of the worker that failed first, from the files failed workers wrote."""
    failures = []
    for path in Path(out_dir).glob("failed*.txt"):
        when, _, why = path.read_text().partition("\n")
        failures.append((float(when), int(path.stem.removeprefix("failed")), why))
    return min(failures)[1:] if failures else None


def _start_method() -> str:
    """ "forkserver" where the platform has it, else "spawn".

    A fork server is one fresh Python process, started at the first call, that imports torch and
    DDP's machinery once (about two CPU seconds) and then forks every worker ready-made; a spawned
    worker would pay those imports itself, at every call. Forking a full interpreter (a notebook's
    kernel) instead is unsafe with threads, which is why plain "fork" is not used.
    """
    if "forkserver" not in mp.get_all_start_methods():
        return "spawn"
    # what the server imports before forking: this module, and torch._dynamo, which DDP's constructor imports
    mp.get_context("forkserver").set_forkserver_preload(
        ["companion.core.parallel", "torch._dynamo"]
    )
    return "forkserver"


def _stop(context, grace: float = 2.0) -> None:
    """Terminate the context's processes that are still alive, then kill those that ignore it."""
    for process in context.processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + grace
    for process in context.processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def train_data_parallel(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    optimizer: type[torch.optim.Optimizer],
    options: dict | None = None,
    epochs: int = 1,
    batch_size: int = 32,
    world_size: int = 2,
    seed: int = 0,
    loss_fn: Callable = F.cross_entropy,
    timeout: float = 120.0,
) -> ParallelRun:
    """Train ``model`` data-parallel in ``world_size`` CPU processes, ``batch_size`` examples per worker.

    Each epoch draws global batches of ``world_size * batch_size`` examples with
    :func:`companion.core.data.batches` (generator seeded ``seed``, one permutation per epoch, as
    :func:`companion.core.train.fit` does); worker ``r`` takes the ``r``-th of ``world_size`` shards of
    each batch. ``optimizer(params, **options)`` builds each worker's optimizer (a class such as
    ``companion.optim.SGD``); ``loss_fn(out, y, reduction="sum")`` must accept ``reduction``. ``model``
    must be picklable (built from importable classes, not ones defined in a notebook) and stays
    unchanged: load the result's ``state_dict`` into it. Raises :class:`WorkerError` if a worker
    fails or the run takes longer than ``timeout`` seconds (the processes are then stopped).
    """
    from companion.core.data import (
        Split,
        batches,
    )  # the parent only: workers need not import scikit-learn

    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if epochs < 0:
        raise ValueError(f"epochs must be non-negative, got {epochs}")
    if len(X) != len(y):
        raise ValueError(
            f"X and y must have the same length, got {len(X)} and {len(y)}"
        )
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    # the index batches fit would draw: batches() applied to the positions 0..n-1
    positions = torch.arange(len(X))
    generator = make_generator(seed)
    order = [
        idx
        for _ in range(epochs)
        for idx, _ in batches(
            Split(positions, positions), world_size * batch_size, generator=generator
        )
    ]
    with tempfile.TemporaryDirectory(prefix="companion-ddp-") as out_dir:
        args = (
            world_size,
            free_port(),
            copy.deepcopy(model).cpu(),
            X.cpu(),
            y.cpu(),
            order,
            optimizer,
            options or {},
            loss_fn,
            timeout,
            out_dir,
        )
        context = mp.start_processes(
            _worker,
            args=args,
            nprocs=world_size,
            join=False,
            start_method=_start_method(),
        )
        deadline = time.monotonic() + timeout
        try:
            while not context.join(
                timeout=max(0.0, min(1.0, deadline - time.monotonic())),
                grace_period=0.5,
            ):
                if time.monotonic() > deadline:
                    raise WorkerError(
                        f"the {world_size} data-parallel workers did not finish within "
                        f"{timeout:g} s; they were stopped"
                    )
        except (mp.ProcessRaisedException, mp.ProcessExitedException) as error:
            _stop(context)
            rank, why = _first_failure(out_dir) or (error.error_index, str(error))
            raise WorkerError(
                f"a data-parallel worker failed (rank {rank}): {why}"
            ) from error
        finally:
            _stop(context)
        results = [torch.load(Path(out_dir) / f"rank{r}.pt") for r in range(world_size)]
    return ParallelRun(
        state_dict=results[0]["state_dict"],
        replicas=[r["state_dict"] for r in results],
        seconds=results[0]["seconds"],
        losses=results[0]["losses"],
    )
