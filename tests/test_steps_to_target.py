"""companion.experiments.steps_to_target: the first step reaching a target, and the steps-to-accuracy training loop."""

import pytest
import torch
from torch import nn

from companion.core.data import make_classification
from companion.experiments.steps_to_target import first_reaching, steps_to_accuracy
from companion.optim import SGD


@pytest.mark.parametrize(
    "steps,values,target,expected",
    [
        ([10, 20, 30], [0.5, 0.9, 0.95], 0.9, 20),  # equality counts as reaching
        ([10, 20, 30], [0.5, 0.8, 0.95], 0.9, 30),
        (
            [10, 20, 30],
            [0.95, 0.5, 0.99],
            0.9,
            10,
        ),  # the first time, even if it drops later
        ([10, 20, 30], [0.5, 0.6, 0.7], 0.9, None),
        ([], [], 0.5, None),
        ([5], [float("nan")], 0.5, None),  # NaN never reaches a target
    ],
)
def test_first_reaching(steps, values, target, expected):
    assert first_reaching(steps, values, target) == expected


def _problem(seed=0, lr=0.1):
    data = make_classification(n=256, d=2, classes=3, spread=0.5, seed=seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
    return data, model, SGD(model.parameters(), lr=lr)


@pytest.mark.parametrize(
    "target,stop,reached",
    [(0.9, True, True), (0.9, False, True), (1.01, True, False)],
)
def test_steps_to_accuracy(target, stop, reached):
    data, model, opt = _problem()
    r = steps_to_accuracy(
        model,
        opt,
        data,
        data,
        target,
        max_steps=200,
        eval_every=5,
        batch_size=32,
        generator=torch.Generator().manual_seed(0),
        stop_at_target=stop,
    )
    assert r.eval_steps == list(
        range(5, r.eval_steps[-1] + 1, 5)
    )  # evaluated every 5 steps
    assert (r.steps is not None) == reached and not r.diverged
    if reached:
        assert r.steps == first_reaching(r.eval_steps, r.accuracy, target)
        assert r.accuracy[r.eval_steps.index(r.steps)] >= target
    if reached and stop:
        assert r.eval_steps[-1] == r.steps  # training stopped at the target
    else:
        assert (
            r.eval_steps[-1] == 200
        )  # training ran to max_steps (across several epochs)


def test_steps_to_accuracy_is_deterministic():
    """Same seeds, same count and the same accuracy curve (exactly: tolerance 0)."""
    runs = []
    for _ in range(2):
        data, model, opt = _problem(seed=1)
        runs.append(
            steps_to_accuracy(
                model,
                opt,
                data,
                data,
                0.95,
                max_steps=150,
                eval_every=3,
                generator=torch.Generator().manual_seed(3),
            )
        )
    assert runs[0].steps == runs[1].steps and runs[0].accuracy == runs[1].accuracy


def test_steps_to_accuracy_stops_on_divergence():
    data, model, opt = _problem(lr=1e30)
    r = steps_to_accuracy(model, opt, data, data, 0.9, max_steps=100, eval_every=1)
    assert r.diverged and r.steps is None and len(r.eval_steps) < 100
