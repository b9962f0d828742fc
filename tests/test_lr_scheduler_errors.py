"""Bad arguments raise the same exception, with the same message, as torch's schedulers."""

import pytest
import torch

import companion.optim.lr_scheduler as ours
from companion.optim import SGD, Adagrad
from companion.testing.schedules import two_group_optimizer

theirs = torch.optim.lr_scheduler


def _sgd():
    return two_group_optimizer(SGD, momentum=0.9)


def _adagrad():
    return two_group_optimizer(Adagrad)


def _past_end(o, L):
    sched = L.OneCycleLR(o, 0.1, total_steps=3)
    for _ in range(4):
        o.step()
        sched.step()


# (id, optimizer factory, build(optimizer, module) expected to raise)
BAD = [
    ("lambda-count", _sgd, lambda o, L: L.LambdaLR(o, [lambda t: 1.0])),
    (
        "multiplicative-count",
        _sgd,
        lambda o, L: L.MultiplicativeLR(o, [lambda t: 1.0] * 3),
    ),
    (
        "multiplicative-not-callable",
        _sgd,
        lambda o, L: L.MultiplicativeLR(o, [0.9, 0.9]),
    ),
    ("constant-above-one", _sgd, lambda o, L: L.ConstantLR(o, factor=1.5)),
    ("constant-negative", _sgd, lambda o, L: L.ConstantLR(o, factor=-0.1)),
    ("linear-start-zero", _sgd, lambda o, L: L.LinearLR(o, start_factor=0.0)),
    ("linear-start-above-one", _sgd, lambda o, L: L.LinearLR(o, start_factor=1.5)),
    ("linear-end-above-one", _sgd, lambda o, L: L.LinearLR(o, end_factor=1.5)),
    ("restarts-T0-zero", _sgd, lambda o, L: L.CosineAnnealingWarmRestarts(o, 0)),
    ("restarts-T0-float", _sgd, lambda o, L: L.CosineAnnealingWarmRestarts(o, 2.5)),
    (
        "restarts-Tmult-zero",
        _sgd,
        lambda o, L: L.CosineAnnealingWarmRestarts(o, 5, T_mult=0),
    ),
    (
        "restarts-Tmult-float",
        _sgd,
        lambda o, L: L.CosineAnnealingWarmRestarts(o, 5, T_mult=1.5),
    ),
    (
        "restarts-eta-min",
        _sgd,
        lambda o, L: L.CosineAnnealingWarmRestarts(o, 5, eta_min="0"),
    ),
    (
        "restarts-negative-epoch",
        _sgd,
        lambda o, L: L.CosineAnnealingWarmRestarts(o, 5).step(-1),
    ),
    ("cyclic-mode", _sgd, lambda o, L: L.CyclicLR(o, 0.01, 0.1, mode="triangle")),
    ("cyclic-no-momentum", _adagrad, lambda o, L: L.CyclicLR(o, 0.01, 0.1)),
    ("cyclic-base-count", _sgd, lambda o, L: L.CyclicLR(o, [0.01] * 3, 0.1)),
    ("cyclic-max-count", _sgd, lambda o, L: L.CyclicLR(o, 0.01, [0.1])),
    (
        "cyclic-momentum-count",
        _sgd,
        lambda o, L: L.CyclicLR(o, 0.01, 0.1, base_momentum=[0.8]),
    ),
    ("one-cycle-no-length", _sgd, lambda o, L: L.OneCycleLR(o, 0.1)),
    ("one-cycle-total-zero", _sgd, lambda o, L: L.OneCycleLR(o, 0.1, total_steps=0)),
    (
        "one-cycle-total-float",
        _sgd,
        lambda o, L: L.OneCycleLR(o, 0.1, total_steps=10.0),
    ),
    (
        "one-cycle-epochs",
        _sgd,
        lambda o, L: L.OneCycleLR(o, 0.1, epochs=0, steps_per_epoch=5),
    ),
    (
        "one-cycle-steps-per-epoch",
        _sgd,
        lambda o, L: L.OneCycleLR(o, 0.1, epochs=3, steps_per_epoch=-1),
    ),
    (
        "one-cycle-pct-above-one",
        _sgd,
        lambda o, L: L.OneCycleLR(o, 0.1, 10, pct_start=1.5),
    ),
    ("one-cycle-pct-int", _sgd, lambda o, L: L.OneCycleLR(o, 0.1, 10, pct_start=1)),
    (
        "one-cycle-anneal",
        _sgd,
        lambda o, L: L.OneCycleLR(o, 0.1, 10, anneal_strategy="cosine"),
    ),
    ("one-cycle-no-momentum", _adagrad, lambda o, L: L.OneCycleLR(o, 0.1, 10)),
    ("one-cycle-max-count", _sgd, lambda o, L: L.OneCycleLR(o, [0.1], 10)),
    ("one-cycle-past-end", _sgd, _past_end),
    ("plateau-factor", _sgd, lambda o, L: L.ReduceLROnPlateau(o, factor=1.0)),
    ("plateau-mode", _sgd, lambda o, L: L.ReduceLROnPlateau(o, mode="minimum")),
    (
        "plateau-threshold-mode",
        _sgd,
        lambda o, L: L.ReduceLROnPlateau(o, threshold_mode="relative"),
    ),
    (
        "plateau-min-lr-count",
        _sgd,
        lambda o, L: L.ReduceLROnPlateau(o, min_lr=[0.1, 0.2, 0.3]),
    ),
    ("sequential-empty", _sgd, lambda o, L: L.SequentialLR(o, [], [])),
    (
        "sequential-milestones",
        _sgd,
        lambda o, L: L.SequentialLR(o, [L.StepLR(o, 3), L.StepLR(o, 4)], [2, 5]),
    ),
    (
        "sequential-plateau",
        _sgd,
        lambda o, L: L.SequentialLR(o, [L.StepLR(o, 3), L.ReduceLROnPlateau(o)], [2]),
    ),
    (
        "sequential-not-scheduler",
        _sgd,
        lambda o, L: L.SequentialLR(o, [L.StepLR(o, 3), 5], [2]),
    ),
    (
        "sequential-other-optimizer",
        _sgd,
        lambda o, L: L.SequentialLR(o, [L.StepLR(o, 3), L.StepLR(_sgd(), 3)], [2]),
    ),
    ("chained-empty", _sgd, lambda o, L: L.ChainedScheduler([])),
    (
        "chained-plateau",
        _sgd,
        lambda o, L: L.ChainedScheduler([L.ReduceLROnPlateau(o)]),
    ),
    (
        "chained-other-optimizer",
        _sgd,
        lambda o, L: L.ChainedScheduler([L.StepLR(o, 3)], optimizer=_sgd()),
    ),
]


def _raised(build, make_optimizer, module):
    optimizer = make_optimizer()
    with pytest.raises((ValueError, TypeError)) as info:
        build(optimizer, module)
    return type(info.value), str(info.value).replace(repr(optimizer), "<optimizer>")


@pytest.mark.parametrize("name, make_optimizer, build", BAD, ids=[b[0] for b in BAD])
def test_same_error_as_torch(name, make_optimizer, build):
    kind, message = _raised(build, make_optimizer, ours)
    assert (kind, message) == _raised(build, make_optimizer, theirs)
