"""Normalization layers written from scratch with the contract of ``torch.nn``.

BatchNorm, LayerNorm, InstanceNorm and GroupNorm are one computation, standardizing over a set of
axes and applying a learned affine map, that differ only in the axes (Wu & He, 2018). That
computation, with its hand-derived backward, is :class:`Normalize`; the functions
:func:`batch_norm`, :func:`instance_norm`, :func:`layer_norm` and :func:`group_norm` choose the axes
and handle the running statistics; the modules add torch's parameters, buffers and input checks.
"""

import math

import torch
from torch import Tensor


class Normalize(torch.autograd.Function):
    r"""Standardize ``x`` over the axes ``dims`` and apply an affine map; the backward is derived by hand.

    .. math::
        \mu = \frac{1}{N}\sum_i x_i, \qquad \sigma^2 = \frac{1}{N}\sum_i (x_i - \mu)^2, \qquad
        \hat x_i = \frac{x_i - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad y_i = \gamma\,\hat x_i + \beta

    where the sums run over the N entries that share a statistic (the axes ``dims``). With
    :math:`\delta_i = \partial L/\partial y_i` and :math:`\tilde\sigma = \sqrt{\sigma^2 + \epsilon}`:

    .. math::
        \frac{\partial L}{\partial x_i}
            = \frac{\gamma}{N\tilde\sigma}\Big(N\delta_i - \sum_j \delta_j
              - \hat x_i \sum_j \delta_j \hat x_j\Big), \qquad
        \frac{\partial L}{\partial \gamma} = \sum_i \delta_i \hat x_i, \qquad
        \frac{\partial L}{\partial \beta} = \sum_i \delta_i

    (γ and β sums also run over every axis γ is broadcast along). ``weight`` and ``bias`` must already
    have a shape that broadcasts against ``x``, or be ``None``. The backward recomputes x̂ and σ̃ from
    ``x`` with differentiable tensor operations when a graph of the backward is requested
    (``create_graph=True``), so it can itself be differentiated (gradgradcheck).
    """

    @staticmethod
    def forward(
        ctx,
        x: Tensor,
        weight: Tensor | None,
        bias: Tensor | None,
        dims: tuple[int, ...],
        eps: float,
    ):
        ctx.dims, ctx.eps = dims, eps
        x_hat, inv_std = _standardize(x, dims, eps)
        ctx.save_for_backward(x, weight, bias, x_hat, inv_std)
        # y = γ x̂ + β
        y = x_hat if weight is None else x_hat * weight
        return y if bias is None else y + bias

    @staticmethod
    def backward(ctx, dy: Tensor):
        x, weight, bias, x_hat, inv_std = ctx.saved_tensors
        dims = ctx.dims
        if torch.is_grad_enabled():
            # a graph of this backward is wanted (double backward): rebuild x̂ and 1/σ̃ from x inside it
            x_hat, inv_std = _standardize(x, dims, ctx.eps)
        # ∂L/∂x̂_i = γ δ_i
        g = dy if weight is None else dy * weight
        dx = dweight = dbias = None
        if ctx.needs_input_grad[0]:
            # ∂L/∂x_i = (1/σ̃)(g_i − mean_j g_j − x̂_i mean_j(g_j x̂_j)), the formula above divided through by N
            mean_g = g.mean(dims, keepdim=True)
            mean_g_xhat = (g * x_hat).mean(dims, keepdim=True)
            dx = inv_std * (g - mean_g - x_hat * mean_g_xhat)
        if weight is not None and ctx.needs_input_grad[1]:
            # ∂L/∂γ = Σ δ_i x̂_i over every axis γ is broadcast along
            dweight = (dy * x_hat).sum_to_size(weight.shape)
        if bias is not None and ctx.needs_input_grad[2]:
            # ∂L/∂β = Σ δ_i
            dbias = dy.sum_to_size(bias.shape)
        return dx, dweight, dbias, None, None


def _standardize(x: Tensor, dims: tuple[int, ...], eps: float) -> tuple[Tensor, Tensor]:
    """x̂ = (x − μ)/σ̃ over ``dims`` and 1/σ̃ (kept broadcastable), with the biased variance σ²."""
    # μ = mean of x over the axes
    centred = x - x.mean(dims, keepdim=True)
    # σ² = mean of (x − μ)² (biased: divide by N)
    var = (centred * centred).mean(dims, keepdim=True)
    # 1/σ̃ = 1/√(σ² + ε)
    inv_std = (var + eps).rsqrt()
    return centred * inv_std, inv_std


