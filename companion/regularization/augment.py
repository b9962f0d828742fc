"""Data augmentation for batches of images, written with tensor operations.

Every transform takes a batch ``x`` shaped (N, C, H, W) on any device and returns a new batch of the
same shape; each image gets its own random parameters. The random numbers are drawn from
``generator`` (on the generator's device, the CPU by default) and then moved to ``x``'s device, so
one seeded ``torch.Generator`` gives the same augmented batch on the CPU and on a GPU. At zero
strength (``p=0``, ``degrees=0``, ``std=0``, ``size=0``...) every transform returns its input unchanged.

:class:`Augmentation` chains transforms (and optionally mixup) into the ``transform(X, y)`` hook of
:func:`companion.core.train.fit`.
"""

import math
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from companion.core.checks import check_non_negative, check_probability


def _check_images(x: Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(
            f"expected a batch of images shaped (N, C, H, W), got shape {tuple(x.shape)}"
        )


def _rand(n: int, generator: torch.Generator | None, like: Tensor) -> Tensor:
    """n uniform numbers in [0, 1), drawn in float64 on the generator's device, returned like ``like``."""
    device = generator.device if generator is not None else "cpu"
    u = torch.rand(n, generator=generator, dtype=torch.float64, device=device)
    return u.to(
        device=like.device,
        dtype=like.dtype if like.is_floating_point() else torch.float64,
    )


def _uniform(n: int, low: float, high: float, generator, like: Tensor) -> Tensor:
    """n numbers uniform in [low, high)."""
    return low + (high - low) * _rand(n, generator, like)


def _randint(n: int, low: int, high: int, generator, like: Tensor) -> Tensor:
    """n integers uniform in [low, high] (both ends included), on ``like``'s device."""
    device = generator.device if generator is not None else "cpu"
    return torch.randint(low, high + 1, (n,), generator=generator, device=device).to(
        like.device
    )


def _per_image(values: Tensor) -> Tensor:
    """Per-image values (N,) shaped (N, 1, 1, 1), to broadcast over (N, C, H, W)."""
    return values.view(-1, 1, 1, 1)


def hflip(
    x: Tensor, p: float = 0.5, generator: torch.Generator | None = None
) -> Tensor:
    """Mirror each image left ↔ right with probability ``p`` (``p=1`` flips them all)."""
    _check_images(x)
    check_probability("p", p)
    # x'[..., i, j] = x[..., i, W − 1 − j]
    mirrored = x[..., torch.arange(x.shape[-1] - 1, -1, -1, device=x.device)]
    chosen = _rand(len(x), generator, x) < p
    return torch.where(_per_image(chosen), mirrored, x)


def vflip(
    x: Tensor, p: float = 0.5, generator: torch.Generator | None = None
) -> Tensor:
    """Mirror each image top ↔ bottom with probability ``p`` (``p=1`` flips them all)."""
    _check_images(x)
    check_probability("p", p)
    # x'[..., i, j] = x[..., H − 1 − i, j]
    mirrored = x[..., torch.arange(x.shape[-2] - 1, -1, -1, device=x.device), :]
    chosen = _rand(len(x), generator, x) < p
    return torch.where(_per_image(chosen), mirrored, x)


def shift(x: Tensor, dy: Tensor, dx: Tensor) -> Tensor:
    """Move image n down by ``dy[n]`` and right by ``dx[n]`` whole pixels; uncovered pixels become 0.

    x'[n, :, i, j] = x[n, :, i − dy[n], j − dx[n]] where that pixel exists, else 0.
    """
    _check_images(x)
    n, _, h, w = x.shape
    dy, dx = dy.to(x.device).long().view(n, 1), dx.to(x.device).long().view(n, 1)
    rows = (
        torch.arange(h, device=x.device) - dy
    )  # (N, H): the source row of each output row
    cols = (
        torch.arange(w, device=x.device) - dx
    )  # (N, W): the source column of each output column
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[
        :, None, :
    ]
    batch = torch.arange(n, device=x.device)[:, None, None]
    # advanced indexing puts (N, H, W) first and the channels last: move them back
    moved = x[
        batch, :, rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None, :]
    ]
    return moved.permute(0, 3, 1, 2) * inside[:, None].to(x.dtype)


def random_crop(
    x: Tensor, padding: int = 1, generator: torch.Generator | None = None
) -> Tensor:
    """Pad each image with ``padding`` zero pixels on every side and crop a random window of the
    original size: a random shift by (dy, dx), each uniform in {−padding, ..., padding}."""
    _check_images(x)
    check_non_negative("padding", padding)
    dy = _randint(len(x), -padding, padding, generator, x)
    dx = _randint(len(x), -padding, padding, generator, x)
    return shift(x, dy, dx)


