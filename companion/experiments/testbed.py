"""The overfitting testbed shared by the regularization chapters (4.1–4.5).

200 training digits and an over-wide two-hidden-layer MLP: the network reaches 100 % training
accuracy while validation accuracy stalls around 92 %, a gap every regularizer can be measured on,
in a few seconds on a CPU. Every chapter uses the same data, model, optimizer and budget, so their
results can be compared in one table.

``label_noise=`` gives the *noisy* variant used by the regularization summary: a fixed fifth of the 200
training labels replaced by a wrong class (:data:`LABEL_NOISE`). The clean digits are easy enough that the
over-wide network generalizes well without help; with wrong labels to memorize it overfits clearly (its
validation loss rises several-fold), which is the setting where the survey's regularizers are meant to help.
Validation and test labels stay clean.
"""

import torch
from torch import nn

from companion.core.data import Digits, Split, load_digits
from companion.core.device import make_generator, seed_everything
from companion.core.models import mlp
from companion.core.train import History, fit

N_TRAIN = 200
HIDDEN = (256, 256)
LR = 0.05
MOMENTUM = 0.9
EPOCHS = 60
BATCH_SIZE = 32
LABEL_NOISE = 0.2
"""The fraction of training labels the noisy testbed replaces by a wrong class."""
NOISE_SEED = 0
"""The seed of the generator that picks the noisy labels: the same corrupted set for every run."""


def noisy_labels(
    y: torch.Tensor, fraction: float, seed: int = NOISE_SEED, classes: int = 10
) -> torch.Tensor:
    """A copy of the class labels ``y`` in which each entry, with probability ``fraction`` (one uniform draw per
    label from a generator seeded with ``seed``), is replaced by one of the ``classes − 1`` *other* classes,
    uniformly. The same ``seed`` corrupts the same labels the same way."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    g = make_generator(seed)
    flip = torch.rand(len(y), generator=g) < fraction
    shift = torch.randint(1, classes, (len(y),), generator=g)
    # y' = (y + s) mod C with s ∈ {1, ..., C − 1} where flipped: always a different class
    return torch.where(flip.to(y.device), (y + shift.to(y.device)) % classes, y)


def testbed_data(
    device=None,
    images: bool = False,
    label_noise: float = 0.0,
    noise_seed: int = NOISE_SEED,
) -> Digits:
    """The digits splits with only the first 200 training examples (validation and test unchanged); with
    ``label_noise`` > 0 that fraction of the training labels is wrong (see :func:`noisy_labels`)."""
    data = load_digits(device=device, n_train=N_TRAIN, images=images)
    if label_noise == 0.0:
        return data
    train = Split(data.train.X, noisy_labels(data.train.y, label_noise, noise_seed))
    return Digits(train, data.val, data.test)


def testbed_model(seed: int = 0, device=None, **mlp_kwargs) -> nn.Module:
    """The over-wide MLP 64 → 256 → 256 → 10 (ReLU), initialized from ``seed``; ``mlp_kwargs``
    swap in layers (``dropout=``, ``linear=``, ``norm=``...)."""
    seed_everything(seed)
    return mlp(hidden=HIDDEN, **mlp_kwargs).to(device or "cpu")


def train_testbed(
    model: nn.Module,
    data: Digits,
    optimizer: torch.optim.Optimizer | None = None,
    epochs: int = EPOCHS,
    seed: int = 0,
    validate: bool = True,
    **fit_kwargs,
) -> History:
    """Train ``model`` on the testbed's training split with the shared budget (60 epochs of batches of
    32, SGD with lr 0.05 and momentum 0.9 unless ``optimizer`` is given); validation is recorded.
    ``fit_kwargs`` go to :func:`companion.core.train.fit` (``penalty=``, ``transform=``, ``callbacks=``...);
    ``validate=False`` skips the per-epoch evaluation on the validation split (faster; training is unchanged)."""
    from companion.optim import SGD

    if optimizer is None:
        optimizer = SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    fit_kwargs.setdefault("progress", False)
    return fit(
        model,
        optimizer,
        data.train,
        data.val if validate else None,
        epochs=epochs,
        batch_size=BATCH_SIZE,
        generator=make_generator(seed),
        **fit_kwargs,
    )
