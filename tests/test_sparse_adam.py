"""companion.optim.SparseAdam against torch.optim.SparseAdam on embedding-style sparse gradients.

The shared suite :class:`~companion.testing.optim_suite.OptimizerContract` trains with dense gradients, which
SparseAdam refuses, so this file calls the checks of :mod:`companion.testing.optim_contract` that apply
(``check_signature``, ``check_invalid``, ``check_sparse_gradients``) and writes the others (replay, state_dict
round trip, state, missing gradient, closure, loss, scheduler, CUDA) for sparse gradients.

Tolerance: each step is the same few elementwise operations as torch's, in torch's order, so the two agree
to a few ε per step (measured: 0); over 100 steps we allow the contract's replay bound, ``REPLAY_ULPS`` = 2¹² ε
of each tensor's own scale, far below what a wrong update gives (a missing bias correction: ~10¹⁴ ε).
"""

import copy

import pytest
import torch
import torch.nn.functional as F

from companion.optim.sparse_adam import (
    DENSE_GRADIENT_MESSAGE,
    SparseAdam,
    sparse_adam_step,
)
from companion.testing import optim_contract as contract
from companion.testing.installed_torch import (
    raised,
    skip_unless_supported,
    skip_unless_worded,
)
from companion.testing.parity import max_abs_diff, state_diff
from companion.testing.tolerances import assert_close, eps

OURS, THEIRS = SparseAdam, torch.optim.SparseAdam
BOUND = contract.REPLAY_ULPS * eps(torch.float64)
VOCAB, UNTOUCHED, DIM = (
    50,
    10,
    4,
)  # rows VOCAB − UNTOUCHED .. VOCAB − 1 are never looked up

CASES = [
    dict(),  # torch's defaults
    dict(lr=0.01),
    dict(lr=0.1),
    dict(lr=1e-4),
    dict(lr=0.01, betas=(0.5, 0.9)),
    dict(lr=0.01, betas=(0.0, 0.99)),  # no first-moment memory: m_S = g_S
    dict(lr=0.01, betas=(0.95, 0.9999)),
    dict(lr=0.01, eps=1e-3),  # ε comparable to √v: the step shrinks
    dict(lr=0.01, eps=1e-12),
    dict(lr=0.01, maximize=True),
    dict(lr=0.05, betas=(0.8, 0.95), eps=1e-4, maximize=True),
    dict(
        lr=torch.tensor(0.01), betas=(0.8, 0.95)
    ),  # a 0-dim tensor lr: the step size rounds in float32
    dict(lr=torch.tensor([0.01])),
]
INVALID = [
    dict(lr=0.0),
    dict(lr=-1e-3),
    dict(eps=0.0),
    dict(eps=-1e-8),
    dict(betas=(1.0, 0.999)),
    dict(betas=(-0.1, 0.999)),
    dict(betas=(0.9, 1.0)),
    dict(lr=torch.tensor([0.1, 0.2])),
]


def _id(options) -> str:
    return "-".join(f"{k}={v}" for k, v in options.items()) or "defaults"


def _skip_unless_torch_takes(options):
    """An older torch's own SparseAdam may not take a tensor lr: skip the comparison there."""

    def one_step():
        p = torch.zeros(3, 2, dtype=torch.float64, requires_grad=True)
        F.embedding(torch.tensor([0]), p, sparse=True).sum().backward()
        THEIRS([p], **copy.deepcopy(options)).step()

    skip_unless_supported(one_step, f"SparseAdam with {_id(options)}")


