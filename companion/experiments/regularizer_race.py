"""Run several regularization methods on a testbed under one budget and tabulate them.

Used by 4.6 (the regularization summary, on the digits testbed) and 9.3 (regularizing a ConvNet, on MNIST-1D).
A :class:`Testbed` is a model factory, a training function and a default number of epochs: :data:`DIGITS` (the
overfitting MLP of :mod:`companion.experiments.testbed`, the default) or :data:`CONVNET` (the MNIST-1D ConvNet of
:mod:`companion.experiments.convnet_testbed`). A :class:`Method` says how to build the testbed's model
(``model_kwargs``: ``dropout=``, ``linear=``, ``norm=``...) and how to train it (``fit_kwargs(model)`` returns fresh
keyword arguments for the testbed's training function: ``penalty=``, ``transform=``, ``callbacks=``,
``optimizer=``...). :func:`compare` runs each one from the same seed (same initial weights and batch order) and
measures the final model in eval mode.
:func:`compare_seeds` repeats that for several seeds, and :func:`companion.core.stats.mean_interval` / :func:`paired_interval`
summarize a metric over the seeds as a mean with a 95 % Student-t interval.

Every number a run produces is a function of its seed: the model is built right after
``seed_everything(seed)`` (weights, and the global stream that dropout and DropConnect masks draw from), the
batch order comes from a generator seeded with ``seed``, and a method that needs its own generator (an
augmentation) takes it from :func:`run_generator`. Only ``Result.seconds`` is not, which is why the tables
never print it.
"""

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, NamedTuple, Sequence

import torch
from torch import nn

from companion.core.data import Digits
from companion.experiments import convnet_testbed, testbed as digits_testbed
from companion.core.train import evaluate
from companion.core import stats
from companion.core.stats import Interval, mean_interval


class Testbed(NamedTuple):
    """What a race runs on: ``model(seed, device, **model_kwargs)`` builds the model from a seed,
    ``train(model, data, epochs=, seed=, validate=, **fit_kwargs)`` trains it, for ``epochs`` epochs by default."""

    model: Callable[..., nn.Module]
    train: Callable[..., object]
    epochs: int


DIGITS = Testbed(
    digits_testbed.testbed_model, digits_testbed.train_testbed, digits_testbed.EPOCHS
)
"""The overfitting testbed of the regularization part: 200 digits, the over-wide MLP, SGD with momentum, 60 epochs."""
CONVNET = Testbed(
    convnet_testbed.cnn, convnet_testbed.train_convnet, convnet_testbed.EPOCHS
)
"""The MNIST-1D ConvNet of the ConvNet part: :func:`~companion.experiments.convnet_testbed.cnn`, Adam, 30 epochs."""


def _no_fit_kwargs(model: nn.Module) -> dict:
    return {}


@dataclass(frozen=True)
class Method:
    """One way to train the testbed: model options, and a factory of training options.

    ``fit_kwargs`` is called once per run with the freshly built model, so callbacks with state
    (early stopping), seeded augmentation generators and wrapped optimizers are new for every run.
    """

    model_kwargs: dict = field(default_factory=dict)
    fit_kwargs: Callable[[nn.Module], dict] = _no_fit_kwargs


@dataclass(frozen=True)
class Result:
    """The final model's accuracy and loss on each split (eval mode), and the run's length."""

    train_acc: float
    val_acc: float
    test_acc: float
    train_loss: float
    val_loss: float
    epochs: int
    seconds: float

    @property
    def gap(self) -> float:
        """Train − validation accuracy: how much the final model overfits."""
        return self.train_acc - self.val_acc


def run_generator() -> torch.Generator:
    """A fresh CPU generator seeded with the current run's seed, for use inside ``Method.fit_kwargs``.

    :func:`run_method` builds the model right after ``seed_everything(seed)``, so the default generator's
    initial seed is the run's seed; an augmentation built on this generator draws differently for every
    seed and identically for a repeated seed.
    """
    return torch.Generator().manual_seed(torch.initial_seed())


