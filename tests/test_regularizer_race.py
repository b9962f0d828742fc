"""companion.experiments.regularizer_race: the testbed runner behind the regularization part's closing table, driven by a
table of methods, with a few epochs each."""

import pytest
import torch

from companion.experiments.regularizer_race import (
    Method,
    Result,
    compare,
    format_table,
    on_images,
    plot_results,
    run_method,
)
from companion.nn import Dropout
from companion.regularization import DropConnectLinear
from companion.testing.parity import max_abs_diff
from companion.experiments import (
    testbed,
)  # a module: its testbed_* functions are not tests
from companion.core.train import evaluate

EPOCHS = 3
EXACT = 0.0  # the same computation run twice: bit-identical


class StopAfter:
    """A callback that stops training after ``n`` epochs and loads the weights it saw after the first."""

    def __init__(self, n):
        self.n, self.first = n, None

    def on_epoch_end(self, epoch, history, model):
        if epoch == 0:
            self.first = {k: v.clone() for k, v in model.state_dict().items()}
        if epoch + 1 >= self.n:
            model.load_state_dict(self.first)
            return True
        return False


def _l2(model):
    return 1e-3 / 2 * sum((p**2).sum() for p in model.parameters() if p.dim() >= 2)


def _noise(X, y):
    return X + 0.05 * torch.randn(
        X.shape, generator=torch.Generator().manual_seed(int(X.sum() * 1000) % 997)
    ), y


METHODS = {
    "baseline": Method(),
    "dropout": Method(model_kwargs=dict(dropout=lambda: Dropout(0.5))),
    "dropconnect": Method(
        model_kwargs=dict(
            linear=lambda i, o: DropConnectLinear(i, o, per_example=False)
        )
    ),
    "l2": Method(fit_kwargs=lambda model: dict(penalty=_l2)),
    "noise": Method(fit_kwargs=lambda model: dict(transform=_noise)),
    "stop": Method(fit_kwargs=lambda model: dict(callbacks=[StopAfter(2)])),
    "sgd-lr": Method(
        fit_kwargs=lambda model: dict(
            optimizer=torch.optim.SGD(model.parameters(), lr=0.01)
        )
    ),
}


@pytest.fixture(scope="module")
def data():
    return testbed.testbed_data()


@pytest.mark.parametrize("name", list(METHODS))
def test_reproducible(name, data):
    """Two runs of the same method from the same seed give identical numbers."""
    a = run_method(METHODS[name], data, seed=0, epochs=EPOCHS)
    b = run_method(METHODS[name], data, seed=0, epochs=EPOCHS)
    for field in (
        "train_acc",
        "val_acc",
        "test_acc",
        "train_loss",
        "val_loss",
        "epochs",
    ):
        assert abs(getattr(a, field) - getattr(b, field)) <= EXACT, field


@pytest.mark.parametrize("name", ["baseline", "dropout", "l2", "noise", "sgd-lr"])
def test_matches_a_direct_run(name, data):
    """Without early stopping the result is the last epoch of the same run done by hand (tolerance 0)."""
    method = METHODS[name]
    result = run_method(method, data, seed=0, epochs=EPOCHS)
    model = testbed.testbed_model(seed=0, **method.model_kwargs)
    h = testbed.train_testbed(
        model, data, epochs=EPOCHS, seed=0, **method.fit_kwargs(model)
    )
    assert result.epochs == h.epochs == EPOCHS
    assert (
        abs(result.train_acc - h.train_acc[-1]) <= EXACT
        and abs(result.val_acc - h.val_acc[-1]) <= EXACT
    )
    assert (
        abs(result.train_loss - h.train_loss[-1]) <= EXACT
        and abs(result.val_loss - h.val_loss[-1]) <= EXACT
    )
    assert abs(result.test_acc - evaluate(model, data.test)[1]) <= EXACT


def test_measures_the_final_model_after_a_callback_restores_weights(data):
    """A callback that stops early and restores earlier weights: the result is the restored model's,
    i.e. the model after one epoch (not the History's last entry)."""
    result = run_method(METHODS["stop"], data, seed=0, epochs=EPOCHS)
    one_epoch = run_method(METHODS["baseline"], data, seed=0, epochs=1)
    assert result.epochs == 2
    assert abs(result.val_loss - one_epoch.val_loss) < 1e-6
    assert abs(result.train_acc - one_epoch.train_acc) < 1e-6


