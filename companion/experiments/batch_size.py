r"""What the batch size changes: the time per epoch, the noise of the gradient, and the learning rate it allows.

The harness of chapter 7.2 (*Batch size and learning rate*):

- :func:`time_epochs` times training epochs (:func:`train_epoch`, the inner loop of
  :func:`companion.core.train.fit`) at several batch sizes, interleaved and repeated, and
  :func:`step_costs` fits the cost model
  :math:`T(b) = \lceil n/b \rceil\, c_{\text{step}} + n\, c_{\text{example}}`;
- :func:`per_example_gradients`, :func:`gradient_noise` and :func:`predicted_noise` measure how far a
  mini-batch gradient falls from the full-batch one, against the sampling formula

  .. math::
      \mathbb{E}\,\lVert g_B - g \rVert^2 = \frac{\operatorname{tr}\Sigma}{b}\cdot\frac{n-b}{n-1} ;

- :func:`train_over_seeds` trains one configuration from several seeds (for the linear scaling rule;
  summarize them with :func:`companion.core.stats.mean_interval`), :func:`top_hessian_eigenvalue`
  measures the sharpness that bounds a stable learning rate, and :func:`companion.core.stats.loglog_slope` reads a power law
  off a log-log plot.

Data-parallel training itself is :func:`companion.core.parallel.train_data_parallel`.
"""

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from companion.core.data import Split
from companion.core.device import make_generator, seed_everything
from companion.core.train import fit, minibatch_steps


@dataclass
class EpochTimes:
    """Seconds per training epoch: ``cpu[i, r]`` and ``wall[i, r]`` are repeat ``r`` at ``batch_sizes[i]``."""

    batch_sizes: list[int]
    cpu: Tensor
    """CPU seconds of this process (``time.process_time``): little affected by other programs."""
    wall: Tensor
    """Wall-clock seconds (``time.perf_counter``): what a user waits, inflated on a busy machine."""
    n: int
    """The number of examples in one epoch."""

    def median(self, clock: str = "cpu") -> Tensor:
        """The median seconds per epoch at each batch size (robust to a slow repeat); ``clock`` is "cpu" or "wall"."""
        return getattr(self, clock).median(dim=1).values

    def per_example(self, clock: str = "cpu") -> Tensor:
        """The median seconds per training example at each batch size."""
        return self.median(clock) / self.n


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: Split,
    batch_size: int,
    generator: torch.Generator | None = None,
    loss_fn: Callable = F.cross_entropy,
) -> None:
    """One epoch of :func:`companion.core.train.fit`'s inner loop, without its evaluation: shuffled
    mini-batches, each a forward pass, a backward pass and an optimizer step."""
    for _ in minibatch_steps(model, optimizer, train, batch_size, loss_fn, generator):
        pass


