"""DropConnect (Wan et al., 2013): a linear layer that drops individual weights instead of activations.

:class:`DropConnectLinear` has ``torch.nn.Linear``'s parameters (``weight``, ``bias``), shapes and
initialization, so state_dicts move between the two. In training mode every example gets its own
random mask over the weight matrix; in eval mode the layer uses the mean weights (and then equals
``nn.Linear``). :func:`moment_matching_forward` runs a network with the paper's Gaussian
moment-matching inference instead.
"""

import math

import torch
from torch import Tensor, nn

from companion.core.checks import check_probability


def dropconnect_linear(
    input: Tensor, weight: Tensor, bias: Tensor | None, mask: Tensor, p: float
) -> Tensor:
    r"""The DropConnect layer's output for a given 0/1 ``mask`` over the weights.

    .. math::
        u_n = \frac{1}{1 - p}\,(M_n \odot W)\, x_n + b, \qquad M_{n,oi} \sim \text{Bernoulli}(1 - p)

    ``input`` is ``(*, in_features)`` and the output ``(*, out_features)``. ``mask`` is either
    ``(*, out_features, in_features)``, one mask per example as in the paper, or (out_features,
    in_features), one mask shared by every example. Dividing by 1 − p keeps the expected output
    equal to the plain layer's, E[u_n] = W x_n + b. The bias is never dropped.
    """
    if input.dim() == 0 or input.shape[-1:] != weight.shape[1:]:
        raise ValueError(
            f"expected input with last dimension {weight.shape[1]}, got shape {tuple(input.shape)}"
        )
    per_example = (*input.shape[:-1], *weight.shape)
    if mask.shape not in (weight.shape, per_example):
        raise ValueError(
            f"expected a mask of shape {tuple(weight.shape)} or {per_example}, got {tuple(mask.shape)}"
        )
    # M ⊙ W / (1 − p): the thinned, rescaled weights, (out, in) or one (out, in) per example
    thinned = mask * weight / (1.0 - p)
    if mask.shape == weight.shape:
        # u_n = (M ⊙ W / (1 − p)) x_n for every n with the same M: one matrix product
        out = input @ thinned.T
    else:
        # u_n = (M_n ⊙ W / (1 − p)) x_n : a matrix-vector product per example
        out = (thinned @ input.unsqueeze(-1)).squeeze(-1)
    # + b (never dropped)
    return out if bias is None else out + bias


def sample_mask(shape: tuple[int, ...], p: float, device=None, dtype=None) -> Tensor:
    """A 0/1 tensor of ``shape`` whose entries are 1 (kept) with probability 1 − ``p``, from torch's
    global generator (so ``torch.manual_seed`` makes it reproducible)."""
    # M ~ Bernoulli(1 − p): keep where a uniform draw is at least p
    return (torch.rand(shape, device=device, dtype=dtype) >= p).to(
        dtype or torch.get_default_dtype()
    )


