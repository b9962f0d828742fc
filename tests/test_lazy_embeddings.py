"""companion.experiments.lazy_embeddings: the Zipf bags, the lazy/dense training runs, the first-lookup step
against its closed form, and the timing harness's shape."""

import math

import pytest
import torch

from companion.experiments.lazy_embeddings import (
    BagClassifier,
    first_lookup_steps,
    make_zipf_bags,
    time_steps,
    train_bags,
    zipf_probabilities,
)


def test_zipf_probabilities():
    p = zipf_probabilities(100, exponent=1.5)
    assert abs(p.sum().item() - 1) < 1e-12
    # p_k ∝ (k + 1)^−s: the ratio of token 0 to token 9 is 10^s (within rounding)
    assert abs(p[0].item() / p[9].item() - 10**1.5) < 1e-9


def test_zipf_bags_shapes_labels_and_seed():
    train, test, w = make_zipf_bags(n=300, vocab=50, length=5, classes=3, seed=1)
    assert train.X.shape == (200, 5) and test.X.shape == (100, 5) and w.shape == (50, 3)
    X, y = torch.cat([train.X, test.X]), torch.cat([train.y, test.y])
    assert torch.equal(y, w[X].sum(1).argmax(1))  # the hidden linear rule
    assert X.min() >= 0 and X.max() < 50
    again, _, _ = make_zipf_bags(n=300, vocab=50, length=5, classes=3, seed=1)
    other, _, _ = make_zipf_bags(n=300, vocab=50, length=5, classes=3, seed=2)
    assert torch.equal(train.X, again.X) and not torch.equal(train.X, other.X)
    # token 0 is the most frequent: its share within 5 standard errors of p_0
    p0, n = zipf_probabilities(50)[0].item(), X.numel()
    assert abs((X == 0).double().mean().item() - p0) < 5 * math.sqrt(p0 * (1 - p0) / n)


def test_bag_classifier_gradient_is_sparse_only_when_asked():
    tokens = torch.tensor([[0, 1, 1], [4, 1, 0]])
    for sparse in (True, False):
        model = BagClassifier(6, 2, sparse=sparse)
        model(tokens).sum().backward()
        assert model.embedding.weight.grad.is_sparse == sparse
        dense = model.embedding.weight.grad.to_dense()
        # mean over 3 tokens of a sum of scores: each lookup adds 1/3 to every class of its row
        assert torch.allclose(dense[:, 0], torch.tensor([2, 3, 0, 0, 1, 0]) / 3)


@pytest.mark.parametrize("lazy", [True, False], ids=["lazy", "dense"])
def test_train_bags_learns_and_tracks_untouched_rows(lazy):
    train, test, _ = make_zipf_bags(n=600, vocab=200, classes=3, seed=0)
    result = train_bags(lazy, train, test, 200, 3, seed=0, steps=60)
    assert result["accuracy"] > 0.45  # above chance (1/3)
    assert result["drift"].shape == (200,)
    if lazy:  # rows missing from a batch are left exactly as they were
        assert (
            result["untouched_moved"] == 0
            and result["untouched_relative"] == 0
            and not result["drift"].any()
        )
    else:  # Adam's momentum keeps moving the rows seen before
        assert result["untouched_moved"] > 0.1 and result["drift"].max() > 0
    again = train_bags(lazy, train, test, 200, 3, seed=0, steps=60)
    assert again["loss"] == result["loss"]  # seeded: the same run twice


@pytest.mark.parametrize("t", [1, 2, 10, 100, 1000, 10**5])
def test_first_lookup_step_closed_form(t):
    beta1, beta2, eps, lr = 0.9, 0.999, 1e-8, 1e-3
    lazy, dense = first_lookup_steps(t, lr=lr, beta1=beta1, beta2=beta2, eps=eps)
    # g = 1 into zero moments: m = 1 − β₁, v = 1 − β₂
    # lazy: step γ √(1 − β₂ᵗ)/(1 − β₁ᵗ) · m/(√v + ε)
    expected = (
        math.sqrt(1 - beta2**t)
        / (1 - beta1**t)
        * (1 - beta1)
        / (math.sqrt(1 - beta2) + eps)
    )
    assert abs(lazy - expected) < 1e-12 * expected
    # dense Adam adds ε after dividing √v by √(1 − β₂ᵗ): the same step up to ε's placement (relative 1e-5)
    assert abs(dense - lazy) < 1e-5 * lazy


def test_dense_tail_sums_to_the_geometric_series():
    beta1, beta2 = 0.9, 0.999
    lazy, dense = first_lookup_steps(10**6, absent_after=300, beta1=beta1, beta2=beta2)
    lazy_after, _ = first_lookup_steps(10**6, absent_after=0, beta1=beta1, beta2=beta2)
    assert lazy == lazy_after  # the lazy row does not move while absent
    # late in training the bias corrections are 1: the steps shrink by β₁/√β₂ each, Σ_j (β₁/√β₂)^j
    ratio = beta1 / math.sqrt(beta2)
    assert abs(dense / lazy - (1 - ratio**301) / (1 - ratio)) < 1e-4


def test_time_steps_shape_and_threads_restored():
    threads = torch.get_num_threads()
    times = time_steps([50, 100], dim=4, lookups=16, repeats=2, steps=1)
    assert set(times) == {50, 100}
    assert all(
        len(times[v][m]) == 2 and min(times[v][m]) > 0
        for v in times
        for m in ("lazy", "dense")
    )
    assert torch.get_num_threads() == threads
