"""The pooling race of chapter 9.2: the lean training loop against the testbed's, the runs and their pairing, and the
sampled test-time passes against the exact average over every pooling choice of a small network.

The ConvNets here have 3 channels (``channels=3``) and train for one or two epochs on a fifth of MNIST-1D: what is
checked is the bookkeeping, not the accuracy the chapter measures. The statistical bound allows a deviation that
Hoeffding's inequality makes less likely than 1e-8, and the test shows the wrong rule (evaluation mode instead of
draws) missing it by far.
"""

import itertools
import math

import pytest
import torch
from torch import nn

from companion import make_generator
from companion.core.data import Digits, Split, load_mnist1d
from companion.core.device import rng_seed
from companion.core.train import evaluate
from companion.experiments.convnet_testbed import cnn, train_convnet, train_convnet_fast
from companion.experiments.pooling_race import (
    POOLS,
    PoolRun,
    pass_probabilities,
    race,
    run_pool,
    sampled_accuracies,
)
from companion.nn.pooling import AvgPool1d, MaxPool1d
from companion.regularization import StochasticPool1d
from companion.testing.tolerances import assert_close


@pytest.fixture(scope="module")
def data():
    """A fifth of MNIST-1D (700 training, 100 validation and 200 test sequences): enough to train for a step or two."""
    full = load_mnist1d()
    return Digits(*(Split(s.X[:n], s.y[:n]) for s, n in zip(full, (700, 100, 200))))


@pytest.mark.parametrize(
    "name,cls",
    [("max", MaxPool1d), ("average", AvgPool1d), ("stochastic", StochasticPool1d)],
)
def test_each_pool_halves_the_length(name, cls):
    layer = POOLS[name]()
    x = torch.rand(2, 3, 40, generator=make_generator(0))
    assert isinstance(layer, cls) and layer(x).shape == (2, 3, 20)


@pytest.mark.parametrize("name", POOLS)
def test_train_convnet_fast_gives_train_convnet_s_weights(data, name):
    # train_convnet evaluates in eval mode between epochs, which changes no weight and draws nothing (stochastic
    # pooling averages in eval mode): the same operations in the same order, so the weights agree bit for bit
    ours = train_convnet_fast(
        cnn(3, channels=3, pool=POOLS[name]), data, epochs=2, seed=3
    )
    theirs = cnn(3, channels=3, pool=POOLS[name])
    train_convnet(theirs, data, epochs=2, seed=3, validate=False)
    assert not ours.training
    for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert_close(p, q, ulps=0)
    # and the training moved them: the comparison is not between two untouched initializations
    assert not torch.equal(
        next(ours.parameters()), next(cnn(3, channels=3, pool=POOLS[name]).parameters())
    )


def test_run_pool_measures_its_final_model(data):
    run = run_pool(POOLS["stochastic"], data, seed=1, epochs=1, channels=3)
    assert isinstance(run, PoolRun) and not run.model.training
    assert (run.train_loss, run.train_acc) == evaluate(run.model, data.train)
    assert (run.test_loss, run.test_acc) == evaluate(run.model, data.test)
    assert run.gap == run.train_acc - run.test_acc
    # it trained: the weights moved away from the same seed's initial ones
    untrained = cnn(1, channels=3, pool=POOLS["stochastic"])
    assert all(
        not torch.equal(p, q)
        for p, q in zip(run.model.parameters(), untrained.parameters(), strict=True)
    )


def test_race_pairs_the_seeds_and_repeats_itself(data):
    pools = {"max": POOLS["max"], "stochastic": POOLS["stochastic"]}
    runs = race(pools, data, seeds=[0, 1], epochs=1, channels=3)
    assert list(runs) == ["max", "stochastic"] and all(
        len(rs) == 2 for rs in runs.values()
    )
    # the second seed's stochastic run is run_pool's for that seed: same weights, same draws, same numbers
    again = run_pool(POOLS["stochastic"], data, seed=1, epochs=1, channels=3)
    assert (again.train_acc, again.test_acc, again.test_loss) == (
        runs["stochastic"][1].train_acc,
        runs["stochastic"][1].test_acc,
        runs["stochastic"][1].test_loss,
    )
    # the two seeds differ
    assert runs["max"][0].test_loss != runs["max"][1].test_loss


def tiny_network(weight_scale=3.0):
    """Input (N, 6) → ReLU → stochastic pooling of 2 (three windows) → linear map to 2 classes."""
    torch.manual_seed(0)
    readout = nn.Linear(3, 2).double()
    with torch.no_grad():
        readout.weight.copy_(
            weight_scale * torch.tensor([[1.0, -2.0, 1.5], [-1.0, 1.0, -0.5]])
        )
    return nn.Sequential(
        nn.ReLU(), nn.Unflatten(1, (1, 6)), StochasticPool1d(2), nn.Flatten(), readout
    )


