r"""Activation functions written from scratch with the contract of ``torch.nn``.

Each function is a ``torch.autograd.Function`` whose forward is tensor arithmetic and whose backward is
the derivative written by hand (in its docstring). The backward uses only differentiable tensor
operations on the saved input or output, so autograd can differentiate it again (second derivatives,
checked by ``gradgradcheck``). At a kink the derivative follows torch's convention, stated in each
docstring.

``inplace=True`` overwrites the input with the result and returns it, as in torch. Here the result is
computed out of place and copied back, so there is one readable backward per function (in-place use
saves no memory, and it also works where torch refuses it, with a negative slope).
"""

import math
import warnings

import torch
from torch import Tensor
from torch.autograd import Function


# -- numerically stable building blocks (plain tensor arithmetic, differentiable by autograd) ----------


def _sigmoid(x: Tensor) -> Tensor:
    r"""σ(x) = 1 / (1 + e^{-x}), computed so that ``exp`` never sees a large positive argument."""
    # x ≥ 0: 1 / (1 + e^{−x}), with e^{−x} ≤ 1
    pos = 1 / (1 + torch.exp(-x.clamp(min=0)))
    # x < 0: e^{x} / (1 + e^{x}), with e^{x} < 1
    ex = torch.exp(x.clamp(max=0))
    neg = ex / (1 + ex)
    return torch.where(x >= 0, pos, neg)


def _tanh(x: Tensor) -> Tensor:
    r"""tanh(x) = (1 − e^{−2x}) / (1 + e^{−2x}) for x ≥ 0 (odd for x < 0), accurate near 0 through ``expm1``."""
    # u = e^{−2x} − 1 for x ≥ 0, so tanh x = −u / (2 + u)
    up = torch.expm1(-2 * x.clamp(min=0))
    # d = e^{2x} − 1 for x ≤ 0, so tanh x = d / (2 + d)
    dn = torch.expm1(2 * x.clamp(max=0))
    return torch.where(x >= 0, -up / (2 + up), dn / (2 + dn))


def _apply(function: type[Function], input: Tensor, inplace: bool, *args) -> Tensor:
    """``function`` applied to ``input``; with ``inplace`` (torch's meaning) the input tensor itself,
    overwritten with the result. The function then works on a copy, so what it saves for the backward
    is not overwritten."""
    if not inplace:
        return function.apply(input, *args)
    return input.copy_(function.apply(input.clone(), *args))


# -- sigmoid and tanh --------------------------------------------------------------------------------


class SigmoidFunction(Function):
    r"""y = σ(x) = 1 / (1 + e^{−x});  dy/dx = σ(x) (1 − σ(x)) = y (1 − y)."""

    @staticmethod
    def forward(ctx, x):
        y = _sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        # ∂L/∂x = ∂L/∂y · y (1 − y)
        return grad * y * (1 - y)


class TanhFunction(Function):
    r"""y = tanh x;  dy/dx = 1 − tanh² x = 1 − y²."""

    @staticmethod
    def forward(ctx, x):
        y = _tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        # ∂L/∂x = ∂L/∂y · (1 − y²)
        return grad * (1 - y * y)


# -- rectifiers ---------------------------------------------------------------------------------------


class ReLUFunction(Function):
    r"""y = max(0, x);  dy/dx = 1 if x > 0 else 0 (0 at the kink x = 0, as torch)."""

    @staticmethod
    def forward(ctx, x):
        y = x.masked_fill(x <= 0, 0)  # masked_fill keeps NaN as torch does
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        # ∂L/∂x = ∂L/∂y · 1[x > 0]   (y > 0 exactly where x > 0)
        return grad * (y > 0).to(grad.dtype)


class LeakyReLUFunction(Function):
    r"""y = x if x > 0 else s·x;  dy/dx = 1 if x > 0 else s (s at the kink x = 0, as torch)."""

    @staticmethod
    def forward(ctx, x, negative_slope):
        ctx.negative_slope = negative_slope
        ctx.save_for_backward(x)
        return torch.where(x > 0, x, x * negative_slope)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        # ∂L/∂x = ∂L/∂y · (1 if x > 0 else s)
        slope = torch.ones_like(x).masked_fill(x <= 0, ctx.negative_slope)
        return grad * slope, None


