"""Judges of the optimizer assignments (trusted side): each reruns, with torch's class, the experiment its
probe in :mod:`companion.coursework.probes` ran with the answer's, on the same inputs, and compares.

Tolerances are the contract's (:mod:`companion.testing.optim_contract`); every tensor is measured against
its own magnitude, as there.
"""

import threading

import torch

from companion.coursework import probes
from companion.coursework.checks import (
    Raised,
    Unplain,
    close,
    error_of,
    plain_tensor,
    raises_like,
    same_signature,
    shown,
)
from companion.testing.optim_contract import CLOSED_LOOP_ULPS, REPLAY_ULPS
from companion.testing.tolerances import mismatch

_CACHE: dict = {}
_LOCK = threading.Lock()


def reference(key: tuple, compute):
    """torch's run for ``key`` (which names every input: the class, the options, the seed...), computed
    once per grading batch: every submission of a batch is probed on the same inputs."""
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is None:
        hit = compute()
        with _LOCK:
            if len(_CACHE) >= 64:
                _CACHE.clear()
            _CACHE[key] = hit
    return hit


def _all_close(pairs: list, ulps: float) -> bool:
    """A fast, vectorized ``close`` over many (observed, expected) pairs of the same shape and dtype, for
    the common case: True only if every pair is a plain tensor, finite and within ``ulps`` ε·scale (as in
    :func:`companion.testing.tolerances.mismatch`); False sends the caller to the pair-by-pair comparison
    that finds and describes the first difference."""
    groups: dict = {}
    for a, b in pairs:
        if type(a) is not torch.Tensor or a.shape != b.shape or a.dtype != b.dtype:
            return False
        groups.setdefault((tuple(b.shape), b.dtype), []).append((a, b))
    for (_, dtype), group in groups.items():
        A = torch.stack([a for a, _ in group]).to(torch.float64).reshape(len(group), -1)
        B = torch.stack([b for _, b in group]).to(torch.float64).reshape(len(group), -1)
        if not (bool(A.isfinite().all()) and bool(B.isfinite().all())):
            return False
        if A.shape[1] == 0:
            continue
        scale = B.abs().amax(dim=1)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        worst = (A - B).abs().amax(dim=1)
        eps = torch.finfo(dtype if dtype.is_floating_point else torch.float64).eps
        if not bool((worst <= ulps * eps * scale).all()):
            return False
    return True


def _length(obs, n: int, what: str) -> list:
    if type(obs) is not list or len(obs) != n:
        got = len(obs) if type(obs) is list else type(obs).__name__
        raise AssertionError(f"{what}: expected {n} observations, got {got}")
    return obs


def signature(obs, theirs, name: str) -> None:
    same_signature(
        obs,
        probes.signature_of(theirs.__init__),
        f"the constructor's signature differs from {name}'s",
    )


def invalid(obs, theirs, cases) -> None:
    """``obs``: the answer's outcome for each of ``cases`` (keyword options on one parameter)."""
    _length(obs, len(cases), "invalid options")
    p = [torch.zeros(2, requires_grad=True)]
    for got, bad in zip(obs, cases):
        raises_like(got, error_of(theirs, p, **bad), shown(("params",), bad))


def switches(obs, names: tuple, group_keys: tuple) -> None:
    if isinstance(obs, (Raised, Unplain)):
        raise AssertionError(f"with every switch off: {obs}")
    if type(obs) is not dict or set(obs) != {"group_keys", "on"}:
        raise AssertionError("switches: a malformed observation")
    keys = obs["group_keys"]
    for key in group_keys:
        if type(keys) is not list or key not in keys:
            raise AssertionError(f"the parameter group has no {key!r} (torch's has)")
    for name, got in zip(names, _length(obs["on"], len(names), "switches")):
        if not isinstance(got, Raised) or got.type != "ValueError":
            said = str(got) if isinstance(got, Raised) else "is accepted"
            raise AssertionError(
                f"{name}=True {said}; it should raise a ValueError naming it"
            )
        if name not in got.message:
            raise AssertionError(
                f"the ValueError for {name}=True does not name {name!r}: {got.message}"
            )


def _state_value(value, what: str) -> torch.Tensor:
    if type(value) in (int, float, bool):
        return torch.tensor(value, dtype=torch.float64)
    return plain_tensor(value, what).to(torch.float64)


