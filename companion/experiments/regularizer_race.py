"""Run several regularization methods on the overfitting testbed under one budget and tabulate them.

A :class:`Method` says how to build the testbed model (``model_kwargs`` for
:func:`companion.experiments.testbed.testbed_model`: ``dropout=``, ``linear=``...) and how to train it
(``fit_kwargs(model)`` returns fresh keyword arguments for :func:`companion.experiments.testbed.train_testbed`:
``penalty=``, ``transform=``, ``callbacks=``, ``optimizer=``...). :func:`compare` runs each one from the
same seed (same initial weights and batch order) and measures the final model in eval mode.
"""

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

from torch import nn

from companion.core.data import Digits
from companion.experiments.testbed import EPOCHS, testbed_model, train_testbed
from companion.core.train import evaluate


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


def on_images(transform: Callable, shape: tuple[int, ...] = (1, 8, 8)) -> Callable:
    """Adapt an image ``transform(X, y) -> (X, y)`` (such as :class:`companion.regularization.augment.Augmentation`) to
    the testbed's flat inputs: each batch is reshaped to (N, *shape), transformed, and flattened back."""

    def flat_transform(X, y):
        images, y = transform(X.reshape(len(X), *shape), y)
        return images.reshape(len(images), -1), y

    return flat_transform


def run_method(method: Method, data: Digits, seed: int = 0, device=None, epochs: int = EPOCHS) -> Result:
    """Build the testbed model from ``seed``, train it with ``method`` for at most ``epochs`` epochs
    (batch order from ``seed`` too) and evaluate the model it ends with on every split.

    The final model is measured, not the last History entry: with early stopping that restores the
    best weights, the two differ.
    """
    start = time.perf_counter()
    model = testbed_model(seed=seed, device=device, **method.model_kwargs)
    history = train_testbed(model, data, epochs=epochs, seed=seed, **method.fit_kwargs(model))
    train_loss, train_acc = evaluate(model, data.train)
    val_loss, val_acc = evaluate(model, data.val)
    _, test_acc = evaluate(model, data.test)
    return Result(train_acc, val_acc, test_acc, train_loss, val_loss, history.epochs, time.perf_counter() - start)


def compare(
    methods: Mapping[str, Method], data: Digits, seed: int = 0, device=None, epochs: int = EPOCHS
) -> dict[str, Result]:
    """:func:`run_method` for every method, in order, from the same ``seed``."""
    return {name: run_method(m, data, seed=seed, device=device, epochs=epochs) for name, m in methods.items()}


def format_table(results: Mapping[str, Result], baseline: str | None = None) -> str:
    """A fixed-width text table, one row per method; with ``baseline`` (a key of ``results``) a column
    of validation-accuracy differences to it, in percentage points."""
    if baseline is not None and baseline not in results:
        raise ValueError(f"baseline {baseline!r} is not one of the results: {list(results)}")
    width = max(len("method"), *(len(str(name)) for name in results))
    header = f"{'method':<{width}}  train acc  val acc  gap     val loss  test acc  epochs"
    if baseline is not None:
        header += "  Δ val acc"
    lines = [header, "-" * len(header)]
    for name, r in results.items():
        line = (f"{str(name):<{width}}  {r.train_acc:9.3f}  {r.val_acc:7.3f}  {r.gap:6.3f}  {r.val_loss:8.3f}"
                f"  {r.test_acc:8.3f}  {r.epochs:6d}")
        if baseline is not None:
            line += f"  {100 * (r.val_acc - results[baseline].val_acc):+9.1f}"
        lines.append(line)
    return "\n".join(lines)


def plot_results(results: Mapping[str, Result], baseline: str | None = None, axes=None):
    """Two horizontal bar charts, validation accuracy and train − validation gap, one bar per method,
    with a dashed line at the ``baseline`` method's values if given; returns the axes."""
    import matplotlib.pyplot as plt

    if baseline is not None and baseline not in results:
        raise ValueError(f"baseline {baseline!r} is not one of the results: {list(results)}")

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 0.35 * len(results) + 1.2), sharey=True)
    names = list(results)[::-1]  # the first method on top
    for ax, values, title in (
        (axes[0], [results[n].val_acc for n in names], "validation accuracy"),
        (axes[1], [results[n].gap for n in names], "train − validation accuracy"),
    ):
        ax.barh(names, values, color="C0")
        ax.set(title=title)
        if baseline is not None:
            value = results[baseline].val_acc if title.startswith("validation") else results[baseline].gap
            ax.axvline(value, color="k", linestyle="--", linewidth=1)
        lo = min(values)
        if title.startswith("validation"):
            ax.set_xlim(max(0.0, lo - 0.05), min(1.0, max(values) + 0.02))
    return axes
