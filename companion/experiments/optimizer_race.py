"""Run several optimizers on the same problem under the same rules, and summarize the results.

The comparison chapter uses these to race every optimizer of the course on the 2-D test functions and
on the digits MLP. An optimizer is given as a *spec*: its class and its hyper-parameters, e.g.
``(SGD, {"lr": 0.05, "momentum": 0.9})``.
"""

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from companion.core.data import Digits
from companion.core.device import make_generator, seed_everything
from companion.core.functions import Function2D, optimize_2d
from companion.core.train import History, evaluate, fit

OptimizerSpec = tuple[Callable[..., torch.optim.Optimizer], dict]
"""An optimizer class and the keyword arguments it is built with (the parameters come first)."""


def gap(fn: Function2D, values: torch.Tensor) -> torch.Tensor:
    """f(x_k) − f* along a run, with f* the value at ``fn.minimum``."""
    f_star = fn(torch.tensor(fn.minimum, dtype=values.dtype, device=values.device))
    return values - f_star


def steps_to(values: Sequence[float] | torch.Tensor, target: float) -> int | None:
    """The first index k with ``values[k] <= target``, or None if there is none (NaN never counts)."""
    for k, value in enumerate(torch.as_tensor(values).tolist()):
        if value <= target:
            return k
    return None


def settles_at(values: Sequence[float] | torch.Tensor, target: float) -> int | None:
    """The first index k from which every later value is ≤ ``target`` (it gets there and stays), or None.

    Unlike :func:`steps_to`, a run that dips below ``target`` and comes back up does not count.
    """
    values = torch.as_tensor(values).tolist()
    k = len(values)
    while k > 0 and values[k - 1] <= target:
        k -= 1
    return None if k == len(values) else k