def _bilinear(x: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Sample x (N, C, H, W) at fractional source positions ``rows``, ``cols`` (N, H, W); zero outside."""
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    r0, c0 = rows.floor(), cols.floor()
    out = torch.zeros_like(x)
    for dr in (0, 1):
        for dc in (0, 1):
            r, k = r0 + dr, c0 + dc
            # bilinear weight of this corner: (1 − |r − row|)(1 − |k − col|)
            weight = (1 - (r - rows).abs()) * (1 - (k - cols).abs())
            inside = (r >= 0) & (r <= h - 1) & (k >= 0) & (k <= w - 1)
            index = (r.clamp(0, h - 1) * w + k.clamp(0, w - 1)).long().view(n, 1, h * w)
            corner = flat.gather(2, index.expand(n, c, h * w)).view(n, c, h, w)
            out = out + corner * (weight * inside)[:, None]
    return out


def affine(x: Tensor, angle: Tensor, tx: Tensor, ty: Tensor) -> Tensor:
    r"""Rotate image n by ``angle[n]`` degrees counter-clockwise about its centre, then move it
    ``tx[n]`` pixels right and ``ty[n]`` pixels down; bilinear interpolation, zero outside.

    Each output pixel (row i, column j) reads the input at the inverse-transformed position, with
    u = j − (W−1)/2 and v = i − (H−1)/2 measured from the centre:

    .. math::
        u_s = \cos\theta\,(u - t_x) - \sin\theta\,(v - t_y), \qquad
        v_s = \sin\theta\,(u - t_x) + \cos\theta\,(v - t_y).

    ``angle=90`` is ``torch.rot90(x, 1, dims=(-2, -1))`` (up to rounding of cos 90°).
    """
    _check_images(x)
    n, _, h, w = x.shape
    # per-image parameters shaped (N, 1, 1), to broadcast over the (N, H, W) grid
    theta, tx, ty = (
        torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(n).reshape(n, 1, 1)
        for t in (angle, tx, ty)
    )
    theta = theta * (math.pi / 180)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    # (u, v): output pixel positions relative to the centre, minus the translation
    u = torch.arange(w, dtype=x.dtype, device=x.device).view(1, 1, w) - cx - tx
    v = torch.arange(h, dtype=x.dtype, device=x.device).view(1, h, 1) - cy - ty
    cos, sin = theta.cos(), theta.sin()
    # (u_s, v_s) = R(−θ)(u, v) in screen coordinates (rows grow downwards)
    cols = cos * u - sin * v + cx
    rows = sin * u + cos * v + cy
    return _bilinear(x, rows, cols)


def random_affine(
    x: Tensor,
    degrees: float = 0.0,
    translate: float = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Rotate each image by an angle uniform in [−degrees, degrees] and move it by (tx, ty), each
    uniform in [−translate, translate] pixels (see :func:`affine`)."""
    _check_images(x)
    check_non_negative("degrees", degrees)
    check_non_negative("translate", translate)
    angle = _uniform(len(x), -degrees, degrees, generator, x)
    tx = _uniform(len(x), -translate, translate, generator, x)
    ty = _uniform(len(x), -translate, translate, generator, x)
    return affine(x, angle, tx, ty)


def jitter(
    x: Tensor,
    brightness: float = 0.0,
    contrast: float = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Brightness then contrast jitter, clamped to [0, 1]:

    .. math::
        x' = b\,x, \qquad x'' = \bar{x}' + c\,(x' - \bar{x}'),

    with b uniform in [max(0, 1 − brightness), 1 + brightness], c uniform in
    [max(0, 1 − contrast), 1 + contrast] and x̄' the mean of each image, drawn per image.
    """
    _check_images(x)
    check_non_negative("brightness", brightness)
    check_non_negative("contrast", contrast)
    b = _per_image(
        _uniform(len(x), max(0.0, 1 - brightness), 1 + brightness, generator, x)
    )
    c = _per_image(_uniform(len(x), max(0.0, 1 - contrast), 1 + contrast, generator, x))
    # x' = b x   (brightness scales every pixel)
    x = b * x
    # x'' = mean + c (x' − mean)   (contrast stretches around the image mean)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (mean + c * (x - mean)).clamp(0.0, 1.0)


def gaussian_noise(
    x: Tensor, std: float = 0.1, generator: torch.Generator | None = None
) -> Tensor:
    """Add independent noise N(0, std²) to every pixel (no clamping)."""
    _check_images(x)
    check_non_negative("std", std)
    device = generator.device if generator is not None else "cpu"
    noise = torch.randn(
        x.shape, generator=generator, dtype=torch.float64, device=device
    )
    # x' = x + σ ε,  ε ~ N(0, 1)
    return x + std * noise.to(device=x.device, dtype=x.dtype)


def cutout(
    x: Tensor, size: int = 4, generator: torch.Generator | None = None
) -> Tensor:
    """Cutout (DeVries & Taylor, 2017): zero a ``size`` × ``size`` square centred on a pixel drawn
    uniformly from each image, clipped where it crosses the border: rows cy − size//2 to
    cy − size//2 + size − 1 (for an even size exactly the paper's code), and the same for columns."""
    _check_images(x)
    check_non_negative("size", size)
    n, _, h, w = x.shape
    cy = _randint(n, 0, h - 1, generator, x).view(n, 1)
    cx = _randint(n, 0, w - 1, generator, x).view(n, 1)
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    # the square: cy − size//2 ≤ i < cy − size//2 + size, and the same for columns
    top, left = cy - size // 2, cx - size // 2
    in_rows = (rows >= top) & (rows < top + size)  # (N, H)
    in_cols = (cols >= left) & (cols < left + size)  # (N, W)
    hole = in_rows[:, None, :, None] & in_cols[:, None, None, :]
    return x.masked_fill(hole, 0.0)


def mixup(
    x: Tensor,
    y: Tensor,
    alpha: float = 0.2,
    num_classes: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Mixup (Zhang et al., 2018): blend each example with a partner from the same batch.

    .. math::
        \tilde x_i = \lambda_i x_i + (1 - \lambda_i)\, x_{\pi(i)}, \qquad
        \tilde y_i = \lambda_i y_i + (1 - \lambda_i)\, y_{\pi(i)}, \qquad \lambda_i \sim \mathrm{Beta}(\alpha, \alpha),

    with π a random permutation of the batch and one λ per example. ``y`` holds class indices
    (turned into one-hot rows of ``num_classes``) or already soft labels (N, K). Returns soft labels
    on ``x``'s device, which ``F.cross_entropy`` accepts as targets. ``alpha=0`` means no mixing (λ = 1).
    """
    check_non_negative("alpha", alpha)
    if len(y) != len(x):
        raise ValueError(
            f"x and y must hold the same number of examples, got {len(x)} and {len(y)}"
        )
    if y.is_floating_point():
        if y.dim() != 2:
            raise ValueError(
                f"soft labels must be shaped (N, num_classes), got shape {tuple(y.shape)}"
            )
        soft = y.to(device=x.device, dtype=x.dtype)
    else:
        if num_classes is None:
            raise ValueError("num_classes is required when y holds class indices")
        # one-hot rows: soft[i, y_i] = 1, on x's device (labels may come from the CPU)
        y = y.to(x.device)
        soft = (y.view(-1, 1) == torch.arange(num_classes, device=x.device)).to(x.dtype)
    n = len(x)
    device = generator.device if generator is not None else "cpu"
    perm = torch.randperm(n, generator=generator, device=device).to(x.device)
    if alpha == 0:
        lam = torch.ones(n, dtype=x.dtype, device=x.device)
    else:
        # torch has no seeded Beta sampler: seed NumPy's from the torch generator (reproducible)
        seed = torch.randint(0, 2**62, (1,), generator=generator, device=device).item()
        lam = torch.from_numpy(np.random.default_rng(seed).beta(alpha, alpha, size=n))
        lam = lam.to(device=x.device, dtype=x.dtype)
    lam_x = lam.view(-1, *([1] * (x.dim() - 1)))
    # x̃ = λ x + (1 − λ) x_π
    mixed_x = lam_x * x + (1 - lam_x) * x[perm]
    # ỹ = λ y + (1 − λ) y_π
    mixed_y = lam[:, None] * soft + (1 - lam[:, None]) * soft[perm]
    return mixed_x, mixed_y


class Augmentation:
    """A ``transform(X, y) -> (X, y)`` for :func:`companion.core.train.fit`: the image transforms
    ``ops`` in order (each called as ``op(x, generator=generator)``), then mixup if ``mixup_alpha`` > 0.

    Example: ``Augmentation([partial(random_crop, padding=1), partial(cutout, size=3)],
    generator=torch.Generator().manual_seed(0))``.
    """

    def __init__(
        self,
        ops: Sequence[Callable[..., Tensor]] = (),
        mixup_alpha: float = 0.0,
        num_classes: int = 10,
        generator: torch.Generator | None = None,
    ) -> None:
        check_non_negative("mixup_alpha", mixup_alpha)
        self.ops = list(ops)
        self.mixup_alpha = mixup_alpha
        self.num_classes = num_classes
        self.generator = generator

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        for op in self.ops:
            x = op(x, generator=self.generator)
        if self.mixup_alpha > 0:
            x, y = mixup(
                x, y, self.mixup_alpha, self.num_classes, generator=self.generator
            )
        return x, y
