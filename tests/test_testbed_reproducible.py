"""A chapter's experiment run twice gives the same numbers, bit for bit: the regularization summary's race
(every method that draws random numbers: dropout and DropConnect masks, augmentation, early stopping on the
validation split) for two seeds, a few epochs each, on the noisy testbed. Different seeds give different numbers.

Tolerance: 0 (bit-exact). Both runs execute the same operations in the same order on the same kernels, from
generators seeded the same way; any difference means a number depends on something other than the seeds.
"""

import dataclasses
import functools

import torch

from companion.experiments.regularizer_race import (
    Method,
    compare_seeds,
    on_images,
    run_generator,
    seed_table,
)
from companion.experiments import testbed
from companion.nn import Dropout
from companion.regularization import DropConnectLinear, augment, l2_penalty
from companion.regularization.augment import Augmentation
from companion.regularization.early_stopping import EarlyStopping

EPOCHS = 3
SEEDS = (0, 1)


def _augmentation(model):
    ops = [functools.partial(augment.random_affine, degrees=10.0, translate=0.5)]
    return dict(transform=on_images(Augmentation(ops, generator=run_generator())))


METHODS = {
    "baseline": Method(),
    "augmentation": Method(fit_kwargs=_augmentation),
    "L2": Method(
        fit_kwargs=lambda model: dict(penalty=functools.partial(l2_penalty, lam=1e-2))
    ),
    "dropout": Method(model_kwargs=dict(dropout=lambda: Dropout(0.5))),
    "DropConnect": Method(
        model_kwargs=dict(
            linear=lambda i, o: (
                DropConnectLinear(i, o, p=0.5, per_example=False)
                if i == 256
                else torch.nn.Linear(i, o)
            )
        )
    ),
    "early stopping": Method(
        fit_kwargs=lambda model: dict(callbacks=[EarlyStopping("val_loss", patience=1)])
    ),
}


def _numbers(runs):
    """Every number a run reports except its wall-clock time, which is not a function of the seeds."""
    return {
        name: [
            {k: v for k, v in dataclasses.asdict(r).items() if k != "seconds"}
            for r in rs
        ]
        for name, rs in runs.items()
    }


def test_the_summary_race_is_a_function_of_the_seeds():
    data = testbed.testbed_data(label_noise=testbed.LABEL_NOISE)
    first = compare_seeds(METHODS, data, seeds=SEEDS, epochs=EPOCHS)
    torch.manual_seed(
        12345
    )  # disturb the global generator in between: the runs must not depend on it
    second = compare_seeds(METHODS, data, seeds=SEEDS, epochs=EPOCHS)
    assert _numbers(first) == _numbers(second)  # bit-exact, every method, every seed
    assert seed_table(first, "baseline") == seed_table(
        second, "baseline"
    )  # and so is the printed table
    for name, rs in first.items():  # the seed does matter
        assert _numbers({name: rs[:1]})[name] != _numbers({name: rs[1:]})[name], name


def test_augmentation_draws_from_the_run_seed():
    data = testbed.testbed_data(label_noise=testbed.LABEL_NOISE)
    runs = compare_seeds(
        {"augmentation": METHODS["augmentation"]}, data, seeds=(2, 2, 3), epochs=1
    )["augmentation"]
    assert runs[0].val_loss == runs[1].val_loss != runs[2].val_loss
