"""Early stopping: stop training when a monitored validation metric stops improving, and keep the
weights of the best epoch.

:class:`EarlyStopping` is a callback for :func:`companion.core.train.fit` (its ``on_epoch_end`` returns
True to stop), and its :meth:`EarlyStopping.step` can also be fed numbers directly.
"""

import copy
import math
from dataclasses import fields

import torch
from torch import nn

from companion.core.train import History

MONITORS = tuple(f.name for f in fields(History) if f.name not in ("seconds", "steps"))
"""The History series that can be monitored: train_loss, train_acc, val_loss, val_acc."""


class EarlyStopping:
    r"""Stop when ``monitor`` has not improved for ``patience`` epochs in a row; remember the best weights.

    An epoch's value :math:`v_t` improves on the best so far :math:`v^*` when

    .. math::
        v_t < v^* - \delta \ \ (\text{mode} = \text{"min"}) \qquad\text{or}\qquad
        v_t > v^* + \delta \ \ (\text{mode} = \text{"max"}),

    with :math:`\delta` = ``min_delta`` ≥ 0 (the first number always improves; NaN never does).
    ``wait`` counts the epochs since the last improvement; training stops at the first epoch where
    ``wait`` reaches ``patience`` (``patience=0`` stops at the first epoch that does not improve). With
    ``restore_best_weights`` the model's weights at the best epoch are copied (on the model's device)
    and loaded back into the model when it stops; if training ends without stopping, call
    :meth:`restore` yourself.

    After training: ``best`` (the best value), ``best_epoch`` (its 0-based epoch) and
    ``stopped_epoch`` (the epoch at which it asked to stop, or None).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        mode: str = "min",
        patience: int = 10,
        min_delta: float = 0.0,
        restore_best_weights: bool = True,
    ) -> None:
        if monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {MONITORS}, got {monitor!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(
                f"patience must be a non-negative integer, got {patience!r}"
            )
        if min_delta < 0:
            raise ValueError(f"min_delta must be non-negative, got {min_delta}")
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best_weights = restore_best_weights
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far (to reuse the callback for another run)."""
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self.wait = 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def improves(self, value: float) -> bool:
        """Whether ``value`` beats the best so far by more than ``min_delta`` (NaN never does)."""
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            # v_t < v* − δ
            return value < self.best - self.min_delta
        # v_t > v* + δ
        return value > self.best + self.min_delta

    def step(self, value: float, epoch: int, model: nn.Module | None = None) -> bool:
        """Record one epoch's ``value``; return True when training should stop (the best weights are
        then loaded back into ``model`` if ``restore_best_weights``)."""
        if self.improves(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights and model is not None:
                # a copy, not a reference: training goes on changing the model's tensors in place
                self.best_state = copy.deepcopy(model.state_dict())
            return False
        self.wait += 1
        if self.wait < self.patience:
            return False
        self.stopped_epoch = epoch
        if model is not None:
            self.restore(model)
        return True

    def restore(self, model: nn.Module) -> None:
        """Load the weights of the best epoch into ``model`` (nothing happens if none were kept)."""
        if self.restore_best_weights and self.best_state is not None:
            model.load_state_dict(self.best_state)

    def on_epoch_end(self, epoch: int, history: History, model: nn.Module) -> bool:
        """The :func:`companion.core.train.fit` callback: monitor the last value of ``history.<monitor>``."""
        values = getattr(history, self.monitor)
        if not values:
            raise ValueError(
                f"history.{self.monitor} is empty: pass validation data to fit to monitor it"
            )
        return self.step(values[-1], epoch, model)
