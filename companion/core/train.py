"""One small training loop for every chapter: it records loss and accuracy per epoch.

Chapters plug their method in through arguments instead of rewriting the loop:
``penalty`` (a regularization term added to the loss), ``transform`` (data augmentation of each
batch), ``callbacks`` (e.g. early stopping) and ``scheduler`` (any ``torch.optim.lr_scheduler``).
"""

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from companion.core.data import Split, batches


@dataclass
class History:
    """Per-epoch records of one training run (validation entries stay empty without validation data)."""

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    """The number of optimizer steps taken by the end of each epoch."""

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    def gap(self) -> float:
        """The final train − validation accuracy gap (a measure of overfitting)."""
        return self.train_acc[-1] - self.val_acc[-1]


class Callback(Protocol):
    """What ``fit`` calls after every epoch, e.g. :class:`~companion.regularization.early_stopping.EarlyStopping`."""

    def on_epoch_end(self, epoch: int, history: History, model: nn.Module) -> bool:
        """Called after each epoch's evaluation; return True to stop training."""


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """The fraction of rows whose arg-max matches ``y`` (class indices, or soft labels via their arg-max)."""
    target = y.argmax(dim=-1) if y.is_floating_point() else y
    return (logits.argmax(dim=-1) == target).float().mean().item()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Split,
    loss_fn: Callable = F.cross_entropy,
    batch_size: int = 1024,
) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on ``data``, in eval mode (the mode is restored after)."""
    was_training = model.training
    model.eval()
    total_loss, correct, n = 0.0, 0.0, 0
    for batch in batches(data, batch_size, shuffle=False):
        out = model(batch.X)
        total_loss += loss_fn(out, batch.y, reduction="sum").item()
        correct += accuracy(out, batch.y) * len(batch)
        n += len(batch)
    model.train(was_training)
    return total_loss / n, correct / n


def minibatch_steps(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: Split,
    batch_size: int = 64,
    loss_fn: Callable = F.cross_entropy,
    generator: torch.Generator | None = None,
    penalty: Callable[[nn.Module], torch.Tensor] | None = None,
    transform: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    | None = None,
) -> Iterator[torch.Tensor]:
    """One epoch of training, the course's one mini-batch loop: for each shuffled batch of ``train``,
    the loss (plus ``penalty(model)``, on the batch as ``transform(X, y)`` returns it) is back-propagated
    and the optimizer steps; yields each batch's loss (detached) after its step. Callers count steps,
    evaluate or stop between batches."""
    model.train()
    for X, y in batches(train, batch_size, shuffle=True, generator=generator):
        if transform is not None:
            X, y = transform(X, y)
        loss = loss_fn(model(X), y)
        if penalty is not None:
            loss = loss + penalty(model)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        yield loss.detach()


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: Split,
    val: Split | None = None,
    epochs: int = 10,
    batch_size: int = 64,
    loss_fn: Callable = F.cross_entropy,
    generator: torch.Generator | None = None,
    penalty: Callable[[nn.Module], torch.Tensor] | None = None,
    transform: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    | None = None,
    callbacks: Iterable[Callback] = (),
    scheduler=None,
    progress: bool = True,
) -> History:
    """Train ``model`` with ``optimizer`` on ``train`` for ``epochs`` epochs of mini-batches.

    After each epoch the model is evaluated (in eval mode) on the whole training set and on ``val``.
    ``penalty(model)`` is added to each batch's loss; ``transform(X, y)`` augments each batch;
    ``scheduler.step()`` runs once per epoch; a callback returning True stops training early.
    The data must already be on the model's device. Returns the :class:`History`.
    """
    history = History()
    callbacks = list(callbacks)
    steps = 0
    bar = tqdm(range(epochs), disable=not progress, leave=False)
    for epoch in bar:
        start = time.perf_counter()
        for _ in minibatch_steps(
            model, optimizer, train, batch_size, loss_fn, generator, penalty, transform
        ):
            steps += 1
        if scheduler is not None:
            scheduler.step()
        history.seconds.append(time.perf_counter() - start)
        history.steps.append(steps)
        tl, ta = evaluate(model, train, loss_fn)
        history.train_loss.append(tl)
        history.train_acc.append(ta)
        if val is not None:
            vl, va = evaluate(model, val, loss_fn)
            history.val_loss.append(vl)
            history.val_acc.append(va)
            bar.set_postfix(train_loss=f"{tl:.3f}", val_acc=f"{va:.3f}")
        # every callback sees every epoch, even when an earlier one asks to stop
        stop = [cb.on_epoch_end(epoch, history, model) for cb in callbacks]
        if any(stop):
            break
    bar.close()
    return history