def on_images(transform: Callable, shape: tuple[int, ...] = (1, 8, 8)) -> Callable:
    """Adapt an image ``transform(X, y) -> (X, y)`` (such as :class:`companion.regularization.augment.Augmentation`) to
    the testbed's flat inputs: each batch is reshaped to ``(N, *shape)``, transformed, and flattened back."""

    def flat_transform(X, y):
        images, y = transform(X.reshape(len(X), *shape), y)
        return images.reshape(len(images), -1), y

    return flat_transform


def run_method(
    method: Method,
    data: Digits,
    seed: int = 0,
    device=None,
    epochs: int | None = None,
    testbed: Testbed = DIGITS,
) -> Result:
    """Build the ``testbed``'s model from ``seed``, train it with ``method`` for at most ``epochs`` epochs (by
    default the testbed's; batch order from ``seed`` too) and evaluate the model it ends with on every split. The
    model is built on ``device``, by default the data's.

    The final model is measured, not the last History entry: with early stopping that restores the
    best weights, the two differ. The validation split is evaluated during training only when the method
    has callbacks (which may read it); the numbers do not depend on it, the run time does.
    """
    start = time.perf_counter()
    model = testbed.model(
        seed=seed, device=device or data.train.X.device, **method.model_kwargs
    )
    fit_kwargs = method.fit_kwargs(model)
    # the validation split is evaluated every epoch only for callbacks (early stopping) that read it
    validate = bool(fit_kwargs.get("callbacks"))
    epochs = testbed.epochs if epochs is None else epochs
    history = testbed.train(
        model, data, epochs=epochs, seed=seed, validate=validate, **fit_kwargs
    )
    train_loss, train_acc = evaluate(model, data.train)
    val_loss, val_acc = evaluate(model, data.val)
    _, test_acc = evaluate(model, data.test)
    return Result(
        train_acc,
        val_acc,
        test_acc,
        train_loss,
        val_loss,
        history.epochs,
        time.perf_counter() - start,
    )


def compare(
    methods: Mapping[str, Method],
    data: Digits,
    seed: int = 0,
    device=None,
    epochs: int | None = None,
    testbed: Testbed = DIGITS,
) -> dict[str, Result]:
    """:func:`run_method` for every method, in order, from the same ``seed``."""
    return {
        name: run_method(m, data, seed, device, epochs, testbed)
        for name, m in methods.items()
    }


def format_table(results: Mapping[str, Result], baseline: str | None = None) -> str:
    """A fixed-width text table, one row per method; with ``baseline`` (a key of ``results``) a column
    of validation-accuracy differences to it, in percentage points."""
    if baseline is not None and baseline not in results:
        raise ValueError(
            f"baseline {baseline!r} is not one of the results: {list(results)}"
        )
    width = max(len("method"), *(len(str(name)) for name in results))
    header = (
        f"{'method':<{width}}  train acc  val acc  gap     val loss  test acc  epochs"
    )
    if baseline is not None:
        header += "  Δ val acc"
    lines = [header, "-" * len(header)]
    for name, r in results.items():
        line = (
            f"{str(name):<{width}}  {r.train_acc:9.3f}  {r.val_acc:7.3f}  {r.gap:6.3f}  {r.val_loss:8.3f}"
            f"  {r.test_acc:8.3f}  {r.epochs:6d}"
        )
        if baseline is not None:
            line += f"  {100 * (r.val_acc - results[baseline].val_acc):+9.1f}"
        lines.append(line)
    return "\n".join(lines)


def plot_results(results: Mapping[str, Result], baseline: str | None = None, axes=None):
    """Two horizontal bar charts, validation accuracy and train − validation gap, one bar per method,
    with a dashed line at the ``baseline`` method's values if given; returns the axes."""
    import matplotlib.pyplot as plt

    if baseline is not None and baseline not in results:
        raise ValueError(
            f"baseline {baseline!r} is not one of the results: {list(results)}"
        )

    if axes is None:
        _, axes = plt.subplots(
            1, 2, figsize=(10, 0.35 * len(results) + 1.2), sharey=True
        )
    names = list(results)[::-1]  # the first method on top
    for ax, values, title in (
        (axes[0], [results[n].val_acc for n in names], "validation accuracy"),
        (axes[1], [results[n].gap for n in names], "train − validation accuracy"),
    ):
        ax.barh(names, values, color="C0")
        ax.set(title=title)
        if baseline is not None:
            value = (
                results[baseline].val_acc
                if title.startswith("validation")
                else results[baseline].gap
            )
            ax.axvline(value, color="k", linestyle="--", linewidth=1)
        lo = min(values)
        if title.startswith("validation"):
            ax.set_xlim(max(0.0, lo - 0.05), min(1.0, max(values) + 0.02))
    return axes


