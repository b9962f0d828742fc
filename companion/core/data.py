"""Small offline data sets: scikit-learn's bundled digits and synthetic generators. Nothing is downloaded."""

from typing import Iterator, NamedTuple

import torch
from sklearn.datasets import load_digits as _sklearn_digits
from companion.core.device import make_generator


class Split(NamedTuple):
    """Inputs ``X`` and targets ``y`` of one split."""

    X: torch.Tensor
    y: torch.Tensor

    def to(self, device) -> "Split":
        return Split(self.X.to(device), self.y.to(device))

    def __len__(self) -> int:
        return len(self.X)


class Digits(NamedTuple):
    """The train / validation / test splits of the digits data."""

    train: Split
    val: Split
    test: Split


DIGITS_SPLIT_SEED = 0
"""The seed of the one fixed permutation that splits the 1797 digits into train / val / test (60/20/20)."""


def load_digits(device=None, dtype: torch.dtype = torch.float32, n_train: int | None = None,
                images: bool = False) -> Digits:
    """scikit-learn's 1797 handwritten 8×8 digits as tensors, with fixed train / val / test splits.

    Pixels are scaled to [0, 1]. The split is always the same (1078 / 359 / 360 examples), so results
    from different chapters can be compared. ``n_train`` keeps only the first ``n_train`` training
    examples (a small training set makes overfitting visible); ``images=True`` returns inputs shaped
    (N, 1, 8, 8) instead of (N, 64).
    """
    bunch = _sklearn_digits()
    X = torch.tensor(bunch.data, dtype=dtype) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(DIGITS_SPLIT_SEED))
    X, y = X[perm], y[perm]
    n_tr, n_val = int(0.6 * len(X)), int(0.2 * len(X))
    if images:
        X = X.reshape(-1, 1, 8, 8)
    splits = (slice(0, n_tr), slice(n_tr, n_tr + n_val), slice(n_tr + n_val, None))
    train, val, test = (Split(X[s], y[s]).to(device or "cpu") for s in splits)
    if n_train is not None:
        if not 0 < n_train <= len(train):
            raise ValueError(f"n_train must be in [1, {len(train)}], got {n_train}")
        train = Split(train.X[:n_train], train.y[:n_train])
    return Digits(train, val, test)


def make_regression(n: int = 200, d: int = 10, noise: float = 0.1, n_informative: int | None = None,
                    seed: int = 0, dtype: torch.dtype = torch.float32, device=None) -> tuple[Split, torch.Tensor]:
    """A linear regression problem y = X w* + noise. Returns the data and the true weights w*.

    With ``n_informative`` < d only that many entries of w* are non-zero (a sparse ground truth).
    """
    g = make_generator(seed)
    X = torch.randn(n, d, generator=g, dtype=dtype)
    w = torch.randn(d, generator=g, dtype=dtype)
    if n_informative is not None:
        w[n_informative:] = 0
    y = X @ w + noise * torch.randn(n, generator=g, dtype=dtype)
    return Split(X, y).to(device or "cpu"), w.to(device or "cpu")


def make_classification(n: int = 500, d: int = 2, classes: int = 3, spread: float = 1.0, seed: int = 0,
                        dtype: torch.dtype = torch.float32, device=None) -> Split:
    """Gaussian blobs: ``classes`` clusters with unit-normal centres scaled by 3 and standard deviation ``spread``."""
    g = make_generator(seed)
    centres = 3.0 * torch.randn(classes, d, generator=g, dtype=dtype)
    y = torch.randint(classes, (n,), generator=g)
    X = centres[y] + spread * torch.randn(n, d, generator=g, dtype=dtype)
    return Split(X, y).to(device or "cpu")


def batches(
    data: Split, batch_size: int, shuffle: bool = True, generator: torch.Generator | None = None
) -> Iterator[Split]:
    """Mini-batches of ``data``; shuffled with ``generator`` (a CPU generator) when ``shuffle``."""
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    order = order.to(data.X.device)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        yield Split(data.X[idx], data.y[idx])