def time_epochs(
    make_model: Callable[[], nn.Module],
    train: Split,
    batch_sizes: Sequence[int],
    *,
    optimizer: type[torch.optim.Optimizer],
    options: dict | None = None,
    repeats: int = 5,
    warmup: int = 1,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> EpochTimes:
    """Time ``repeats`` epochs of :func:`train_epoch` at each batch size, in CPU and in wall-clock seconds.

    Each batch size gets its own model (``make_model()``) and optimizer, first trained ``warmup``
    untimed epochs. The timed epochs are interleaved, one per batch size in turn, so that a slow
    moment of a shared machine hits every batch size alike. The model and the data are moved to
    ``device``, the CPU by default: the CPU clock measures the arithmetic only there (on a GPU it
    would see kernel launches). Call it inside :func:`companion.core.device.num_threads` to fix the thread count.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    if not batch_sizes or min(batch_sizes) < 1:
        raise ValueError(
            f"batch sizes must be positive integers, got {list(batch_sizes)}"
        )
    train = Split(train.X.to(device), train.y.to(device))
    runs = []
    for b in batch_sizes:
        seed_everything(seed)
        model = make_model().to(device)
        runs.append(
            (
                model,
                optimizer(model.parameters(), **(options or {})),
                train,
                b,
                make_generator(seed),
            )
        )
    for _ in range(warmup):
        for run in runs:
            train_epoch(*run)
    cpu = torch.zeros(len(runs), repeats, dtype=torch.float64)
    wall = torch.zeros_like(cpu)
    for r in range(repeats):
        for i, run in enumerate(runs):
            c0, w0 = time.process_time(), time.perf_counter()
            train_epoch(*run)
            cpu[i, r], wall[i, r] = time.process_time() - c0, time.perf_counter() - w0
    return EpochTimes(list(batch_sizes), cpu, wall, len(train.X))


def step_costs(times: EpochTimes, clock: str = "cpu") -> tuple[float, float]:
    r"""Fit :math:`T(b) = \lceil n/b \rceil c_{\text{step}} + n\, c_{\text{example}}` to the median epoch times.

    Returns :math:`(c_{\text{step}}, c_{\text{example}})` in seconds: the fixed cost of one optimizer
    step (Python, kernel launches, the update) and the cost of one example's forward and backward
    pass. The fit minimizes relative errors, since the times span orders of magnitude.
    """
    T = times.median(clock)
    steps = torch.tensor(
        [math.ceil(times.n / b) for b in times.batch_sizes], dtype=torch.float64
    )
    # rows [⌈n/b⌉, n] / T(b): least squares on the relative error of the model
    A = torch.stack([steps, torch.full_like(steps, times.n)], dim=1) / T[:, None]
    coef = torch.linalg.lstsq(A, torch.ones_like(T)[:, None]).solution[:, 0]
    return coef[0].item(), coef[1].item()


def per_example_gradients(
    model: nn.Module, data: Split, loss_fn: Callable = F.cross_entropy
) -> Tensor:
    """The gradient of each example's loss with respect to all of ``model``'s parameters, shape (n, P).

    Computed with ``torch.func`` (``vmap`` over ``grad`` of a functional call), so the model must treat
    examples independently (no batch normalization; dropout off). Rows are flattened in the order of
    ``model.parameters()``.
    """
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_of_one(p, x, y):
        return loss_fn(functional_call(model, p, (x[None],)), y[None])

    grads = vmap(grad(loss_of_one), in_dims=(None, 0, 0))(params, data.X, data.y)
    return torch.cat([grads[k].reshape(len(data), -1) for k in params], dim=1)


def gradient_noise(
    per_example: Tensor,
    batch_sizes: Sequence[int],
    draws: int = 200,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""The measured :math:`\mathbb{E}\,\lVert g_B - g \rVert^2` at each batch size, over ``draws`` random batches.

    A batch :math:`B` of :math:`b` distinct examples is drawn uniformly (as an epoch's shuffle does);
    its gradient :math:`g_B` is the mean of its rows of ``per_example`` and :math:`g` the mean of all.
    """
    n = len(per_example)
    if not batch_sizes or min(batch_sizes) < 1 or max(batch_sizes) > n:
        raise ValueError(f"batch sizes must be in [1, {n}], got {list(batch_sizes)}")
    g = per_example.mean(dim=0)
    noise = torch.zeros(
        len(batch_sizes), dtype=per_example.dtype, device=per_example.device
    )
    for i, b in enumerate(batch_sizes):
        for _ in range(draws):
            # b distinct examples: the first b of a random permutation
            idx = torch.randperm(n, generator=generator)[:b].to(per_example.device)
            # ‖g_B − g‖², with g_B the mean of the batch's per-example gradients
            noise[i] += ((per_example.index_select(0, idx).mean(dim=0) - g) ** 2).sum()
    # the mean over draws
    return noise / draws


def predicted_noise(per_example: Tensor, batch_sizes: Sequence[int]) -> Tensor:
    r"""The exact noise :math:`\mathbb{E}\,\lVert g_B - g \rVert^2` of batches drawn without replacement.

    .. math::
        \mathbb{E}\,\lVert g_B - g \rVert^2 = \frac{\operatorname{tr}\Sigma}{b}\cdot\frac{n-b}{n-1}

    :math:`\operatorname{tr}\Sigma = \frac1n \sum_i \lVert g_i - g\rVert^2` is the total variance of one
    example's gradient; the factor :math:`\frac{n-b}{n-1}` (the finite-population correction) makes the
    noise vanish at :math:`b = n`.
    """
    n = len(per_example)
    # tr Σ = (1/n) Σ_i ‖g_i − g‖²
    trace = ((per_example - per_example.mean(dim=0)) ** 2).sum(dim=1).mean()
    b = torch.tensor(
        list(batch_sizes), dtype=per_example.dtype, device=per_example.device
    )
    # tr Σ / b · (n − b) / (n − 1)
    return trace / b * (n - b) / (n - 1)


@dataclass
class SeedRuns:
    """One configuration trained from several seeds: the final training loss and validation accuracy of each."""

    batch_size: int
    lr: float
    train_loss: Tensor
    """Per seed; +inf where the loss diverged (NaN or infinite)."""
    val_acc: Tensor


def train_over_seeds(
    make_model: Callable[[], nn.Module],
    train: Split,
    val: Split,
    *,
    batch_size: int,
    lr: float,
    epochs: int,
    seeds: Sequence[int],
    optimizer: type[torch.optim.Optimizer],
    options: dict | None = None,
) -> SeedRuns:
    """Train ``make_model()`` with ``optimizer(params, lr=lr, **options)`` for ``epochs`` epochs from each seed.

    The seed fixes the initial weights and the batch order. The results are fit's records after the
    last epoch: the loss on the whole training set and the accuracy on ``val`` (in eval mode).
    """
    losses, accs = [], []
    for seed in seeds:
        seed_everything(seed)
        model = make_model()
        history = fit(
            model,
            optimizer(model.parameters(), lr=lr, **(options or {})),
            train,
            val,
            epochs=epochs,
            batch_size=batch_size,
            generator=make_generator(seed),
            progress=False,
        )
        loss = history.train_loss[-1]
        losses.append(loss if math.isfinite(loss) else math.inf)
        accs.append(history.val_acc[-1])
    return SeedRuns(
        batch_size,
        lr,
        torch.tensor(losses, dtype=torch.float64),
        torch.tensor(accs, dtype=torch.float64),
    )


def top_hessian_eigenvalue(
    model: nn.Module,
    data: Split,
    loss_fn: Callable = F.cross_entropy,
    iters: int = 50,
    seed: int = 0,
) -> float:
    r"""The largest eigenvalue :math:`\lambda_{\max}` of the Hessian of the full-batch loss (the *sharpness*).

    Power iteration on Hessian-vector products, :math:`v \leftarrow Hv / \lVert Hv \rVert`, each one a
    second backward pass through the gradient. Gradient descent on a quadratic with this curvature is
    stable only for learning rates below :math:`2 / \lambda_{\max}`.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    g = torch.autograd.grad(loss_fn(model(data.X), data.y), params, create_graph=True)
    gen = make_generator(seed)
    v = [
        torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) for p in params
    ]
    lam = 0.0
    for _ in range(iters):
        # v ← v / ‖v‖
        norm = torch.sqrt(sum((x * x).sum() for x in v))
        v = [x / norm for x in v]
        # Hv, by differentiating g·v
        Hv = torch.autograd.grad(g, params, v, retain_graph=True)
        # λ ≈ vᵀHv (the Rayleigh quotient)
        lam = sum((h * x).sum() for h, x in zip(Hv, v)).item()
        v = [h.detach() for h in Hv]
    return lam
