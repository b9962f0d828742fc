r"""The bias–variance–noise decomposition, measured by refitting a model on many resampled training sets.

Used by chapter 3.1 (*From the perceptron to deep networks*). Data come from
:math:`y = f(x) + \varepsilon` with :math:`\varepsilon \sim \mathcal N(0, \sigma^2)` and x uniform on
[−1, 1]. A learner trained on a random training set D predicts :math:`\hat f_D(x)`. At a test point x,
over training sets D and the test label's noise ε (Geman et al., 1992):

.. math::
    \underbrace{\mathbb E_{D,\varepsilon}\big[(y - \hat f_D(x))^2\big]}_{\text{expected error}}
    = \underbrace{\big(f(x) - \bar f(x)\big)^2}_{\text{bias}^2}
    + \underbrace{\mathbb E_D\big[(\hat f_D(x) - \bar f(x))^2\big]}_{\text{variance}}
    + \underbrace{\sigma^2}_{\text{noise}},
    \qquad \bar f(x) = \mathbb E_D\, \hat f_D(x).

The cross terms vanish: ε is independent of D and has mean 0, and :math:`\hat f_D - \bar f` has mean 0
over D. With K training sets, :math:`\bar f` is their average, so the bias–variance cross term is
exactly 0 on the sample too; the two terms left, :math:`\varepsilon^2 - \sigma^2` and
:math:`2\varepsilon (f - \hat f_D)`, have mean 0 and a variance we know, which gives the Monte-Carlo
error of the identity (see :class:`Decomposition`).

The plain sample estimate :math:`(f - \bar f)^2` of bias² is too large by the sample mean's own
variance, :math:`\text{variance}/K`, which matters for a flexible model; :func:`decompose` removes it and
divides the variance by K − 1 instead of K. The two corrections cancel in the sum.
"""

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

# fit(x_train (K, n), y_train (K, n), x_test (M,)) -> predictions (K, M), one row per training set
Learner = Callable[[Tensor, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Decomposition:
    r"""The four terms, averaged over the test points, and the Monte-Carlo standard error of their identity.

    ``error`` is measured directly, with a fresh noisy label for every (training set, test point)
    pair; ``gap`` = error − (bias² + variance + noise) is then a mean of K·M independent terms
    :math:`\varepsilon^2 - \sigma^2 + 2\varepsilon(f - \hat f_D)` (given the fits), whose variance
    :math:`2\sigma^4 + 4\sigma^2 (f - \hat f_D)^2` is known; ``gap_se`` is its standard error.
    """

    bias2: float
    variance: float
    noise: float
    error: float
    gap_se: float

    @property
    def gap(self) -> float:
        """error − (bias² + variance + noise), zero in expectation."""
        return self.error - (self.bias2 + self.variance + self.noise)


def legendre_features(x: Tensor, degree: int) -> Tensor:
    r"""The Legendre polynomials :math:`P_0(x), \dots, P_p(x)` of x on [−1, 1] as the last axis.

    .. math::
        P_0 = 1, \quad P_1 = x, \quad (k+1) P_{k+1} = (2k+1)\, x P_k - k P_{k-1}

    The same polynomials as the monomials :math:`1, x, \dots, x^p`, but a far better conditioned basis.
    """
    if degree < 0:
        raise ValueError(f"degree must be >= 0, got {degree}")
    P = [torch.ones_like(x), x]
    for k in range(1, degree):
        # (k+1) P_{k+1} = (2k+1) x P_k − k P_{k−1}
        P.append(((2 * k + 1) * x * P[k] - k * P[k - 1]) / (k + 1))
    return torch.stack(P[: degree + 1], dim=-1)


def polynomial_learner(degree: int) -> Learner:
    r"""Least-squares polynomial regression of degree p, one fit per training set (batched).

    .. math::
        \hat f_D(x) = \sum_{k=0}^{p} \beta_k P_k(x), \qquad
        \beta = \arg\min_\beta \sum_{(x_i, y_i) \in D} \big(\hat f_D(x_i) - y_i\big)^2
    """

    def fit(x_train: Tensor, y_train: Tensor, x_test: Tensor) -> Tensor:
        # β = argmin ‖Φ β − y‖², one problem per training set
        beta = torch.linalg.lstsq(
            legendre_features(x_train, degree), y_train.unsqueeze(-1)
        ).solution
        # f̂_D(x) = Φ(x) β
        return (legendre_features(x_test, degree) @ beta).squeeze(-1)

    return fit


def sample_training_sets(
    target: Callable[[Tensor], Tensor],
    *,
    n_sets: int,
    n_train: int,
    noise_std: float,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    r"""K = ``n_sets`` training sets of n points: :math:`x \sim U(-1, 1)`, :math:`y = f(x) + \varepsilon`; shapes (K, n)."""
    x = torch.rand(n_sets, n_train, generator=generator, dtype=dtype) * 2 - 1
    y = target(x) + noise_std * torch.randn(
        n_sets, n_train, generator=generator, dtype=dtype
    )
    return x, y


def decompose(
    learner: Learner,
    target: Callable[[Tensor], Tensor],
    *,
    noise_std: float,
    x_test: Tensor,
    training_sets: tuple[Tensor, Tensor],
    generator: torch.Generator,
) -> tuple[Decomposition, Tensor]:
    r"""Fit ``learner`` on every training set and measure the decomposition at the test points ``x_test`` (M,).

    .. math::
        \bar f(x) = \frac1K \sum_D \hat f_D(x), \quad
        \text{variance} = \Big\langle \frac{1}{K-1} \sum_D (\hat f_D - \bar f)^2 \Big\rangle_x, \quad
        \text{bias}^2 = \big\langle (f - \bar f)^2 \big\rangle_x - \frac{\text{variance}}{K}, \\
        \text{error} = \Big\langle \frac1K \sum_D (f + \varepsilon_{D,x} - \hat f_D)^2 \Big\rangle_x

    with the noise σ² the square of ``noise_std``. Returns the decomposition and the predictions (K, M).
    """
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")
    x_train, y_train = training_sets
    pred = learner(x_train, y_train, x_test)
    f = target(x_test)
    # f̄(x) = (1/K) Σ_D f̂_D(x)
    f_bar = pred.mean(dim=0)
    K = pred.shape[0]
    if K < 2:
        raise ValueError(f"need at least 2 training sets, got {K}")
    # variance = ⟨(1/(K−1)) Σ_D (f̂_D − f̄)²⟩_x
    variance = ((pred - f_bar) ** 2).sum(dim=0).mean() / (K - 1)
    # bias² = ⟨(f − f̄)²⟩_x − variance/K   (f̄ is itself noisy: E(f − f̄)² = bias² + variance/K)
    bias2 = ((f - f_bar) ** 2).mean() - variance / K
    # a fresh noisy test label for every (D, x): y = f(x) + ε
    eps = noise_std * torch.randn(pred.shape, generator=generator, dtype=pred.dtype).to(
        pred.device
    )
    # error = ⟨(1/K) Σ_D (y − f̂_D)²⟩_x
    error = ((f + eps - pred) ** 2).mean()
    # Var[ε² − σ² + 2ε(f − f̂_D)] = 2σ⁴ + 4σ²(f − f̂_D)²  (Gaussian ε), then the standard error of the mean
    term_var = 2 * noise_std**4 + 4 * noise_std**2 * (f - pred) ** 2
    gap_se = term_var.sum().sqrt() / pred.numel()
    return Decomposition(
        float(bias2), float(variance), noise_std**2, float(error), float(gap_se)
    ), pred
