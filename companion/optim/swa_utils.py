r"""Averaging the iterates, written from scratch with the contract of ``torch.optim.swa_utils``.

Stochastic gradient descent ends where its last noisy step left it; an average of its iterates cancels
much of that noise (Polyak and Juditsky, 1992; Ruppert, 1988). :class:`AveragedModel` keeps the
average of a model's parameters beside the model, either the equal average of stochastic weight
averaging (SWA, Izmailov et al., 2018) or an exponential moving average (EMA):

.. math::
    \text{equal:}\quad \bar\theta_{n+1} = \bar\theta_n + \frac{\theta - \bar\theta_n}{n + 1}, \qquad
    \text{EMA:}\quad \bar\theta_{n+1} = d\,\bar\theta_n + (1 - d)\,\theta ,

starting from :math:`\bar\theta_1 = \theta` (the first call copies). :class:`SWALR` anneals the
learning rate to the constant rate that SWA samples at, and :func:`update_bn` recomputes the
BatchNorm statistics of the averaged weights, which are no average of the iterates' statistics.

The names, arguments, defaults, errors and state_dict keys (``module.<...>`` and ``n_averaged``) are
torch's, so a state saved by one loads into the other.
"""

import itertools
import math
from copy import deepcopy
from typing import Any, Callable, Iterable, Literal

import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from companion.nn.norm_layers import _BatchNorm
from companion.optim.lr_scheduler._base import per_group, warn_outside_step

__all__ = [
    "AveragedModel",
    "update_bn",
    "SWALR",
    "get_ema_multi_avg_fn",
    "get_swa_multi_avg_fn",
    "get_ema_avg_fn",
    "get_swa_avg_fn",
]

Tensors = list[Tensor] | tuple[Tensor, ...]


def _check_decay(decay: float) -> None:
    if decay < 0.0 or decay > 1.0:
        raise ValueError(
            f"Invalid decay value {decay} provided. Please provide a value in [0,1] range."
        )


def get_ema_avg_fn(decay: float = 0.999) -> Callable[[Tensor, Tensor, Any], Tensor]:
    r"""The exponential moving average of one tensor, :math:`\bar\theta \leftarrow d\,\bar\theta + (1 - d)\,\theta`.

    The average forgets geometrically: an iterate ``k`` updates old carries weight :math:`(1 - d) d^k`, so
    the average spans about :math:`1/(1 - d)` updates. ``decay`` must lie in [0, 1]."""
    _check_decay(decay)

    @torch.no_grad()
    def ema_update(ema_param: Tensor, current_param: Tensor, num_averaged) -> Tensor:
        # θ̄ ← d θ̄ + (1 − d) θ
        return decay * ema_param + (1 - decay) * current_param

    return ema_update


def get_swa_avg_fn() -> Callable[[Tensor, Tensor, Any], Tensor]:
    r"""The equal average of one tensor over the ``n + 1`` iterates seen, :math:`\bar\theta \leftarrow \bar\theta + (\theta - \bar\theta)/(n + 1)`.

    If :math:`\bar\theta_n` is the mean of n iterates, the result is the mean of those and θ."""

    @torch.no_grad()
    def swa_update(
        averaged_param: Tensor, current_param: Tensor, num_averaged
    ) -> Tensor:
        # θ̄ ← θ̄ + (θ − θ̄) / (n + 1)
        return averaged_param + (current_param - averaged_param) / (num_averaged + 1)

    return swa_update


