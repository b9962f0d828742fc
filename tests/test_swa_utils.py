"""companion.optim.swa_utils against torch.optim.swa_utils, in float64.

AveragedModel: a table of averaging configurations (equal average by default, through ``avg_fn`` and
through ``multi_avg_fn``; EMA through ``get_ema_multi_avg_fn`` and ``get_ema_avg_fn``, decays on both sides of
1/2; ``use_buffers`` on and off; models with torch's and with our BatchNorm1d, and without), each followed
along 30 SGD steps beside torch's class; state_dicts loaded both ways (same keys, then the same
continuation); torch's averaging functions accepted by ours and ours by torch's (torch's
``get_swa_multi_avg_fn`` rounds its weight to float32, so the equal average is compared with torch's
default, exact path, and that rounding is measured in its own test). SWALR: the lr sequence
for cos and linear, several ``anneal_epochs`` (0 included) and ``swa_lr`` (one, or a list per group),
resumed through state_dicts both ways, and its ValueErrors. update_bn: running statistics against
torch's on BatchNorm1d models (torch's and ours), with loaders of tensors and of (x, y) tuples.

Tolerances: the equal average is the same formula in the same order as torch's CPU path, and an EMA
step differs from torch's ``lerp`` by a rounding or two; each update is a convex combination, so the
rounding errors of 30 updates add up without growing: ``AVERAGE_ULPS`` = 30 updates × 4 ε. Integer
buffers (``num_batches_tracked``, ``n_averaged``) are compared exactly. SWALR evaluates torch's formula
with the same grouping in Python floats (``LR_ULPS``: a handful of roundings per step, 60 steps).
update_bn's statistics are batch means and variances (reductions over 32 rows) averaged over a few
batches: ``BN_ULPS`` = 64.
"""

import copy
import inspect

import pytest
import torch
from torch import nn

import companion.optim.swa_utils as ours
import companion.nn as cnn
from companion.testing.installed_torch import raised, skip_unless_shown
from companion.testing.schedules import (
    assert_traces_close,
    resumed,
    run,
    two_group_optimizer,
)
from companion.testing.tolerances import assert_close, mismatch

theirs = torch.optim.swa_utils
AVERAGE_ULPS = 30 * 4  # 30 convex-combination updates, ≤ 4 roundings apart each
LR_ULPS = 4 * 60  # SWALR: a few roundings per step, compounding linearly over 60 steps
BN_ULPS = 64  # batch means and variances over 32 rows, cumulatively averaged over a few batches
STEPS = 30


def make_model(norm: str | None = "torch", seed: int = 0) -> nn.Module:
    """A float64 MLP, with a BatchNorm1d (torch's or ours) in the middle or none."""
    torch.manual_seed(seed)
    layers = [nn.Linear(5, 8)]
    if norm is not None:
        layers.append((nn.BatchNorm1d if norm == "torch" else cnn.BatchNorm1d)(8))
    layers += [nn.Tanh(), nn.Linear(8, 3)]
    return nn.Sequential(*layers).double()