def normalize(
    x: Tensor,
    dims: tuple[int, ...],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """``γ (x − μ)/√(σ² + ε) + β`` with statistics over ``dims`` (see :class:`Normalize`)."""
    return Normalize.apply(x, weight, bias, tuple(dims), eps)


def _channel_shape(x: Tensor) -> tuple[int, ...]:
    """The shape (1, C, 1, ...) that broadcasts a per-channel vector against ``x``."""
    return (1, x.shape[1]) + (1,) * (x.dim() - 2)


def _verify_batch_size(size) -> None:
    """torch's check that each channel sees more than one value: N times the spatial size must exceed 1."""
    count = size[0]
    for s in size[2:]:
        count *= s
    if count == 1:
        raise ValueError(
            f"Expected more than 1 value per channel when training, got input size {size}"
        )


def _update_running(running: Tensor, observed: Tensor, momentum: float) -> None:
    """The running estimate r ← (1 − m) r + m · observed, in place."""
    running.mul_(1 - momentum).add_(observed, alpha=momentum)


def _affine_with_running_stats(
    x, running_mean, running_var, weight, bias, eps
) -> Tensor:
    """``γ (x − r_μ)/√(r_σ² + ε) + β`` per channel: a fixed affine map of x (eval mode)."""
    shape = _channel_shape(x)
    y = (x - running_mean.view(shape)) * (running_var + eps).rsqrt().view(shape)
    if weight is not None:
        y = y * weight.view(shape)
    return y if bias is None else y + bias.view(shape)


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    r"""Batch normalization of an (N, C, ...) input, with the signature of ``F.batch_norm``.

    In training, each channel is standardized with the mean and the *biased* variance over the batch
    and spatial axes, and the running buffers (when given) become
    :math:`r \leftarrow (1 - m)\,r + m\,s` with the batch mean and the *unbiased* variance
    :math:`\frac{n}{n-1}\sigma^2`. Otherwise the running statistics are used as constants.
    """
    if training:
        _verify_batch_size(input.size())
    if training and eps <= 0.0:
        raise ValueError(
            f"batch_norm eps must be positive during training, but got {eps}"
        )
    elif eps < 0.0:
        raise ValueError(f"batch_norm eps must be non-negative, but got {eps}")
    channels = input.shape[1]
    for name, t in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        if t is not None and t.numel() != channels:
            raise RuntimeError(
                f"{name} should contain {channels} elements not {t.numel()}"
            )
    if not training:
        return _affine_with_running_stats(
            input, running_mean, running_var, weight, bias, eps
        )
    # statistics over every axis except the channel axis 1
    dims = (0,) + tuple(range(2, input.dim()))
    if (
        running_mean is not None and input.numel() > 0
    ):  # torch leaves the buffers alone for an empty batch
        with torch.no_grad():
            _update_running(running_mean, input.mean(dims), momentum)
            # the running variance is the unbiased estimate n/(n−1) σ²
            _update_running(running_var, input.var(dims, correction=1), momentum)
    shape = _channel_shape(input)
    return normalize(
        input,
        dims,
        None if weight is None else weight.view(shape),
        None if bias is None else bias.view(shape),
        eps,
    )


def _verify_spatial_size(size) -> None:
    """torch's check that instance normalization sees more than one spatial element per channel."""
    count = 1
    for s in size[2:]:
        count *= s
    if count == 1:
        raise ValueError(
            f"Expected more than 1 spatial element when training, got input size {size}"
        )


def instance_norm(
    input: Tensor,
    running_mean: Tensor | None = None,
    running_var: Tensor | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    r"""Instance normalization of an (N, C, ...) input, with the signature of ``F.instance_norm``.

    Each (example, channel) pair is standardized over its spatial axes. The running buffers, when
    given, move towards the batch average of the per-instance means and unbiased variances.
    """
    if not use_input_stats:
        return _affine_with_running_stats(
            input, running_mean, running_var, weight, bias, eps
        )
    _verify_spatial_size(input.size())
    n, channels = input.shape[:2]
    dims = tuple(range(2, input.dim()))
    if running_mean is not None:
        if running_mean.numel() != channels:
            raise RuntimeError(
                f"running_mean should contain {n * channels} elements not {n * running_mean.numel()}"
            )
        with torch.no_grad():
            # each instance's mean and unbiased variance n/(n−1) σ² over its n spatial entries...
            n_spatial = math.prod(input.shape[2:])
            mu = input.mean(dims, keepdim=True)
            var = ((input - mu) ** 2).mean(dims) * (n_spatial / (n_spatial - 1))
            # ...averaged over the batch (NaN for an empty batch, as in torch)
            _update_running(running_mean, mu.flatten(1).mean(0), momentum)
            _update_running(running_var, var.mean(0), momentum)
    shape = _channel_shape(input)
    return normalize(
        input,
        dims,
        None if weight is None else weight.view(shape),
        None if bias is None else bias.view(shape),
        eps,
    )


def layer_norm(
    input: Tensor,
    normalized_shape: list[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Layer normalization over the trailing ``normalized_shape`` axes, like ``F.layer_norm``."""
    shape = list(normalized_shape)
    k = len(shape)
    if input.dim() < k or list(input.shape[input.dim() - k :]) != shape:
        raise RuntimeError(
            f"Given normalized_shape={shape}, expected input with shape [*, {', '.join(map(str, shape))}], "
            f"but got input of size{list(input.shape)}"
        )
    return normalize(input, tuple(range(-k, 0)), weight, bias, eps)


def group_norm(
    input: Tensor,
    num_groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Group normalization, like ``F.group_norm``: the channels of each example are split into
    ``num_groups`` groups, and each group is standardized over its channels and spatial axes."""
    if input.dim() < 2:
        raise RuntimeError(
            f"Expected at least 2 dimensions for input tensor but received {input.dim()}"
        )
    n, channels, *spatial = input.shape
    _verify_batch_size([n * channels // num_groups, num_groups] + spatial)
    if channels % num_groups != 0:
        raise RuntimeError(
            "Expected number of channels in input to be divisible by num_groups, but got input of shape "
            f"{list(input.shape)} and num_groups={num_groups}"
        )
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.numel() != channels:
            raise RuntimeError(
                f"Expected {name} to be a vector of size equal to the number of channels in input, but got "
                f"{name} of shape {list(t.shape)} and input of shape {list(input.shape)}"
            )
    # (N, C, *S) → (N, G, C/G, *S): a group's statistics run over the axes after the group axis
    grouped = input.reshape(n, num_groups, channels // num_groups, *spatial)
    dims = tuple(range(2, grouped.dim()))
    param_shape = (num_groups, channels // num_groups) + (1,) * len(spatial)
    y = normalize(
        grouped,
        dims,
        None if weight is None else weight.view(param_shape),
        None if bias is None else bias.view(param_shape),
        eps,
    )
    return y.reshape(input.shape)
