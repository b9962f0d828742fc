"""SequentialLR and ChainedScheduler (built from our members, torch's members and a mix) and
ReduceLROnPlateau (fed a metric sequence) against torch's, 150 steps, two parameter groups.

Tolerance as in ``test_lr_scheduler.py``: Python float arithmetic in torch's grouping (bit-identical in
practice); a recursive chain of up to three members allows a few roundings per member and step.
"""

import math

import pytest
import torch

import companion.optim.lr_scheduler as ours
from companion.optim import SGD, Adam
from companion.testing.schedules import (
    assert_traces_close,
    resumed,
    run,
    two_group_optimizer,
)

theirs = torch.optim.lr_scheduler
STEPS = 150
ULPS = (
    3 * 4 * STEPS
)  # ≤ 3 chained members × ≈ 4 roundings × steps, compounding linearly
OTHER = {ours: theirs, theirs: ours}


def _members(mix):
    """Which module builds the members: the composite's own (``same``), the other one, or alternating."""
    if mix == "same":
        return lambda L, i: L
    if mix == "other":
        return lambda L, i: OTHER[L]
    return lambda L, i: L if i % 2 == 0 else OTHER[L]


def _composites(mix):
    m = _members(mix)
    return [
        (
            "warmup-cosine",
            lambda o, L: L.SequentialLR(
                o,
                [
                    m(L, 0).LinearLR(o, 0.01, total_iters=10),
                    m(L, 1).CosineAnnealingLR(o, T_max=140),
                ],
                [10],
            ),
        ),
        (
            "three-phase",
            lambda o, L: L.SequentialLR(
                o,
                [
                    m(L, 0).ConstantLR(o, 0.1, total_iters=5),
                    m(L, 1).ExponentialLR(o, 0.98),
                    m(L, 2).StepLR(o, 20, 0.5),
                ],
                [20, 80],
            ),
        ),
        (
            "warmup-restarts",
            lambda o, L: L.SequentialLR(
                o,
                [
                    m(L, 0).LinearLR(o, 0.1, total_iters=15),
                    m(L, 1).CosineAnnealingWarmRestarts(o, 10, 2),
                ],
                [15],
            ),
        ),
        (
            "warmup-poly-multistep",
            lambda o, L: L.SequentialLR(
                o,
                [
                    m(L, 0).PolynomialLR(o, 30, 0.5),
                    m(L, 1).MultiStepLR(o, [10, 60], 0.3),
                ],
                [40],
            ),
        ),
        (
            "chain-warmup-decay",
            lambda o, L: L.ChainedScheduler(
                [
                    m(L, 0).LinearLR(o, 0.05, total_iters=20),
                    m(L, 1).ExponentialLR(o, 0.99),
                ]
            ),
        ),
        (
            "chain-three",
            lambda o, L: L.ChainedScheduler(
                [
                    m(L, 0).ConstantLR(o, 0.5, 30),
                    m(L, 1).CosineAnnealingLR(o, 50, 0.001),
                    m(L, 2).StepLR(o, 25, 0.7),
                ],
                optimizer=o,
            ),
        ),
        (
            "chain-multiplicative",
            lambda o, L: L.ChainedScheduler(
                [
                    m(L, 0).MultiplicativeLR(o, lambda t: 0.995),
                    m(L, 1).MultiStepLR(o, [30, 100]),
                ]
            ),
        ),
    ]


CASES = [
    (mix, name, f)
    for mix in ("same", "other", "alternate")
    for name, f in _composites(mix)
]
IDS = [f"{name}-{mix}" for mix, name, _ in CASES]


@pytest.mark.parametrize("mix, name, factory", CASES, ids=IDS)
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_composite_matches_torch(mix, name, factory, opt):
    """Our composite (with our, torch's or mixed members) equals torch's composite of torch's members."""
    mine, reference = {"sgd": (SGD, torch.optim.SGD), "adam": (Adam, torch.optim.Adam)}[
        opt
    ]
    a = run(factory, ours, mine, STEPS)
    b = run(
        _composites("same")[[n for n, _ in _composites("same")].index(name)][1],
        theirs,
        reference,
        STEPS,
    )
    assert_traces_close(a, b, ulps=ULPS, what=f"{name}-{mix}")
    # torch's composite around the same members agrees too
    c = run(factory, theirs, mine, STEPS)
    assert_traces_close(c, b, ulps=ULPS, what=f"torch's {name}-{mix}")


