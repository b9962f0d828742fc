"""companion.core.plot returns the axes it draws on; companion.core.device picks and seeds devices."""

import os

import matplotlib.pyplot as plt
import torch

import companion
from companion.core import plot
from companion.core.functions import optimize_2d, rosenbrock
from companion.core.train import History


def test_plot_helpers_draw():
    plot.use_style()
    fn = rosenbrock()
    path, _ = optimize_2d(fn, torch.optim.SGD, steps=5, lr=1e-3)
    ax = plot.plot_trajectories(fn, {"sgd": path})
    assert len(ax.lines) >= 2 and ax.get_title() == "Rosenbrock"
    h = History(train_loss=[3.0, 2.0], val_loss=[3.5, 2.5])
    axes = plot.plot_curves({"run": h}, metrics=("train_loss", "val_loss"))
    assert len(axes) == 2 and list(axes[0].lines[0].get_ydata()) == [3.0, 2.0]
    plt.close("all")


def test_device_choice(monkeypatch):
    monkeypatch.delenv("COMPANION_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert companion.get_device().type == expected
    assert companion.get_device("cpu").type == "cpu"
    monkeypatch.setenv("COMPANION_DEVICE", "cpu")
    assert companion.get_device().type == "cpu"


def test_seed_everything_repeats():
    g = companion.seed_everything(5)
    a, b = torch.rand(3), torch.rand(3, generator=g)
    g = companion.seed_everything(5)
    assert torch.equal(a, torch.rand(3)) and torch.equal(b, torch.rand(3, generator=g))