def get_ema_multi_avg_fn(
    decay: float = 0.999,
) -> Callable[[Tensors, Tensors, Any], None]:
    r"""The exponential moving average of a list of tensors, in place:

    .. math::
        \bar\theta \leftarrow \bar\theta + (1 - d)(\theta - \bar\theta) = d\,\bar\theta + (1 - d)\,\theta .

    Integer tensors (a BatchNorm's ``num_batches_tracked`` under ``use_buffers=True``) get
    :math:`d\,\bar\theta + (1 - d)\,\theta` truncated toward zero, as torch's."""
    _check_decay(decay)

    @torch.no_grad()
    def ema_update(ema_param_list: Tensors, current_param_list: Tensors, _) -> None:
        for ema, theta in zip(ema_param_list, current_param_list, strict=True):
            if ema.is_floating_point() or ema.is_complex():
                # θ̄ ← θ̄ + (1 − d)(θ − θ̄)
                ema.add_(theta - ema, alpha=1 - decay)
            else:
                # θ̄ ← d θ̄ + (1 − d) θ, truncated toward zero by the copy into the integer dtype
                ema.copy_(ema * decay + theta * (1 - decay))

    return ema_update


def get_swa_multi_avg_fn() -> Callable[[Tensors, Tensors, Any], None]:
    r"""The equal average of a list of tensors, in place: :math:`\bar\theta \leftarrow \bar\theta + (\theta - \bar\theta)/(n + 1)`.

    ``num_averaged`` (n) may be an int or a 0-dim tensor on the tensors' device; an integer tensor's
    average is truncated toward zero."""

    @torch.no_grad()
    def swa_update(
        averaged_param_list: Tensors, current_param_list: Tensors, num_averaged
    ) -> None:
        for average, theta in zip(averaged_param_list, current_param_list, strict=True):
            # θ̄ ← θ̄ + (θ − θ̄) / (n + 1)
            step = (theta - average) / (num_averaged + 1)
            if average.is_floating_point() or average.is_complex():
                average.add_(step)
            else:
                # an integer tensor: the copy truncates toward zero
                average.copy_(average + step)

    return swa_update


def _model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (the CPU for a model without tensors)."""
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


class AveragedModel(nn.Module):
    r"""A copy of ``model`` whose parameters (and, with ``use_buffers``, buffers) hold an average of the
    iterates passed to :meth:`update_parameters`, like ``torch.optim.swa_utils.AveragedModel``.

    With n iterates averaged so far (the buffer ``n_averaged``), the update is

    .. math::
        \bar\theta_1 = \theta_1, \qquad
        \bar\theta_{n+1} = \texttt{avg}(\bar\theta_n, \theta_{n+1}, n),

    where ``avg`` is the equal average :math:`\bar\theta_n + (\theta_{n+1} - \bar\theta_n)/(n + 1)` unless
    ``avg_fn`` (one tensor, returns the new average) or ``multi_avg_fn`` (lists of tensors of one
    device and dtype, updated in place) is given; :func:`get_ema_multi_avg_fn` gives the EMA. Without
    ``use_buffers`` the buffers (BatchNorm statistics) are copied from ``model`` at every update; run
    :func:`update_bn` before evaluating the average. ``device`` moves the copy there; ``n_averaged`` lives
    on ``device``, or on the model's device (torch keeps it on the CPU then; the state_dict is the same).
    """

    n_averaged: Tensor

    def __init__(
        self,
        model: nn.Module,
        device: int | torch.device | None = None,
        avg_fn: Callable[[Tensor, Tensor, Tensor | int], Tensor] | None = None,
        multi_avg_fn: Callable[[Tensors, Tensors, Tensor | int], None] | None = None,
        use_buffers: bool = False,
    ) -> None:
        super().__init__()
        if avg_fn is not None and multi_avg_fn is not None:
            raise AssertionError(
                "Only one of avg_fn and multi_avg_fn should be provided"
            )
        self.module = deepcopy(model)
        if device is not None:
            self.module = self.module.to(device)
        home = device if device is not None else _model_device(self.module)
        self.register_buffer(
            "n_averaged", torch.tensor(0, dtype=torch.long, device=home)
        )
        self.avg_fn = avg_fn
        self.multi_avg_fn = multi_avg_fn
        self.use_buffers = use_buffers

    def forward(self, *args, **kwargs):
        """The averaged model's output."""
        return self.module(*args, **kwargs)

    def _averaged_tensors(self, model: nn.Module) -> tuple[list[Tensor], list[Tensor]]:
        """The pairs (θ̄, θ) to average: the parameters, and the buffers too with ``use_buffers``."""
        ours, theirs = self.module.parameters(), model.parameters()
        if self.use_buffers:
            ours = itertools.chain(ours, self.module.buffers())
            theirs = itertools.chain(theirs, model.buffers())
        pairs = list(zip(ours, theirs))
        return [a.detach() for a, _ in pairs], [
            t.detach().to(a.device) for a, t in pairs
        ]

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        """Fold the current ``model`` into the average: copy it on the first call, then average."""
        averages, thetas = self._averaged_tensors(model)
        if self.n_averaged == 0:
            for average, theta in zip(averages, thetas):
                # θ̄_1 = θ_1
                average.copy_(theta)
        elif self.avg_fn is not None:
            for average, theta in zip(averages, thetas):
                # θ̄ ← avg_fn(θ̄, θ, n)
                average.copy_(
                    self.avg_fn(average, theta, self.n_averaged.to(average.device))
                )
        else:
            multi_avg_fn = self.multi_avg_fn or get_swa_multi_avg_fn()
            groups: dict[
                tuple[torch.device, torch.dtype], tuple[list[Tensor], list[Tensor]]
            ] = {}
            for average, theta in zip(averages, thetas):
                group = groups.setdefault((average.device, average.dtype), ([], []))
                group[0].append(average)
                group[1].append(theta)
            for (device, _), (group_averages, group_thetas) in groups.items():
                # θ̄ ← avg(θ̄, θ, n) for the tensors of one device and dtype
                multi_avg_fn(group_averages, group_thetas, self.n_averaged.to(device))
        if not self.use_buffers:
            # the buffers follow the model: the average of running statistics is no statistic of the average
            for mine, theirs in zip(
                self.module.buffers(), model.buffers(), strict=True
            ):
                mine.detach().copy_(theirs.detach().to(mine.device))
        # n ← n + 1
        self.n_averaged += 1


