"""companion.experiments.bias_variance: the decomposition's terms against cases with a known answer, and
the identity error = bias² + variance + noise within its stated Monte-Carlo error."""

import math

import pytest
import torch

from companion.experiments.bias_variance import (
    decompose,
    legendre_features,
    polynomial_learner,
    sample_training_sets,
)
from companion.testing.tolerances import assert_close

DTYPE = torch.float64
X_TEST = torch.linspace(-1, 1, 101, dtype=DTYPE)


def target(x):
    return torch.sin(3 * x) + 0.5 * torch.cos(5 * x)


def _run(degree, seed, noise_std=0.3, n_sets=300, n_train=25):
    g = torch.Generator().manual_seed(seed)
    sets = sample_training_sets(
        target, n_sets=n_sets, n_train=n_train, noise_std=noise_std, generator=g
    )
    return decompose(
        polynomial_learner(degree),
        target,
        noise_std=noise_std,
        x_test=X_TEST,
        training_sets=sets,
        generator=g,
    )


def test_legendre_features_are_the_legendre_polynomials():
    x = torch.linspace(-1, 1, 7, dtype=DTYPE)
    P = legendre_features(x, 3)
    exact = torch.stack(
        [torch.ones_like(x), x, (3 * x**2 - 1) / 2, (5 * x**3 - 3 * x) / 2], dim=-1
    )
    assert_close(
        P, exact, ulps=8, what="P0..P3"
    )  # a three-term recurrence, a few roundings per step
    assert legendre_features(x, 0).shape == (7, 1)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("degree", [0, 3, 6, 9])
def test_the_terms_sum_to_the_expected_error(degree, seed):
    d, _ = _run(degree, seed)
    # gap is a mean of K·M independent, mean-zero terms with a known variance: beyond 4 standard
    # errors happens with probability ~6e-5 per case (normal approximation)
    assert abs(d.gap) <= 4 * d.gap_se, (d, d.gap / d.gap_se)


def test_the_gap_is_standard_normal_over_seeds():
    runs = [_run(4, seed, n_sets=100)[0] for seed in range(20)]
    z = torch.tensor([d.gap / d.gap_se for d in runs])
    # 20 draws of a standard normal: mean within ±3/√20, standard deviation between 0.5 and 1.6
    assert abs(z.mean()) < 3 / math.sqrt(20) and 0.5 < z.std() < 1.6, z


def test_noise_free_exact_model_has_no_bias_or_variance():
    # a cubic fitted by a cubic without noise: every fit is exact, so bias² = variance = noise = error = 0
    cubic = lambda x: x**3 - x  # noqa: E731
    g = torch.Generator().manual_seed(0)
    sets = sample_training_sets(
        cubic, n_sets=20, n_train=10, noise_std=0.0, generator=g
    )
    d, pred = decompose(
        polynomial_learner(3),
        cubic,
        noise_std=0.0,
        x_test=X_TEST,
        training_sets=sets,
        generator=g,
    )
    # lstsq on 10 points with 4 Legendre columns of order 1: a few hundred ε of rounding at most
    assert_close(
        pred, cubic(X_TEST).expand_as(pred), ulps=256, scale=1.0, what="exact fits"
    )
    assert (
        abs(d.bias2) < 1e-25 and d.variance < 1e-25 and d.error < 1e-25 and d.noise == 0
    )


def test_constant_model_variance_is_that_of_a_mean():
    # degree 0 predicts the training mean of y: its variance is Var[f(x)] / n + σ² / n for x ~ U(−1, 1)
    n, sigma = 25, 0.3
    d, _ = _run(0, seed=0, noise_std=sigma, n_sets=4000, n_train=n)
    xs = torch.linspace(-1, 1, 200_001, dtype=DTYPE)
    var_f = target(xs).var().item()
    expected = (var_f + sigma**2) / n
    # the sample variance of 4000 means has relative standard error √(2/3999) ≈ 2.2 %: allow 10 %
    assert abs(d.variance - expected) < 0.1 * expected, (d.variance, expected)


def test_bias_falls_and_variance_rises_with_degree():
    terms = [_run(p, seed=0) for p in range(10)]
    bias2 = [t[0].bias2 for t in terms]
    variance = [t[0].variance for t in terms]
    assert bias2[4] < 0.05 * bias2[0] and variance[9] > 100 * variance[0]
    errors = [t[0].error for t in terms]
    assert (
        0 < min(range(10), key=errors.__getitem__) < 9
    )  # the best capacity is in between


def test_errors():
    g = torch.Generator().manual_seed(0)
    sets = sample_training_sets(target, n_sets=1, n_train=5, noise_std=0.1, generator=g)
    with pytest.raises(ValueError, match="at least 2 training sets"):
        decompose(
            polynomial_learner(1),
            target,
            noise_std=0.1,
            x_test=X_TEST,
            training_sets=sets,
            generator=g,
        )
    with pytest.raises(ValueError, match="noise_std"):
        decompose(
            polynomial_learner(1),
            target,
            noise_std=-1.0,
            x_test=X_TEST,
            training_sets=sets,
            generator=g,
        )
    with pytest.raises(ValueError, match="degree"):
        legendre_features(X_TEST, -1)