def exact_average(model, X):
    """The average of softmax(f(x; I)) over all 2³ pooling choices I, each with probability Π p_{I_j}."""
    pool_input = X.relu().reshape(len(X), 3, 2)  # (N, window, element)
    p = pool_input / pool_input.sum(-1, keepdim=True)
    readout = model[-1]
    total = torch.zeros(len(X), 2, dtype=torch.float64)
    for choice in itertools.product(range(2), repeat=3):
        index = torch.tensor(choice)
        pooled = pool_input[
            :, torch.arange(3), index
        ]  # (N, 3): the chosen element of each window
        weight = p[:, torch.arange(3), index].prod(-1, keepdim=True)
        total += weight * torch.softmax(readout(pooled), dim=-1)
    return total


def test_many_sampled_passes_approach_the_average_over_pooling_choices():
    model = tiny_network()
    # fixed windows (the draws move with the seed offset, the input does not): mass in every window, and a last row
    # whose pooling choices disagree enough that the evaluation-mode pass is far from their average
    X = torch.tensor(
        [
            [1, 3, 4, 0.5, 2, 2],
            [0.2, 5, 1, 1, 3, 0.1],
            [2, 0.5, 0.5, 4, 1, 3],
            [1, 1, 1, 1, 1, 1],
            [0.5, 3, 0.5, 3, 3, 0.5],
        ],
        dtype=torch.float64,
    )
    with torch.no_grad():
        exact = exact_average(model, X)
        weighted = torch.softmax(model.eval()(X), dim=-1)
    passes = 4000
    sampled = pass_probabilities(model, X, passes, seed=2).mean(0)
    # each probability is a mean of M draws in [0, 1]: Hoeffding's P(|mean − E| ≥ t) ≤ 2 exp(−2 M t²), 4e-9 at t = 0.05
    t = 0.05
    assert 2 * math.exp(-2 * passes * t * t) < 1e-8
    assert (sampled - exact).abs().max() < t
    # the evaluation-mode pass is another function: sampling in eval mode would miss the bound by far
    assert (weighted - exact).abs().max() > 3 * t


def test_passes_restore_the_mode_and_the_global_stream():
    model = tiny_network().train(False)
    X = torch.rand(4, 6, generator=make_generator(0), dtype=torch.float64)
    torch.manual_seed(11)
    expected_next = torch.rand(3)
    torch.manual_seed(11)
    first = pass_probabilities(model, X, passes=3, seed=5)
    assert torch.equal(torch.rand(3), expected_next) and not model.training
    assert first.shape == (3, 4, 2)
    # the same seed gives the same draws, another seed other draws, and the passes differ from each other
    assert torch.equal(pass_probabilities(model, X, passes=3, seed=5), first)
    assert not torch.equal(pass_probabilities(model, X, passes=3, seed=6), first)
    assert not torch.equal(first[0], first[1])


def test_one_pass_is_one_training_mode_forward():
    model = tiny_network()
    X = torch.rand(4, 6, generator=make_generator(1), dtype=torch.float64)
    one = pass_probabilities(model, X, passes=1, seed=7)[0]
    torch.manual_seed(rng_seed(7))
    with torch.no_grad():
        direct = torch.softmax(model.train()(X), dim=-1)
    assert_close(one, direct, ulps=0)  # the same draws and the same operations


def test_running_accuracies_average_the_first_passes():
    model = tiny_network()
    X = torch.rand(40, 6, generator=make_generator(3), dtype=torch.float64)
    y = torch.randint(2, (40,), generator=make_generator(4))
    probabilities = pass_probabilities(model, X, passes=6, seed=1)
    expected = [
        ((probabilities[:m].sum(0) / m).argmax(-1) == y).float().mean().item()
        for m in (1, 3, 6)
    ]
    # the accuracy is a count over 40 examples: agreeing within 1e-6 is agreeing on every example
    assert sampled_accuracies(model, Split(X, y), (1, 3, 6), seed=1) == pytest.approx(
        expected, abs=1e-6
    )


def test_a_deterministic_network_is_its_own_average(data):
    model = cnn(0, channels=3, pool=POOLS["max"]).eval()
    X = data.test.X[:50]
    with torch.no_grad():
        expected = torch.softmax(model(X), dim=-1)
    # Σ of 5 equal probabilities then / 5: at most 3 roundings of one value's size
    assert_close(pass_probabilities(model, X, passes=5).mean(0), expected, ulps=4)
    # the accuracy is a count over 200 examples: agreeing within 1e-6 is agreeing on every example
    assert sampled_accuracies(model, data.test, (1, 2)) == pytest.approx(
        [evaluate(model, data.test)[1]] * 2, abs=1e-6
    )


def test_passes_must_be_positive():
    with pytest.raises(ValueError, match="passes must be at least 1, got 0"):
        pass_probabilities(
            tiny_network(), torch.rand(2, 6, dtype=torch.float64), passes=0
        )