class PReLUFunction(Function):
    r"""y = x if x > 0 else a_c·x, with one learnable slope a_c per channel c (dimension 1).

    .. math::
        \frac{\partial y}{\partial x} = \begin{cases} 1 & x > 0 \\ a_c & x \le 0 \end{cases}, \qquad
        \frac{\partial L}{\partial a_c} = \sum_{\text{positions in channel } c} \frac{\partial L}{\partial y}\,
        \min(x, 0) .

    At the kink x = 0 the input derivative is a_c, as torch.
    """

    @staticmethod
    def forward(ctx, x, weight):
        a = _channel_view(weight, x)
        ctx.save_for_backward(x, weight)
        return torch.where(x > 0, x, a * x)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        a = _channel_view(weight, x)
        positive = x > 0
        # ∂L/∂x = ∂L/∂y · (1 if x > 0 else a_c)
        grad_x = grad * torch.where(positive, torch.ones_like(a), a)
        # ∂L/∂a_c = Σ ∂L/∂y · min(x, 0) over every position of channel c
        per_position = grad * torch.where(positive, torch.zeros_like(x), x)
        if weight.numel() == 1:
            grad_w = per_position.sum().reshape(weight.shape)
        else:
            grad_w = per_position.sum(dim=[d for d in range(x.dim()) if d != 1])
        return grad_x, grad_w


def _channel_view(weight: Tensor, x: Tensor) -> Tensor:
    """The slopes shaped to broadcast over dimension 1 of ``x`` (torch's channel dimension for PReLU)."""
    if weight.numel() == 1:
        return weight.reshape(())
    channels = x.size(1) if x.dim() > 1 else 1
    if x.dim() == 0:
        raise RuntimeError("Not allow zero-dim input tensor.")
    if channels != weight.numel():
        raise RuntimeError(
            "Mismatch of parameter numbers and input channel size. Found parameter numbers = "
            f"{weight.numel()} and channel size = {channels}."
        )
    return weight.reshape([1, -1] + [1] * (x.dim() - 2))


class ELUFunction(Function):
    r"""y = x if x > 0 else α (eˣ − 1);  dy/dx = 1 if x > 0 else α eˣ (α at the kink x = 0, as torch)."""

    @staticmethod
    def forward(ctx, x, alpha):
        ctx.alpha = alpha
        ctx.save_for_backward(x)
        # clamping keeps exp away from large positive x, whose branch is not used anyway
        return torch.where(x > 0, x, alpha * torch.expm1(x.clamp(max=0)))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        # ∂L/∂x = ∂L/∂y · (1 if x > 0 else α eˣ)
        slope = torch.where(
            x > 0, torch.ones_like(x), ctx.alpha * torch.exp(x.clamp(max=0))
        )
        return grad * slope, None


# -- smooth gates -------------------------------------------------------------------------------------

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_CUBIC = 0.044715


class GELUFunction(Function):
    r"""The Gaussian error linear unit, y = x Φ(x), with Φ the standard normal CDF.

    .. math::
        \text{exact:}\quad y = x\,\Phi(x) = \tfrac12 x \bigl(1 + \operatorname{erf}(x/\sqrt2)\bigr), \qquad
        \frac{dy}{dx} = \Phi(x) + x\,\varphi(x), \quad \varphi(x) = e^{-x^2/2}/\sqrt{2\pi};

        \text{tanh:}\quad y = \tfrac12 x\,(1 + \tanh u), \quad u = \sqrt{2/\pi}\,(x + 0.044715\,x^3), \qquad
        \frac{dy}{dx} = \tfrac12 (1 + \tanh u) + \tfrac12 x\,(1 - \tanh^2 u)\,\sqrt{2/\pi}\,(1 + 3 \cdot 0.044715\,x^2).
    """

    @staticmethod
    def forward(ctx, x, approximate):
        ctx.approximate = approximate
        ctx.save_for_backward(x)
        if approximate == "tanh":
            u = _SQRT_2_OVER_PI * (x + _GELU_CUBIC * x**3)
            return 0.5 * x * (1 + _tanh(u))
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2.0)))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        if ctx.approximate == "tanh":
            t = _tanh(_SQRT_2_OVER_PI * (x + _GELU_CUBIC * x**3))
            # dy/dx = ½(1 + tanh u) + ½ x (1 − tanh² u) · √(2/π)(1 + 3·0.044715 x²)
            slope = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _SQRT_2_OVER_PI * (
                1 + 3 * _GELU_CUBIC * x * x
            )
        else:
            # dy/dx = Φ(x) + x φ(x)
            slope = (
                0.5 * (1 + torch.erf(x / math.sqrt(2.0)))
                + x * torch.exp(-0.5 * x * x) * _INV_SQRT_2PI
            )
        return grad * slope, None


