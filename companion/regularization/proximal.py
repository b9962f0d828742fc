"""Proximal steps: the soft threshold, the L1 proximal step, and :class:`ProximalL1`, which applies it
after every step of an optimizer.

A proximal step handles a non-smooth penalty exactly instead of differentiating it: after a gradient
step of size γ on the loss, the weights are moved to
:math:`\operatorname{prox}_{\gamma R}(w) = \arg\min_z \tfrac{1}{2\gamma}\lVert z - w\rVert^2 + R(z)`.
"""

from typing import Iterable

import torch
from torch import Tensor

from companion.regularization.penalties import Params, check_lambda, penalized_parameters


def soft_threshold(x: Tensor, threshold: float | Tensor) -> Tensor:
    r"""The proximal operator of :math:`t \lVert \cdot \rVert_1`, applied element-wise:

    .. math::
        S_t(x) = \operatorname{sign}(x)\, \max(|x| - t,\ 0)
        = \operatorname*{arg\,min}_z\ \tfrac12 (z - x)^2 + t\,|z| .

    Entries with :math:`|x| \le t` become exactly zero; the others move towards zero by :math:`t`.
    ``threshold`` is a number ≥ 0 or a tensor of such numbers that broadcasts to ``x``'s shape.
    """
    if isinstance(threshold, Tensor):
        try:
            shape = torch.broadcast_shapes(threshold.shape, x.shape)
        except RuntimeError:
            shape = None
        if shape != x.shape:
            raise ValueError(
                f"threshold of shape {tuple(threshold.shape)} does not broadcast to x's shape {tuple(x.shape)}"
            )
        if (threshold < 0).any():
            raise ValueError("threshold must be >= 0 everywhere")
    else:
        check_lambda(threshold, "threshold")
    # sign(x) · max(|x| − t, 0)
    return x.sign() * (x.abs() - threshold).clamp(min=0)


@torch.no_grad()
def l1_proximal_step(params: Params, lam: float, lr: float, *, include_bias: bool = False) -> None:
    r"""The proximal step for :math:`\lambda \lVert w \rVert_1` after a gradient step of size γ (``lr``),
    in place: :math:`w \leftarrow S_{\gamma\lambda}(w)`.

    Together with a plain gradient step on the loss this is proximal gradient descent (ISTA): the
    penalty is never differentiated, and weights that the step would carry across zero land on it.
    """
    check_lambda(lam)
    check_lambda(lr, "lr")
    for w in penalized_parameters(params, include_bias):
        # w ← sign(w) · max(|w| − γλ, 0)
        w.copy_(soft_threshold(w, lr * lam))


class ProximalL1:
    r"""Wrap an optimizer so that every ``step()`` is followed by the L1 proximal step
    :math:`w \leftarrow S_{\gamma\lambda}(w)` on the penalized parameters, with each parameter group's
    learning rate γ.

    ``params`` chooses the penalized tensors (default: the optimizer's tensors with ≥ 2 dimensions,
    i.e. the weights, as in :func:`penalized_parameters`). With plain SGD this is proximal SGD. With
    momentum μ the gradient part of the step is amplified up to :math:`1/(1-\mu)` times while the
    threshold is not, so a strength comparable to a subgradient penalty λ is about :math:`\lambda/(1-\mu)`.
    Everything else (``zero_grad``, ``param_groups``, ``state_dict``...) is the wrapped optimizer's.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, lam: float, params: Iterable[Tensor] | None = None):
        check_lambda(lam)
        self.optimizer = optimizer
        self.lam = lam
        if params is None:
            params = [p for g in optimizer.param_groups for p in g["params"] if p.dim() >= 2]
        self._penalized = {id(p) for p in params}
        known = {id(p) for g in optimizer.param_groups for p in g["params"]}
        if not self._penalized <= known:
            raise ValueError("params must be tensors that the optimizer updates")

    def step(self, closure=None):
        """The wrapped optimizer's step, then the soft-threshold with each group's learning rate."""
        loss = self.optimizer.step(closure)
        for group in self.optimizer.param_groups:
            weights = [p for p in group["params"] if id(p) in self._penalized]
            if weights:
                l1_proximal_step(weights, self.lam, float(group["lr"]))
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def __getattr__(self, name):
        # param_groups, state, state_dict, load_state_dict, ... come from the wrapped optimizer
        return getattr(self.__dict__["optimizer"], name)
