"""The overfitting testbed shared by the regularization chapters (4.1–4.5).

200 training digits and an over-wide two-hidden-layer MLP: the network reaches 100 % training
accuracy while validation accuracy stalls around 92 %, a gap every regularizer can be measured on,
in a few seconds on a CPU. Every chapter uses the same data, model, optimizer and budget, so their
results can be compared in one table.
"""

import torch
from torch import nn

from companion.core.data import Digits, load_digits
from companion.core.device import seed_everything
from companion.core.models import mlp
from companion.core.train import History, fit

N_TRAIN = 200
HIDDEN = (256, 256)
LR = 0.05
MOMENTUM = 0.9
EPOCHS = 60
BATCH_SIZE = 32


def testbed_data(device=None, images: bool = False) -> Digits:
    """The digits splits with only the first 200 training examples (validation and test unchanged)."""
    return load_digits(device=device, n_train=N_TRAIN, images=images)


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
    **fit_kwargs,
) -> History:
    """Train ``model`` on the testbed's training split with the shared budget (60 epochs of batches of
    32, SGD with lr 0.05 and momentum 0.9 unless ``optimizer`` is given); validation is recorded.
    ``fit_kwargs`` go to :func:`companion.core.train.fit` (``penalty=``, ``transform=``, ``callbacks=``...)."""
    from companion.optim import SGD

    if optimizer is None:
        optimizer = SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    fit_kwargs.setdefault("progress", False)
    return fit(
        model, optimizer, data.train, data.val, epochs=epochs, batch_size=BATCH_SIZE,
        generator=torch.Generator().manual_seed(seed), **fit_kwargs,
    )