def _batches(steps, seed=0, batch=8):
    """Index batches drawn from the first VOCAB − UNTOUCHED rows, each with its first index repeated at its end."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, VOCAB - UNTOUCHED, (steps, batch), generator=gen)
    idx[:, -1] = idx[:, 0]
    return idx


def _problem(seed=0, dtype=torch.float64, device="cpu"):
    """Two embedding tables and a regression target per row."""
    gen = torch.Generator().manual_seed(seed)
    tables = [
        torch.randn(VOCAB, DIM, generator=gen, dtype=torch.float64)
        .to(device, dtype)
        .requires_grad_()
        for _ in range(2)
    ]
    return tables, torch.randn(VOCAB, DIM, generator=gen, dtype=torch.float64).to(
        device, dtype
    )


def _train(opt, tables, target, batches, sched=None):
    """One step per index batch on the squared error of the looked-up rows (sparse gradients); the losses."""
    losses = []
    for idx in batches.to(target.device):
        opt.zero_grad()
        loss = sum(
            ((F.embedding(idx, w, sparse=True) - target[idx]) ** 2).sum()
            for w in tables
        )
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(loss.item())
    return losses


def _run(
    cls,
    options,
    steps=100,
    seed=0,
    groups=None,
    scheduler=None,
    dtype=torch.float64,
    device="cpu",
):
    """Embedding regression with sparse gradients on two tables (a second group with ``groups`` overriding the
    options), the same batches and targets for either class. Returns the optimizer, the tables and the losses."""
    tables, target = _problem(seed, dtype, device)
    opt = cls(
        [{"params": tables[:1]}, {"params": tables[1:], **(groups or {})}],
        **copy.deepcopy(options),
    )
    losses = _train(
        opt,
        tables,
        target,
        _batches(steps, seed),
        scheduler(opt) if scheduler else None,
    )
    return opt, tables, losses


def _assert_runs_close(a, b, bound=BOUND):
    (opt_a, tables_a, _), (opt_b, tables_b, _) = a, b
    d_param = max_abs_diff(tables_a, tables_b, relative=True)
    d_state = state_diff(opt_a, opt_b, relative=True)
    assert d_param <= bound and d_state <= bound, (
        f"relative difference {d_param:.3g} (parameters), {d_state:.3g} (state)"
    )


@pytest.mark.parametrize("options", CASES, ids=_id)
def test_embedding_parity_with_torch(options):
    """100 steps of embedding lookups with repeated indices, two groups: parameters and state within the bound."""
    _skip_unless_torch_takes(options)
    _assert_runs_close(_run(OURS, options), _run(THEIRS, options))


@pytest.mark.parametrize(
    "options", [dict(lr=0.05), dict(lr=0.05, betas=(0.5, 0.9), maximize=True)], ids=_id
)
def test_groups_and_scheduler_like_torch(options):
    """A second group with its own lr and betas, and StepLR editing the lr between steps."""
    sched = lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.5)
    group = dict(lr=0.02, betas=(0.7, 0.99))
    _assert_runs_close(
        _run(OURS, options, groups=group, scheduler=sched),
        _run(THEIRS, options, groups=group, scheduler=sched),
    )


@pytest.mark.parametrize("options", CASES[:3] + CASES[-3:-1], ids=_id)
def test_untouched_rows_stay_exactly_unchanged(options):
    """Rows never looked up are never written: their values equal the initial ones bit for bit (ulps = 0, no
    arithmetic touches them), and their moments stay exactly 0."""
    opt, tables, _ = _run(OURS, options, steps=30)
    initial = _run(OURS, options, steps=0)[1]
    for w, w0 in zip(tables, initial):
        state = opt.state[w]
        assert torch.equal(w.detach()[-UNTOUCHED:], w0.detach()[-UNTOUCHED:])
        assert (
            not state["exp_avg"][-UNTOUCHED:].any()
            and not state["exp_avg_sq"][-UNTOUCHED:].any()
        )
        assert (w.detach()[:-UNTOUCHED] != w0.detach()[:-UNTOUCHED]).any(), (
            "the looked-up rows should move"
        )


def test_moments_of_a_row_do_not_decay_while_it_is_not_looked_up():
    """Lazy Adam: row 0's moments after step 1 are kept bit for bit through steps that touch only row 1 (Adam
    would multiply them by β₁, β₂ at every step)."""
    w = torch.zeros(3, 2, dtype=torch.float64, requires_grad=True)
    opt = OURS([w], lr=0.1)
    for k, row in enumerate([0, 1, 1, 1]):
        opt.zero_grad()
        F.embedding(torch.tensor([row]), w, sparse=True).sum().backward()
        opt.step()
        if k == 0:
            after_first = {
                key: opt.state[w][key][0].clone() for key in ("exp_avg", "exp_avg_sq")
            }
            row0 = w.detach()[0].clone()
    assert opt.state[w]["step"] == 4
    for key, value in after_first.items():
        assert torch.equal(opt.state[w][key][0], value), key
    assert torch.equal(w.detach()[0], row0)


def test_repeated_indices_first_step_by_hand():
    """Row 2 looked up 3 times gets the summed gradient g = 3c. From m = v = 0 the first step is
    γ √(1 − β₂) g / (√(1 − β₂) |g| + ε), about γ sign(g); a handful of roundings: within 8 ε of γ."""
    lr, beta1, beta2, eps_ = 0.1, 0.9, 0.999, 1e-3
    c = torch.tensor([0.5, -2.0, 1e-4], dtype=torch.float64)
    w = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)
    (F.embedding(torch.tensor([2, 0, 2, 2]), w, sparse=True) * c).sum().backward()
    state = {}
    with torch.no_grad():
        sparse_adam_step(
            w, w.grad, state, lr=lr, beta1=beta1, beta2=beta2, eps=eps_, maximize=False
        )
    g = 3 * c
    root = (1 - beta2) ** 0.5
    expected_row2 = -lr * root * g / (root * g.abs() + eps_)
    assert_close(w.detach()[2], expected_row2, ulps=8, scale=lr)
    assert_close(
        w.detach()[0], -lr * root * c / (root * c.abs() + eps_), ulps=8, scale=lr
    )
    assert not w.detach()[[1, 3]].any() and state["step"] == 1


def test_dense_gradient_is_refused_like_torch():
    """A dense gradient raises torch's RuntimeError, word for word."""

    def step(cls):
        p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
        p.grad = torch.ones_like(p)
        cls([p]).step()

    theirs = raised(lambda: step(THEIRS))
    skip_unless_worded(theirs, "does not support dense gradients", "a dense gradient")
    assert (
        raised(lambda: step(OURS)) == theirs == (RuntimeError, DENSE_GRADIENT_MESSAGE)
    )


