r"""How large do a classifier's logits grow during training, and how honest is its confidence?

Trains the digits MLP with softmax cross-entropy (optionally label-smoothed) and records, after each
epoch, the mean *logit gap* between the target class and the others,

.. math::
    \bar\Delta = \frac1n \sum_i \Big(z_{i,y_i} - \frac{1}{C-1}\sum_{c \ne y_i} z_{i,c}\Big),

which hard targets push to infinity (softmax reaches 1 only there), while a label-smoothed target with
smoothing ε has a finite optimum, :math:`\Delta^\star = \log\big(1 + C(1-\varepsilon)/\varepsilon\big)`.
Used by the losses chapter (label smoothing).
"""

import functools
import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

import companion
from companion.optim import SGD
from companion.core.calibration import Reliability, reliability
from companion.core.data import Digits, Split
from companion.core.models import mlp
from companion.core.train import fit
from companion.nn.loss import cross_entropy
from companion.core.device import make_generator


def logit_gap(logits: Tensor, labels: Tensor) -> float:
    r"""Mean over rows of :math:`z_y - \operatorname{mean}_{c \ne y} z_c`."""
    classes = logits.shape[1]
    z_y = logits.gather(1, labels.unsqueeze(1)).squeeze(1)
    # mean of the other C − 1 logits
    others = (logits.sum(dim=1) - z_y) / (classes - 1)
    return (z_y - others).mean().item()


def optimal_gap(label_smoothing: float, classes: int) -> float:
    r"""The gap that minimizes the smoothed cross-entropy: :math:`\log(1 + C(1-\varepsilon)/\varepsilon)` (∞ at ε = 0)."""
    if label_smoothing <= 0:
        return math.inf
    return math.log1p(classes * (1 - label_smoothing) / label_smoothing)


@dataclass
class GapRecorder:
    """A ``fit`` callback: the logit gap on ``data`` after every epoch."""

    data: Split
    gaps: list[float] = field(default_factory=list)

    @torch.no_grad()
    def on_epoch_end(self, epoch: int, history, model: nn.Module) -> bool:
        was_training = model.training
        model.eval()
        self.gaps.append(logit_gap(model(self.data.X), self.data.y))
        model.train(was_training)
        return False


@dataclass
class SmoothingRun:
    """One training run: the per-epoch train logit gap, and test accuracy, confidence and reliability."""

    label_smoothing: float
    seed: int
    gaps: list[float]
    test_accuracy: float
    test_confidence: float
    reliability: Reliability


def train_with_smoothing(
    digits: Digits,
    label_smoothing: float,
    seed: int,
    epochs: int = 40,
    hidden: tuple[int, ...] = (128,),
    lr: float = 0.1,
    momentum: float = 0.9,
    batch_size: int = 64,
    n_bins: int = 15,
    device=None,
) -> SmoothingRun:
    """Train ``mlp(64, hidden, 10)`` with SGD + momentum on cross-entropy with ``label_smoothing``,
    on ``device`` (by default the data's)."""
    companion.seed_everything(seed)
    model = mlp(digits.train.X.shape[1], hidden, 10).to(device or digits.train.X.device)
    optimizer = SGD(model.parameters(), lr=lr, momentum=momentum)
    recorder = GapRecorder(digits.train)
    loss_fn = functools.partial(cross_entropy, label_smoothing=label_smoothing)
    fit(
        model,
        optimizer,
        digits.train,
        None,
        epochs=epochs,
        batch_size=batch_size,
        loss_fn=loss_fn,
        generator=make_generator(seed),
        callbacks=[recorder],
        progress=False,
    )
    model.eval()
    with torch.no_grad():
        probs = model(digits.test.X).softmax(dim=1)
    return SmoothingRun(
        label_smoothing,
        seed,
        recorder.gaps,
        test_accuracy=(probs.argmax(1) == digits.test.y).double().mean().item(),
        test_confidence=probs.max(1).values.double().mean().item(),
        reliability=reliability(probs, digits.test.y, n_bins),
    )


__all__ = [
    "logit_gap",
    "optimal_gap",
    "GapRecorder",
    "SmoothingRun",
    "train_with_smoothing",
]
