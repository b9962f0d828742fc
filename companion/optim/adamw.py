"""AdamW (Loshchilov & Hutter, 2019): Adam plus decoupled weight decay, with the contract of ``torch.optim.AdamW``.

Written as a chain of two named steps (the way optax composes transformations): first
:func:`~companion.optim.adam.decay_weights`, then :func:`~companion.optim.adam.adam_step` with no
L2 term.
"""

import torch
from torch import Tensor

from companion.optim._common import refuse_implementation_switches, scalar
from companion.optim.adam import adam_step, check_adam_hyperparameters, decay_weights


def adamw_step(
    param: Tensor,
    grad: Tensor,
    state: dict,
    *,
    lr: float | Tensor,
    beta1: float | Tensor,
    beta2: float | Tensor,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
) -> None:
    r"""One AdamW step for one parameter tensor, in place: decay the weights, then take an Adam step.

    .. math::
        \theta_{t-1} &\leftarrow (1 - \gamma\lambda)\,\theta_{t-1} \\
        \theta_t &= \theta_{t-1} - \gamma\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)
            \quad\text{(Adam's step, whose moments never see } \lambda)

    The gradient g_t (and so m and v) is the loss's alone; the decay shrinks every weight by the same
    factor 1 − γλ, however large or small its gradients are.
    """
    # θ ← (1 − γλ) θ
    decay_weights(param, lr=lr, weight_decay=weight_decay)
    # θ ← θ − γ m̂ / (√v̂ + ε), with the moments of the loss's gradient only
    adam_step(
        param, grad, state, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=0,
        amsgrad=amsgrad, maximize=maximize,
    )


class AdamW(torch.optim.Optimizer):
    """AdamW, like ``torch.optim.AdamW``: the same arguments, defaults, ValueErrors, parameter-group keys
    (including ``decoupled_weight_decay=True``) and state keys, so state_dicts move between the two.

    ``foreach``, ``capturable``, ``differentiable`` and ``fused`` must stay off. The update itself is
    :func:`adamw_step`.
    """

    def __init__(
        self,
        params,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        betas = check_adam_hyperparameters(lr, betas, eps, weight_decay)
        refuse_implementation_switches(
            foreach=foreach, capturable=capturable, differentiable=differentiable, fused=fused
        )
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
            maximize=maximize, foreach=foreach, capturable=capturable,
            differentiable=differentiable, fused=fused, decoupled_weight_decay=True,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """Take one step for every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue  # no gradient: the parameter and its state are left alone
                if p.grad.is_sparse:
                    raise RuntimeError("Adam does not support sparse gradients, please consider SparseAdam instead")
                adamw_step(
                    p,
                    p.grad,
                    self.state[p],
                    lr=group["lr"],  # a float or, like torch allows, a 1-element tensor
                    beta1=beta1,
                    beta2=beta2,
                    eps=group["eps"],
                    weight_decay=scalar(group["weight_decay"]),
                    amsgrad=group["amsgrad"],
                    maximize=group["maximize"],
                )
        return loss