@pytest.mark.parametrize(
    "mix, name, factory",
    [c for c in CASES if c[0] == "same"],
    ids=IDS[: len(_composites("same"))],
)
@pytest.mark.parametrize(
    "saver, loader",
    [(ours, ours), (ours, theirs), (theirs, ours)],
    ids=["ours-ours", "ours-torch", "torch-ours"],
)
def test_composite_resume(mix, name, factory, saver, loader):
    """The nested state_dict saved in the middle resumes in a fresh composite of either library."""
    straight, again = resumed(factory, saver, loader, SGD, STEPS // 2)
    assert_traces_close(again, straight, ulps=ULPS, what=name)


def test_composite_state_dict_keys():
    for name, factory in _composites("same"):
        a = factory(two_group_optimizer(SGD), ours).state_dict()
        b = factory(two_group_optimizer(SGD), theirs).state_dict()
        assert sorted(a) == sorted(b), name
        assert [sorted(s) for s in a["_schedulers"]] == [
            sorted(s) for s in b["_schedulers"]
        ], name


# ReduceLROnPlateau: a loss that falls, plateaus with small wiggles, falls again and stalls
LOSS = [
    max(0.3, 1.0 - 0.02 * t) - (0.1 if t > 90 else 0.0) + 0.004 * math.sin(1.7 * t)
    for t in range(STEPS)
]
ACCURACY = [1.0 - v for v in LOSS]

PLATEAU = [
    ("min-default", dict(), LOSS),
    ("min-patience", dict(patience=3, factor=0.5), LOSS),
    (
        "min-abs",
        dict(patience=2, factor=0.5, threshold=0.01, threshold_mode="abs"),
        LOSS,
    ),
    ("min-cooldown", dict(patience=1, factor=0.7, cooldown=4), LOSS),
    ("min-floor", dict(patience=0, factor=0.5, min_lr=0.005), LOSS),
    ("min-floors", dict(patience=1, factor=0.5, min_lr=[0.01, 0.001]), LOSS),
    ("min-eps", dict(patience=0, factor=0.9, eps=0.002), LOSS),
    ("max-rel", dict(mode="max", patience=2, factor=0.3, threshold=0.05), ACCURACY),
    (
        "max-abs",
        dict(mode="max", patience=4, threshold=0.003, threshold_mode="abs", cooldown=2),
        ACCURACY,
    ),
]


@pytest.mark.parametrize("name, options, metrics", PLATEAU, ids=[p[0] for p in PLATEAU])
def test_plateau_matches_torch(name, options, metrics):
    factory = lambda o, L: L.ReduceLROnPlateau(o, **options)  # noqa: E731
    a = run(factory, ours, SGD, STEPS, metrics=metrics)
    b = run(factory, theirs, torch.optim.SGD, STEPS, metrics=metrics)
    # the only arithmetic is η·φ per reduction (a comparison decides when): bit-identical
    assert_traces_close(a, b, ulps=0, what=name)
    assert len({tuple(lrs) for lrs in a.group_lr}) > 1  # it did reduce


@pytest.mark.parametrize("name, options, metrics", PLATEAU, ids=[p[0] for p in PLATEAU])
@pytest.mark.parametrize(
    "saver, loader",
    [(ours, ours), (ours, theirs), (theirs, ours)],
    ids=["ours-ours", "ours-torch", "torch-ours"],
)
def test_plateau_resume(name, options, metrics, saver, loader):
    factory = lambda o, L: L.ReduceLROnPlateau(o, **options)  # noqa: E731
    straight, again = resumed(factory, saver, loader, SGD, STEPS // 2, metrics=metrics)
    assert_traces_close(again, straight, ulps=0, what=name)
    a = factory(two_group_optimizer(SGD), ours)
    b = factory(two_group_optimizer(SGD), theirs)
    assert sorted(a.state_dict()) == sorted(b.state_dict())


def test_plateau_tensor_metric_and_counters():
    """A zero-dim tensor metric works; the best value and the bad-epoch counter follow torch's."""
    a = ours.ReduceLROnPlateau(two_group_optimizer(SGD), patience=2)
    b = theirs.ReduceLROnPlateau(two_group_optimizer(SGD), patience=2)
    for v in (1.0, 0.9, 0.95, 0.93, 0.92, 0.91):
        a.step(torch.tensor(v))
        b.step(torch.tensor(v))
        assert (a.best, a.num_bad_epochs, a.cooldown_counter, a.get_last_lr()) == (
            b.best,
            b.num_bad_epochs,
            b.cooldown_counter,
            b.get_last_lr(),
        )
