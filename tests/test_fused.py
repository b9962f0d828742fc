"""fused=True: the Triton kernels of companion.optim.fused against torch's fused Adam, AdamW and SGD.

On a CPU the kernels run in Triton's interpreter; torch ≥ 2.4 has CPU fused kernels to compare with.
"""

import pytest
import torch

from companion.optim import SGD, Adam, AdamW, fused
from companion.testing.optim_contract import (
    FAST_PATH_ULPS,
    check_fast_path,
    check_fast_path_round_trip,
    check_missing_grad_is_noop,
)
from companion.testing.parity import max_abs_diff, replay_gradients
from companion.testing.tolerances import eps

pytestmark = pytest.mark.skipif(
    fused.fused_unavailable_reason() is not None,
    reason=str(fused.fused_unavailable_reason()),
)

DTYPES = (torch.float64, torch.float32, torch.bfloat16)
ADAM = [
    {},
    {"amsgrad": True},
    {"weight_decay": 0.1},
    {"weight_decay": 0.1, "decoupled_weight_decay": True},
    {"maximize": True},
    {
        "lr": 0.05,
        "betas": (0.3, 0.99),
        "eps": 1e-3,
    },  # 1 − β₁ ≥ ½: the other form of the lerp
    {
        "lr": 0.05,
        "betas": (0.8, 0.95),
        "eps": 1e-4,
        "weight_decay": 0.1,
        "amsgrad": True,
        "maximize": True,
        "decoupled_weight_decay": True,
    },
]
ADAMW = [{}, {"lr": 0.05, "weight_decay": 0.1, "amsgrad": True, "maximize": True}]
SGD_CASES = [
    {"lr": 0.1},
    {"lr": 0.1, "momentum": 0.9},
    {"lr": 0.1, "momentum": 0.9, "nesterov": True},
    {"lr": 0.1, "momentum": 0.9, "dampening": 0.5},
    {"lr": 0.1, "weight_decay": 0.1},
    {"lr": 0.1, "maximize": True},
    {
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 0.1,
        "maximize": True,
        "nesterov": True,
    },
]
CASES = (
    [(Adam, torch.optim.Adam, o) for o in ADAM]
    + [(AdamW, torch.optim.AdamW, o) for o in ADAMW]
    + [(SGD, torch.optim.SGD, o) for o in SGD_CASES]
)
IDS = [
    f"{ours.__name__}-" + ("-".join(f"{k}={v}" for k, v in o.items()) or "defaults")
    for ours, _, o in CASES
]


STEPS = 12  # each step is a launch in Triton's interpreter (≈ 4 ms a block): fewer than FAST_PATH_STEPS


@pytest.mark.parametrize("ours, theirs, options", CASES, ids=IDS)
def test_fused_like_torch(ours, theirs, options):
    for dtype in DTYPES:
        if options.get("momentum"):
            # torch's fused SGD fails (TypeError) on a buffer created after the first step, which the replay's
            # missing gradient at step 0 causes: every gradient is given here
            d_param, d_state = replay_gradients(
                ours,
                theirs,
                {**options, "fused": True},
                steps=STEPS,
                relative=True,
                dtype=dtype,
            )
            bound = FAST_PATH_ULPS[dtype] * eps(dtype)
            assert d_param <= bound and d_state <= bound, (d_param, d_state, bound)
        else:
            check_fast_path(ours, theirs, options, "fused", dtype, steps=STEPS)


@pytest.mark.parametrize("ours, theirs, options", CASES, ids=IDS)
def test_fused_state_dict(ours, theirs, options):
    check_fast_path_round_trip(ours, theirs, options, "fused")


def _params(shapes, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(s, generator=g, dtype=torch.float64).to(dtype).requires_grad_()
        for s in shapes
    ]