class SiLUFunction(Function):
    r"""The sigmoid-weighted linear unit (swish), y = x σ(x);  dy/dx = σ(x) (1 + x (1 − σ(x)))."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * _sigmoid(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        s = _sigmoid(x)
        # ∂L/∂x = ∂L/∂y · σ(x) (1 + x (1 − σ(x)))
        return grad * s * (1 + x * (1 - s))


# -- softmax and log-softmax ------------------------------------------------------------------------


class SoftmaxFunction(Function):
    r"""y_i = e^{x_i − m} / Σ_j e^{x_j − m} along ``dim``, with m = max_j x_j (the result is unchanged by m,
    but no exponent exceeds 0, so nothing overflows).

    .. math::
        \frac{\partial L}{\partial x_i} = y_i \Bigl(\frac{\partial L}{\partial y_i} - \sum_j \frac{\partial L}{\partial y_j}\, y_j\Bigr).
    """

    @staticmethod
    def forward(ctx, x, dim):
        ctx.dim = dim
        e = torch.exp(x - x.amax(dim, keepdim=True))  # every exponent ≤ 0
        y = e / e.sum(dim, keepdim=True)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        # ∂L/∂x = y ⊙ (∂L/∂y − ⟨∂L/∂y, y⟩)
        return y * (grad - (grad * y).sum(ctx.dim, keepdim=True)), None


class LogSoftmaxFunction(Function):
    r"""y_i = x_i − m − log Σ_j e^{x_j − m} along ``dim``, with m = max_j x_j (the log-sum-exp trick).

    .. math::
        \frac{\partial L}{\partial x_i} = \frac{\partial L}{\partial y_i} - e^{y_i} \sum_j \frac{\partial L}{\partial y_j}.
    """

    @staticmethod
    def forward(ctx, x, dim):
        ctx.dim = dim
        shifted = x - x.amax(
            dim, keepdim=True
        )  # every exponent ≤ 0, and the largest is exactly 0
        y = shifted - torch.log(torch.exp(shifted).sum(dim, keepdim=True))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        # ∂L/∂x = ∂L/∂y − softmax(x) · Σ_j ∂L/∂y_j,  with softmax(x) = e^{y}
        return grad - torch.exp(y) * grad.sum(ctx.dim, keepdim=True), None


def _implicit_softmax_dim(name: str, ndim: int) -> int:
    """torch's (deprecated) choice of dimension when ``dim=None``: 0 for 0-, 1- and 3-d inputs, else 1."""
    warnings.warn(
        f"Implicit dimension choice for {name} has been deprecated. "
        "Change the call to include dim=X as an argument.",
        stacklevel=3,
    )
    return 0 if ndim in (0, 1, 3) else 1


# -- maxout -------------------------------------------------------------------------------------------


class MaxoutFunction(Function):
    r"""The maximum over groups of ``pieces`` consecutive features: z of shape (..., units · k) gives
    y_u = max_{j < k} z_{u k + j}.

    .. math::
        \frac{\partial L}{\partial z_{uk+j}} = \frac{\partial L}{\partial y_u}\,\mathbb 1[j = j^*_u], \qquad
        j^*_u = \arg\max_j z_{uk+j},

    so the gradient flows only into the winning piece (the first one on a tie).
    """

    @staticmethod
    def forward(ctx, z, pieces):
        grouped = z.unflatten(-1, (-1, pieces))  # (..., units, k)
        winner = grouped.argmax(dim=-1, keepdim=True)
        mask = torch.zeros_like(grouped).scatter_(
            -1, winner, 1.0
        )  # one-hot of the winning piece
        ctx.save_for_backward(mask)
        return grouped.gather(-1, winner).squeeze(-1)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        # ∂L/∂z_{u,j} = ∂L/∂y_u · 1[j = j*_u]
        return (grad.unsqueeze(-1) * mask).flatten(-2), None
