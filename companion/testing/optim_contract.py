"""The contract every companion optimizer meets against its torch namesake, written once.

The ``check_*`` functions raise ``AssertionError`` with the measured difference when the contract is
broken; the tests and the coursework grader call the same functions.
:class:`companion.testing.optim_suite.OptimizerContract` is the test suite built from them: an
optimizer's test file subclasses it and fills in its tables.

Tolerances (float64, relative to each tensor's own magnitude, in units of ε = 2.2e-16): one step of an
update is a handful of correctly rounded operations written in torch's order, so the two runs agree to
a few ε per step; over ``steps`` steps the differences add up, and in a closed loop they are also fed
back through the gradients. ``REPLAY_ULPS`` (200 replayed steps) and ``CLOSED_LOOP_ULPS`` (25 steps of
training, where the model's Jacobian amplifies each difference) leave a wide margin above the
measured 0–4 ε, yet far below what a wrong formula produces (ε inside instead of outside the root: ~10⁹ ε;
a missing bias correction: ~10¹⁴ ε; ``tests/test_tolerances.py`` shows both fail).
"""

import copy
import inspect

import torch
from torch import nn

from companion.testing.parity import (
    compare_optimizers,
    max_abs_diff,
    replay_gradients,
    state_diff,
)
from companion.testing.tolerances import eps

REPLAY_ULPS = 2**12  # ≈ 9e-13 relative
CLOSED_LOOP_ULPS = 2**19  # ≈ 1.2e-10 relative
CUDA_ULPS = 2**10  # float32 on a GPU, whose kernels reorder sums: ≈ 1.2e-4 relative
# A fast path against torch's same path, in units of the dtype's ε: float64 as REPLAY_ULPS; in float32
# and bfloat16 each step rounds every stored number (θ, m, v) to the dtype, and two kernels that order their
# operations differently round differently. Measured over FAST_PATH_STEPS replayed steps (torch 2.13's CPU
# fused kernels against ours, tests/test_fused.py): at most 3.6 ε in float32 and 1.03 ε in bfloat16 (whose
# ε is 2⁻⁷); the bounds leave a margin of about 8 and stay far below a wrong formula's error
FAST_PATH_ULPS = {torch.float64: REPLAY_ULPS, torch.float32: 2**5, torch.bfloat16: 2**3}
FAST_PATH_STEPS = 30


def _bound(ulps: float, dtype=torch.float64) -> float:
    return ulps * eps(dtype)


def check_signature(ours, theirs) -> None:
    """Same parameter names, order, kinds and defaults as torch's constructor."""
    a, b = inspect.signature(ours.__init__), inspect.signature(theirs.__init__)
    got = [(p.name, p.kind, p.default) for p in a.parameters.values()]
    want = [(p.name, p.kind, p.default) for p in b.parameters.values()]
    assert got == want, f"signature differs from torch's:\n  ours:  {a}\n  torch: {b}"


def check_closed_loop(ours, theirs, options, steps=25) -> None:
    """Float64 closed loop on a small MLP with two parameter groups (the first with half the lr)."""
    group = {
        "lr": options.get(
            "lr", theirs([torch.zeros(1, requires_grad=True)]).defaults["lr"]
        )
        / 2
    }
    diff = compare_optimizers(
        ours, theirs, options, steps=steps, group_options=group, relative=True
    )
    assert diff <= _bound(CLOSED_LOOP_ULPS), (
        f"closed loop: relative difference {diff:.3g} from torch"
    )


def check_replay(ours, theirs, options, steps=200) -> None:
    """A fixed gradient sequence, with one parameter missing its gradient every third step."""
    d_param, d_state = replay_gradients(
        ours, theirs, options, steps=steps, missing_every=3, relative=True
    )
    assert d_param <= _bound(REPLAY_ULPS) and d_state <= _bound(REPLAY_ULPS), (
        f"replayed gradients: relative difference {d_param:.3g} in the parameters, {d_state:.3g} in the state"
    )