def test_fit_kwargs_are_fresh_per_run(data):
    """The factory is called once per run, with that run's model."""
    seen = []

    def factory(model):
        seen.append(model)
        return {}

    compare(
        {"a": Method(fit_kwargs=factory), "b": Method(fit_kwargs=factory)},
        data,
        epochs=1,
    )
    assert len(seen) == 2 and seen[0] is not seen[1]


def test_same_seed_same_start(data):
    """Every method starts from the same initial weights: zero epochs of training leave the baseline's
    initial model, identical for two methods that differ only in training options."""
    a = run_method(METHODS["baseline"], data, seed=3, epochs=0)
    b = run_method(METHODS["l2"], data, seed=3, epochs=0)
    assert a == Result(
        b.train_acc, b.val_acc, b.test_acc, b.train_loss, b.val_loss, 0, a.seconds
    )


def test_different_methods_differ(data):
    results = compare(
        {k: METHODS[k] for k in ("baseline", "dropout", "l2")}, data, epochs=EPOCHS
    )
    losses = [r.train_loss for r in results.values()]
    assert len(set(losses)) == 3
    assert all(abs(r.gap - (r.train_acc - r.val_acc)) < 1e-12 for r in results.values())


def test_format_table(data):
    results = compare(
        {"baseline": Method(), "a longer method name": METHODS["l2"]}, data, epochs=1
    )
    table = format_table(results, baseline="baseline")
    lines = table.splitlines()
    assert len(lines) == 4 and "Δ val acc" in lines[0]
    assert lines[2].startswith("baseline") and lines[2].rstrip().endswith("+0.0")
    assert lines[3].startswith("a longer method name")
    assert len({len(line) for line in lines}) == 1  # fixed width
    assert "Δ val acc" not in format_table(results)
    with pytest.raises(ValueError, match="baseline 'none' is not one of the results"):
        format_table(results, baseline="none")


def test_plot_results(data):
    import matplotlib.pyplot as plt

    results = {
        "x": Result(1.0, 0.9, 0.9, 0.01, 0.3, 60, 1.0),
        "y": Result(0.95, 0.92, 0.91, 0.1, 0.25, 30, 1.0),
    }
    axes = plot_results(results)
    assert len(axes) == 2 and [t.get_text() for t in axes[0].get_yticklabels()] == [
        "y",
        "x",
    ]
    widths = [p.get_width() for p in axes[1].patches]
    assert (
        max_abs_diff(
            torch.tensor(widths, dtype=torch.float64),
            torch.tensor([0.95 - 0.92, 0.1], dtype=torch.float64),
        )
        < 1e-12
    )
    assert not axes[0].lines
    axes = plot_results(results, baseline="x")
    lines = [line.get_xdata()[0] for ax in axes for line in ax.lines]
    assert (
        len(lines) == 2
        and abs(lines[0] - 0.9) < 1e-12
        and abs(lines[1] - (1.0 - 0.9)) < 1e-12
    )
    with pytest.raises(ValueError, match="baseline 'z' is not one of the results"):
        plot_results(results, baseline="z")
    plt.close("all")