@pytest.mark.parametrize("kind", ["sparse", "complex"])
def test_sparse_or_complex_params_are_refused_like_torch(kind):
    """torch names the refused parameters by [group, index]: the same ValueError."""
    odd = (
        torch.zeros(3, 2, dtype=torch.float64).to_sparse().requires_grad_()
        if kind == "sparse"
        else torch.zeros(3, dtype=torch.complex128, requires_grad=True)
    )
    dense = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    groups = lambda: [
        {"params": [dense]},
        {"params": [torch.zeros(2, requires_grad=True), odd]},
    ]
    theirs = raised(lambda: THEIRS(groups()))
    skip_unless_worded(
        theirs, f"{kind.capitalize()} params at indices", f"{kind} parameters"
    )
    assert raised(lambda: OURS(groups())) == theirs
    assert "[[1, 1]]" in theirs[1]


def test_signature():
    contract.check_signature(OURS, THEIRS)


@pytest.mark.parametrize("options", INVALID, ids=_id)
def test_invalid(options):
    if isinstance(
        options.get("lr"), torch.Tensor
    ):  # an older torch may compare the tensor before checking its size
        theirs = raised(lambda: THEIRS([torch.zeros(2, requires_grad=True)], **options))
        skip_unless_worded(
            theirs, "Tensor lr must be 1-element", "a 2-element tensor lr"
        )
    contract.check_invalid(OURS, THEIRS, options)