def batch(step: int, rows: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    return torch.randn(rows, 5, generator=g, dtype=torch.float64), torch.randn(
        rows, 3, generator=g, dtype=torch.float64
    )


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None:
    x, y = batch(step)
    optimizer.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    optimizer.step()


def follow(
    model: nn.Module, averaged: list[nn.Module], steps: int, start: int = 0
) -> None:
    """``steps`` SGD steps on ``model``, each followed by every averaged model's ``update_parameters``."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2)
    for step in range(start, start + steps):
        train_step(model, optimizer, step)
        for avg in averaged:
            avg.update_parameters(model)


def assert_same_average(a: nn.Module, b: nn.Module, ulps: float = AVERAGE_ULPS) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        exact = not sb[
            key
        ].is_floating_point()  # counters: n_averaged, num_batches_tracked
        assert_close(sa[key], sb[key], ulps=0 if exact else ulps, what=key)


# (id, BatchNorm, our options, torch's options)
CASES = [
    ("swa", "torch", {}, {}),
    ("swa-no-bn", None, {}, {}),
    ("swa-our-bn", "ours", {}, {}),
    ("swa-buffers", "torch", dict(use_buffers=True), dict(use_buffers=True)),
    (
        "swa-avg_fn",
        "torch",
        dict(avg_fn=ours.get_swa_avg_fn()),
        dict(avg_fn=theirs.get_swa_avg_fn()),
    ),
    # torch's get_swa_multi_avg_fn rounds its weight 1/(n+1) to float32 (see the test below): compare with
    # torch's default path, the exact equal average on the CPU
    ("swa-multi", "torch", dict(multi_avg_fn=ours.get_swa_multi_avg_fn()), {}),
    (
        "swa-multi-buffers",
        "torch",
        dict(multi_avg_fn=ours.get_swa_multi_avg_fn(), use_buffers=True),
        dict(use_buffers=True),
    ),
    (
        "ema-multi",
        "torch",
        dict(multi_avg_fn=ours.get_ema_multi_avg_fn(0.9)),
        dict(multi_avg_fn=theirs.get_ema_multi_avg_fn(0.9)),
    ),
    (
        "ema-multi-buffers",
        "torch",
        dict(multi_avg_fn=ours.get_ema_multi_avg_fn(0.8), use_buffers=True),
        dict(multi_avg_fn=theirs.get_ema_multi_avg_fn(0.8), use_buffers=True),
    ),
    (
        "ema-multi-small-decay",
        "ours",
        dict(multi_avg_fn=ours.get_ema_multi_avg_fn(0.3), use_buffers=True),
        dict(multi_avg_fn=theirs.get_ema_multi_avg_fn(0.3), use_buffers=True),
    ),
    (
        "ema-multi-default",
        None,
        dict(multi_avg_fn=ours.get_ema_multi_avg_fn()),
        dict(multi_avg_fn=theirs.get_ema_multi_avg_fn()),
    ),
    (
        "ema-avg_fn",
        "torch",
        dict(avg_fn=ours.get_ema_avg_fn(0.9)),
        dict(avg_fn=theirs.get_ema_avg_fn(0.9)),
    ),
    (
        "ema-avg_fn-buffers",
        "ours",
        dict(avg_fn=ours.get_ema_avg_fn(0.7), use_buffers=True),
        dict(avg_fn=theirs.get_ema_avg_fn(0.7), use_buffers=True),
    ),
    (
        "torch-fn-in-ours",
        "torch",
        dict(multi_avg_fn=theirs.get_ema_multi_avg_fn(0.9)),
        dict(multi_avg_fn=theirs.get_ema_multi_avg_fn(0.9)),
    ),
    (
        "ours-fn-in-torch",
        "torch",
        dict(multi_avg_fn=ours.get_ema_multi_avg_fn(0.9)),
        dict(multi_avg_fn=ours.get_ema_multi_avg_fn(0.9)),
    ),
]
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("name, norm, mine, reference", CASES, ids=IDS)
def test_averaged_model_matches_torch(name, norm, mine, reference):
    """30 SGD steps, each folded into ours and torch's: every parameter and buffer, and n_averaged."""
    model = make_model(norm)
    a, b = ours.AveragedModel(model, **mine), theirs.AveragedModel(model, **reference)
    follow(model, [a, b], STEPS)
    assert int(a.n_averaged) == STEPS
    assert_same_average(a, b)
    x, _ = batch(-1)
    a.eval(), b.eval()
    assert_close(
        a(x), b(x), ulps=AVERAGE_ULPS * 8, what="output"
    )  # a forward of two layers on the averages


def test_first_update_copies_and_then_averages():
    """n = 0 copies the model; the equal average of three iterates is their mean."""
    model = make_model(None)
    avg = ours.AveragedModel(model)
    snapshots = []
    for step in range(3):
        follow(model, [avg], 1, start=step)
        snapshots.append([p.detach().clone() for p in model.parameters()])
        if step == 0:
            for p, q in zip(avg.parameters(), model.parameters()):
                assert torch.equal(p, q)  # θ̄_1 = θ_1, a copy
    for p, *iterates in zip(avg.parameters(), *snapshots):
        assert_close(
            p, sum(iterates) / 3, ulps=8, what="mean of three"
        )  # two updates against one sum


def test_ema_weights_are_geometric():
    """EMA with decay d after n updates: d^{n−1} θ_1 + Σ_{k≥2} (1 − d) d^{n−k} θ_k."""
    model, d = make_model(None), 0.6
    avg = ours.AveragedModel(model, multi_avg_fn=ours.get_ema_multi_avg_fn(d))
    iterates = []
    for step in range(5):
        follow(model, [avg], 1, start=step)
        iterates.append([p.detach().clone() for p in model.parameters()])
    n = len(iterates)
    for i, p in enumerate(avg.parameters()):
        expected = d ** (n - 1) * iterates[0][i] + sum(
            (1 - d) * d ** (n - k) * iterates[k - 1][i] for k in range(2, n + 1)
        )
        assert_close(
            p, expected, ulps=32, what="EMA weights"
        )  # five updates against a sum of five terms


def test_buffers_follow_the_model_without_use_buffers():
    model = make_model("torch")
    avg = ours.AveragedModel(model)
    follow(model, [avg], 4)
    for mine, theirs_ in zip(avg.module.buffers(), model.buffers()):
        assert torch.equal(mine, theirs_)


@pytest.mark.parametrize("use_buffers", [False, True])
@pytest.mark.parametrize(
    "saver, loader",
    [(ours, theirs), (theirs, ours), (ours, ours)],
    ids=["ours-torch", "torch-ours", "ours-ours"],
)
def test_state_dict_interchange(use_buffers, saver, loader):
    """Save after 12 updates, load into a fresh AveragedModel (ours or torch's), continue 12: the same as straight on."""
    model = make_model("torch")
    straight = saver.AveragedModel(model, use_buffers=use_buffers)
    follow(model, [straight], 12)
    saved, model_saved = (
        copy.deepcopy(straight.state_dict()),
        copy.deepcopy(model.state_dict()),
    )
    fresh = loader.AveragedModel(make_model("torch", seed=1), use_buffers=use_buffers)
    assert list(fresh.state_dict()) == list(saved)
    fresh.load_state_dict(saved)
    follow(model, [straight], 12, start=12)
    model_b = make_model("torch", seed=2)
    model_b.load_state_dict(model_saved)
    follow(model_b, [fresh], 12, start=12)
    assert_same_average(fresh, straight)


def test_state_dict_keys():
    model = make_model("torch")
    keys = list(ours.AveragedModel(model).state_dict())
    assert keys == list(theirs.AveragedModel(model).state_dict())
    assert keys[0] == "n_averaged" and all(k.startswith("module.") for k in keys[1:])


def test_device_argument_and_counter_dtype():
    avg = ours.AveragedModel(make_model("torch"), device="cpu")
    assert avg.n_averaged.dtype == torch.long and avg.n_averaged.device.type == "cpu"


def test_both_functions_refused():
    kwargs = dict(
        avg_fn=ours.get_swa_avg_fn(), multi_avg_fn=ours.get_swa_multi_avg_fn()
    )
    with pytest.raises(AssertionError) as mine:
        ours.AveragedModel(make_model(None), **kwargs)
    with pytest.raises(AssertionError) as ref:
        theirs.AveragedModel(make_model(None), **kwargs)
    assert str(mine.value) == str(ref.value)


@pytest.mark.parametrize("name", ["get_ema_multi_avg_fn", "get_ema_avg_fn"])
@pytest.mark.parametrize("decay", [-0.1, 1.5])
def test_invalid_decay(name, decay):
    expected = raised(lambda: getattr(theirs, name)(decay))
    with pytest.raises(ValueError) as mine:
        getattr(ours, name)(decay)
    assert (ValueError, str(mine.value)) == expected


@pytest.mark.parametrize("name", ours.__all__)
def test_signature(name):
    target = getattr(ours, name)
    a = inspect.signature(target.__init__ if inspect.isclass(target) else target)
    b = inspect.signature(
        getattr(theirs, name).__init__
        if inspect.isclass(target)
        else getattr(theirs, name)
    )
    assert [(p.name, p.kind, p.default) for p in a.parameters.values()] == [
        (p.name, p.kind, p.default) for p in b.parameters.values()
    ]


def test_torch_swa_multi_rounds_its_weight_to_float32():
    """torch's get_swa_multi_avg_fn forms 1/(n+1) from the long counter as a float32 tensor, so its float64
    average is off the exact mean by about ε₃₂ relative; ours stays exact. Measured: within 30 · ε₃₂ of ours,
    and farther than 1000 ε₆₄ (so the float32 rounding, not ours, is the difference)."""
    model = make_model(None)
    a = ours.AveragedModel(model, multi_avg_fn=ours.get_swa_multi_avg_fn())
    b = theirs.AveragedModel(model, multi_avg_fn=theirs.get_swa_multi_avg_fn())
    c = theirs.AveragedModel(model)  # torch's default CPU path: the exact formula
    follow(model, [a, b, c], STEPS)
    assert_same_average(a, c)
    worst = max(mismatch(p, q).ulps for p, q in zip(a.parameters(), b.parameters()))
    assert (
        1000
        < worst
        < STEPS * torch.finfo(torch.float32).eps / torch.finfo(torch.float64).eps
    )


def test_integer_tensors_truncate_like_torch():
    """Integer tensors (num_batches_tracked under use_buffers): the EMA as torch's multi function; the equal
    average as torch's default CPU path (its per-tensor function copied back), since torch's
    ``get_swa_multi_avg_fn`` raises on integers (addcdiv refuses integer division)."""
    n, theta = torch.tensor(2), [torch.tensor([8, 1, 4])]
    a, b = [torch.tensor([3, 10, -7])], [torch.tensor([3, 10, -7])]
    ours.get_ema_multi_avg_fn(0.7)(a, theta, n)
    theirs.get_ema_multi_avg_fn(0.7)(b, theta, n)
    assert torch.equal(a[0], b[0])
    a, b = [torch.tensor([3, 10, -7])], torch.tensor([3, 10, -7])
    ours.get_swa_multi_avg_fn()(a, theta, n)
    b.copy_(theirs.get_swa_avg_fn()(b, theta[0], n))
    assert torch.equal(a[0], b)


# --- SWALR ---

SWALR_CASES = [
    ("cos-default", lambda o, L: L.SWALR(o, swa_lr=0.05)),
    (
        "linear",
        lambda o, L: L.SWALR(o, 0.01, anneal_epochs=20, anneal_strategy="linear"),
    ),
    ("cos-short", lambda o, L: L.SWALR(o, 0.2, anneal_epochs=3)),
    ("cos-one", lambda o, L: L.SWALR(o, 0.02, anneal_epochs=1)),
    ("cos-zero", lambda o, L: L.SWALR(o, 0.02, anneal_epochs=0)),
    ("linear-zero", lambda o, L: L.SWALR(o, 0.5, 0, "linear")),
    ("cos-per-group", lambda o, L: L.SWALR(o, [0.05, 0.001], anneal_epochs=25)),
    (
        "linear-per-group",
        lambda o, L: L.SWALR(o, (0.3, 0.01), anneal_epochs=7, anneal_strategy="linear"),
    ),
]
SWALR_IDS = [c[0] for c in SWALR_CASES]


@pytest.mark.parametrize("name, factory", SWALR_CASES, ids=SWALR_IDS)
def test_swalr_matches_torch(name, factory):
    a = run(factory, ours, torch.optim.SGD, 60)
    b = run(factory, theirs, torch.optim.SGD, 60)
    assert_traces_close(a, b, ulps=LR_ULPS, what=name)
    assert a.group_lr[-1] != a.group_lr[0] or a.group_lr[0] != [
        0.1,
        0.03,
    ]  # the rate moved


@pytest.mark.parametrize("name, factory", SWALR_CASES, ids=SWALR_IDS)
@pytest.mark.parametrize(
    "saver, loader",
    [(ours, ours), (ours, theirs), (theirs, ours)],
    ids=["ours-ours", "ours-torch", "torch-ours"],
)
def test_swalr_state_dict_resume(name, factory, saver, loader):
    straight, again = resumed(factory, saver, loader, torch.optim.SGD, 8)
    assert_traces_close(again, straight, ulps=LR_ULPS, what=name)


@pytest.mark.parametrize("name, factory", SWALR_CASES, ids=SWALR_IDS)
def test_swalr_state_dict_keys(name, factory):
    a = factory(two_group_optimizer(torch.optim.SGD), ours).state_dict()
    b = factory(two_group_optimizer(torch.optim.SGD), theirs).state_dict()
    # torch before 2.10 saves the annealing function itself (a bound method) instead of its name
    skip_unless_shown(
        repr(sorted(b)),
        "_anneal_strategy",
        "SWALR's annealing strategy by name in its state_dict",
    )
    assert sorted(a) == sorted(b)


def test_swalr_reaches_and_holds_swa_lr():
    """cos annealing: η_k = η_swa α_k + η_0 (1 − α_k), α_k = (1 − cos(π k / T)) / 2, then η_swa."""
    import math

    opt = two_group_optimizer(torch.optim.SGD, lrs=(0.1, 0.1))
    sched = ours.SWALR(opt, swa_lr=0.02, anneal_epochs=4)
    for k in range(1, 9):
        opt.step()
        sched.step()
        alpha = (1 - math.cos(math.pi * min(k, 4) / 4)) / 2
        assert abs(sched.get_last_lr()[0] - (0.02 * alpha + 0.1 * (1 - alpha))) < 1e-15


SWALR_ERRORS = [
    ("strategy", lambda o, L: L.SWALR(o, 0.05, anneal_strategy="exp")),
    ("epochs-negative", lambda o, L: L.SWALR(o, 0.05, anneal_epochs=-1)),
    ("epochs-float", lambda o, L: L.SWALR(o, 0.05, anneal_epochs=2.5)),
    ("swa_lr-length", lambda o, L: L.SWALR(o, [0.05, 0.01, 0.02])),
]


@pytest.mark.parametrize(
    "name, factory", SWALR_ERRORS, ids=[e[0] for e in SWALR_ERRORS]
)
def test_swalr_errors(name, factory):
    expected = raised(lambda: factory(two_group_optimizer(torch.optim.SGD), theirs))
    with pytest.raises(ValueError) as mine:
        factory(two_group_optimizer(torch.optim.SGD), ours)
    if name == "strategy" and "must be one of" not in expected[1]:
        pytest.skip(
            f"torch {torch.__version__} words this error differently: {expected[1]!r}"
        )
    assert (ValueError, str(mine.value)) == expected


def test_swalr_get_lr_outside_step_warns():
    sched = ours.SWALR(two_group_optimizer(torch.optim.SGD), 0.05)
    with pytest.warns(UserWarning, match="get_last_lr"):
        sched.get_lr()


# --- update_bn ---


def loader_of(kind: str, batches: int = 4, rows: int = 32) -> list:
    g = torch.Generator().manual_seed(7)
    xs = [
        2 + 3 * torch.randn(rows, 5, generator=g, dtype=torch.float64)
        for _ in range(batches)
    ]
    return xs if kind == "tensors" else [(x, torch.zeros(rows)) for x in xs]


def trained(norm: str) -> nn.Module:
    model = make_model(norm)
    follow(model, [], 5)
    return model


@pytest.mark.parametrize("kind", ["tensors", "pairs"])
@pytest.mark.parametrize("norm", ["torch", "ours"])
@pytest.mark.parametrize("training", [True, False])
def test_update_bn_matches_torch(kind, norm, training):
    """The running statistics after one pass equal torch's update_bn on the same weights (torch's BatchNorm)."""
    model = trained(norm)
    reference = make_model("torch")
    reference.load_state_dict(model.state_dict())
    model.train(training), reference.train(training)
    ours.update_bn(loader_of(kind), model)
    theirs.update_bn(loader_of(kind), reference)
    bn, ref_bn = model[1], reference[1]
    for key in ("running_mean", "running_var"):
        assert_close(getattr(bn, key), getattr(ref_bn, key), ulps=BN_ULPS, what=key)
    assert int(bn.num_batches_tracked) == int(ref_bn.num_batches_tracked) == 4
    assert bn.momentum == 0.1 and model.training == training


def test_update_bn_is_the_cumulative_average():
    """momentum=None: the running mean is the mean of the batch means."""
    model = nn.Sequential(cnn.BatchNorm1d(5, momentum=0.3)).double()
    loader = loader_of("tensors")
    ours.update_bn(loader, model)
    assert_close(
        model[0].running_mean,
        torch.stack([x.mean(0) for x in loader]).mean(0),
        ulps=BN_ULPS,
    )
    assert model[0].momentum == 0.3


def test_update_bn_without_batch_norm_does_nothing():
    model = make_model(None).eval()
    before = copy.deepcopy(model.state_dict())

    def never():
        raise AssertionError("the loader was read")
        yield

    ours.update_bn(never(), model)
    assert not model.training and all(
        torch.equal(v, before[k]) for k, v in model.state_dict().items()
    )
