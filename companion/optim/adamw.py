"""AdamW (Loshchilov & Hutter, 2019): Adam plus decoupled weight decay, with the contract of ``torch.optim.AdamW``.

Written as a chain of two named steps (the way optax composes transformations): first
:func:`~companion.optim.adam.decay_weights`, then :func:`~companion.optim.adam.adam_step` with no
L2 term.
"""

from torch import Tensor

from companion.optim.adam import Adam, adam_step, decay_weights


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
        param,
        grad,
        state,
        lr=lr,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        weight_decay=0,
        amsgrad=amsgrad,
        maximize=maximize,
    )


class AdamW(Adam):
    """AdamW, like ``torch.optim.AdamW``: Adam with ``decoupled_weight_decay=True`` and a default decay of
    10⁻², as torch defines it, so the two share every argument check, state key and the update
    :func:`~companion.optim.adam.adam_step` (whose decoupled branch is :func:`adamw_step`'s chain).

    ``foreach``, ``capturable``, ``differentiable`` and ``fused`` must stay off.
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
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
        )

    def __setstate__(self, state):
        # like torch: a state loaded into AdamW is always decoupled
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