@pytest.mark.parametrize("options", CASES[::2], ids=_id)
def test_contract_sparse_gradients(options):
    """The contract's own sparse check (an nn.Embedding, rows repeated and absent)."""
    _skip_unless_torch_takes(options)
    contract.check_sparse_gradients(OURS, THEIRS, options, steps=20)


@pytest.mark.parametrize("options", CASES[::3], ids=_id)
def test_state_dict_round_trip_both_ways(options):
    """Save after 20 steps, continue 20: resuming in a fresh optimizer of either class, from either class's
    state_dict, equals the uninterrupted run; the state keeps torch's keys, with ``step`` a Python int."""
    _skip_unless_torch_takes(options)
    batches = _batches(40)
    for saver in (OURS, THEIRS):
        full, tables_full, _ = _run(saver, options, steps=40)
        opt, tables, _ = _run(saver, options, steps=20)
        saved, saved_tables = (
            copy.deepcopy(opt.state_dict()),
            [w.detach().clone() for w in tables],
        )
        for s in saved["state"].values():
            assert type(s["step"]) is int and set(s) == {
                "step",
                "exp_avg",
                "exp_avg_sq",
            }
        for loader in (OURS, THEIRS):
            tables_b, target = _problem()
            with torch.no_grad():
                for w, w0 in zip(tables_b, saved_tables):
                    w.copy_(w0)
            opt_b = loader(
                [{"params": tables_b[:1]}, {"params": tables_b[1:]}],
                **copy.deepcopy(options),
            )
            opt_b.load_state_dict(copy.deepcopy(saved))
            _train(opt_b, tables_b, target, batches[20:])
            diff = max(
                max_abs_diff(tables_b, tables_full, relative=True),
                state_diff(opt_b, full, relative=True),
            )
            assert diff <= BOUND, (
                f"{saver.__name__} → {loader.__name__}: relative difference {diff:.3g}"
            )
            assert (
                opt_b.state_dict()["param_groups"][0].keys()
                == full.state_dict()["param_groups"][0].keys()
            )
            assert type(opt_b.state[tables_b[0]]["step"]) is int


@pytest.mark.parametrize(
    "options", [dict(), dict(lr=0.1, betas=(0.5, 0.9), maximize=True)], ids=_id
)
def test_state_like_torch(options):
    """Under either default dtype: torch's keys, ``step`` the same int, the moments of torch's dtype and shape."""
    previous = torch.get_default_dtype()
    try:
        for default_dtype in (torch.float32, torch.float64):
            torch.set_default_dtype(default_dtype)
            a, b = (_run(cls, options, steps=5)[0] for cls in (OURS, THEIRS))
            for p, q in zip(a.param_groups[0]["params"], b.param_groups[0]["params"]):
                s, t = a.state[p], b.state[q]
                assert (
                    set(s) == set(t)
                    and type(s["step"]) is type(t["step"]) is int
                    and s["step"] == t["step"] == 5
                )
                for key in ("exp_avg", "exp_avg_sq"):
                    assert (s[key].dtype, s[key].shape) == (t[key].dtype, t[key].shape)
            assert state_diff(a, b, relative=True) <= BOUND
    finally:
        torch.set_default_dtype(previous)


def test_missing_grad_is_noop():
    """A table without a gradient is left alone and gets no state; the other is stepped."""
    tables, target = _problem()
    before = tables[1].detach().clone()
    opt = OURS(tables, lr=0.1)
    for idx in _batches(3):
        opt.zero_grad()
        ((F.embedding(idx, tables[0], sparse=True) - target[idx]) ** 2).sum().backward()
        opt.step()
    assert (
        torch.equal(tables[1].detach(), before)
        and len(opt.state.get(tables[1], {})) == 0
    )
    assert opt.state[tables[0]]["step"] == 3


