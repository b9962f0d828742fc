"""companion.experiments.sparse_features: the synthetic rare-features regression problem, checked against its definition."""

import pytest
import torch

from companion.experiments.sparse_features import make_sparse_features


@pytest.mark.parametrize(
    "n, d, max_freq, min_freq", [(4000, 20, 0.5, 0.05), (2000, 50, 0.3, 0.02)], ids=str
)
def test_shapes_frequencies_and_targets(n, d, max_freq, min_freq):
    data, w, p = make_sparse_features(
        n=n, d=d, max_freq=max_freq, min_freq=min_freq, noise=0.1, dtype=torch.float64
    )
    assert (
        data.X.shape == (n, d)
        and data.y.shape == (n,)
        and w.shape == (d,)
        and p.shape == (d,)
    )
    assert set(data.X.unique().tolist()) <= {0.0, 1.0}
    # log-spaced from max_freq down to min_freq (within 1e-12)
    assert abs(p[0].item() - max_freq) < 1e-12 and abs(p[-1].item() - min_freq) < 1e-12
    assert torch.allclose(
        p.log().diff(),
        torch.full(
            (d - 1,),
            (torch.tensor(min_freq / max_freq).log() / (d - 1)).item(),
            dtype=torch.float64,
        ),
        atol=1e-12,
    )
    # empirical frequencies within 5 standard errors of p
    se = (p * (1 - p) / n).sqrt()
    assert ((data.X.mean(0) - p).abs() < 5 * se).all()
    # the residual y − X w* is the noise: mean ≈ 0 and std ≈ 0.1 (within 10 %)
    r = data.y - data.X @ w
    assert abs(r.mean().item()) < 5 * 0.1 / n**0.5 and abs(r.std().item() - 0.1) < 0.01


def test_seeded_and_dtype():
    a, wa, _ = make_sparse_features(n=100, d=10, seed=3)
    b, wb, _ = make_sparse_features(n=100, d=10, seed=3)
    c, _, _ = make_sparse_features(n=100, d=10, seed=4)
    assert torch.equal(a.X, b.X) and torch.equal(a.y, b.y) and torch.equal(wa, wb)
    assert not torch.equal(a.X, c.X)
    assert a.X.dtype == torch.float32 and wa.dtype == torch.float32
