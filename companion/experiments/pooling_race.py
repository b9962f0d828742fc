r"""Max, average and stochastic pooling raced on the MNIST-1D ConvNet (chapter 9.2, stochastic pooling).

Each run builds :func:`companion.experiments.convnet_testbed.cnn` with one pooling layer after every ReLU
(stride-1 'same' convolutions, lengths 40 → 20 → 10 → 5), trains it with the testbed's budget (Adam, learning rate
10⁻², batches of 100, batch order from the seed) and measures the final model in eval mode. :func:`~companion.experiments.convnet_testbed.train_convnet_fast`
is :func:`~companion.experiments.convnet_testbed.train_convnet` without the evaluation of the whole training set
after every epoch (which costs about a third of an epoch here): the same optimizer, batches and draws, so the same
weights. :func:`race` runs every pooling from the same seed (same initial weights, same batch order) for each seed,
and keeps the trained models.

:func:`sampled_accuracies` measures the other way to use a stochastic-pooling network at test time: keep drawing,
as in training, and average the class probabilities of several passes. With one pass it is a single member of the
ensemble of pooling choices; with many, a Monte Carlo estimate of the ensemble's average prediction

.. math::

    \bar p(y \mid x) = \frac{1}{M} \sum_{m=1}^{M} \operatorname{softmax}\big(f(x; I^{(m)})\big)_y ,

where :math:`I^{(m)}` are the indices drawn in every pooling window on pass m; the probability-weighted
evaluation of :class:`~companion.regularization.stochastic_pooling.StochasticPool1d` replaces this average by one deterministic pass.
"""

import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from companion.core.data import Digits, Split
from companion.core.device import make_generator, rng_seed
from companion.core.train import accuracy, evaluate, minibatch_steps
from companion.experiments.convnet_testbed import EPOCHS, cnn, train_convnet_fast
from companion.nn.pooling import AvgPool1d, MaxPool1d
from companion.regularization.stochastic_pooling import StochasticPool1d

POOLS: dict[str, Callable[[], nn.Module]] = {
    "max": lambda: MaxPool1d(2),
    "average": lambda: AvgPool1d(2),
    "stochastic": lambda: StochasticPool1d(2),
}
"""The three poolings of the race, each over windows of 2 with stride 2 (they halve the length)."""


@dataclass(frozen=True)
class PoolRun:
    """One trained network (eval mode), its accuracy and loss on the training and test splits, the run's length."""

    model: nn.Module
    train_acc: float
    test_acc: float
    train_loss: float
    test_loss: float
    seconds: float

    @property
    def gap(self) -> float:
        """Train − test accuracy: how much the final model overfits."""
        return self.train_acc - self.test_acc


def run_pool(
    pool: Callable[[], nn.Module],
    data: Digits,
    seed: int = 0,
    epochs: int = EPOCHS,
    device=None,
    channels: int = 25,
) -> PoolRun:
    """Build the pooled ConvNet from ``seed`` (on ``device``, by default the data's), train it with
    :func:`~companion.experiments.convnet_testbed.train_convnet_fast` and evaluate it on the training and test splits."""
    start = time.perf_counter()
    model = cnn(seed, device or data.train.X.device, channels=channels, pool=pool)
    train_convnet_fast(model, data, epochs, seed)
    train_loss, train_acc = evaluate(model, data.train)
    test_loss, test_acc = evaluate(model, data.test)
    return PoolRun(
        model, train_acc, test_acc, train_loss, test_loss, time.perf_counter() - start
    )


def race(
    pools: Mapping[str, Callable[[], nn.Module]],
    data: Digits,
    seeds: Sequence[int],
    epochs: int = EPOCHS,
    device=None,
    channels: int = 25,
) -> dict[str, list[PoolRun]]:
    """:func:`run_pool` for every pooling and seed: ``{name: [PoolRun for each seed, in the order of seeds]}``; runs
    with the same seed share their initial weights and batch order, so their differences can be paired."""
    runs: dict[str, list[PoolRun]] = {name: [] for name in pools}
    for seed in seeds:
        for name, pool in pools.items():
            runs[name].append(run_pool(pool, data, seed, epochs, device, channels))
    return runs


@torch.no_grad()
def pass_probabilities(
    model: nn.Module, X: torch.Tensor, passes: int, seed: int = 0
) -> torch.Tensor:
    """The class probabilities of ``passes`` forward passes in training mode, every stochastic pooling drawing anew
    on each pass: a tensor (passes, N, classes). The draws come from torch's default generators seeded with
    ``rng_seed(seed)``; the global random state and the model's mode are restored afterwards."""
    if passes < 1:
        raise ValueError(f"passes must be at least 1, got {passes}")
    was_training = model.training
    devices = [X.device] if X.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(rng_seed(seed))
        model.train()
        try:
            # softmax(f(x; I^(m))) for m = 1, ..., M
            return torch.stack([torch.softmax(model(X), dim=-1) for _ in range(passes)])
        finally:
            model.train(was_training)


def sampled_accuracies(
    model: nn.Module, split: Split, counts: Sequence[int], seed: int = 0
) -> list[float]:
    """The accuracy on ``split`` of the average of the first M sampled passes (:func:`pass_probabilities`), for each
    M in ``counts``: one stream of ``max(counts)`` passes, so a larger M extends a smaller one's ensemble."""
    probabilities = pass_probabilities(model, split.X, max(counts), seed)
    # p̄_M = (1/M) Σ_{m ≤ M} softmax(f(x; I^(m)))
    running = probabilities.cumsum(0)
    return [accuracy(running[m - 1] / m, split.y) for m in counts]
