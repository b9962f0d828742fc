"""RMSprop (Tieleman & Hinton, 2012), written from scratch with the contract of ``torch.optim.RMSprop``."""

from torch import Tensor

from companion.optim._base import PerTensorOptimizer, check_hyperparameters, check_lr, init_state, refuse_implementation_switches, scalar


def rmsprop_step(param: Tensor, grad: Tensor, state: dict, *, lr: float, alpha: float, eps: float,
                 weight_decay: float, momentum: float, centered: bool, maximize: bool) -> None:
    r"""One RMSprop step for one parameter tensor, in place.

    .. math::
        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\,\theta_{t-1} \\
        v_t &= \alpha\, v_{t-1} + (1 - \alpha)\, g_t \odot g_t \\
        \bar g_t &= \alpha\, \bar g_{t-1} + (1 - \alpha)\, g_t \qquad \text{(centered only)} \\
        s_t &= \sqrt{v_t} + \epsilon \quad\text{or}\quad s_t = \sqrt{v_t - \bar g_t \odot \bar g_t} + \epsilon \ \text{(centered)} \\
        b_t &= \mu\, b_{t-1} + g_t / s_t \qquad (b_0 = 0) \\
        \theta_t &= \theta_{t-1} - \gamma\, b_t \ \ (\mu > 0) \quad\text{or}\quad \theta_t = \theta_{t-1} - \gamma\, g_t / s_t

    with learning rate γ (``lr``), smoothing constant α (``alpha``), ε added *outside* the square
    root, weight decay λ and momentum μ. ``state`` holds the step count under ``step``, v under
    ``square_avg``, ḡ under ``grad_avg`` (centered only) and b under ``momentum_buffer`` (μ > 0
    only): torch's keys, all starting at zero.
    """
    if not state:
        # t = 0, v_0 = 0 (and ḡ_0 = 0, b_0 = 0 where used)   (created at the first gradient, as in torch)
        init_state(state, param, "square_avg", *(["momentum_buffer"] if momentum > 0 else []),
                   *(["grad_avg"] if centered else []))
    # t ← t + 1
    state["step"] += 1
    # g_t = ∇f(θ), or −∇f(θ) to maximize f
    g = -grad if maximize else grad
    # g_t ← g_t + λ θ_{t−1}   (weight decay as an L2 penalty's gradient)
    if weight_decay != 0:
        g = g.add(param, alpha=weight_decay)
    v = state["square_avg"]
    # v_t = α v_{t−1} + (1 − α) g_t²   (a leaky average of squared gradients)
    v.mul_(alpha).addcmul_(g, g, value=1 - alpha)
    if centered:
        g_bar = state["grad_avg"]
        # ḡ_t = α ḡ_{t−1} + (1 − α) g_t   (a leaky average of the gradients themselves)
        g_bar.lerp_(g, 1 - alpha)
        # s_t = √(v_t − ḡ_t²)   (a running standard deviation instead of a root mean square)
        s = v.addcmul(g_bar, g_bar, value=-1).sqrt_()
    else:
        # s_t = √v_t
        s = v.sqrt()
    # s_t ← s_t + ε   (outside the square root)
    s = s.add_(eps)
    if momentum > 0:
        b = state["momentum_buffer"]
        # b_t = μ b_{t−1} + g_t / s_t
        b.mul_(momentum).addcdiv_(g, s)
        # θ_t = θ_{t−1} − γ b_t
        param.add_(b, alpha=-lr)
    else:
        # θ_t = θ_{t−1} − γ g_t / s_t
        param.addcdiv_(g, s, value=-lr)


class RMSprop(PerTensorOptimizer):
    """RMSprop, optionally centered and with momentum, like ``torch.optim.RMSprop``.

    Same arguments, defaults, ValueErrors, parameter-group keys and state keys as torch's class, so
    state_dicts move between the two. ``capturable``, ``foreach`` and ``differentiable`` are pure
    implementation switches and must stay off. The update itself is :func:`rmsprop_step`.
    """

    def __init__(self, params, lr: float | Tensor = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False,
                 capturable: bool = False, foreach: bool | None = None, maximize: bool = False,
                 differentiable: bool = False) -> None:
        check_lr(lr)
        check_hyperparameters(eps=eps, momentum=momentum, weight_decay=weight_decay, alpha=alpha)
        refuse_implementation_switches(capturable=capturable, foreach=foreach, differentiable=differentiable)
        defaults = dict(
            lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered, weight_decay=weight_decay,
            capturable=capturable, foreach=foreach, maximize=maximize, differentiable=differentiable,
        )
        super().__init__(params, defaults)

    def update(self, param, grad, state, group):
        rmsprop_step(
            param, grad, state, lr=scalar(group["lr"]), alpha=group["alpha"], eps=group["eps"],
            weight_decay=group["weight_decay"], momentum=group["momentum"], centered=group["centered"],
            maximize=group["maximize"],
        )