def test_empty_gradient_counts_a_step_like_torch():
    """A sparse gradient with no entries changes nothing but the step count, as in torch."""
    results = []
    for cls in (OURS, THEIRS):
        w = torch.randn(
            5,
            3,
            dtype=torch.float64,
            generator=torch.Generator().manual_seed(0),
            requires_grad=True,
        )
        before = w.detach().clone()
        opt = cls([w])
        no_rows, no_values = (
            torch.zeros(1, 0, dtype=torch.long),
            torch.zeros(0, 3, dtype=torch.float64),
        )
        w.grad = torch.sparse_coo_tensor(
            no_rows, no_values, (5, 3), check_invariants=True
        )
        opt.step()
        assert torch.equal(w.detach(), before) and not opt.state[w]["exp_avg"].any()
        results.append(opt.state[w]["step"])
    assert results == [1, 1]


@pytest.mark.parametrize(
    "options",
    [dict(lr=0.05), dict(lr=0.05, betas=(0.0, 0.9), eps=1e-4, maximize=True)],
    ids=_id,
)
def test_fully_sparse_gradient_like_torch(options):
    """A gradient sparse in both dimensions (single entries of a matrix, some repeated within a step): 50 steps."""
    gen = torch.Generator().manual_seed(1)
    init = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    grads = []
    for _ in range(50):
        idx = torch.randint(0, 5, (2, 7), generator=gen)
        idx[:, -1] = idx[:, 0]  # a repeated entry, summed by coalescing
        grads.append(
            torch.sparse_coo_tensor(
                idx,
                torch.randn(7, generator=gen, dtype=torch.float64),
                (6, 5),
                check_invariants=True,
            )
        )
    runs = []
    for cls in (OURS, THEIRS):
        w = init.clone().requires_grad_()
        opt = cls([w], **options)
        for g in grads:
            w.grad = g.clone()
            opt.step()
        runs.append((opt, w))
    assert max_abs_diff(runs[0][1], runs[1][1], relative=True) <= BOUND
    assert state_diff(runs[0][0], runs[1][0], relative=True) <= BOUND
    assert torch.equal(runs[0][1].detach()[5], init[5])  # row 5 is never drawn


def test_closure_returns_loss_like_torch():
    """``step(closure)`` returns the closure's loss and takes torch's step."""
    results = []
    for cls in (OURS, THEIRS):
        tables, target = _problem()
        opt = cls(tables[:1], lr=0.1)
        idx = _batches(1)[0]

        def closure():
            opt.zero_grad()
            loss = ((F.embedding(idx, tables[0], sparse=True) - target[idx]) ** 2).sum()
            loss.backward()
            return loss

        results.append((opt.step(closure).item(), tables[0].detach()))
    assert results[0][0] == results[1][0]
    assert max_abs_diff(results[0][1], results[1][1], relative=True) <= BOUND


@pytest.mark.parametrize("maximize", [False, True])
def test_loss_falls_or_rises_with_maximize(maximize):
    """Over 60 steps with γ = 0.2 the embedding regression's loss, averaged over the first and the last 10
    batches, falls by more than half (measured: 117 → 26); with maximize=True it rises (measured: 155 → 613)."""
    losses = _run(OURS, dict(lr=0.2, maximize=maximize), steps=60)[2]
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert (last > 2 * first) if maximize else (last < 0.5 * first), (first, last)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_float32_like_torch():
    """On CUDA in float32 the two agree within the contract's loose CUDA bound (2¹⁰ float32 ε of each scale)."""
    options = dict(lr=0.05, betas=(0.8, 0.99))
    a = _run(OURS, options, steps=30, dtype=torch.float32, device="cuda")
    b = _run(THEIRS, options, steps=30, dtype=torch.float32, device="cuda")
    assert (
        a[1][0].device.type == "cuda"
        and a[0].state[a[1][0]]["exp_avg"].device.type == "cuda"
    )
    _assert_runs_close(a, b, bound=contract.CUDA_ULPS * eps(torch.float32))