def race_2d(
    fn: Function2D, optimizers: Mapping[str, OptimizerSpec], steps: int
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Run each optimizer on ``fn`` from its start for ``steps`` steps (float64, CPU).

    Returns ``{name: (trajectory (steps + 1, 2), gap f(x_k) − f* (steps + 1,))}``.
    """
    results = {}
    for name, (cls, hyper) in optimizers.items():
        path, values = optimize_2d(fn, cls, steps=steps, **hyper)
        results[name] = (path, gap(fn, values))
    return results


def best_lr(
    fn: Function2D,
    optimizer: Callable[..., torch.optim.Optimizer],
    grid: Sequence[float],
    steps: int,
    tol: float = 1e-4,
    **hyperparameters,
) -> float:
    """The learning rate from ``grid`` that is fastest on ``fn``.

    Fastest means fewest steps until f − f* stays ≤ ``tol`` (:func:`settles_at`); learning rates
    that do not settle rank after those that do, by their final gap (a diverged run ranks last).
    Ties go to the earlier entry of ``grid``.
    """

    def score(lr):
        _, values = optimize_2d(fn, optimizer, steps=steps, lr=lr, **hyperparameters)
        g = gap(fn, values)
        k = settles_at(g, tol)
        final = g[-1].item()
        return (
            (0, k, 0.0)
            if k is not None
            else (1, 0, final if math.isfinite(final) else math.inf)
        )

    scores = [score(lr) for lr in grid]
    return grid[min(range(len(grid)), key=lambda i: scores[i])]


@dataclass
class Run:
    """One training run: its per-epoch records and the trained model."""

    history: History
    model: nn.Module


def train_each(
    optimizers: Mapping[str, OptimizerSpec],
    make_model: Callable[[], nn.Module],
    data: Digits,
    epochs: int,
    batch_size: int = 64,
    seed: int = 0,
) -> dict[str, Run]:
    """Train a fresh model with each optimizer: the same initial weights and batch order for all.

    ``make_model()`` is called after seeding everything with ``seed``, so each run starts from the
    same weights; the mini-batch order comes from a generator seeded with ``seed`` too. Validation is
    recorded on ``data.val``. Returns ``{name: Run}``.
    """
    runs = {}
    for name, (cls, hyper) in optimizers.items():
        seed_everything(seed)
        model = make_model()
        history = fit(
            model,
            cls(model.parameters(), **hyper),
            data.train,
            data.val,
            epochs=epochs,
            batch_size=batch_size,
            generator=make_generator(seed),
            progress=False,
        )
        runs[name] = Run(history, model)
    return runs


def steps_to_loss(history: History, target: float) -> int | None:
    """Optimizer steps taken by the end of the first epoch whose training loss is ≤ ``target``, or None.

    The resolution is one epoch: the loss is only evaluated at the end of each.
    """
    epoch = steps_to(history.train_loss, target)
    return None if epoch is None else history.steps[epoch]


def summarize(
    run: Run, data: Digits, target_loss: float
) -> dict[str, float | int | None]:
    """One row of the comparison table for a run from :func:`train_each`.

    ``val_acc`` is the final validation accuracy, ``test_acc`` the accuracy of the final model on the
    test split, ``steps_to_target`` the steps to a training loss ≤ ``target_loss`` (see
    :func:`steps_to_loss`) and ``ms_per_step`` the training time per optimizer step in milliseconds
    (evaluation excluded).
    """
    history = run.history
    _, test_acc = evaluate(run.model, data.test)
    return {
        "train_loss": history.train_loss[-1],
        "val_acc": history.val_acc[-1],
        "test_acc": test_acc,
        "steps_to_target": steps_to_loss(history, target_loss),
        "ms_per_step": 1000 * sum(history.seconds) / history.steps[-1],
    }


def train_seeds(
    optimizers: Mapping[str, OptimizerSpec],
    make_model: Callable[[], nn.Module],
    data: Digits,
    epochs: int,
    seeds: Sequence[int],
    batch_size: int = 64,
) -> dict[str, list[Run]]:
    """:func:`train_each` for every seed: ``{name: [Run for each seed, in the order of seeds]}``."""
    runs = {name: [] for name in optimizers}
    for seed in seeds:
        for name, run in train_each(
            optimizers, make_model, data, epochs, batch_size=batch_size, seed=seed
        ).items():
            runs[name].append(run)
    return runs


def summarize_seeds(
    runs: Sequence[Run], data: Digits, target_loss: float
) -> dict[str, object]:
    """One row of the comparison table over seeds: each column of :func:`summarize` (except the time per
    step, which is not a function of the seeds) as a mean with its 95 % interval
    (:func:`companion.core.stats.mean_interval`); ``steps_to_target`` is None if any
    seed missed the target. ``per_seed`` keeps the per-seed rows for paired comparisons."""
    from companion.core.stats import mean_interval

    rows = [summarize(run, data, target_loss) for run in runs]
    out: dict[str, object] = {}
    for column in ("train_loss", "val_acc", "test_acc", "steps_to_target"):
        values = [row[column] for row in rows]
        out[column] = (
            None
            if any(v is None for v in values)
            else mean_interval([float(v) for v in values])
        )
    out["per_seed"] = rows
    return out


def markdown_table(
    rows: Mapping[str, Mapping[str, object]], formats: Mapping[str, str]
) -> str:
    """A Markdown table: one row per ``rows`` entry, one column per ``formats`` key.

    ``formats`` maps a column to a ``format`` spec (``".3f"``, ``"d"``, ...); None prints as "—". A value
    may be an :class:`companion.core.stats.Interval` (printed as mean [lo, hi]).
    """
    columns = list(formats)
    lines = ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        cells = ["—" if row[c] is None else format(row[c], formats[c]) for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_seed_curves(
    runs: Mapping[str, Sequence[Run]],
    metric: str,
    ax,
    colors: Mapping[str, str] | None = None,
):
    """The per-epoch ``metric`` (a :class:`companion.core.train.History` field) of each optimizer: the mean
    over seeds as a line and its 95 % interval as a band (runs of equal length); returns ``ax``."""
    from companion.core.stats import mean_interval

    for name, rs in runs.items():
        curves = list(
            zip(*(getattr(r.history, metric) for r in rs))
        )  # one tuple of seeds per epoch
        ci = [mean_interval(values) for values in curves]
        epochs = range(1, len(ci) + 1)
        color = None if colors is None else colors.get(name)
        ax.plot(epochs, [c.mean for c in ci], label=name, color=color)
        ax.fill_between(
            epochs,
            [c.lo for c in ci],
            [c.hi for c in ci],
            alpha=0.2,
            color=ax.get_lines()[-1].get_color(),
        )
    ax.set(xlabel="epoch", ylabel=metric.replace("_", " "))
    return ax
