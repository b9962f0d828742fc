"""Activation layers with the contract of ``torch.nn`` (Sigmoid, Tanh, ReLU, LeakyReLU, PReLU, ELU, GELU,
SiLU, Softmax, LogSoftmax) and a Maxout layer. Each holds its arguments and applies one of the hand-written
autograd functions of :mod:`companion.nn.activations`.
"""

import math

import torch
from torch import Tensor, nn
from torch.autograd import Function

from companion import init
from companion.nn.activations import (
    ELUFunction,
    GELUFunction,
    LeakyReLUFunction,
    LogSoftmaxFunction,
    MaxoutFunction,
    PReLUFunction,
    ReLUFunction,
    SiLUFunction,
    SigmoidFunction,
    SoftmaxFunction,
    TanhFunction,
    _apply,
    _implicit_softmax_dim,
)


class Sigmoid(nn.Module):
    r"""The logistic function σ(x) = 1 / (1 + e^{−x}), like ``torch.nn.Sigmoid``."""

    def forward(self, input: Tensor) -> Tensor:
        return SigmoidFunction.apply(input)


class Tanh(nn.Module):
    r"""The hyperbolic tangent, like ``torch.nn.Tanh``."""

    def forward(self, input: Tensor) -> Tensor:
        return TanhFunction.apply(input)


class ReLU(nn.Module):
    r"""The rectified linear unit max(0, x) (Nair & Hinton, 2010), like ``torch.nn.ReLU``."""

    __constants__ = ["inplace"]

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return _apply(ReLUFunction, input, self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(nn.Module):
    r"""max(0, x) + s·min(0, x) with a fixed small slope s (Maas et al., 2013), like ``torch.nn.LeakyReLU``."""

    __constants__ = ["inplace", "negative_slope"]

    def __init__(self, negative_slope: float = 1e-2, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return _apply(LeakyReLUFunction, input, self.inplace, self.negative_slope)

    def extra_repr(self) -> str:
        inplace_str = ", inplace=True" if self.inplace else ""
        return f"negative_slope={self.negative_slope}{inplace_str}"


class PReLU(nn.Module):
    r"""A leaky ReLU whose negative slope is learned (He et al., 2015), like ``torch.nn.PReLU``.

    ``num_parameters`` is 1 (one slope shared by all channels) or the number of channels (dimension 1
    of the input); the slopes are the parameter ``weight``, initialized to ``init``.
    """

    __constants__ = ["num_parameters"]
    num_parameters: int

    def __init__(
        self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        self.num_parameters = num_parameters
        super().__init__()
        self.init = init
        self.weight = nn.Parameter(torch.empty(num_parameters, **factory_kwargs))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Set every slope to ``init``."""
        init.constant_(self.weight, self.init)

    def forward(self, input: Tensor) -> Tensor:
        return PReLUFunction.apply(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class ELU(nn.Module):
    r"""The exponential linear unit x if x > 0 else α(eˣ − 1) (Clevert et al., 2016), like ``torch.nn.ELU``."""

    __constants__ = ["alpha", "inplace"]

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha = alpha
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return _apply(ELUFunction, input, self.inplace, self.alpha)

    def extra_repr(self) -> str:
        inplace_str = ", inplace=True" if self.inplace else ""
        return f"alpha={self.alpha}{inplace_str}"


class GELU(nn.Module):
    r"""The Gaussian error linear unit x Φ(x) (Hendrycks & Gimpel, 2016), like ``torch.nn.GELU``;
    ``approximate='tanh'`` uses the tanh approximation of Φ."""

    __constants__ = ["approximate"]
    approximate: str

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, input: Tensor) -> Tensor:
        if self.approximate not in ("none", "tanh"):
            raise RuntimeError("approximate argument must be either none or tanh.")
        return GELUFunction.apply(input, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={repr(self.approximate)}"


class SiLU(nn.Module):
    r"""The sigmoid-weighted linear unit x σ(x), also called swish, like ``torch.nn.SiLU``."""

    __constants__ = ["inplace"]
    inplace: bool

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return _apply(SiLUFunction, input, self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class _SoftmaxLayer(nn.Module):
    """A softmax-like layer along ``dim`` (None: torch's legacy implicit choice, with its warning)."""

    __constants__ = ["dim"]
    dim: int | None
    function: type[Function]
    name: str

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        dim = (
            self.dim
            if self.dim is not None
            else _implicit_softmax_dim(self.name, input.dim())
        )
        return self.function.apply(input, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Softmax(_SoftmaxLayer):
    r"""softmax(x)_i = e^{x_i} / Σ_j e^{x_j} along ``dim``, computed stably, like ``torch.nn.Softmax``."""

    function, name = SoftmaxFunction, "softmax"


class LogSoftmax(_SoftmaxLayer):
    r"""log softmax(x)_i = x_i − log Σ_j e^{x_j} along ``dim``, computed stably, like ``torch.nn.LogSoftmax``."""

    function, name = LogSoftmaxFunction, "log_softmax"


class Maxout(nn.Module):
    r"""A maxout layer (Goodfellow et al., 2013): each of ``out_features`` units is the maximum of
    ``pieces`` affine functions of the input,

    .. math::
        h_u(x) = \max_{j < k} \bigl(W_{uk+j}\, x + b_{uk+j}\bigr).

    torch has no maxout layer. ``weight`` has shape (out_features · pieces, in_features), the k pieces
    of unit u in rows uk, ..., uk + k − 1, and is initialized like ``torch.nn.Linear``.
    """

    __constants__ = ["in_features", "out_features", "pieces"]

    def __init__(
        self,
        in_features: int,
        out_features: int,
        pieces: int = 2,
        bias: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        if not isinstance(pieces, int) or isinstance(pieces, bool) or pieces < 1:
            raise ValueError(f"pieces must be a positive integer, got {pieces}")
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.in_features, self.out_features, self.pieces = (
            in_features,
            out_features,
            pieces,
        )
        self.weight = nn.Parameter(
            torch.empty(out_features * pieces, in_features, **factory_kwargs)
        )
        if bias:
            self.bias = nn.Parameter(
                torch.empty(out_features * pieces, **factory_kwargs)
            )
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch.nn.Linear's default: U(−1/√n_in, 1/√n_in) for the weight and the bias."""
        init.kaiming_uniform_(
            self.weight, a=math.sqrt(5)
        )  # gain √(2/6) ⇒ bound 1/√n_in
        if self.bias is not None:
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        z = (
            input @ self.weight.T
        )  # every piece of every unit: (..., out_features · pieces)
        if self.bias is not None:
            z = z + self.bias
        return MaxoutFunction.apply(z, self.pieces)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, pieces={self.pieces}, "
            f"bias={self.bias is not None}"
        )


__all__ = [
    "Sigmoid",
    "Tanh",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "ELU",
    "GELU",
    "SiLU",
    "Softmax",
    "LogSoftmax",
    "Maxout",
]
