"""How fast a model learns: the number of optimizer steps until a target accuracy is reached.

The batch-normalization paper's headline (Ioffe & Szegedy, 2015) is a ratio of such counts: the
baseline's final accuracy reached in 14 times fewer steps. :func:`steps_to_accuracy` measures the
count with a resolution of ``eval_every`` steps rather than whole epochs.
"""

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from companion.core.data import Split
from companion.core.train import evaluate, minibatch_steps


def first_reaching(
    steps: Sequence[int], values: Sequence[float], target: float
) -> int | None:
    """The first entry of ``steps`` whose value is at least ``target``, or None if none is."""
    for step, value in zip(steps, values):
        if value >= target:
            return step
    return None


@dataclass
class StepsToTarget:
    """The outcome of :func:`steps_to_accuracy`."""

    steps: int | None
    """The first evaluated step at which the accuracy reached the target (None: never, or diverged)."""
    eval_steps: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    diverged: bool = False
    """True if the training loss became NaN or infinite (training then stopped)."""


def steps_to_accuracy(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: Split,
    val: Split,
    target: float,
    max_steps: int,
    eval_every: int = 10,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
    loss_fn: Callable = F.cross_entropy,
    stop_at_target: bool = True,
) -> StepsToTarget:
    """Train on shuffled mini-batches of ``train`` (epoch after epoch) for at most ``max_steps`` steps,
    evaluating the accuracy on ``val`` (in eval mode) every ``eval_every`` steps.

    Returns the first evaluated step count at which the accuracy is ≥ ``target``, with the accuracy
    curve. Training stops there when ``stop_at_target``, and always when the loss stops being finite.
    """
    result = StepsToTarget(None)
    step = 0
    while step < max_steps:
        for loss in minibatch_steps(
            model, optimizer, train, batch_size, loss_fn, generator
        ):
            if not math.isfinite(loss.item()):
                result.diverged = True
                return result
            step += 1
            if step % eval_every == 0:
                _, acc = evaluate(model, val, loss_fn)
                result.eval_steps.append(step)
                result.accuracy.append(acc)
                if result.steps is None and acc >= target:
                    result.steps = step
                    if stop_at_target:
                        return result
            if step >= max_steps:
                break
    return result