class DropConnectLinear(nn.Module):
    r"""A linear layer with DropConnect: ``nn.Linear``'s parameters, each weight dropped at random in training.

    ``in_features``, ``out_features``, ``bias``
        as in ``torch.nn.Linear`` (same parameter names, shapes and initialization, so a state_dict
        loads into either class).
    ``p``
        the probability that a weight is dropped, in [0, 1). Default 0.5.
    ``per_example``
        one mask per example, as in the paper (default), or one mask shared by the whole mini-batch
        (``False``: as cheap as ``nn.Linear``, noisier gradients).

    Training: example n gets the mask :math:`M_n` (or all share one),
    :math:`u_n = (M_n \odot W) x_n / (1 - p) + b` (:func:`dropconnect_linear`). Evaluation: the mean-weight rule :math:`u = W x + b`, i.e. exactly
    ``nn.Linear``. The paper scales by 1 − p at inference instead of by 1/(1 − p) in training; the two
    are the same model with W rescaled.
    """

    __constants__ = ["in_features", "out_features", "p", "per_example"]

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        p: float = 0.5,
        device=None,
        dtype=None,
        *,
        per_example: bool = True,
    ) -> None:
        check_probability("dropconnect probability", p, below_one=True)
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.p = p
        self.per_example = per_example
        self.weight = nn.Parameter(
            torch.empty((out_features, in_features), **factory_kwargs)
        )
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, **factory_kwargs))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """nn.Linear's initialization: weight and bias ~ U(−1/√in, 1/√in), drawn in the same order."""
        # torch writes the weight's bound as Kaiming-uniform with a = √5: √3 · √(2 / (1 + a²)) / √fan_in;
        # computing it the same way keeps the draws bit-identical to nn.Linear's
        gain = math.sqrt(2.0 / (1 + 5.0))
        bound = (
            math.sqrt(3.0) * gain / math.sqrt(self.in_features)
            if self.in_features > 0
            else 0.0
        )
        self.weight.uniform_(-bound, bound)
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            self.bias.uniform_(-bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        if input.shape[-1:] != (self.in_features,):
            raise ValueError(
                f"expected input with last dimension {self.in_features}, got shape {tuple(input.shape)}"
            )
        if not self.training or self.p == 0.0:
            # mean-weight rule (and no noise at p = 0): u = W x + b
            out = input @ self.weight.T
            return out if self.bias is None else out + self.bias
        lead = input.shape[:-1] if self.per_example else ()
        mask = sample_mask(
            (*lead, *self.weight.shape), self.p, input.device, input.dtype
        )
        return dropconnect_linear(input, self.weight, self.bias, mask, self.p)

    def moments(self, input: Tensor) -> tuple[Tensor, Tensor]:
        r"""Mean and variance of the training-mode output over the random mask, for each output unit.

        .. math::
            \mathbb{E}[u] = W x + b, \qquad
            \operatorname{Var}[u] = \frac{p}{1 - p}\,(W \odot W)(x \odot x)
        """
        # E[u] = W x + b   (E[M] = 1 − p cancels the 1/(1 − p))
        mean = input @ self.weight.T
        mean = mean if self.bias is None else mean + self.bias
        # Var[u_o] = Σ_i W_oi² x_i² Var[M_oi] / (1 − p)² = p/(1 − p) Σ_i W_oi² x_i²
        var = self.p / (1.0 - self.p) * (input**2) @ (self.weight**2).T
        return mean, var

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, p={self.p}, per_example={self.per_example}"
        )


def gaussian_relu_mean(mean: Tensor, var: Tensor) -> Tensor:
    r"""E[max(u, 0)] for u ~ N(mean, var), elementwise (var = 0 gives max(mean, 0)).

    .. math::
        \mathbb{E}[\max(u, 0)] = \mu\,\Phi(\mu / \sigma) + \sigma\,\varphi(\mu / \sigma)
    """
    # σ, kept away from 0 so that μ/σ is defined (the limit is max(μ, 0) either way)
    std = var.clamp_min(1e-30).sqrt()
    z = mean / std
    # Φ(z) and φ(z): the standard normal's CDF and density
    cdf = 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))
    pdf = torch.exp(-0.5 * z**2) / math.sqrt(2.0 * math.pi)
    # μ Φ(μ/σ) + σ φ(μ/σ)
    return mean * cdf + std * pdf


@torch.no_grad()
def moment_matching_forward(model: nn.Sequential, input: Tensor) -> Tensor:
    """Run ``model`` with the paper's Gaussian moment-matching inference.

    Each :class:`DropConnectLinear` followed by ``nn.ReLU`` is replaced by E[ReLU(u)] with u the
    Gaussian of the layer's :meth:`~DropConnectLinear.moments` (the closed form of the average the
    paper estimates by sampling u). A DropConnect layer with no ReLU after it (the output layer)
    gives its mean; every other module runs as in eval mode.
    """
    layers = list(model)
    x = input
    i = 0
    while i < len(layers):
        layer = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(layer, DropConnectLinear) and isinstance(nxt, nn.ReLU):
            x = gaussian_relu_mean(*layer.moments(x))
            i += 2
            continue
        if isinstance(layer, DropConnectLinear):
            x = layer.moments(x)[0]
        else:
            was_training = layer.training
            layer.eval()
            x = layer(x)
            layer.train(was_training)
        i += 1
    return x