def _is_batch_norm(module: nn.Module) -> bool:
    """A BatchNorm layer, torch's (``torch.nn.modules.batchnorm._BatchNorm``) or ours (``companion.nn``)."""
    return isinstance(module, (nn.modules.batchnorm._BatchNorm, _BatchNorm))


@torch.no_grad()
def update_bn(
    loader: Iterable[Any], model: nn.Module, device: int | torch.device | None = None
) -> None:
    r"""Recompute the BatchNorm running statistics of ``model`` with one pass over ``loader``, like
    ``torch.optim.swa_utils.update_bn``.

    Each BatchNorm layer (torch's or ``companion.nn``'s) is reset and its ``momentum`` set to None,
    which makes the running statistics the cumulative average over the K batches seen,

    .. math::
        r_k = r_{k-1} + \frac{s_k - r_{k-1}}{k}, \qquad r_K = \frac1K \sum_{k=1}^K s_k ,

    with :math:`s_k` a batch's mean (or unbiased variance). A batch is a tensor or a list or tuple whose
    first element is the input; ``device`` moves it there. The momenta and the train/eval mode are
    restored afterwards; a model without BatchNorm is left untouched.
    """
    momenta = {}
    for module in model.modules():
        if _is_batch_norm(module):
            module.reset_running_stats()
            momenta[module] = module.momentum
    if not momenta:
        return
    was_training = model.training
    model.train()
    for module in momenta:
        module.momentum = None
    for batch in loader:
        if isinstance(batch, (list, tuple)):
            batch = batch[0]
        if device is not None:
            batch = batch.to(device)
        model(batch)
    for module, momentum in momenta.items():
        module.momentum = momentum
    model.train(was_training)


