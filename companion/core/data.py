"""Small offline data sets: scikit-learn's bundled digits, MNIST-1D generated locally, and synthetic
generators. Nothing is downloaded."""

import functools
import random
from typing import Iterator, NamedTuple

import numpy as np

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


def load_digits(
    device=None,
    dtype: torch.dtype = torch.float32,
    n_train: int | None = None,
    images: bool = False,
) -> Digits:
    """scikit-learn's 1797 handwritten 8×8 digits as tensors, with fixed train / val / test splits.

    Pixels are scaled to [0, 1]. The split is always the same (1078 / 359 / 360 examples), so results
    from different chapters can be compared. ``n_train`` keeps only the first ``n_train`` training
    examples (a small training set makes overfitting visible); ``images=True`` returns inputs shaped
    (N, 1, 8, 8) instead of (N, 64).
    """
    bunch = _sklearn_digits()
    X = torch.tensor(bunch.data, dtype=dtype) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    perm = torch.randperm(
        len(X), generator=torch.Generator().manual_seed(DIGITS_SPLIT_SEED)
    )
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


MNIST1D_SPLIT_SEED = 0
"""The seed of the one fixed permutation that carves MNIST-1D's validation split from its 4000 training sequences."""


@functools.lru_cache(maxsize=2)
def _mnist1d_arrays(shuffle_positions: bool) -> tuple[np.ndarray, ...]:
    """The canonical MNIST-1D arrays from the ``mnist1d`` package's generator (its default arguments, seed 42),
    built once per process. The generator seeds NumPy's and Python's global streams; they are restored."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.shuffle_seq = shuffle_positions
    saved = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(saved[0])
        random.setstate(saved[1])
    return data["x"], data["y"], data["x_test"], data["y_test"]


def load_mnist1d(
    device=None,
    dtype: torch.dtype = torch.float32,
    n_val: int = 500,
    shuffle_positions: bool = False,
) -> Digits:
    """MNIST-1D (Greydanus & Kobak, 2024): ten digit templates turned into 1-D signals of length 40 by random
    padding, scaling, translation, correlated and i.i.d. noise and shear, as train / validation / test splits.

    The sequences come from the ``mnist1d`` package's ``make_dataset()`` with its default arguments, generated
    on this machine (nothing is downloaded): 4000 training and 1000 test sequences, standardized over the whole
    set. ``n_val`` of the training sequences (a fixed random choice) become the validation split, so the
    splits hold 4000 − ``n_val`` / ``n_val`` / 1000 sequences, inputs shaped (N, 40). With
    ``shuffle_positions=True`` every sequence's 40 positions are permuted by one fixed permutation (the
    paper's shuffled variant): the information is all still there, but no longer in order.
    """
    x, y, x_test, y_test = _mnist1d_arrays(bool(shuffle_positions))
    if not 0 <= n_val < len(x):
        raise ValueError(f"n_val must be in [0, {len(x) - 1}], got {n_val}")
    X = torch.tensor(x, dtype=dtype)
    Y = torch.tensor(y, dtype=torch.long)
    perm = torch.randperm(
        len(X), generator=torch.Generator().manual_seed(MNIST1D_SPLIT_SEED)
    )
    train, val = perm[n_val:], perm[:n_val]
    splits = (
        Split(X[train], Y[train]),
        Split(X[val], Y[val]),
        Split(
            torch.tensor(x_test, dtype=dtype), torch.tensor(y_test, dtype=torch.long)
        ),
    )
    return Digits(*(split.to(device or "cpu") for split in splits))


def make_regression(
    n: int = 200,
    d: int = 10,
    noise: float = 0.1,
    n_informative: int | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device=None,
) -> tuple[Split, torch.Tensor]:
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


def make_classification(
    n: int = 500,
    d: int = 2,
    classes: int = 3,
    spread: float = 1.0,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device=None,
) -> Split:
    """Gaussian blobs: ``classes`` clusters with unit-normal centres scaled by 3 and standard deviation ``spread``."""
    g = make_generator(seed)
    centres = 3.0 * torch.randn(classes, d, generator=g, dtype=dtype)
    y = torch.randint(classes, (n,), generator=g)
    X = centres[y] + spread * torch.randn(n, d, generator=g, dtype=dtype)
    return Split(X, y).to(device or "cpu")


def batches(
    data: Split,
    batch_size: int,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
) -> Iterator[Split]:
    """Mini-batches of ``data``; shuffled with ``generator`` (a CPU generator) when ``shuffle``."""
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    order = order.to(data.X.device)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        yield Split(data.X[idx], data.y[idx])
