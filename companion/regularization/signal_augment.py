r"""Data augmentation for batches of 1-D signals, from the transformations that generate MNIST-1D.

Greydanus & Kobak's generator (the ``mnist1d`` package's ``transform.py``) makes each sequence from a digit
template: it pads the template with zeros and stretches it, scales it by a factor in [0.8, 1.2], translates it by a
*circular roll* of the padded signal (``np.concatenate([x[-k:], x[:-k]])``: what leaves at the end comes back at
the front, so digits in the data do wrap around), fills the zero background with correlated noise (Gaussian-smoothed
white noise), adds i.i.d. noise, adds a linear ramp (the shear) and resamples to 40 points. The same transformations
applied again to a training signal give a new signal of the same family and the same label.

:class:`SignalAugmentation` applies them to a batch ``x`` shaped (N, L), each signal with its own parameters:

.. math::
    x'_n[i] = a_n\, x_n[(i - k_n) \bmod L] + \sigma_c\, (C z_n)[i] + \sigma\, \varepsilon_n[i]
              + c_n \Big(\frac{i}{L-1} - \frac12\Big),

with the scale :math:`a_n \sim U[1 - s, 1 + s]`, the shift :math:`k_n` uniform in {−K, ..., K}, white noise
:math:`z_n, \varepsilon_n \sim N(0, I)`, :math:`C` the circular Gaussian smoothing of :func:`smooth` (unit variance
per sample) and the shear :math:`c_n \sim U[-h, h]`. The shift is a roll, like the generator's; unlike the
generator's it moves a signal that already carries noise and shear, so the ramp gets a step at the seam.

The random numbers are drawn from ``generator`` (on its device, the CPU by default) and moved to ``x``'s device, so
one seeded ``torch.Generator`` gives the same batch on every device. A transformation of zero strength is skipped
(it draws nothing); at zero strength everywhere the batch comes back unchanged.
"""

import torch
from torch import Tensor

from companion.core.checks import check, check_non_negative
from companion.regularization.augment import _randint, _uniform

CORR_WIDTH = 2 * 40 / 72
"""The correlated noise's Gaussian width in samples: the generator smooths with σ = 2 samples of its 72-sample
padded signal, which it resamples to 40 points."""


def _check_signals(x: Tensor) -> None:
    check(
        x.dim() == 2,
        f"expected a batch of signals shaped (N, L), got shape {tuple(x.shape)}",
    )


def _normal(
    shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor
) -> Tensor:
    """Standard normal numbers drawn in float64 on the generator's device, returned on ``like``'s device and dtype."""
    device = generator.device if generator is not None else "cpu"
    z = torch.randn(shape, generator=generator, dtype=torch.float64, device=device)
    return z.to(device=like.device, dtype=like.dtype)


def translate(x: Tensor, shifts: Tensor) -> Tensor:
    r"""Roll signal n right by ``shifts[n]`` samples (left if negative), circularly:
    :math:`x'_n[i] = x_n[(i - k_n) \bmod L]`."""
    _check_signals(x)
    n, length = x.shape
    k = shifts.to(x.device).long().view(n, 1)
    # the source index of each output sample: (i − k_n) mod L
    source = (torch.arange(length, device=x.device) - k) % length
    return x.gather(1, source)


def smooth(z: Tensor, width: float = CORR_WIDTH) -> Tensor:
    r"""Circular Gaussian smoothing of each row of ``z`` (N, L) with unit energy, :math:`C z` with

    .. math::
        C_{ij} = w[(i - j) \bmod L], \qquad w[d] \propto \sum_{k \equiv d \bmod L,\ |k| \le r} e^{-k^2 / 2\sigma^2},
        \qquad \sum_d w[d]^2 = 1,

    σ = ``width`` samples and r = ⌊4σ + 1/2⌋: ``scipy.ndimage.gaussian_filter1d(z, σ, mode="wrap")`` (the
    generator smooths with scipy's filter in its default mode, which reflects at the ends instead of wrapping),
    scaled to unit energy instead of unit sum. White noise with unit variance comes out with unit variance per
    sample and correlation :math:`\sum_d w[d]\, w[d + \delta]` between samples δ apart.
    """
    _check_signals(z)
    check(width > 0, f"width must be positive, got {width}")
    length = z.shape[1]
    radius = int(4 * width + 0.5)
    k = torch.arange(-radius, radius + 1, device=z.device)
    # the truncated Gaussian e^{−k²/2σ²}, |k| ≤ r, wrapped onto the L offsets of the circle
    gaussian = torch.exp(-(k.to(z.dtype) ** 2) / (2 * width**2))
    w = torch.zeros(length, dtype=z.dtype, device=z.device).index_add_(
        0, k % length, gaussian
    )
    # Σ_d w[d]² = 1
    w = w / w.norm()
    # C_ij = w[(i − j) mod L]
    offsets = (
        torch.arange(length, device=z.device).view(-1, 1)
        - torch.arange(length, device=z.device)
    ) % length
    return z @ w[offsets].T


class SignalAugmentation:
    """A ``transform(X, y) -> (X, y)`` for :func:`companion.core.train.fit` that augments signals (N, L) with the
    MNIST-1D generator's transformations, in its order: scale by a factor uniform in [1 − ``scale``, 1 + ``scale``],
    roll by a shift uniform in {``-shift``, ..., ``shift``}, add correlated noise of standard deviation
    ``corr_noise`` (:func:`smooth`, Gaussian width :data:`CORR_WIDTH`) and white noise of standard deviation
    ``noise``, and add the ramp c (i / (L − 1) − 1/2) with c uniform in [``-shear``, ``shear``]. Labels pass
    unchanged.

    Example: ``SignalAugmentation(shift=4, scale=0.2, noise=0.1, generator=torch.Generator().manual_seed(0))``.
    """

    def __init__(
        self,
        shift: int = 0,
        scale: float = 0.0,
        noise: float = 0.0,
        corr_noise: float = 0.0,
        shear: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        check(
            int(shift) == shift, f"shift must be a whole number of samples, got {shift}"
        )
        check_non_negative("shift", shift)
        check(0.0 <= scale < 1.0, f"scale must be in [0, 1), got {scale}")
        check_non_negative("noise", noise)
        check_non_negative("corr_noise", corr_noise)
        check_non_negative("shear", shear)
        self.shift, self.scale, self.noise, self.corr_noise, self.shear = (
            int(shift),
            scale,
            noise,
            corr_noise,
            shear,
        )
        self.generator = generator

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        _check_signals(x)
        n, length = x.shape
        g = self.generator
        if self.scale > 0:
            # x ← a x,  a ~ U[1 − s, 1 + s] per signal
            x = _uniform(n, 1 - self.scale, 1 + self.scale, g, x).view(n, 1) * x
        if self.shift > 0:
            # x[i] ← x[(i − k) mod L],  k uniform in {−K, ..., K}
            x = translate(x, _randint(n, -self.shift, self.shift, g, x))
        if self.corr_noise > 0:
            # x ← x + σ_c C z,  z ~ N(0, I)
            x = x + self.corr_noise * smooth(_normal((n, length), g, x))
        if self.noise > 0:
            # x ← x + σ ε,  ε ~ N(0, I)
            x = x + self.noise * _normal((n, length), g, x)
        if self.shear > 0:
            # x ← x + c (i / (L − 1) − 1/2),  c ~ U[−h, h]
            ramp = torch.linspace(-0.5, 0.5, length, dtype=x.dtype, device=x.device)
            x = x + _uniform(n, -self.shear, self.shear, g, x).view(n, 1) * ramp
        return x, y
