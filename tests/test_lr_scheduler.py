"""companion.optim.lr_scheduler against torch.optim.lr_scheduler: a table of configurations per
scheduler, each run for 150 steps with two parameter groups (lrs 0.1 and 0.03); signatures; state_dicts
saved in the middle and resumed in ours and in torch's, both ways.

Tolerances: our schedules are plain Python float arithmetic (IEEE double, no vectorized kernels, so
ATEN_CPU_CAPABILITY cannot change them) evaluating torch's formulas with the same grouping; we observe
bit-identical traces. The bounds still leave room for one formula being grouped differently: a
closed form is a handful of roundings (``CLOSED_ULPS``); a recursive (chainable) form multiplies the
previous rate by a ratio each step, a few roundings per step compounding linearly in relative terms
(``RECURSIVE_ULPS_PER_STEP`` × steps).
"""

import math

import pytest
import torch

import companion.optim.lr_scheduler as ours
from companion.optim import SGD, Adam
from companion.testing.optim_contract import check_signature
from companion.testing.schedules import assert_traces_close, resumed, run

theirs = torch.optim.lr_scheduler
STEPS = 150
CLOSED_ULPS = 8
RECURSIVE_ULPS_PER_STEP = 4

OPTIMIZERS = {
    "sgd": (SGD, torch.optim.SGD, dict(momentum=0.9)),
    "adam": (Adam, torch.optim.Adam, {}),
}


class Halving:
    """A callable object (its attributes travel in the state_dict, unlike a lambda's)."""

    def __init__(self, every: int):
        self.every = every

    def __call__(self, epoch: int) -> float:
        return 0.5 ** (epoch // self.every)


# (id, factory(optimizer, module), optimizer, recursive?, momentum cycled?)
CASES = [
    (
        "lambda-one",
        lambda o, L: L.LambdaLR(o, lambda t: 1 / (1 + 0.05 * t)),
        "sgd",
        False,
        False,
    ),
    (
        "lambda-two",
        lambda o, L: L.LambdaLR(o, [lambda t: 0.97**t, Halving(20)]),
        "sgd",
        False,
        False,
    ),
    (
        "multiplicative",
        lambda o, L: L.MultiplicativeLR(o, lambda t: 0.98),
        "sgd",
        True,
        False,
    ),
    (
        "multiplicative-two",
        lambda o, L: L.MultiplicativeLR(
            o, [lambda t: 0.99, lambda t: 1 - 1 / (t + 10)]
        ),
        "adam",
        True,
        False,
    ),
    ("step", lambda o, L: L.StepLR(o, 30), "sgd", True, False),
    (
        "step-gamma",
        lambda o, L: L.StepLR(o, step_size=7, gamma=0.8),
        "adam",
        True,
        False,
    ),
    ("multistep", lambda o, L: L.MultiStepLR(o, [10, 40, 90]), "sgd", True, False),
    (
        "multistep-repeated",
        lambda o, L: L.MultiStepLR(o, [50, 20, 20, 120], gamma=0.5),
        "sgd",
        True,
        False,
    ),
    ("constant-default", lambda o, L: L.ConstantLR(o), "sgd", True, False),
    (
        "constant",
        lambda o, L: L.ConstantLR(o, factor=0.25, total_iters=60),
        "adam",
        True,
        False,
    ),
    ("linear-default", lambda o, L: L.LinearLR(o), "sgd", True, False),
    (
        "linear-warmup",
        lambda o, L: L.LinearLR(o, start_factor=0.01, total_iters=100),
        "adam",
        True,
        False,
    ),
    (
        "linear-decay",
        lambda o, L: L.LinearLR(o, start_factor=1.0, end_factor=0.05, total_iters=120),
        "sgd",
        True,
        False,
    ),
    ("exponential", lambda o, L: L.ExponentialLR(o, 0.97), "sgd", True, False),
    (
        "exponential-up",
        lambda o, L: L.ExponentialLR(o, gamma=1.01),
        "adam",
        True,
        False,
    ),
    ("polynomial-default", lambda o, L: L.PolynomialLR(o), "sgd", True, False),
    (
        "polynomial",
        lambda o, L: L.PolynomialLR(o, total_iters=100, power=2.0),
        "sgd",
        True,
        False,
    ),
    (
        "polynomial-root",
        lambda o, L: L.PolynomialLR(o, total_iters=140, power=0.5),
        "adam",
        True,
        False,
    ),
    ("cosine", lambda o, L: L.CosineAnnealingLR(o, T_max=150), "sgd", True, False),
    (
        "cosine-periodic",
        lambda o, L: L.CosineAnnealingLR(o, T_max=20, eta_min=0.001),
        "adam",
        True,
        False,
    ),
    (
        "restarts",
        lambda o, L: L.CosineAnnealingWarmRestarts(o, T_0=25),
        "sgd",
        False,
        False,
    ),
    (
        "restarts-mult",
        lambda o, L: L.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=1e-3),
        "adam",
        False,
        False,
    ),
    (
        "cyclic",
        lambda o, L: L.CyclicLR(o, 0.01, 0.1, step_size_up=20),
        "sgd",
        False,
        True,
    ),
    (
        "cyclic-2",
        lambda o, L: L.CyclicLR(
            o, [0.01, 0.003], [0.2, 0.05], 10, 15, mode="triangular2"
        ),
        "sgd",
        False,
        True,
    ),
    (
        "cyclic-exp",
        lambda o, L: L.CyclicLR(
            o,
            0.001,
            0.1,
            8,
            mode="exp_range",
            gamma=0.99,
            base_momentum=[0.7, 0.8],
            max_momentum=[0.9, 0.95],
        ),
        "adam",
        False,
        True,
    ),
    (
        "cyclic-fn",
        lambda o, L: L.CyclicLR(
            o,
            0.01,
            0.1,
            6,
            scale_fn=lambda x: 1 / (1 + x),
            scale_mode="iterations",
            cycle_momentum=False,
        ),
        "sgd",
        False,
        False,
    ),
    (
        "cyclic-fn-cycle",
        lambda o, L: L.CyclicLR(o, 0.01, 0.1, 9, 3, scale_fn=lambda c: 0.8**c),
        "adam",
        False,
        True,
    ),
    (
        "one-cycle",
        lambda o, L: L.OneCycleLR(o, max_lr=0.5, total_steps=STEPS),
        "sgd",
        False,
        True,
    ),
    (
        "one-cycle-epochs",
        lambda o, L: L.OneCycleLR(
            o,
            [0.5, 0.1],
            epochs=10,
            steps_per_epoch=15,
            pct_start=0.25,
            anneal_strategy="linear",
        ),
        "adam",
        False,
        True,
    ),
    (
        "one-cycle-three",
        lambda o, L: L.OneCycleLR(
            o,
            0.3,
            total_steps=STEPS,
            three_phase=True,
            div_factor=10.0,
            final_div_factor=100.0,
            base_momentum=0.8,
        ),
        "sgd",
        False,
        True,
    ),
    (
        "one-cycle-fixed-momentum",
        lambda o, L: L.OneCycleLR(o, 0.3, total_steps=160, cycle_momentum=False),
        "sgd",
        False,
        False,
    ),
]
IDS = [c[0] for c in CASES]