def test_on_images():
    """The adapter hands the transform (N, 1, 8, 8) images and flattens its output back, labels untouched."""
    seen = []

    def flip(x, y):
        seen.append(x.shape)
        return x.flip(-1), y + 1

    X, y = torch.arange(2 * 64.0).reshape(2, 64), torch.tensor([3, 4])
    X2, y2 = on_images(flip)(X, y)
    assert seen == [(2, 1, 8, 8)] and X2.shape == (2, 64)
    assert max_abs_diff(X2, X.reshape(2, 1, 8, 8).flip(-1).reshape(2, 64)) == 0.0
    assert torch.equal(y2, y + 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda():
    """On CUDA the runner keeps model and data on the device; results are valid accuracies."""
    data = testbed.testbed_data(device="cuda")
    r = run_method(METHODS["dropconnect"], data, seed=0, device="cuda", epochs=2)
    assert 0.0 <= r.val_acc <= 1.0 and r.epochs == 2


def test_compare_seeds_is_compare_for_each_seed(data):
    """compare_seeds repeats compare: the same numbers, seed by seed (tolerance 0: the same runs)."""
    from companion.experiments.regularizer_race import compare_seeds

    methods = {k: METHODS[k] for k in ("baseline", "dropout")}
    runs = compare_seeds(methods, data, seeds=(0, 2), epochs=1)
    for i, seed in enumerate((0, 2)):
        single = compare(methods, data, seed=seed, epochs=1)
        for name in methods:
            a, b = runs[name][i], single[name]
            assert (a.train_acc, a.val_acc, a.test_acc, a.train_loss, a.val_loss) == (
                b.train_acc,
                b.val_acc,
                b.test_acc,
                b.train_loss,
                b.val_loss,
            ), (name, seed)


def test_skipping_validation_during_training_changes_no_number(data):
    """run_method evaluates the validation split per epoch only for callbacks; the training is the same."""
    model_a, model_b = testbed.testbed_model(seed=1), testbed.testbed_model(seed=1)
    ha = testbed.train_testbed(model_a, data, epochs=EPOCHS, seed=1, validate=True)
    hb = testbed.train_testbed(model_b, data, epochs=EPOCHS, seed=1, validate=False)
    assert ha.train_loss == hb.train_loss and hb.val_loss == []
    for a, b in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(a, b)


def test_plot_seed_results():
    import matplotlib.pyplot as plt

    from companion.experiments.regularizer_race import plot_seed_results

    runs = {
        "x": [Result(1.0, 0.9, 0.9, 0.01, v, 60, 1.0) for v in (0.3, 0.35, 0.32)],
        "y": [Result(0.95, 0.92, 0.91, 0.1, v, 30, 1.0) for v in (0.25, 0.2, 0.22)],
    }
    axes = plot_seed_results(runs, baseline="x")
    assert len(axes) == 2 and [t.get_text() for t in axes[0].get_yticklabels()] == [
        "y",
        "x",
    ]
    with pytest.raises(ValueError, match="baseline"):
        plot_seed_results(runs, baseline="z")
    plt.close("all")


def test_convnet_testbed_matches_a_direct_run():
    """testbed=CONVNET builds convnet_testbed.cnn and trains it with train_convnet: the same numbers as by hand
    (tolerance 0), on a small MNIST-1D training set."""
    from companion.core.data import Digits, Split, load_mnist1d
    from companion.experiments import convnet_testbed
    from companion.experiments.regularizer_race import CONVNET

    full = load_mnist1d()
    small = Digits(Split(full.train.X[:200], full.train.y[:200]), full.val, full.test)
    method = Method(model_kwargs=dict(dropout=lambda: Dropout(0.5)))
    result = run_method(method, small, seed=1, epochs=2, testbed=CONVNET)
    model = convnet_testbed.cnn(seed=1, dropout=lambda: Dropout(0.5))
    h = convnet_testbed.train_convnet(model, small, epochs=2, seed=1)
    assert result.epochs == h.epochs == 2
    assert (
        abs(result.val_acc - h.val_acc[-1]) <= EXACT
        and abs(result.train_loss - h.train_loss[-1]) <= EXACT
    )
    assert abs(result.test_acc - evaluate(model, small.test)[1]) <= EXACT


def test_a_testbed_supplies_the_model_the_training_and_the_default_epochs(data):
    """run_method, compare and compare_seeds call the given testbed's model and train, for its epochs by default."""
    from companion.experiments.regularizer_race import DIGITS, Testbed, compare_seeds

    calls = []

    def train(model, data, epochs, seed, validate, **fit_kwargs):
        calls.append((epochs, seed))
        return testbed.train_testbed(
            model, data, epochs=epochs, seed=seed, validate=validate, **fit_kwargs
        )

    two_epochs = Testbed(DIGITS.model, train, epochs=2)
    run_method(Method(), data, seed=4, testbed=two_epochs)
    compare({"a": Method()}, data, seed=5, epochs=1, testbed=two_epochs)
    compare_seeds({"a": Method()}, data, seeds=(6,), testbed=two_epochs)
    assert calls == [(2, 4), (1, 5), (2, 6)]
    assert DIGITS.epochs == testbed.EPOCHS