def compare_seeds(
    methods: Mapping[str, Method],
    data: Digits,
    seeds: Sequence[int],
    device=None,
    epochs: int | None = None,
    testbed: Testbed = DIGITS,
) -> dict[str, list[Result]]:
    """:func:`compare` for every seed: ``{name: [Result for each seed, in the order of seeds]}``."""
    runs = {name: [] for name in methods}
    for seed in seeds:
        for name, result in compare(
            methods, data, seed, device, epochs, testbed
        ).items():
            runs[name].append(result)
    return runs


# two-sided 95 % quantiles t_{0.975, n−1} of Student's t for n − 1 = 1, ..., 10 degrees of freedom
def paired_interval(
    results: Sequence[Result], baseline: Sequence[Result], metric: str
) -> Interval:
    """The 95 % interval of the per-seed difference ``metric(method) − metric(baseline)``.

    Runs with the same seed share their initial weights and batch order, so the paired differences vary
    less than either method alone; an interval that excludes 0 is a difference beyond seed noise.
    """
    if len(results) != len(baseline):
        raise ValueError(
            f"{len(results)} results against {len(baseline)} baseline results"
        )
    return stats.paired_interval(
        [getattr(r, metric) for r in results], [getattr(b, metric) for b in baseline]
    )


def seed_table(runs: Mapping[str, Sequence[Result]], baseline: str) -> str:
    """A fixed-width table over seeds: mean [95 % interval] of the validation loss, validation accuracy and
    gap, and the paired difference of the validation loss and gap to ``baseline``."""
    if baseline not in runs:
        raise ValueError(
            f"baseline {baseline!r} is not one of the results: {list(runs)}"
        )
    width = max(len("method"), *(len(str(name)) for name in runs))
    cols = ("val loss", "val acc", "gap", "Δ val loss", "Δ gap")
    header = f"{'method':<{width}}  " + "  ".join(f"{c:<22}" for c in cols)
    lines = [header.rstrip(), "-" * len(header.rstrip())]
    base = runs[baseline]
    for name, rs in runs.items():
        cells = [
            mean_interval([getattr(r, m) for r in rs])
            for m in ("val_loss", "val_acc", "gap")
        ]
        cells += [paired_interval(rs, base, m) for m in ("val_loss", "gap")]
        lines.append(
            f"{str(name):<{width}}  "
            + "  ".join(f"{format(c, '.3f'):<22}" for c in cells).rstrip()
        )
    return "\n".join(lines)


def plot_seed_results(
    runs: Mapping[str, Sequence[Result]], baseline: str | None = None, axes=None
):
    """Validation loss and train − validation gap per method: the mean over seeds with its 95 % interval as
    an error bar, each seed as a dot, and a dashed line at the ``baseline`` mean; returns the axes."""
    import matplotlib.pyplot as plt

    if baseline is not None and baseline not in runs:
        raise ValueError(
            f"baseline {baseline!r} is not one of the results: {list(runs)}"
        )
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 0.4 * len(runs) + 1.2), sharey=True)
    names = list(runs)[::-1]  # the first method on top
    for ax, metric, title in (
        (axes[0], "val_loss", "validation loss"),
        (axes[1], "gap", "train − validation accuracy"),
    ):
        for row, name in enumerate(names):
            values = [getattr(r, metric) for r in runs[name]]
            ci = mean_interval(values)
            ax.errorbar(
                ci.mean,
                row,
                xerr=[[ci.mean - ci.lo], [ci.hi - ci.mean]],
                fmt="o",
                color="C0",
                capsize=3,
            )
            ax.plot(values, [row] * len(values), ".", color="C1", alpha=0.6)
        ax.set(title=title, yticks=range(len(names)), yticklabels=names)
        if baseline is not None:
            ax.axvline(
                mean_interval([getattr(r, metric) for r in runs[baseline]]).mean,
                color="k",
                linestyle="--",
                linewidth=1,
            )
    return axes
