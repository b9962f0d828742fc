"""Plot helpers with one style for the whole book: trajectories over contours, and training curves."""

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from companion.core.functions import Function2D
from companion.core.train import History

# Figures are drawn as SVG in the notebooks (sharp at any zoom; text as outlines, so it looks the same
# in every browser); the few rasterized parts (filled contours) at 200 dpi. A figure shows at its own
# width (6.4 in = 614 px) up to the page's column (about 780 px), so text at 10 pt or more stays
# legible; wider figures are shrunk and `.ci/check_figures.py` flags text that falls below 9 pt.
STYLE = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 200,
    "savefig.dpi": 200,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "font.size": 11,
    "axes.titlesize": 11,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "legend.title_fontsize": 10,
    "figure.titlesize": 12,
    "svg.fonttype": "path",
}


def use_style() -> None:
    """Apply the book's matplotlib style (every notebook calls this once); in a notebook, draw inline
    as SVG."""
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
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        # SVG only, not PNG as well: one image per figure in the notebook and on the page
        set_matplotlib_formats("svg")


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
    # rasterized: thousands of filled polygons would make a heavy SVG; a 200-dpi image is as sharp
    ax.contourf(
        X.numpy(),
        Y.numpy(),
        Z,
        levels=levels,
        cmap="Greys",
        alpha=0.55,
        rasterized=True,
    )
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
    ax.legend(loc="best")
    return ax


def plot_curves(
    histories: Mapping[str, History],
    metrics: Sequence[str] = ("train_loss", "val_loss"),
    axes=None,
    logy: bool = False,
):
    """One panel per metric, one line per run (x axis: epoch); returns the axes.

    At most two panels a row, 8 inches wide in all: the figure fits the page's column unshrunk, so its
    10-pt text shows at 10 pt."""
    if axes is None:
        cols = min(len(metrics), 2)
        rows = -(-len(metrics) // cols)
        fig, grid = plt.subplots(
            rows, cols, figsize=(4.0 * cols, 3.2 * rows), squeeze=False
        )
        axes = grid.ravel()
        for spare in axes[len(metrics) :]:
            fig.delaxes(spare)
        axes = axes[: len(metrics)]
    for ax, metric in zip(axes, metrics):
        for label, history in histories.items():
            values = getattr(history, metric)
            ax.plot(range(1, len(values) + 1), values, label=label)
        ax.set(xlabel="epoch", title=metric.replace("_", " "))
        if logy:
            ax.set_yscale("log")
    axes[0].legend()
    return axes
