"""Plot helpers with one style for the whole book: trajectories over contours, and training curves."""

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from companion.core.functions import Function2D
from companion.core.train import History

STYLE = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 100,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "font.size": 10,
}


def use_style() -> None:
    """Apply the book's matplotlib style (every notebook calls this once); in a notebook, draw inline."""
    _draw_inline_in_notebooks()
    plt.rcParams.update(STYLE)


def _draw_inline_in_notebooks() -> None:
    """In a Jupyter kernel, use the inline backend whatever ``MPLBACKEND`` says.

    A kernel started with ``MPLBACKEND=Agg`` in its environment (many servers and CI images set it)
    renders every figure off screen and sends none to the notebook, so the book would have no
    figures. Outside a kernel (scripts, tests) the backend is left alone."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        shell.run_line_magic("matplotlib", "inline")


def _axes(ax):
    return plt.subplots()[1] if ax is None else ax


def contour(fn: Function2D, ax=None, resolution: int = 200, levels: int = 30):
    """Filled contours of ``fn`` over its plotting window, with its minimum marked; returns the axes."""
    ax = _axes(ax)
    xs = torch.linspace(*fn.xlim, resolution, dtype=torch.float64)
    ys = torch.linspace(*fn.ylim, resolution, dtype=torch.float64)
    X, Y = torch.meshgrid(xs, ys, indexing="xy")
    Z = fn(torch.stack([X, Y], dim=-1)).numpy()
    if fn.log_levels:
        Z = np.log10(Z - Z.min() + 1e-3)
    ax.contourf(X.numpy(), Y.numpy(), Z, levels=levels, cmap="Greys", alpha=0.55)
    ax.contour(
        X.numpy(), Y.numpy(), Z, levels=levels, colors="k", linewidths=0.3, alpha=0.5
    )
    ax.plot(*fn.minimum, marker="*", color="k", markersize=12, linestyle="none")
    ax.set(xlim=fn.xlim, ylim=fn.ylim, xlabel="x", ylabel="y", title=fn.name)
    ax.grid(False)
    return ax


def plot_trajectories(
    fn: Function2D, trajectories: Mapping[str, torch.Tensor], ax=None
):
    """Each trajectory (shape (steps + 1, 2)) drawn over the contours of ``fn``; returns the axes."""
    ax = contour(fn, ax)
    for label, path in trajectories.items():
        path = torch.as_tensor(path).detach().cpu().numpy()
        ax.plot(
            path[:, 0], path[:, 1], marker=".", markersize=3, linewidth=1.2, label=label
        )
    ax.legend(loc="best", fontsize=8)
    return ax


def plot_curves(
    histories: Mapping[str, History],
    metrics: Sequence[str] = ("train_loss", "val_loss"),
    axes=None,
    logy: bool = False,
):
    """One panel per metric, one line per run (x axis: epoch); returns the axes."""
    if axes is None:
        _, axes = plt.subplots(
            1, len(metrics), figsize=(4.8 * len(metrics), 3.6), squeeze=False
        )
        axes = axes[0]
    for ax, metric in zip(axes, metrics):
        for label, history in histories.items():
            values = getattr(history, metric)
            ax.plot(range(1, len(values) + 1), values, label=label)
        ax.set(xlabel="epoch", title=metric.replace("_", " "))
        if logy:
            ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    return axes
