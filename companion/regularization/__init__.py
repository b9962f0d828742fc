"""Regularizers, and the hook of :func:`companion.core.train.fit` each one plugs into.

| regularizer | module | how it enters training |
|---|---|---|
| L1, L2, elastic-net penalties | :mod:`~companion.regularization.penalties` | ``fit(..., penalty=partial(l2_penalty, lam=...))``: added to the loss |
| the L1, L0 and nuclear-norm proximal steps | :mod:`~companion.regularization.proximal` | ``fit(..., optimizer=ProximalL1(opt, lam))`` (or ``ProximalL0``, ``ProximalNuclear``): after every step |
| data augmentation, mixup | :mod:`~companion.regularization.augment` | ``fit(..., transform=Augmentation(...))``: applied to each batch |
| augmentation of 1-D signals (MNIST-1D's transformations) | :mod:`~companion.regularization.signal_augment` | ``fit(..., transform=SignalAugmentation(...))``: applied to each batch |
| DropConnect | :mod:`~companion.regularization.dropconnect` | a layer of the model (``DropConnectLinear``) |
| stochastic pooling | :mod:`~companion.regularization.stochastic_pooling` | a layer of the model (``StochasticPool1d``/``2d``, in place of max pooling) |
| early stopping | :mod:`~companion.regularization.early_stopping` | ``fit(..., callbacks=[EarlyStopping(...)])``: ends the run |

Dropout is a torch mirror and lives with the other layers, in :mod:`companion.nn.dropout`.
"""

from companion.regularization.penalties import (
    check_lambda,
    elastic_net_penalty,
    l1_penalty,
    l2_penalty,
    penalized_parameters,
    sparsity,
)
from companion.regularization.proximal import (
    ProximalL0,
    ProximalL1,
    ProximalNuclear,
    hard_threshold,
    l0_proximal_step,
    l1_proximal_step,
    nuclear_norm,
    nuclear_proximal_step,
    singular_value_threshold,
    soft_threshold,
)
from companion.regularization.augment import Augmentation
from companion.regularization.signal_augment import SignalAugmentation
from companion.regularization.dropconnect import DropConnectLinear
from companion.regularization.stochastic_pooling import (
    StochasticPool1d,
    StochasticPool2d,
    inverse_cdf_index,
    stochastic_pool,
)
from companion.regularization.early_stopping import EarlyStopping
