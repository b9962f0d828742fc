"""Run the same thing with ours and torch's and report the largest difference.

The tests use these with tight float64 tolerances; the notebooks use them to show parity.
"""

import math
from typing import Callable

import torch
from torch import nn

from companion.testing.tolerances import (
    PLAIN_TENSORS,
    Mismatch,
    is_tensor_subclass,
    mismatch,
    refuse_subclass,
)

OptimizerClass = Callable[..., torch.optim.Optimizer]


def _worse(a: float, b: float) -> float:
    """The larger of two differences, NaN if either is NaN (Python's ``max(0.0, nan)`` is 0.0)."""
    return math.nan if math.isnan(a) or math.isnan(b) else max(a, b)


def max_abs_diff(a, b, relative: bool = False) -> float:
    """The largest absolute difference between two tensors, or two equal-length sequences of tensors.

    With ``relative=True`` each pair's difference is divided by the pair's scale, the largest magnitude
    in either tensor (a pair of all-zero tensors differs by 0), so tensors of very different sizes
    (a parameter and its squared-gradient average) are each measured against their own magnitude.

    A NaN or an infinity in either tensor makes the result NaN or infinite (even at the same place in
    both: inf − inf is NaN), so that ``diff <= bound`` fails: a run that blows up never matches.

    A tensor subclass (whose ``__sub__`` or ``__torch_function__`` could report any difference) is refused
    with an AssertionError before any operation on it; see :func:`~companion.testing.tolerances.refuse_subclass`.
    """
    if type(a) in PLAIN_TENSORS or is_tensor_subclass(a):
        a, b = [a], [b]
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise ValueError(f"cannot compare {len(a)} tensors with {len(b)}")
    worst = 0.0
    for x, y in zip(a, b):
        refuse_subclass(x)
        refuse_subclass(y)
        if not x.numel():
            continue
        x, y = (t.detach().to_dense() if t.is_sparse else t.detach() for t in (x, y))
        diff = (x - y).abs().max().item()  # torch's max propagates NaN
        if relative and diff > 0:
            diff /= max(x.abs().max().item(), y.abs().max().item())
        worst = _worse(worst, diff)
    return worst


def _parity_mlp(dtype, device, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).to(
        device=device, dtype=dtype
    )


def _two_groups(model: nn.Module, group_options: dict) -> list[dict]:
    """The first layer in a group of its own with ``group_options`` overriding the defaults."""
    first, rest = (
        list(model[0].parameters()),
        [p for m in list(model)[1:] for p in m.parameters()],
    )
    return [{"params": first, **group_options}, {"params": rest}]


def compare_optimizers(
    ours: OptimizerClass,
    theirs: OptimizerClass,
    options: dict | None = None,
    steps: int = 25,
    group_options: dict | None = None,
    dtype: torch.dtype = torch.float64,
    device=None,
    seed: int = 0,
    scheduler: Callable | None = None,
    relative: bool = False,
) -> float:
    """Train two identical small MLPs in a closed loop, one with each optimizer; return the largest
    parameter difference seen over all ``steps`` steps.

    Each model computes its gradients from its own parameters, so differences compound. With
    ``group_options`` the first layer is a separate parameter group with those options.
    ``scheduler(optimizer)`` builds an lr scheduler that steps after every optimizer step.
    ``relative=True`` measures each parameter's difference against its magnitude (see :func:`max_abs_diff`).
    """
    options = options or {}
    device = device or "cpu"
    gen = torch.Generator().manual_seed(seed + 1)
    X = torch.randn(32, 5, generator=gen, dtype=dtype).to(device)
    y = torch.randn(32, 3, generator=gen, dtype=dtype).to(device)
    models, opts, scheds = [], [], []
    for cls in (ours, theirs):
        model = _parity_mlp(dtype, device, seed)
        params = (
            _two_groups(model, group_options)
            if group_options is not None
            else model.parameters()
        )
        opt = cls(params, **options)
        models.append(model)
        opts.append(opt)
        scheds.append(scheduler(opt) if scheduler else None)
    worst = 0.0
    for _ in range(steps):
        for model, opt, sched in zip(models, opts, scheds):
            opt.zero_grad()
            ((model(X) - y) ** 2).mean().backward()
            opt.step()
            if sched is not None:
                sched.step()
        worst = _worse(
            worst,
            max_abs_diff(models[0].parameters(), models[1].parameters(), relative),
        )
    return worst