def _ulps(recursive: bool, steps: int) -> float:
    return RECURSIVE_ULPS_PER_STEP * steps if recursive else CLOSED_ULPS


@pytest.mark.parametrize("name, factory, opt, recursive, momentum", CASES, ids=IDS)
def test_matches_torch(name, factory, opt, recursive, momentum):
    """150 steps: get_last_lr(), the groups' lrs and (for the cyclic schedules) the momentum or beta1."""
    mine, reference, options = OPTIMIZERS[opt]
    a = run(factory, ours, mine, STEPS, **options)
    b = run(factory, theirs, reference, STEPS, **options)
    assert_traces_close(a, b, ulps=_ulps(recursive, STEPS), momentum=True, what=name)
    assert len({tuple(lrs) for lrs in a.group_lr}) > 1  # the schedule moved


@pytest.mark.parametrize("name, factory, opt, recursive, momentum", CASES, ids=IDS)
@pytest.mark.parametrize(
    "saver, loader",
    [(ours, ours), (ours, theirs), (theirs, ours)],
    ids=["ours-ours", "ours-torch", "torch-ours"],
)
def test_state_dict_resume(name, factory, opt, recursive, momentum, saver, loader):
    """Save at step 75 → a fresh scheduler (ours or torch's) loads it → 75 more steps equal the uninterrupted run."""
    mine, _, options = OPTIMIZERS[opt]
    straight, again = resumed(factory, saver, loader, mine, STEPS // 2, **options)
    assert_traces_close(
        again, straight, ulps=_ulps(recursive, STEPS), momentum=True, what=name
    )


@pytest.mark.parametrize("name, factory, opt, recursive, momentum", CASES, ids=IDS)
def test_state_dict_keys(name, factory, opt, recursive, momentum):
    """The same state_dict keys as torch's scheduler in the same configuration."""
    mine, reference, options = OPTIMIZERS[opt]
    from companion.testing.schedules import two_group_optimizer

    a = factory(two_group_optimizer(mine, **options), ours).state_dict()
    b = factory(two_group_optimizer(reference, **options), theirs).state_dict()
    assert sorted(a) == sorted(b)


def test_callable_object_state_travels():
    """A callable object's attributes are saved and restored (a lambda's are not)."""
    from companion.testing.schedules import two_group_optimizer

    sched = ours.LambdaLR(two_group_optimizer(SGD), [Halving(20), lambda t: 1.0])
    saved = sched.state_dict()
    assert saved["lr_lambdas"] == [{"every": 20}, None]
    fresh_fn = Halving(5)
    fresh = theirs.LambdaLR(two_group_optimizer(SGD), [fresh_fn, lambda t: 1.0])
    fresh.load_state_dict(saved)
    assert fresh_fn.every == 20


@pytest.mark.parametrize("name", ours.__all__)
def test_signature(name):
    check_signature(getattr(ours, name), getattr(theirs, name))


def test_closed_form_matches_recursive():
    """An explicit epoch uses the closed form; for cosine it agrees with the recursive run within rounding."""
    from companion.testing.schedules import two_group_optimizer

    opt = two_group_optimizer(SGD)
    sched = ours.CosineAnnealingLR(opt, T_max=40, eta_min=0.001)
    for _ in range(25):
        opt.step()
        sched.step()
    recursive = sched.get_last_lr()
    with pytest.warns(UserWarning, match="deprecated"):
        sched.step(25)
    expected = [
        0.001 + (lr - 0.001) * (1 + math.cos(math.pi * 25 / 40)) / 2
        for lr in (0.1, 0.03)
    ]
    # 25 recursive steps, each a ratio of cosines (≈ 4 roundings): 100 ε relative, bounded by 200 ε
    for a, b, c in zip(recursive, sched.get_last_lr(), expected):
        assert abs(a - c) <= 200 * 2.2e-16 * c and abs(b - c) <= 8 * 2.2e-16 * c


def test_get_lr_outside_step_warns():
    from companion.testing.schedules import two_group_optimizer

    sched = ours.StepLR(two_group_optimizer(SGD), 3)
    with pytest.warns(UserWarning, match="get_last_lr"):
        sched.get_lr()


def test_not_an_optimizer():
    for cls_ours, cls_theirs in [
        (ours.StepLR, theirs.StepLR),
        (ours.OneCycleLR, theirs.OneCycleLR),
        (ours.CyclicLR, theirs.CyclicLR),
        (ours.ReduceLROnPlateau, theirs.ReduceLROnPlateau),
    ]:
        args = {
            "StepLR": (3,),
            "OneCycleLR": (0.1, 10),
            "CyclicLR": (0.01, 0.1),
            "ReduceLROnPlateau": (),
        }[cls_ours.__name__]
        with pytest.raises(TypeError) as mine:
            cls_ours(object(), *args)
        with pytest.raises(TypeError) as ref:
            cls_theirs(object(), *args)
        assert str(mine.value) == str(ref.value)


EXPLICIT = [
    ("step", lambda o, L: L.StepLR(o, 7, 0.5)),
    ("multistep", lambda o, L: L.MultiStepLR(o, [3, 9, 9, 20])),
    ("constant", lambda o, L: L.ConstantLR(o, 0.3, 12)),
    ("linear", lambda o, L: L.LinearLR(o, 0.05, 0.8, 25)),
    ("exponential", lambda o, L: L.ExponentialLR(o, 0.9)),
    ("polynomial", lambda o, L: L.PolynomialLR(o, 20, 1.5)),
    ("cosine", lambda o, L: L.CosineAnnealingLR(o, 15, 0.002)),
    ("restarts", lambda o, L: L.CosineAnnealingWarmRestarts(o, 4, 1)),
    ("restarts-mult", lambda o, L: L.CosineAnnealingWarmRestarts(o, 3, 3, 1e-3)),
]
EPOCHS = [
    0,
    1,
    5,
    2,
    9,
    30,
    12,
    12,
    25,
    3.5,
    17.25,
    40.0,
]  # jumps back and forth; fractional for SGDR


@pytest.mark.filterwarnings("ignore:The epoch parameter")
@pytest.mark.parametrize("name, factory", EXPLICIT, ids=[e[0] for e in EXPLICIT])
def test_explicit_epoch_uses_closed_form(name, factory):
    """``step(epoch)`` jumps to an epoch through the closed form (fractional epochs for SGDR), as torch's does."""
    from companion.testing.schedules import Trace, two_group_optimizer

    traces = []
    for module, opt_cls in ((ours, SGD), (theirs, torch.optim.SGD)):
        opt = two_group_optimizer(opt_cls)
        s, trace = factory(opt, module), Trace()
        for e in EPOCHS if name.startswith("restarts") else [int(e) for e in EPOCHS]:
            opt.step()
            s.step(e)
            trace.record(s, opt)
        traces.append(trace)
    assert_traces_close(
        *traces, ulps=CLOSED_ULPS, what=name
    )  # closed forms: a handful of roundings
