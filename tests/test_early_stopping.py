"""companion.regularization.early_stopping: scripted metric sequences (when it stops, which weights it restores),
use from companion.core.train.fit, argument errors, and CUDA."""

import math

import pytest
import torch
from torch import nn

from companion.core.data import make_classification
from companion.regularization.early_stopping import EarlyStopping
from companion.core.train import History, fit

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
TOL = 0.0  # restored weights must be bit-identical copies


def stamped_model(device="cpu"):
    """A one-weight model; the tests write the epoch number into it, so the weights tell the epoch."""
    return nn.Linear(1, 1, bias=False).to(device=device, dtype=torch.float64)


def stamp(model, epoch):
    with torch.no_grad():
        model.weight.fill_(float(epoch))


def run_script(values, monitor="val_loss", device="cpu", **options):
    """Feed ``values`` one epoch at a time through on_epoch_end, as fit would; return (callback, model, epochs run)."""
    callback, model, history = (
        EarlyStopping(monitor=monitor, **options),
        stamped_model(device),
        History(),
    )
    for epoch, v in enumerate(values):
        stamp(model, epoch)
        getattr(history, monitor).append(v)
        if callback.on_epoch_end(epoch, history, model):
            return callback, model, epoch + 1
    return callback, model, len(values)


U = [
    1.0,
    0.8,
    0.6,
    0.5,
    0.55,
    0.6,
    0.7,
    0.8,
    0.9,
    1.0,
]  # a U-shaped validation loss, best at epoch 3
# (id, values, options, expected stopped_epoch (None: never stops), expected best_epoch)
CASES = [
    ("u-patience2", U, dict(patience=2), 5, 3),
    ("u-patience3", U, dict(patience=3), 6, 3),
    ("u-patience0-stops-at-first-miss", U, dict(patience=0), 4, 3),
    ("u-patience-too-long", U, dict(patience=7), None, 3),
    (
        "plateau-min-delta-ignores-tiny-gains",
        [1.0, 0.9, 0.899, 0.898, 0.897, 0.896],
        dict(patience=3, min_delta=0.01),
        4,
        1,
    ),
    (
        "plateau-no-min-delta-keeps-going",
        [1.0, 0.9, 0.899, 0.898, 0.897, 0.896],
        dict(patience=3),
        None,
        5,
    ),
    ("ties-are-not-improvements", [0.5, 0.5, 0.5, 0.5], dict(patience=2), 2, 0),
    (
        "second-dip-resets-wait",
        [1.0, 0.7, 0.8, 0.9, 0.6, 0.7, 0.8, 0.9],
        dict(patience=3),
        7,
        4,
    ),
    (
        "min-delta-exactly-delta-not-enough",
        [1.0, 0.75, 0.5],
        dict(patience=1, min_delta=0.25),
        1,
        0,
    ),
    (
        "nan-never-improves",
        [1.0, float("nan"), float("nan"), 0.5],
        dict(patience=2),
        2,
        0,
    ),
    ("nan-first-is-skipped", [float("nan"), 1.0, 1.2, 1.3], dict(patience=2), 3, 1),
    (
        "max-mode-accuracy",
        [0.5, 0.7, 0.9, 0.85, 0.88, 0.89, 0.9],
        dict(mode="max", patience=4),
        6,
        2,
    ),
    (
        "max-mode-min-delta",
        [0.5, 0.7, 0.72, 0.73, 0.74],
        dict(mode="max", patience=2, min_delta=0.05),
        3,
        1,
    ),
]