def replay_gradients(
    ours: OptimizerClass,
    theirs: OptimizerClass,
    options: dict | None = None,
    steps: int = 200,
    shapes: tuple[tuple[int, ...], ...] = ((4, 3), (3,), (2, 2, 2)),
    dtype: torch.dtype = torch.float64,
    device=None,
    seed: int = 0,
    missing_every: int = 0,
    relative: bool = False,
) -> tuple[float, float]:
    """Feed both optimizers the same fixed sequence of random gradients for ``steps`` steps.

    Returns the largest difference of (parameters, optimizer state tensors) over the run. With
    ``missing_every`` = k > 0 the second parameter has no gradient on every k-th step.
    ``relative=True`` measures each tensor's difference against its magnitude (see :func:`max_abs_diff`).
    """
    options = options or {}
    device = device or "cpu"
    gen = torch.Generator().manual_seed(seed)
    init = [torch.randn(s, generator=gen, dtype=dtype) for s in shapes]
    grads = [
        [torch.randn(s, generator=gen, dtype=dtype) for s in shapes]
        for _ in range(steps)
    ]
    params = [[t.clone().to(device).requires_grad_() for t in init] for _ in range(2)]
    opts = [ours(params[0], **options), theirs(params[1], **options)]
    worst_param = worst_state = 0.0
    for t in range(steps):
        for ps, opt in zip(params, opts):
            for i, (p, g) in enumerate(zip(ps, grads[t])):
                skip = missing_every and i == 1 and t % missing_every == 0
                p.grad = None if skip else g.to(device).clone()
            opt.step()
        worst_param = _worse(worst_param, max_abs_diff(params[0], params[1], relative))
        worst_state = _worse(worst_state, state_diff(opts[0], opts[1], relative))
    return worst_param, worst_state


def state_diff(
    a: torch.optim.Optimizer, b: torch.optim.Optimizer, relative: bool = False
) -> float:
    """The largest difference between two optimizers' per-parameter state, which must have the same keys
    (``relative``: each tensor against its own magnitude, see :func:`max_abs_diff`). A state value must be
    a plain tensor or a number: a tensor subclass or any other object is refused (AssertionError) before
    it is used."""
    worst = 0.0
    pa = [p for g in a.param_groups for p in g["params"]]
    pb = [p for g in b.param_groups for p in g["params"]]
    for x, y in zip(pa, pb):
        sa, sb = a.state.get(x, {}), b.state.get(y, {})
        if set(sa) != set(sb):
            raise AssertionError(f"state keys differ: {sorted(sa)} vs {sorted(sb)}")
        for key in sa:
            for value in (sa[key], sb[key]):
                _plain_state_value(key, value)
            va, vb = torch.as_tensor(sa[key]), torch.as_tensor(sb[key])
            worst = _worse(worst, max_abs_diff(va.to(vb), vb, relative))
    return worst


def _plain_state_value(key, value) -> None:
    """A state value as the comparison accepts it: a plain tensor or a Python number (exact types)."""
    if type(value) in (int, float, bool):
        return
    refuse_subclass(value)
    if type(value) not in PLAIN_TENSORS:
        raise AssertionError(
            f"state[{key!r}] is a {type(value).__name__}, not a tensor or a number"
        )


