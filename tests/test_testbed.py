"""companion.experiments.testbed's noisy variant and regularizer_race's statistics over seeds: label noise from its
own seed, Student-t intervals against hand-computed values, paired differences, and the seed table."""

import math

import pytest
import torch

from companion.experiments import (
    testbed,
)  # a module: its testbed_* functions are not tests
from companion.core.stats import Interval, mean_interval
from companion.experiments.regularizer_race import Result, paired_interval, seed_table


def test_noisy_labels_flip_the_requested_fraction_to_another_class():
    y = torch.arange(10).repeat(500)  # 5000 labels
    noisy = testbed.noisy_labels(y, 0.2, seed=3)
    flipped = noisy != y
    # each label flips with probability 0.2: 1000 ± 3·28 of 5000
    assert abs(flipped.sum().item() - 1000) < 3 * math.sqrt(5000 * 0.2 * 0.8)
    assert (
        (noisy >= 0) & (noisy < 10)
    ).all()  # still a class, and a *different* one where flipped
    assert torch.equal(
        testbed.noisy_labels(y, 0.2, seed=3), noisy
    )  # a function of its seed ...
    assert not torch.equal(
        testbed.noisy_labels(y, 0.2, seed=4), noisy
    )  # ... and of nothing else
    assert torch.equal(testbed.noisy_labels(y, 0.0), y)


def test_noisy_testbed_keeps_validation_and_test_clean():
    clean, noisy = (
        testbed.testbed_data(),
        testbed.testbed_data(label_noise=testbed.LABEL_NOISE),
    )
    assert torch.equal(clean.train.X, noisy.train.X)
    assert torch.equal(clean.val.y, noisy.val.y) and torch.equal(
        clean.test.y, noisy.test.y
    )
    wrong = (clean.train.y != noisy.train.y).sum().item()
    assert 20 < wrong < 60  # about a fifth of 200


def test_noisy_labels_invalid_fraction():
    with pytest.raises(ValueError, match="fraction"):
        testbed.noisy_labels(torch.zeros(3, dtype=torch.long), 1.5)


def _result(val_loss, gap=0.1):
    return Result(
        train_acc=1.0,
        val_acc=1.0 - gap,
        test_acc=0.9,
        train_loss=0.0,
        val_loss=val_loss,
        epochs=3,
        seconds=0.0,
    )


def test_paired_interval_removes_the_shared_seed_effect():
    base = [
        _result(v) for v in (1.0, 2.0, 3.0, 4.0, 5.0)
    ]  # large seed-to-seed variation ...
    method = [
        _result(v - 0.5 + d)
        for v, d in zip((1.0, 2.0, 3.0, 4.0, 5.0), (0.01, -0.01, 0.02, -0.02, 0.0))
    ]
    paired = paired_interval(method, base, "val_loss")
    assert paired.hi < 0  # ... but the paired difference is clearly below 0
    assert (
        mean_interval([r.val_loss for r in method]).hi
        > mean_interval([r.val_loss for r in base]).lo
    )  # unpaired: overlap
    with pytest.raises(ValueError, match="baseline results"):
        paired_interval(method[:3], base, "val_loss")


def test_seed_table_has_a_row_per_method_and_a_zero_baseline_difference():
    runs = {
        "baseline": [_result(v) for v in (1.0, 1.1, 0.9)],
        "other": [_result(v) for v in (0.5, 0.6, 0.4)],
    }
    lines = seed_table(runs, "baseline").splitlines()
    assert (
        len(lines) == 4
        and lines[2].startswith("baseline")
        and lines[3].startswith("other")
    )
    assert "0.000 [0.000, 0.000]" in lines[2]
    with pytest.raises(ValueError, match="baseline"):
        seed_table(runs, "missing")


def test_interval_is_a_plain_value():
    assert Interval(1.0, 0.5, 1.5) == Interval(1.0, 0.5, 1.5)
