"""companion.core.train: fit records what it claims, penalty/transform/callbacks/scheduler hooks work."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from companion.core.data import Split, make_classification
from companion.core.models import count_parameters, mlp
from companion.core.train import accuracy, evaluate, fit


@pytest.fixture
def blobs():
    return make_classification(n=200, d=2, classes=3, seed=0)


def _model():
    torch.manual_seed(0)
    return mlp(in_features=2, hidden=(16,), out_features=3)


def test_accuracy_with_hard_and_soft_labels():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    assert accuracy(logits, torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)
    assert accuracy(
        logits, torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]])
    ) == pytest.approx(2 / 3)


def test_evaluate_matches_direct_computation_and_restores_mode(blobs):
    model = _model()
    model.train()
    loss, acc = evaluate(model, blobs, batch_size=64)
    with torch.no_grad():
        out = model(blobs.X)
    assert loss == pytest.approx(F.cross_entropy(out, blobs.y).item(), rel=1e-6)
    assert acc == pytest.approx(accuracy(out, blobs.y))
    assert model.training


def test_fit_learns_and_records(blobs):
    model = _model()
    h = fit(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        blobs,
        blobs,
        epochs=5,
        batch_size=20,
        generator=torch.Generator().manual_seed(0),
        progress=False,
    )
    assert h.epochs == 5 and len(h.val_acc) == 5 and len(h.seconds) == 5
    assert h.steps == [10, 20, 30, 40, 50]
    assert h.train_loss[-1] < h.train_loss[0]
    assert h.train_acc[-1] > 0.9
    assert h.gap() == pytest.approx(h.train_acc[-1] - h.val_acc[-1])


def test_fit_is_reproducible(blobs):
    runs = []
    for _ in range(2):
        model = _model()
        runs.append(
            fit(
                model,
                torch.optim.SGD(model.parameters(), lr=0.1),
                blobs,
                epochs=3,
                generator=torch.Generator().manual_seed(1),
                progress=False,
            ).train_loss
        )
    assert runs[0] == runs[1]


def test_penalty_and_transform_hooks(blobs):
    seen = []

    def transform(X, y):
        seen.append(len(X))
        return (
            X * 0,
            y,
        )  # erase the inputs: the model can then only learn the class prior

    model = _model()
    fit(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        blobs,
        epochs=2,
        batch_size=50,
        transform=transform,
        progress=False,
    )
    assert seen == [50] * 8

    model = _model()
    big_penalty = lambda m: 100.0 * sum((p**2).sum() for p in m.parameters())
    fit(
        model,
        torch.optim.SGD(model.parameters(), lr=0.001),
        blobs,
        epochs=20,
        penalty=big_penalty,
        progress=False,
    )
    assert (
        sum(p.abs().sum() for p in model.parameters()).item() < 1.0
    )  # the penalty crushed the weights


def test_callback_stops_and_sees_every_epoch(blobs):
    class StopAt:
        def __init__(self, epoch):
            self.epoch, self.seen = epoch, []

        def on_epoch_end(self, epoch, history, model):
            self.seen.append(epoch)
            return epoch == self.epoch

    model = _model()
    a, b = StopAt(2), StopAt(100)
    h = fit(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        blobs,
        epochs=10,
        callbacks=[a, b],
        progress=False,
    )
    assert h.epochs == 3 and a.seen == b.seen == [0, 1, 2]


def test_scheduler_steps_once_per_epoch(blobs):
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    fit(model, opt, blobs, epochs=3, scheduler=sched, progress=False)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.125)


def test_mlp_builder():
    model = mlp(
        in_features=4,
        hidden=(8, 6),
        out_features=2,
        dropout=lambda: nn.Dropout(0.1),
        norm=nn.BatchNorm1d,
    )
    kinds = [type(m).__name__ for m in model]
    assert kinds == [
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Dropout",
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Dropout",
        "Linear",
    ]
    assert count_parameters(model) == (4 * 8 + 8) + 16 + (8 * 6 + 6) + 12 + (6 * 2 + 2)
    assert model(torch.randn(3, 4)).shape == (3, 2)
