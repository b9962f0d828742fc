"""companion.core.data: fixed splits, shapes, ranges, reproducibility of the synthetic sets and batches."""

import pytest
import torch

from companion.core.data import Split, batches, load_digits, make_classification, make_regression


def test_digits_splits_are_fixed_and_disjoint():
    a, b = load_digits(), load_digits()
    assert [len(s) for s in a] == [1078, 359, 360]
    for x, y in zip(a, b):
        assert torch.equal(x.X, y.X) and torch.equal(x.y, y.y)
    rows = torch.cat([s.X for s in a])
    assert torch.unique(rows, dim=0).shape[0] == torch.unique(load_digits_all(), dim=0).shape[0]
    assert a.train.X.min() >= 0 and a.train.X.max() <= 1
    assert set(a.train.y.tolist()) == set(range(10))


def load_digits_all():
    from sklearn.datasets import load_digits as sk

    return torch.tensor(sk().data, dtype=torch.float32) / 16


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_digits_options(dtype):
    d = load_digits(dtype=dtype, n_train=100, images=True)
    assert d.train.X.shape == (100, 1, 8, 8) and d.train.X.dtype == dtype
    assert torch.equal(d.train.X.reshape(100, -1), load_digits(dtype=dtype).train.X[:100])
    assert len(d.val) == 359


@pytest.mark.parametrize("n_train", [0, -1, 2000])
def test_digits_bad_n_train(n_train):
    with pytest.raises(ValueError, match="n_train"):
        load_digits(n_train=n_train)


def test_regression_is_reproducible_and_sparse():
    (data, w), (data2, w2) = make_regression(seed=3, n_informative=4), make_regression(seed=3, n_informative=4)
    assert torch.equal(data.X, data2.X) and torch.equal(w, w2)
    assert (w[4:] == 0).all() and (w[:4] != 0).all()
    residual = data.y - data.X @ w
    assert residual.std() == pytest.approx(0.1, rel=0.3)


def test_classification_blobs():
    data = make_classification(n=300, d=2, classes=3, seed=1)
    assert data.X.shape == (300, 2) and set(data.y.tolist()) == {0, 1, 2}
    assert torch.equal(data.X, make_classification(n=300, d=2, classes=3, seed=1).X)


def test_batches_cover_every_example_once():
    data = Split(torch.arange(10.0).unsqueeze(1), torch.arange(10))
    got = list(batches(data, 4, generator=torch.Generator().manual_seed(0)))
    assert [len(b) for b in got] == [4, 4, 2]
    assert sorted(torch.cat([b.y for b in got]).tolist()) == list(range(10))
    again = list(batches(data, 4, generator=torch.Generator().manual_seed(0)))
    assert all(torch.equal(a.y, b.y) for a, b in zip(got, again))
    ordered = list(batches(data, 4, shuffle=False))
    assert torch.equal(torch.cat([b.y for b in ordered]), torch.arange(10))