def _compare_state(got, want: dict, ulps: float, what: str, i: int) -> None:
    if isinstance(got, (Unplain, Raised)):
        raise AssertionError(f"{what} the state of parameter {i}: {got}")
    if type(got) is not dict or set(got) != set(want):
        keys = sorted(map(str, got)) if type(got) is dict else got
        raise AssertionError(
            f"{what} the state keys are {keys}, torch has {sorted(want)}"
        )
    for key, value in want.items():
        a = _state_value(got[key], f"{what} state[{key!r}]")
        b = torch.as_tensor(value).to(torch.float64)
        if a.shape != b.shape:
            raise AssertionError(
                f"{what} state[{key!r}] has shape {tuple(a.shape)}, torch's {tuple(b.shape)}"
            )
        if b.isfinite().all() and not a.isfinite().all():
            raise AssertionError(f"{what} state[{key!r}] holds NaN or inf")
        m = mismatch(a, b)
        if not m.ulps <= ulps:
            raise AssertionError(
                f"{what} state[{key!r}] of parameter {i} differs from torch: {m}"
            )


def trace(
    obs,
    theirs,
    options: dict,
    shapes,
    steps: int,
    seed: int,
    *,
    ulps: float,
    label: str,
    missing_every=0,
):
    """The answer's parameters and state after every step of a fixed gradient sequence (``steps``
    gradients for ``shapes`` from ``seed``) against torch's; the first step where they differ is reported."""
    key = ("trace", theirs, repr(options), shapes, steps, seed, missing_every)
    expected = reference(
        key,
        lambda: probes.run_trace(
            theirs, options, *probes.gradients(shapes, steps, seed), missing_every
        ),
    )
    _length(obs, len(expected), label)
    if _fast_trace(obs, expected, ulps):
        return
    for t, (got, (params, states)) in enumerate(zip(obs, expected)):
        where = f"{label}, after step {t + 1}"
        if type(got) is not list or len(got) != 2:
            raise AssertionError(f"{where}: a malformed observation")
        got_params = _length(got[0], len(params), where)
        got_states = _length(got[1], len(states), where)
        for i, (a, b) in enumerate(zip(got_params, params)):
            close(a, b, ulps=ulps, what=f"{where} parameter {i}")
        for i, (a, b) in enumerate(zip(got_states, states)):
            _compare_state(a, b, ulps, where, i)


def _fast_trace(obs, expected, ulps: float) -> bool:
    """Every step's parameters and state within ``ulps`` (vectorized per tensor); False: look closer."""
    groups: dict = {}
    for got, (params, states) in zip(obs, expected):
        if type(got) is not list or len(got) != 2:
            return False
        if type(got[0]) is not list or len(got[0]) != len(params):
            return False
        if type(got[1]) is not list or len(got[1]) != len(states):
            return False
        for i, (a, b) in enumerate(zip(got[0], params)):
            groups.setdefault(("p", i), []).append((a, b))
        for i, (sa, sb) in enumerate(zip(got[1], states)):
            if type(sa) is not dict or set(sa) != set(sb):
                return False
            for key, b in sb.items():
                a, numbers = sa[key], (int, float, bool)
                if type(a) in numbers:
                    a = torch.tensor(float(a), dtype=torch.float64)
                if type(b) in numbers:
                    b = torch.tensor(float(b), dtype=torch.float64)
                if type(a) is not torch.Tensor or type(b) is not torch.Tensor:
                    return False
                pair = (a.to(torch.float64), b.to(torch.float64))
                groups.setdefault(("s", i, key), []).append(pair)
    return _all_close([pair for pairs in groups.values() for pair in pairs], ulps)


def closed_loop(obs, theirs, options: dict, group_lr: float, seed: int) -> None:
    key = ("closed loop", theirs, repr(options), group_lr, seed)
    expected = reference(
        key, lambda: probes.run_closed_loop(theirs, options, group_lr, seed)
    )
    label = f"closed loop with {options or 'the defaults'}"
    _length(obs, len(expected), label)
    flat = [
        (a, b)
        for got, want in zip(obs, expected)
        if type(got) is list and len(got) == len(want)
        for a, b in zip(got, want)
    ]
    if len(flat) == sum(map(len, expected)) and _all_close(flat, CLOSED_LOOP_ULPS):
        return
    for t, (got, want) in enumerate(zip(obs, expected)):
        for i, (a, b) in enumerate(zip(_length(got, len(want), label), want)):
            close(
                a,
                b,
                ulps=CLOSED_LOOP_ULPS,
                what=f"{label}, step {t + 1}, parameter {i}",
            )


