"""companion.experiments.convnet_testbed: the three model families of the MNIST-1D table (their shapes, the CNN's
lengths with and without pooling, their parameter counts), seeding (same seed, same weights) and train_convnet's
short budget."""

import math

import pytest
import torch
from torch import nn

from companion.core.data import Digits, Split, load_mnist1d
from companion.core.train import evaluate
from companion.experiments import convnet_testbed as tb
from companion.nn import BatchNorm1d, Conv1d, Dropout, MaxPool1d

X = torch.randn(7, tb.LENGTH, generator=torch.Generator().manual_seed(0))

MODELS = {
    "logistic": lambda seed: tb.logistic(seed),
    "mlp": lambda seed: tb.mlp_model(seed),
    "cnn": lambda seed: tb.cnn(seed),
    "cnn-pool": lambda seed: tb.cnn(seed, pool=lambda: MaxPool1d(2)),
    "cnn-norm-dropout": lambda seed: tb.cnn(
        seed, norm=BatchNorm1d, dropout=lambda: Dropout(0.5)
    ),
}
# parameters: 40·10 + 10; 40·100 + 100 + 100·100 + 100 + 100·10 + 10; the CNN's 25·5 + 25, 2 × (25·25·3 + 25),
# 125·10 + 10 (its read-out sees 25 channels × 5 positions, with or without pooling); BatchNorm adds 2 × 25 per layer
PARAMETERS = {
    "logistic": 410,
    "mlp": 15_210,
    "cnn": 5_210,
    "cnn-pool": 5_210,
    "cnn-norm-dropout": 5_210 + 3 * 50,
}


@pytest.mark.parametrize("name", MODELS)
def test_models_map_sequences_to_ten_logits(name):
    model = MODELS[name](0).eval()
    assert model(X).shape == (7, 10)
    assert sum(p.numel() for p in model.parameters()) == PARAMETERS[name]


def _lengths(model: nn.Module, kinds: tuple[type, ...]) -> list[tuple[int, ...]]:
    """The output shape of every layer of the given kinds, in order, for the batch X."""
    shapes, hooks = (
        [],
        [
            m.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
            for m in model.modules()
            if isinstance(m, kinds)
        ],
    )
    model.eval()(X)
    for h in hooks:
        h.remove()
    return shapes


def test_cnn_lengths_follow_the_output_length_formula():
    # stride 2, padding 1: ⌊(40 + 2 − 5)/2⌋ + 1 = 19, ⌊(19 + 2 − 3)/2⌋ + 1 = 10, ⌊(10 + 2 − 3)/2⌋ + 1 = 5
    assert _lengths(tb.cnn(0), (Conv1d,)) == [(7, 25, 19), (7, 25, 10), (7, 25, 5)]
    assert tb.cnn(0)[-1].in_features == 125


def test_cnn_with_pooling_keeps_the_length_in_the_convolutions_and_halves_it_in_the_pools():
    model = tb.cnn(0, pool=lambda: MaxPool1d(2))
    assert _lengths(model, (Conv1d,)) == [(7, 25, 40), (7, 25, 20), (7, 25, 10)]
    assert _lengths(model, (MaxPool1d,)) == [(7, 25, 20), (7, 25, 10), (7, 25, 5)]
    assert all(
        m.stride == (1,) and m.padding == "same"
        for m in model.modules()
        if isinstance(m, Conv1d)
    )


def test_cnn_channels_option():
    model = tb.cnn(0, channels=4)
    assert _lengths(model, (Conv1d,))[-1] == (7, 4, 5) and model[-1].in_features == 20


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_weights(name):
    a, b, c = (
        MODELS[name](3).state_dict(),
        MODELS[name](3).state_dict(),
        MODELS[name](4).state_dict(),
    )
    assert list(a) == list(b) and all(
        torch.equal(a[k], b[k]) for k in a
    )  # copies of the same draws
    weights = [k for k in a if k.endswith("weight") and a[k].dim() > 1]
    assert weights and all(
        not torch.equal(a[k], c[k]) for k in weights
    )  # another seed draws other weights


def _small(n_train=300):
    """The first 300 training sequences of MNIST-1D with its validation and test splits."""
    full = load_mnist1d()
    return Digits(
        Split(full.train.X[:n_train], full.train.y[:n_train]), full.val, full.test
    )


def test_train_convnet_short_budget():
    data = _small()
    model = tb.cnn(0)
    start_loss, _ = evaluate(model, data.train)
    history = tb.train_convnet(model, data, epochs=2, seed=0)
    assert history.steps == [3, 6]  # ⌈300/100⌉ Adam steps per epoch
    assert len(history.val_acc) == 2 and len(history.train_loss) == 2
    # the untrained network is near log 10 ≈ 2.30; six steps of Adam at 10⁻² lower it measurably on any seed
    assert abs(start_loss - math.log(10)) < 0.2
    assert history.train_loss[-1] < start_loss - 0.05
    again = tb.train_convnet(
        tb.cnn(0), data, epochs=2, seed=0
    )  # same seeds: the same run
    assert again.train_loss == history.train_loss
    quiet = tb.train_convnet(tb.cnn(0), data, epochs=1, validate=False)
    assert quiet.val_acc == [] and len(quiet.train_acc) == 1


def test_train_convnet_uses_the_given_optimizer():
    data = _small(200)
    model = tb.mlp_model(0)
    before = [p.detach().clone() for p in model.parameters()]
    tb.train_convnet(
        model,
        data,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.0),
        epochs=1,
        validate=False,
    )
    assert all(
        torch.equal(a, b) for a, b in zip(before, model.parameters())
    )  # a zero learning rate moves nothing
