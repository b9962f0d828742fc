r"""Weight initializers written from scratch with the contract of ``torch.nn.init``.

The math (gains, fans, standard deviations, uniform bounds) is computed here; drawing the numbers is
left to torch's element-wise samplers ``tensor.uniform_`` and ``tensor.normal_``, so that from the same
seed every initializer draws exactly the same values as its torch namesake.

The two families keep the variance of a layer's output equal to that of its input:

.. math::
    \text{Xavier (Glorot):}\quad \operatorname{Var}(W) = \text{gain}^2\,\frac{2}{n_\text{in} + n_\text{out}},
    \qquad
    \text{Kaiming (He):}\quad \operatorname{Var}(W) = \frac{\text{gain}^2}{n_\text{mode}},

and a uniform draw :math:`\mathcal{U}(-a, a)` has variance :math:`a^2/3`, so its bound is
:math:`a = \sqrt{3}\,\text{std}`.
"""

import math
import warnings

import torch
from torch import Tensor

LINEAR_NONLINEARITIES = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
)


def calculate_gain(nonlinearity: str, param: int | float | None = None) -> float:
    r"""The factor by which an initializer scales its standard deviation for a given non-linearity.

    .. math::
        \text{gain} = 1 \ (\text{linear, conv, sigmoid}), \quad \tfrac53\ (\tanh), \quad \sqrt2\ (\text{ReLU}),
        \quad \sqrt{\tfrac{2}{1 + s^2}}\ (\text{leaky ReLU of slope } s), \quad \tfrac34\ (\text{SELU})

    ReLU zeroes half of a symmetric input, halving its second moment, so the weights need twice the
    variance (a gain of √2) to compensate; a leaky ReLU keeps a fraction s² of the negative half.
    """
    if nonlinearity in LINEAR_NONLINEARITIES or nonlinearity == "sigmoid":
        return 1  # an int, as torch returns
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        # E[relu(z)²] = ½ E[z²] for a symmetric z: twice the variance, gain √2
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif (not isinstance(param, bool) and isinstance(param, int)) or isinstance(
            param, float
        ):
            negative_slope = param  # True / False are ints too, hence the bool test
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        # E[leaky(z)²] = ½ (1 + s²) E[z²]
        return math.sqrt(2.0 / (1 + negative_slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4  # torch's empirical value
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    r"""The number of inputs and outputs each weight connects, for a linear or convolutional weight.

    A weight of shape (out, in, k₁, k₂, ...) feeds each output from ``in`` channels times a receptive
    field of k₁·k₂·… positions:

    .. math::
        n_\text{in} = \text{in} \cdot \prod_i k_i, \qquad n_\text{out} = \text{out} \cdot \prod_i k_i .

    This is torch's private ``torch.nn.init._calculate_fan_in_and_fan_out``, made public.
    """
    if tensor.dim() < 2:
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions"
        )
    receptive_field = 1
    for size in tensor.shape[2:]:
        receptive_field *= size  # ∏ kᵢ (1 for a linear weight)
    fan_in = tensor.size(1) * receptive_field
    fan_out = tensor.size(0) * receptive_field
    return fan_in, fan_out


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    """``fan_in`` (keeps the forward variance) or ``fan_out`` (keeps the backward variance)."""
    mode = mode.lower()
    valid_modes = ["fan_in", "fan_out"]
    if mode not in valid_modes:
        raise ValueError(f"Mode {mode} not supported, please use one of {valid_modes}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(
    tensor: Tensor,
    a: float = 0.0,
    b: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Fill ``tensor`` in place with draws from :math:`\mathcal{U}(a, b)`."""
    with torch.no_grad():
        return tensor.uniform_(a, b, generator=generator)


def normal_(
    tensor: Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Fill ``tensor`` in place with draws from :math:`\mathcal{N}(\text{mean}, \text{std}^2)`."""
    with torch.no_grad():
        return tensor.normal_(mean, std, generator=generator)


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill ``tensor`` in place with ``val``."""
    with torch.no_grad():
        return tensor.fill_(val)


def ones_(tensor: Tensor) -> Tensor:
    """Fill ``tensor`` in place with ones."""
    return constant_(tensor, 1.0)


def zeros_(tensor: Tensor) -> Tensor:
    """Fill ``tensor`` in place with zeros."""
    with torch.no_grad():
        return tensor.zero_()


def xavier_std(tensor: Tensor, gain: float = 1.0) -> float:
    r"""Glorot & Bengio's standard deviation :math:`\text{gain}\,\sqrt{2 / (n_\text{in} + n_\text{out})}`."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    # Var(W) = gain² · 2 / (n_in + n_out): the compromise between keeping forward (1/n_in) and backward (1/n_out) variance
    return gain * math.sqrt(2.0 / float(fan_in + fan_out))


def kaiming_std(
    tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> float:
    r"""He et al.'s standard deviation :math:`\text{gain} / \sqrt{n_\text{mode}}`."""
    fan = _calculate_correct_fan(tensor, mode)
    gain = calculate_gain(nonlinearity, a)
    # Var(W) = gain² / n: each of the n inputs adds Var(W)·E[x²] to the output's variance
    return gain / math.sqrt(fan)


def xavier_uniform_(
    tensor: Tensor, gain: float = 1.0, generator: torch.Generator | None = None
) -> Tensor:
    r"""Glorot & Bengio's initialization, uniform version: :math:`W \sim \mathcal{U}(-a, a)` with

    .. math::
        \text{std} = \text{gain}\,\sqrt{\frac{2}{n_\text{in} + n_\text{out}}}, \qquad a = \sqrt{3}\,\text{std}.
    """
    # Var(U(−a, a)) = a²/3  ⇒  a = √3 · std
    a = math.sqrt(3.0) * xavier_std(tensor, gain)
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(
    tensor: Tensor, gain: float = 1.0, generator: torch.Generator | None = None
) -> Tensor:
    r"""Glorot & Bengio's initialization, normal version: :math:`W \sim \mathcal{N}(0, \text{std}^2)` with

    .. math::
        \text{std} = \text{gain}\,\sqrt{\frac{2}{n_\text{in} + n_\text{out}}}.
    """
    return normal_(tensor, 0.0, xavier_std(tensor, gain), generator)


def kaiming_uniform_(
    tensor: Tensor,
    a: float = 0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""He et al.'s initialization, uniform version: :math:`W \sim \mathcal{U}(-b, b)` with

    .. math::
        \text{std} = \frac{\text{gain}}{\sqrt{n_\text{mode}}}, \qquad b = \sqrt{3}\,\text{std},

    where the gain comes from :func:`calculate_gain` (``a`` is the negative slope of a leaky ReLU) and
    :math:`n_\text{mode}` is the fan-in (``mode="fan_in"``) or the fan-out (``mode="fan_out"``).
    """
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    # Var(U(−b, b)) = b²/3  ⇒  b = √3 · std
    bound = math.sqrt(3.0) * kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: Tensor,
    a: float = 0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""He et al.'s initialization, normal version: :math:`W \sim \mathcal{N}(0, \text{std}^2)` with

    .. math::
        \text{std} = \frac{\text{gain}}{\sqrt{n_\text{mode}}}.
    """
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    return normal_(tensor, 0, kaiming_std(tensor, a, mode, nonlinearity), generator)


__all__ = [
    "calculate_gain",
    "calculate_fan_in_and_fan_out",
    "uniform_",
    "normal_",
    "constant_",
    "ones_",
    "zeros_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
]