@pytest.mark.parametrize(
    "values, options, stopped, best", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_scripted_sequences(values, options, stopped, best):
    monitor = "val_acc" if options.get("mode") == "max" else "val_loss"
    callback, model, ran = run_script(values, monitor=monitor, **options)
    assert callback.stopped_epoch == stopped
    assert callback.best_epoch == best
    assert callback.best == values[best]
    assert ran == (len(values) if stopped is None else stopped + 1)
    if stopped is not None:  # stopped: the best epoch's weights are back in the model
        assert abs(model.weight.item() - best) <= TOL
    else:  # ran out of epochs: the model keeps the last weights until restore() is called
        assert model.weight.item() == len(values) - 1
        callback.restore(model)
        assert abs(model.weight.item() - best) <= TOL


def test_no_restore_keeps_last_weights():
    callback, model, ran = run_script(U, patience=2, restore_best_weights=False)
    assert callback.stopped_epoch == 5 and model.weight.item() == 5.0
    assert callback.best_state is None


def test_saved_weights_are_a_copy():
    """Training goes on changing the model in place; the saved best weights must not follow."""
    callback, model = EarlyStopping(patience=5), stamped_model()
    stamp(model, 0)
    callback.step(1.0, 0, model)
    stamp(model, 99)
    assert callback.best_state["weight"].item() == 0.0


def test_step_without_a_model():
    """step() works on bare numbers (no weights kept)."""
    callback = EarlyStopping(patience=1)
    decisions = [callback.step(v, epoch) for epoch, v in enumerate([3.0, 2.0, 2.5])]
    assert (
        decisions == [False, False, True]
        and callback.best_epoch == 1
        and callback.best_state is None
    )


def test_reset_allows_reuse():
    callback, _, _ = run_script(U, patience=2)
    callback.reset()
    assert (
        callback.best,
        callback.best_epoch,
        callback.stopped_epoch,
        callback.wait,
    ) == (None, None, None, 0)
    assert callback.best_state is None


@pytest.mark.parametrize("monitor", ["val_loss", "train_loss", "val_acc", "train_acc"])
def test_monitors_any_history_series(monitor):
    history = History()
    getattr(history, monitor).append(0.3)
    assert (
        EarlyStopping(monitor=monitor).on_epoch_end(0, history, stamped_model())
        is False
    )


def _fit(epochs, callbacks=()):
    torch.manual_seed(0)
    data = make_classification(
        n=120, d=4, classes=3, spread=1.5, seed=0, dtype=torch.float64
    )
    train, val = (
        type(data)(data.X[:40], data.y[:40]),
        type(data)(data.X[40:], data.y[40:]),
    )
    model = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 3)).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    history = fit(
        model,
        opt,
        train,
        val,
        epochs=epochs,
        batch_size=8,
        generator=torch.Generator().manual_seed(0),
        callbacks=callbacks,
        progress=False,
    )
    return model, history


def test_with_fit_stops_and_restores_the_best_epoch():
    """Through fit: training stops `patience` epochs after the best validation loss, and the model
    holds exactly the weights a run of best_epoch + 1 epochs ends with."""
    callback = EarlyStopping(patience=5)
    model, history = _fit(200, [callback])
    best = min(range(history.epochs), key=history.val_loss.__getitem__)
    assert callback.stopped_epoch is not None and history.epochs < 200
    assert best >= 5  # a real minimum after some training, not the first epochs
    assert callback.best_epoch == best and callback.stopped_epoch == best + 5
    assert history.epochs == callback.stopped_epoch + 1
    reference, _ = _fit(best + 1)
    for a, b in zip(model.state_dict().values(), reference.state_dict().values()):
        assert (a - b).abs().max().item() <= TOL


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(mode="auto"), "mode must be 'min' or 'max', got 'auto'"),
        (dict(patience=-1), "patience must be a non-negative integer, got -1"),
        (dict(patience=2.5), "patience must be a non-negative integer, got 2.5"),
        (dict(min_delta=-0.1), "min_delta must be non-negative, got -0.1"),
        (dict(monitor="val_los"), "monitor must be one of .*got 'val_los'"),
    ],
    ids=str,
)
def test_invalid_arguments(options, message):
    with pytest.raises(ValueError, match=message):
        EarlyStopping(**options)


def test_empty_history_is_an_error():
    with pytest.raises(ValueError, match="history.val_loss is empty"):
        EarlyStopping().on_epoch_end(
            0, History(train_loss=[1.0], train_acc=[0.5]), stamped_model()
        )


def test_nan_value_is_not_best():
    callback = EarlyStopping(patience=3)
    callback.step(float("nan"), 0)
    assert callback.best is None and callback.wait == 1
    callback.step(2.0, 1)
    assert callback.best == 2.0 and not math.isnan(callback.best)


@CUDA
def test_cuda_restores_on_device():
    callback, model, _ = run_script(U, device="cuda", patience=2)
    assert callback.best_state["weight"].device.type == "cuda"
    assert model.weight.device.type == "cuda" and abs(model.weight.item() - 3) <= TOL