def _run_modules(
    ours: nn.Module, theirs: nn.Module, *inputs: torch.Tensor, seed: int = 0
) -> dict:
    """Each module's output, input gradients and parameter gradients, for the gradient of the sum of the
    output times a fixed random weighting; ``{"output": (ours, theirs), ...}``, gradients flattened into one tensor."""
    gen = torch.Generator().manual_seed(seed)
    results = []
    for module in (ours, theirs):
        xs = [x.detach().clone().requires_grad_(x.is_floating_point()) for x in inputs]
        out = module(*xs)
        refuse_subclass(out)  # before any operation on it
        w = torch.randn(out.shape, generator=gen, dtype=out.dtype).to(out.device)
        gen.manual_seed(seed)
        (out * w).sum().backward()
        for t in [*xs, *module.parameters()]:
            refuse_subclass(t)
            if t.grad is not None:
                refuse_subclass(t.grad)
        grads_in = [x.grad.reshape(-1) for x in xs if x.grad is not None]
        grads_p = [
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
            for p in module.parameters()
        ]
        results.append(
            {
                "output": out.detach(),
                "input_grad": grads_in,
                "param_grad": grads_p,
                "upstream": w.abs().max().item() if w.numel() else 0.0,
            }
        )
        module.zero_grad()
    a, b = results
    if len(a["param_grad"]) != len(b["param_grad"]):
        raise AssertionError(
            f"{len(a['param_grad'])} parameters against torch's {len(b['param_grad'])}"
        )
    pairs = {"output": (a["output"], b["output"]), "upstream": a["upstream"]}
    for key in ("input_grad", "param_grad"):
        if a[key] or b[key]:
            pairs[key] = (
                torch.cat(a[key]) if a[key] else torch.zeros(0),
                torch.cat(b[key]) if b[key] else torch.zeros(0),
            )
    return pairs


def compare_modules(
    ours: nn.Module, theirs: nn.Module, *inputs: torch.Tensor, seed: int = 0
) -> dict[str, float]:
    """Run two modules on the same inputs and compare outputs, input gradients and parameter gradients.

    Returns the largest absolute differences as ``{"output", "input_grad", "param_grad"}`` (the
    gradients of the sum of the output times a fixed random weighting).
    """
    pairs = _run_modules(ours, theirs, *inputs, seed=seed)
    return {
        key: (
            max_abs_diff(*pairs[key]) if key in pairs and pairs[key][0].numel() else 0.0
        )
        for key in ("output", "input_grad", "param_grad")
    }


def module_mismatches(
    ours: nn.Module, theirs: nn.Module, *inputs: torch.Tensor, seed: int = 0
) -> dict[str, Mismatch]:
    """Like :func:`compare_modules`, but each difference as a :class:`~companion.testing.tolerances.Mismatch`:
    in units of ε times a scale, with where it appeared.

    The output's scale is the largest magnitude of torch's output. A gradient is the upstream weighting
    times a derivative computed from O(1) terms (1 − y² for tanh, σ(1 − σ), ...), whose rounding error
    is ε times those terms however small their difference is; so a gradient's scale is the larger of
    its own largest magnitude and the upstream weighting's."""
    pairs = _run_modules(ours, theirs, *inputs, seed=seed)
    upstream = pairs.pop("upstream")
    return {
        key: mismatch(
            a,
            b,
            None
            if key == "output"
            else max(b.abs().max().item() if b.numel() else 0.0, upstream),
        )
        for key, (a, b) in pairs.items()
    }


def assert_modules_close(
    ours: nn.Module,
    theirs: nn.Module,
    *inputs: torch.Tensor,
    ulps: float,
    seed: int = 0,
) -> None:
    """Assert that outputs, input gradients and parameter gradients agree within ``ulps`` · ε · scale."""
    for key, m in module_mismatches(ours, theirs, *inputs, seed=seed).items():
        if not m.ulps <= ulps:
            raise AssertionError(f"{key}: {m} (allowed {ulps} ε·scale)")