def _problem(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    g = torch.Generator().manual_seed(seed)
    X, y = (
        torch.randn(16, 4, generator=g, dtype=torch.float64),
        torch.randn(16, 2, generator=g, dtype=torch.float64),
    )
    return model, X, y


def _train(model, opt, X, y, steps, sign=1.0):
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = sign * ((model(X) - y) ** 2).mean()
        (
            sign * loss
        ).backward()  # the gradient of the plain loss; ``sign`` only flips what we record
        opt.step()
        losses.append(sign * loss.item())
    return losses


def check_state_dict_round_trip(
    ours, theirs, options, steps=10, ulps=REPLAY_ULPS
) -> None:
    """save → load → continue equals the uninterrupted run; and state_dicts move between ours and torch's."""
    model_a, X, y = _problem()
    opt_a = ours(model_a.parameters(), **options)
    _train(model_a, opt_a, X, y, steps)
    saved_model, saved_opt = (
        copy.deepcopy(model_a.state_dict()),
        copy.deepcopy(opt_a.state_dict()),
    )
    _train(model_a, opt_a, X, y, steps)  # the uninterrupted run

    for cls in (ours, theirs):  # resume into a fresh optimizer of either class
        model_b, _, _ = _problem()
        model_b.load_state_dict(saved_model)
        opt_b = cls(model_b.parameters(), **options)
        opt_b.load_state_dict(
            copy.deepcopy(saved_opt)
        )  # loading keeps (aliases) the saved tensors
        _train(model_b, opt_b, X, y, steps)
        diff = max_abs_diff(model_a.parameters(), model_b.parameters(), relative=True)
        assert diff <= _bound(ulps), (
            f"resumed in {cls.__module__}.{cls.__name__}: relative difference {diff:.3g}"
        )

    # the same keys in param_groups and in the per-parameter state as torch
    model_t, _, _ = _problem()
    opt_t = theirs(model_t.parameters(), **options)
    _train(model_t, opt_t, X, y, steps)
    ours_sd, torch_sd = opt_a.state_dict(), opt_t.state_dict()
    assert set(ours_sd["param_groups"][0]) == set(torch_sd["param_groups"][0]), (
        "param_group keys differ from torch's"
    )
    assert ours_sd["state"].keys() == torch_sd["state"].keys(), (
        "state entries differ from torch's"
    )
    for k in torch_sd["state"]:
        assert set(ours_sd["state"][k]) == set(torch_sd["state"][k]), (
            f"state keys {sorted(ours_sd['state'][k])} differ from torch's {sorted(torch_sd['state'][k])}"
        )


def check_fast_path(
    ours,
    theirs,
    options,
    path: str,
    dtype=torch.float64,
    steps=FAST_PATH_STEPS,
    device=None,
    missing_every: int = 3,
) -> None:
    """``path`` ("foreach" or "fused") switched on for both ours and torch's: the same replayed gradients
    (one parameter missing its gradient every ``missing_every``-th step, so the tensors' step counts differ), in
    ``dtype``; parameters and state within ``FAST_PATH_ULPS[dtype]`` of torch's, each against its scale."""
    options = {**options, path: True}
    d_param, d_state = replay_gradients(
        ours,
        theirs,
        options,
        steps=steps,
        missing_every=missing_every,
        relative=True,
        dtype=dtype,
        device=device,
    )
    bound = _bound(FAST_PATH_ULPS[dtype], dtype)
    assert d_param <= bound and d_state <= bound, (
        f"{path}=True, {dtype}: relative difference {d_param:.3g} in the parameters, {d_state:.3g} in the "
        f"state (bound {bound:.3g})"
    )


def check_fast_path_round_trip(
    ours, theirs, options, path: str, steps=5, ulps=REPLAY_ULPS
) -> None:
    """State dicts move between the paths: state saved by ours with ``path`` on resumes in ours and torch's
    without it and with it, and state saved by torch's per-tensor path resumes in ours with ``path``; every
    resumed run equals the uninterrupted one (float64, within ``ulps`` ε)."""
    fast = {**options, path: True}
    model_a, X, y = _problem()
    for saver, saver_options in ((ours, fast), (theirs, options)):
        model_a, X, y = _problem()
        opt_a = saver(model_a.parameters(), **saver_options)
        _train(model_a, opt_a, X, y, steps)
        saved_model, saved_opt = (
            copy.deepcopy(model_a.state_dict()),
            copy.deepcopy(opt_a.state_dict()),
        )
        _train(model_a, opt_a, X, y, steps)
        resumers = (
            [(ours, options), (theirs, options), (theirs, fast)]
            if saver is ours
            else [(ours, fast)]
        )
        for cls, resume_options in resumers:
            model_b, _, _ = _problem()
            model_b.load_state_dict(saved_model)
            opt_b = cls(model_b.parameters(), **resume_options)
            opt_b.load_state_dict(copy.deepcopy(saved_opt))
            _train(model_b, opt_b, X, y, steps)
            diff = max_abs_diff(
                model_a.parameters(), model_b.parameters(), relative=True
            )
            assert diff <= _bound(ulps), (
                f"saved by {saver.__module__}.{saver.__name__}({saver_options}), resumed in "
                f"{cls.__module__}.{cls.__name__}({resume_options}): relative difference {diff:.3g}"
            )


def check_missing_grad_is_noop(ours, options) -> None:
    """A parameter without a gradient is left alone, and no state is created for it."""
    a = torch.randn(3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    before = b.detach().clone()
    opt = ours([a, b], **options)
    for _ in range(3):
        a.grad = torch.ones_like(a)
        opt.step()
    assert torch.equal(b.detach(), before), "a parameter without a gradient was changed"
    assert len(opt.state.get(b, {})) == 0, (
        "state was created for a parameter without a gradient"
    )


def check_loss_falls(ours, options, steps=20) -> None:
    """The loss falls within ``steps`` steps; with maximize=True the optimizer climbs instead."""
    model, X, y = _problem()
    opt = ours(model.parameters(), **options)
    losses = _train(model, opt, X, y, steps)
    if options.get("maximize"):
        assert losses[-1] > losses[0], (
            f"maximize=True but the loss fell: {losses[0]:.4g} → {losses[-1]:.4g}"
        )
    else:
        assert losses[-1] < losses[0], (
            f"the loss did not fall: {losses[0]:.4g} → {losses[-1]:.4g}"
        )


def _value_error(cls, options) -> str | None:
    try:
        cls([torch.zeros(2, requires_grad=True)], **options)
    except ValueError as error:
        return str(error)
    return None


def check_invalid(ours, theirs, bad_options) -> None:
    """Both reject ``bad_options`` with a ValueError carrying the same message."""
    want = _value_error(theirs, bad_options)
    assert want is not None, f"torch accepts {bad_options}: not an invalid case"
    got = _value_error(ours, bad_options)
    assert got == want, (
        f"{bad_options}: expected ValueError({want!r}), got {'no error' if got is None else repr(got)}"
    )


def check_refuses_switches(ours, switches) -> None:
    """Pure implementation switches (foreach, fused, ...) are refused with a ValueError naming them."""
    for name in switches:
        message = _value_error(ours, {name: True})
        assert message is not None and name in message, (
            f"{name}=True was not refused with a clear ValueError"
        )


def check_closure(ours, theirs, options, shape: tuple[int, ...] = (2,)) -> None:
    """``step(closure)`` returns the closure's loss and takes the same step as torch's, on a parameter
    holding 1 and 2 in ``shape`` (a 1 × 2 matrix for an optimizer of matrices)."""
    results = []
    for cls in (ours, theirs):
        p = (
            torch.tensor([1.0, 2.0], dtype=torch.float64)
            .reshape(shape)
            .requires_grad_()
        )
        opt = cls([p], **options)

        def closure():
            opt.zero_grad()
            loss = (p**2).sum()
            loss.backward()
            return loss

        results.append((opt.step(closure).item(), p.detach()))
    assert results[0][0] == results[1][0] == 5.0, (
        f"step(closure) returned {results[0][0]}, not the loss 5.0"
    )
    diff = max_abs_diff(results[0][1], results[1][1], relative=True)
    assert diff <= _bound(REPLAY_ULPS), (
        f"the step taken with a closure differs from torch's by {diff:.3g}"
    )


def check_state_like_torch(ours, theirs, options, steps=3) -> None:
    """After a few steps, under either default dtype: torch's state keys, ``step``-like scalars of torch's
    dtype and shape (float32, float64 when that is the default) and equal to torch's, and the same
    buffers (a few steps of the same elementwise formulas: within ``REPLAY_ULPS``)."""
    previous = torch.get_default_dtype()
    try:
        for default_dtype in (torch.float32, torch.float64):
            torch.set_default_dtype(default_dtype)
            states = []
            for cls in (ours, theirs):
                p = torch.ones(3, dtype=torch.float64, requires_grad=True)
                opt = cls([p], **options)
                for k in range(steps):
                    p.grad = torch.full_like(p, 1.0 - 0.4 * k)
                    opt.step()
                states.append(opt.state[p])
            a, b = states
            assert set(a) == set(b), (
                f"state keys {sorted(a)} differ from torch's {sorted(b)}"
            )
            for key in b:
                x, y = torch.as_tensor(a[key]), torch.as_tensor(b[key])
                assert (x.dtype, x.shape, x.device) == (y.dtype, y.shape, y.device), (
                    f"state[{key!r}] is {x.dtype} {tuple(x.shape)}, torch's {y.dtype} {tuple(y.shape)} "
                    f"(default dtype {default_dtype})"
                )
                if (
                    x.dim() == 0
                ):  # step counts and products of scalars: the same rounded scalar arithmetic
                    assert x.item() == y.item(), (
                        f"state[{key!r}] is {x.item()!r}, torch's {y.item()!r}"
                    )
                diff = max_abs_diff(x, y, relative=True)
                assert diff <= _bound(REPLAY_ULPS), (
                    f"state[{key!r}] differs from torch's by {diff:.3g}"
                )
    finally:
        torch.set_default_dtype(previous)


def check_sparse_gradients(ours, theirs, options, steps=6) -> None:
    """Sparse gradients (an embedding's, rows repeated and absent) as torch treats them: refused with
    torch's error, or applied like torch's (parameters and state within ``REPLAY_ULPS``)."""
    runs = []
    for cls in (ours, theirs):
        torch.manual_seed(0)
        emb = nn.Embedding(10, 3, sparse=True).double()
        opt = cls(emb.parameters(), **options)
        try:
            for k in range(steps):
                opt.zero_grad()
                emb(torch.tensor([k % 4, 7, 7, (3 * k) % 10])).pow(2).sum().backward()
                opt.step()
        except RuntimeError as error:
            runs.append(str(error))
        else:
            runs.append((emb, opt))
    a, b = runs
    if isinstance(b, str):
        assert a == b, (
            f"torch refuses sparse gradients with {b!r}; ours: {a if isinstance(a, str) else 'accepted them'!r}"
        )
        return
    assert not isinstance(a, str), f"torch takes sparse gradients; ours raised {a!r}"
    diff = max(
        max_abs_diff(a[0].weight, b[0].weight, relative=True),
        state_diff(a[1], b[1], relative=True),
    )
    assert diff <= _bound(REPLAY_ULPS), (
        f"with sparse gradients: relative difference {diff:.3g}"
    )


def check_cuda(ours, theirs, options, steps=20) -> None:
    """On CUDA in float32 the two stay within a loose tolerance."""
    diff = compare_optimizers(
        ours,
        theirs,
        options,
        steps=steps,
        dtype=torch.float32,
        device="cuda",
        relative=True,
    )
    assert diff <= _bound(CUDA_ULPS, torch.float32), (
        f"CUDA float32: relative difference {diff:.3g}"
    )


def check_lr_scheduler(ours, theirs, options, steps=25) -> None:
    """Works under torch.optim.lr_scheduler (the scheduler edits ``group['lr']`` between steps)."""
    sched = lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
    diff = compare_optimizers(
        ours, theirs, options, steps=steps, scheduler=sched, relative=True
    )
    assert diff <= _bound(CLOSED_LOOP_ULPS), (
        f"under StepLR: relative difference {diff:.3g}"
    )
