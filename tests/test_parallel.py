"""companion.core.parallel: W gloo workers with batch b each take the steps of one process with batch W·b.

Each test that trains starts real processes (about two seconds each: importing torch, and
DistributedDataParallel importing torch._dynamo), so the table is kept short.
"""

import multiprocessing
import time

import pytest
import torch
import torch.nn.functional as F

from companion import make_generator
from companion.core.data import make_classification
from companion.core.models import mlp
from companion.core.parallel import WorkerError, free_port, train_data_parallel
from companion.core.train import fit
from companion.optim import SGD, Adam
from companion.testing.tolerances import assert_close

EPOCHS, BATCH = 4, 16
N = 203  # 203 = 6·32 + 11: the last global batch of 11 splits into unequal shards of 6 and 5

# The two runs differ only in how the batch gradient is summed: two partial sums (one per worker,
# each scaled by W/B) added by the all-reduce, against one sum over the batch. Each step's gradient
# then differs by a few ε relative to its size, and those errors add up over the T = 4·7 = 28 steps
# (the runs are short and the step size small, so they grow about linearly, not exponentially).
# Allow 4 ε per step: 4·T ≈ 112 ε·scale. We measured under 3 with every ATEN_CPU_CAPABILITY.
STEPS = EPOCHS * -(-N // (2 * BATCH))  # 4 epochs of ⌈203 / 32⌉ = 7 global batches
ULPS = 4 * STEPS

CASES = {
    "SGD momentum": (SGD, dict(lr=0.1, momentum=0.9)),
    "SGD nesterov, weight decay": (
        SGD,
        dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    ),
    "Adam": (Adam, dict(lr=0.01)),
}


@pytest.fixture(scope="module")
def blobs():
    return make_classification(
        n=N, d=8, classes=4, spread=1.5, seed=0, dtype=torch.float64
    )


def _model():
    torch.manual_seed(0)
    return mlp(in_features=8, hidden=(16,), out_features=4).double()


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_two_workers_equal_one_process_with_twice_the_batch(blobs, name):
    optimizer, options = CASES[name]
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    run = train_data_parallel(
        model,
        blobs.X,
        blobs.y,
        optimizer=optimizer,
        options=options,
        epochs=EPOCHS,
        batch_size=BATCH,
        world_size=2,
        seed=3,
    )
    for key, value in model.state_dict().items():
        assert_close(
            value, before[key], ulps=0, what=f"the caller's model is left alone: {key}"
        )
    reference = fit(
        model,
        optimizer(model.parameters(), **options),
        blobs,
        epochs=EPOCHS,
        batch_size=2 * BATCH,
        generator=make_generator(3),
        progress=False,
    )
    assert reference.steps[-1] == len(run.losses) == STEPS
    for key, value in model.state_dict().items():
        assert_close(run.state_dict[key], value, ulps=ULPS, what=f"{name}: {key}")
        # every rank receives the same all-reduced bits and applies the same update: identical replicas
        assert_close(
            run.replicas[1][key], run.state_dict[key], ulps=0, what=f"replicas: {key}"
        )
        assert not torch.equal(value, before[key])  # training moved the weights
    assert run.losses[-1] < run.losses[0]
    assert run.seconds > 0


def _fails_on_rank_1(out, y, reduction="mean"):
    """A loss that raises in the second worker only, while the first waits for it in the all-reduce."""
    if torch.distributed.get_rank() == 1:
        raise RuntimeError("planted failure in worker 1")
    return F.cross_entropy(out, y, reduction=reduction)


def _hangs(out, y, reduction="mean"):
    """A loss that never returns."""
    time.sleep(3600)


def test_worker_failure_raises_and_stops_the_processes(blobs):
    with pytest.raises(WorkerError, match="(?s)rank 1.*planted failure in worker 1"):
        train_data_parallel(
            _model(),
            blobs.X,
            blobs.y,
            optimizer=SGD,
            options=dict(lr=0.1),
            loss_fn=_fails_on_rank_1,
            timeout=60,
        )
    assert multiprocessing.active_children() == []


def test_timeout_raises_and_stops_the_processes(blobs):
    start = time.monotonic()
    with pytest.raises(WorkerError, match="did not finish within 3 s"):
        train_data_parallel(
            _model(),
            blobs.X,
            blobs.y,
            optimizer=SGD,
            options=dict(lr=0.1),
            loss_fn=_hangs,
            timeout=3,
        )
    assert (
        time.monotonic() - start < 20
    )  # 3 s, then SIGTERM and at most a 0.5 s grace before SIGKILL
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(world_size=0), "world_size must be at least 1, got 0"),
        (dict(batch_size=0), "batch_size must be at least 1, got 0"),
        (dict(epochs=-1), "epochs must be non-negative, got -1"),
        (dict(timeout=0), "timeout must be positive, got 0"),
    ],
)
def test_invalid_arguments(blobs, kwargs, message):
    with pytest.raises(ValueError, match=message):
        train_data_parallel(
            _model(), blobs.X, blobs.y, optimizer=SGD, options=dict(lr=0.1), **kwargs
        )


def test_mismatched_lengths(blobs):
    with pytest.raises(
        ValueError, match="X and y must have the same length, got 203 and 202"
    ):
        train_data_parallel(
            _model(), blobs.X, blobs.y[:-1], optimizer=SGD, options=dict(lr=0.1)
        )


def test_free_port_is_bindable():
    import socket

    port = free_port()
    assert 0 < port < 65536
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
