"""The MNIST-1D testbed shared by the ConvNet chapters (9.1 convolutional networks, 9.2 stochastic pooling,
9.3 regularizing a ConvNet).

The three model families of Greydanus & Kobak's table, at the sizes of their code, on the course's layers:

- :func:`logistic`: one linear map 40 → 10;
- :func:`mlp_model`: 40 → 100 → 100 → 10 with ReLUs (the paper's MLP has a residual middle layer; a plain one is
  what the course's other chapters train, and it reaches the same accuracy here);
- :func:`cnn`: three convolutions with 25 channels (kernel 5 then 3, 3) and a linear read-out of the last
  feature map. Without ``pool`` the convolutions stride by 2, as in the paper; with ``pool`` (a factory such as
  ``lambda: MaxPool1d(2)``) they keep the length ('same' padding) and each ReLU is followed by the pooling layer
  that halves it — the network in which max, average and stochastic pooling can be compared.

Every model takes inputs shaped (N, 40), the shape :func:`companion.core.data.load_mnist1d` returns, and is built
right after ``seed_everything(seed)``, so the same seed gives the same initial weights. :func:`train_convnet`
trains with the shared budget: Adam, learning rate 10⁻², batches of 100 (the paper's settings), for
:data:`EPOCHS` epochs.
"""

from typing import Callable

import torch
from torch import nn

from companion.core.data import Digits
from companion.core.device import make_generator, seed_everything
from companion.core.models import mlp
from companion.core.train import History, fit, minibatch_steps

LENGTH = 40
"""The length of an MNIST-1D sequence."""
CHANNELS = 25
LR = 1e-2
BATCH_SIZE = 100
EPOCHS = 30
"""The shared budget: 30 epochs of the 3500 training sequences in batches of 100 (1050 Adam steps)."""


def logistic(seed: int = 0, device=None) -> nn.Module:
    """Multinomial logistic regression on the 40 raw values."""
    seed_everything(seed)
    return nn.Linear(LENGTH, 10).to(device or "cpu")


def mlp_model(seed: int = 0, device=None, **mlp_kwargs) -> nn.Module:
    """The MLP 40 → 100 → 100 → 10 (ReLU); ``mlp_kwargs`` swap in layers (``dropout=``, ``norm=``...)."""
    seed_everything(seed)
    return mlp(in_features=LENGTH, hidden=(100, 100), **mlp_kwargs).to(device or "cpu")


def cnn(
    seed: int = 0,
    device=None,
    channels: int = CHANNELS,
    pool: Callable[[], nn.Module] | None = None,
    norm: Callable[[int], nn.Module] | None = None,
    dropout: Callable[[], nn.Module] | None = None,
) -> nn.Sequential:
    """The ConvNet: [conv → (norm) → ReLU → (pool)] three times, then (dropout) and a linear read-out.

    Without ``pool`` the convolutions are the paper's (kernel 5, stride 2, padding 1; then kernel 3, stride 2,
    padding 1, twice): lengths 40 → 19 → 10 → 5. With ``pool`` they have stride 1 and 'same' padding, and
    ``pool()`` follows each ReLU (lengths 40 → 20 → 10 → 5 with a pooling of 2). ``norm(channels)`` is placed
    after each convolution (``companion.nn.BatchNorm1d``), ``dropout()`` before the read-out.
    """
    from companion.nn import Conv1d

    seed_everything(seed)
    layers: list[nn.Module] = [nn.Unflatten(1, (1, LENGTH))]
    width = 1
    for kernel in (5, 3, 3):
        if pool is None:
            layers.append(Conv1d(width, channels, kernel, stride=2, padding=1))
        else:
            layers.append(Conv1d(width, channels, kernel, padding="same"))
        if norm is not None:
            layers.append(norm(channels))
        layers.append(nn.ReLU())
        if pool is not None:
            layers.append(pool())
        width = channels
    layers.append(nn.Flatten())
    if dropout is not None:
        layers.append(dropout())
    features = nn.Sequential(*layers)
    # the read-out's width from one pass in evaluation mode: no dropout or stochastic pooling draws from the
    # global generator (the read-out's initial weights stay those of the same model without them) and no
    # normalization layer's running statistics move
    with torch.no_grad():
        n_features = features.eval()(torch.zeros(2, LENGTH)).shape[1]
    features.train()
    features.append(nn.Linear(n_features, 10))
    return features.to(device or "cpu")


def train_convnet(
    model: nn.Module,
    data: Digits,
    optimizer: torch.optim.Optimizer | None = None,
    epochs: int = EPOCHS,
    seed: int = 0,
    validate: bool = True,
    **fit_kwargs,
) -> History:
    """Train ``model`` on the training split with the shared budget (Adam, lr 10⁻², batches of 100, :data:`EPOCHS`
    epochs, batch order from ``seed``) unless ``optimizer`` or ``epochs`` say otherwise; ``fit_kwargs`` go to
    :func:`companion.core.train.fit` (``penalty=``, ``transform=``, ``callbacks=``...)."""
    from companion.optim import Adam

    if optimizer is None:
        optimizer = Adam(model.parameters(), lr=LR)
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


def train_convnet_fast(
    model: nn.Module, data: Digits, epochs: int = EPOCHS, seed: int = 0
) -> nn.Module:
    """Train ``model`` as :func:`train_convnet` does (Adam, lr 10⁻², batches of 100 in an order drawn from ``seed``)
    for ``epochs`` epochs, without evaluating between epochs (a third of a run's time saved); returns the model in
    eval mode. The weights equal :func:`train_convnet`'s bit for bit (``tests/test_pooling_race.py``)."""
    from companion.optim import Adam

    optimizer = Adam(model.parameters(), lr=LR)
    generator = make_generator(seed)
    for _ in range(epochs):
        for _ in minibatch_steps(
            model, optimizer, data.train, BATCH_SIZE, generator=generator
        ):
            pass
    return model.eval()
