"""A synthetic problem with sparse, rare features: where per-coordinate learning rates pay off."""

import math

import torch

from companion.core.data import Split
from companion.core.device import make_generator


def make_sparse_features(
    n: int = 2000,
    d: int = 100,
    max_freq: float = 0.5,
    min_freq: float = 0.005,
    noise: float = 0.1,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device=None,
) -> tuple[Split, torch.Tensor, torch.Tensor]:
    """Linear regression y = X w* + noise on binary features of very different frequencies.

    Feature j is present (x_j = 1) in an example with probability p_j, log-spaced from ``max_freq``
    (feature 0, common) down to ``min_freq`` (feature d − 1, rare), like words in text. The true
    weights w* are standard normal, so rare features matter as much as common ones when present.
    Returns the data, w* and the frequencies p.
    """
    g = make_generator(seed)
    p = torch.logspace(
        math.log10(max_freq), math.log10(min_freq), d, dtype=torch.float64
    )
    X = (torch.rand(n, d, generator=g, dtype=torch.float64) < p).to(dtype)
    w = torch.randn(d, generator=g, dtype=dtype)
    y = X @ w + noise * torch.randn(n, generator=g, dtype=dtype)
    device = device or "cpu"
    return Split(X, y).to(device), w.to(device), p.to(dtype=dtype, device=device)