class SWALR(LRScheduler):
    r"""Anneal each group's learning rate to ``swa_lr`` over ``anneal_epochs`` epochs, then hold it, like
    ``torch.optim.swa_utils.SWALR``.

    With :math:`t_k = \min(1, k / T)` after k steps (T = ``anneal_epochs``; with T = 0 the first rate is
    already :math:`\eta_{\text{swa}}`) and the annealing curve

    .. math::
        \alpha(t) = \frac{1 - \cos \pi t}{2}\ \ (\text{cos}), \qquad \alpha(t) = t\ \ (\text{linear}),

    the rate is :math:`\eta_k = \alpha_k\,\eta_{\text{swa}} + (1 - \alpha_k)\,\eta_{\text{start}}`. The group
    holds only :math:`\eta_{k-1}`, so each step recovers the starting rate from it,
    :math:`\eta_{\text{start}} = (\eta_{k-1} - \alpha_{k-1}\eta_{\text{swa}}) / (1 - \alpha_{k-1})`
    (:math:`\eta_{\text{swa}}` once :math:`\alpha_{k-1} = 1`). ``swa_lr`` is one rate or a list, one per group,
    written into the groups as ``group["swa_lr"]``.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        swa_lr: float,
        anneal_epochs: int = 10,
        anneal_strategy: Literal["cos", "linear"] = "cos",
        last_epoch: int = -1,
    ) -> None:
        for rate, group in zip(
            per_group("swa_lr", optimizer, swa_lr), optimizer.param_groups, strict=True
        ):
            group["swa_lr"] = rate
        if anneal_strategy not in ["cos", "linear"]:
            raise ValueError(
                f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}"
            )
        self._set_anneal_func(anneal_strategy)
        if not isinstance(anneal_epochs, int) or anneal_epochs < 0:
            raise ValueError(
                f"anneal_epochs must be equal or greater than 0, got {anneal_epochs}"
            )
        self.anneal_epochs = anneal_epochs
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _linear_anneal(t: float) -> float:
        # α(t) = t
        return t

    @staticmethod
    def _cosine_anneal(t: float) -> float:
        # α(t) = (1 − cos π t) / 2
        return (1 - math.cos(math.pi * t)) / 2

    @staticmethod
    def _get_initial_lr(lr, swa_lr, alpha):
        if alpha == 1:
            return swa_lr
        # η_start = (η_{k−1} − α_{k−1} η_swa) / (1 − α_{k−1})
        return (lr - alpha * swa_lr) / (1 - alpha)

    def _set_anneal_func(self, anneal_strategy: str) -> None:
        self._anneal_strategy = anneal_strategy
        self.anneal_func = (
            self._cosine_anneal if anneal_strategy == "cos" else self._linear_anneal
        )

    def get_lr(self) -> list:
        warn_outside_step(self)
        k = self._step_count - 1  # the constructor's step is k = 0
        if self.anneal_epochs == 0:
            k = max(1, k)
        T = max(1, self.anneal_epochs)
        # t_{k−1} and t_k, clipped to [0, 1]
        alpha_prev = self.anneal_func(max(0, min(1, (k - 1) / T)))
        alpha = self.anneal_func(max(0, min(1, k / T)))
        groups = self.optimizer.param_groups
        starts = [
            self._get_initial_lr(g["lr"], g["swa_lr"], alpha_prev) for g in groups
        ]
        # η_k = α_k η_swa + (1 − α_k) η_start
        return [
            g["swa_lr"] * alpha + start * (1 - alpha)
            for g, start in zip(groups, starts)
        ]

    def state_dict(self) -> dict[str, Any]:
        """Every attribute except the optimizer and the annealing function (restored from ``_anneal_strategy``)."""
        return {
            key: value
            for key, value in self.__dict__.items()
            if key not in ("optimizer", "anneal_func")
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state from :meth:`state_dict` (ours or torch's)."""
        self.__dict__.update(state_dict)
        self._set_anneal_func(self._anneal_strategy)