def round_trip(
    obs, theirs, name: str, options: dict, seed: int, steps: int = 10
) -> None:
    """The answer's save → load → continue equals its uninterrupted run, torch's class resumes from the
    answer's saved state to the same parameters, and the state_dict has torch's keys."""
    label = f"state_dict round trip with {options or 'the defaults'}"
    if isinstance(obs, (Raised, Unplain)) or type(obs) is not dict:
        raise AssertionError(
            f"{label}: {obs if isinstance(obs, (Raised, Unplain)) else 'malformed'}"
        )
    want_keys = {
        "saved_model",
        "saved_opt",
        "uninterrupted",
        "resumed",
        "group_keys",
        "state_keys",
    }
    if set(obs) != want_keys:
        raise AssertionError(f"{label}: a malformed observation")
    model, X, y = probes.problem(seed)
    n = len(list(model.parameters()))
    ahead = _length(obs["uninterrupted"], n, label)
    for i, t in enumerate(
        ahead
    ):  # torch's run from this start is finite: so must the answer's be
        t = plain_tensor(t, f"{label}: parameter {i}")
        if t.is_floating_point() and not bool(t.isfinite().all()):
            raise AssertionError(
                f"{label}: NaN or inf in parameter {i} after {2 * steps} steps"
            )
    for i, (a, b) in enumerate(zip(_length(obs["resumed"], n, label), ahead)):
        close(
            a,
            plain_tensor(b, label),
            ulps=REPLAY_ULPS,
            what=f"{label}: resumed in yours, parameter {i}",
        )
    with torch.no_grad():
        for i, (p, saved) in enumerate(
            zip(model.parameters(), _length(obs["saved_model"], n, label))
        ):
            p.copy_(
                plain_tensor(saved, f"{label}: saved parameter {i}").reshape(p.shape)
            )
    opt = theirs(model.parameters(), **options)
    try:
        opt.load_state_dict(obs["saved_opt"])
    except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as exc:
        raise AssertionError(
            f"{label}: {name} cannot load your state_dict ({type(exc).__name__}: {exc})"
        ) from None
    probes.train(model, opt, X, y, steps)
    for i, (p, b) in enumerate(zip(model.parameters(), ahead)):
        close(
            plain_tensor(b, label),
            p.detach(),
            ulps=REPLAY_ULPS,
            what=f"{label}: resumed in {name}, parameter {i}",
        )
    ref_model, _, _ = probes.problem(seed)
    ref = theirs(ref_model.parameters(), **options)
    probes.train(ref_model, ref, X, y, steps)
    sd = ref.state_dict()
    if obs["group_keys"] != sorted(map(str, sd["param_groups"][0])):
        raise AssertionError("param_group keys differ from torch's")
    want = {str(k): sorted(map(str, v)) for k, v in sd["state"].items()}
    if obs["state_keys"] != want:
        raise AssertionError(f"state entries or keys differ from torch's ({want})")


def missing_grad(obs, seed: int) -> None:
    if (
        isinstance(obs, (Raised, Unplain))
        or type(obs) is not dict
        or set(obs) != {"before", "after", "state"}
    ):
        raise AssertionError("a parameter without a gradient: a malformed observation")
    g = probes.generator(seed)
    torch.randn(3, generator=g, dtype=torch.float64)
    b = torch.randn(3, generator=g, dtype=torch.float64)
    close(obs["after"], b, ulps=0, what="a parameter without a gradient changed")
    if obs["state"] != []:
        raise AssertionError("state was created for a parameter without a gradient")


def loss_falls(obs, options: dict, steps: int = 20) -> None:
    losses = _length(obs, steps, "the losses")
    if not all(type(x) is float for x in losses):
        raise AssertionError("the losses are not numbers")
    first, last = losses[0], losses[-1]
    if options.get("maximize"):
        if not last > first:
            raise AssertionError(
                f"maximize=True but the loss fell: {first:.4g} → {last:.4g}"
            )
    elif not last < first:
        raise AssertionError(f"the loss did not fall: {first:.4g} → {last:.4g}")