def _run(cls, params, options, steps=4, seed=1):
    """``steps`` steps on ``params`` with seeded random gradients; returns the optimizer."""
    opt = cls(params, **options)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype)
        opt.step()
    return opt


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 8 elements on the CPU, so that small tensors span several blocks and end inside one."""
    monkeypatch.setitem(fused.BLOCK, "cpu", 8)


@pytest.mark.parametrize(
    "ours, theirs, options",
    [
        (Adam, torch.optim.Adam, {"lr": 0.1, "amsgrad": True}),
        (SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    ],
)
def test_sizes_and_shapes(small_blocks, ours, theirs, options):
    """A scalar, an empty tensor, sizes below, at and past a block (none a multiple but 8); then a transposed
    matrix with a contiguous gradient, against torch's per-tensor path (torch 2.13's fused path walks the
    gradient's memory in the parameter's order, and is off by ~0.1 relative there)."""
    shapes = [(), (0,), (5,), (8,), (3, 7), (2, 3, 5)]
    for dtype in (torch.float64, torch.float32):
        for reference, a, b in (
            ({"fused": True}, _params(shapes, dtype), _params(shapes, dtype)),
            (
                {"foreach": False},
                *[[torch.ones(3, 5, dtype=dtype).t().requires_grad_()]] * 2,
            ),
        ):
            b = [
                p.detach().clone(memory_format=torch.preserve_format).requires_grad_()
                for p in b
            ]
            _run(ours, a, {**options, "fused": True})
            _run(theirs, b, {**options, **reference})
            diff = max_abs_diff(a, b, relative=True)
            assert diff <= 8 * eps(dtype), (
                f"{dtype}: relative difference {diff:.3g} from torch's {reference}"
            )


def test_one_launch_per_bucket(monkeypatch):
    """One kernel launch per (device, dtype) bucket and step, whatever the number of tensors."""
    launches = []
    launch = fused.launch

    def counted(kernel, *args, **kwargs):
        launches.append(kernel)
        launch(kernel, *args, **kwargs)

    monkeypatch.setattr(fused, "launch", counted)
    params = _params([(3,), (4, 2), (0,), (5,)], torch.float32) + _params(
        [(2,), (3,)], torch.float64
    )
    _run(Adam, params, {"fused": True}, steps=3)
    assert launches == [fused.adam_kernel] * 6, (
        f"{len(launches)} launches for 3 steps of 2 buckets"
    )
    launches.clear()
    _run(
        SGD,
        _params([(3,), (4, 2)], torch.float32),
        {"lr": 0.1, "momentum": 0.9, "fused": True},
        steps=3,
    )
    assert launches == [fused.sgd_kernel] * 3, (
        f"{len(launches)} launches for 3 steps of 1 bucket"
    )


def test_bfloat16_state_and_step_like_torch():
    """bfloat16 parameters keep bfloat16 state and a float32 step on their device, as torch's fused path does;
    the parameters move, and equal torch's."""
    a, b = (
        _params([(4, 3), (7,)], torch.bfloat16),
        _params([(4, 3), (7,)], torch.bfloat16),
    )
    start = [p.detach().clone() for p in a]
    ours = _run(Adam, a, {"lr": 0.05, "fused": True})
    theirs = _run(torch.optim.Adam, b, {"lr": 0.05, "fused": True})
    assert all(not torch.equal(p, q) for p, q in zip(a, start)), (
        "bfloat16 parameters did not move"
    )
    for p, q in zip(a, b):
        s, t = ours.state[p], theirs.state[q]
        assert {k: (v.dtype, v.device) for k, v in s.items()} == {
            k: (v.dtype, v.device) for k, v in t.items()
        }
        assert (
            torch.equal(p, q)
            and torch.equal(s["exp_avg"], t["exp_avg"])
            and torch.equal(s["step"], t["step"])
        )


def test_tensor_lr():
    """A 1-element tensor lr, as torch's fused path takes it."""
    a, b = (
        _params([(4, 3), (5,)], torch.float32),
        _params([(4, 3), (5,)], torch.float32),
    )
    _run(Adam, a, {"lr": torch.tensor(0.02), "fused": True})
    _run(torch.optim.Adam, b, {"lr": torch.tensor(0.02), "fused": True})
    diff = max_abs_diff(a, b, relative=True)
    assert diff <= 8 * eps(torch.float32), f"tensor lr: relative difference {diff:.3g}"


@pytest.mark.parametrize(
    "ours, options", [(Adam, {"fused": True}), (SGD, {"momentum": 0.9, "fused": True})]
)
def test_missing_grad_is_noop(ours, options):
    check_missing_grad_is_noop(ours, options)


def test_sgd_buffer_created_after_the_first_step():
    """A tensor whose first gradient comes after the group's first step starts its buffer with b_1 = g_1, as
    the per-tensor path does (torch's fused path raises a TypeError there)."""
    runs = []
    for fused_path in (True, False):
        a, b = _params([(3,), (4,)], torch.float64)
        opt = SGD([a, b], lr=0.1, momentum=0.9, dampening=0.3, fused=fused_path)
        for t in range(4):
            a.grad = torch.full_like(a, 1.0 + t)
            b.grad = None if t == 0 else torch.full_like(b, 2.0 - t)
            opt.step()
        runs.append((a.detach(), b.detach(), opt.state[b]["momentum_buffer"]))
    diff = max(max_abs_diff(x, y, relative=True) for x, y in zip(*runs))
    assert diff <= 4 * eps(torch.float64), (
        f"a late first gradient: relative difference {diff:.3g} from sgd_step"
    )


@pytest.mark.parametrize("cls", [Adam, SGD])
def test_integer_tensor_is_refused_like_torch(cls):
    p = torch.zeros(3, dtype=torch.int64)
    p.grad = torch.ones(3, dtype=torch.int64)
    with pytest.raises(RuntimeError) as torch_error:
        getattr(torch.optim, cls.__name__)([p], lr=0.1, fused=True).step()
    with pytest.raises(RuntimeError) as our_error:
        cls([p], lr=0.1, fused=True).step()
    want = str(torch_error.value).replace(
        str(torch.utils._foreach_utils._get_fused_kernels_supported_devices()),
        str(fused.SUPPORTED_DEVICES),
    )
    assert (
        str(our_error.value)
        == want
        == (
            "`fused=True` requires all the params to be floating point Tensors of "
            "supported devices: ['cuda', 'cpu'] but torch.int64 and cpu"
        )
    )
