"""What runs in the answer's (sandboxed) process: probes, and the plain form of what they observe.

A probe is a function of the answer's namespace and the run's seed (``probe(ns, seed)``) that calls the
answer on inputs drawn from that seed and returns what it saw; :func:`encode` turns that into plain JSON
data, which is all that leaves the sandbox. This module holds no check, no torch reference, no tolerance:
the trusted side (:mod:`companion.coursework.checks`) decodes the observation itself, computes torch's
answer on the same inputs and judges. The helpers below are the optimizer experiments of
:mod:`companion.testing.optim_contract`, run on one optimizer only.
"""

import base64
import copy
import inspect
import math

import torch
from torch import nn

MAX_DEPTH = 12  # nesting of lists and dicts in one observation


def probe(fn):
    """Mark a function of a checks file as sandbox-side code: a check's probe or a helper of probes.
    Only such functions (with the file's literal constants and allowed imports) are sent to the sandbox."""
    fn.is_probe = True
    return fn


def encode(value, depth: int = 0):
    """``value`` as plain JSON data, decided by exact type (an int or str subclass, a tensor subclass or
    any other object is named, never asked for its contents):

    None, bool, int, str, finite float: themselves; other floats ``{"float": "nan"}``; lists and tuples:
    lists; dicts: ``{"dict": [[key, value], ...]}``; ``torch.Tensor`` / ``nn.Parameter``: ``{"tensor":
    {"dtype", "shape", "data": base64 of the raw bytes}}``; an exception: ``{"error": {"type", "message"}}``;
    a tensor subclass: ``{"subclass": name}``; anything else: ``{"other": name}``."""
    t = type(value)
    if depth > MAX_DEPTH:
        return {"other": "nesting too deep"}
    if value is None or t in (bool, int, str):
        return value
    if t is float:
        return value if math.isfinite(value) else {"float": repr(value)}
    if t in (list, tuple):
        return [encode(v, depth + 1) for v in value]
    if t is dict:
        return {
            "dict": [
                [encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()
            ]
        }
    if t in (torch.Tensor, nn.Parameter):
        return {"tensor": _tensor(value)}
    if isinstance(value, torch.Tensor):
        return {"subclass": t.__name__}
    if isinstance(value, BaseException):
        return {"error": {"type": t.__name__, "message": _message(value)}}
    return {"other": t.__name__}


def _tensor(t: torch.Tensor) -> dict:
    if type(t.data) is not torch.Tensor:  # a plain tensor wrapping a subclass
        return {"subclass": type(t.data).__name__}
    d = torch.Tensor.detach(t)
    d = d.to_dense() if d.is_sparse else d
    d = d.cpu().contiguous().reshape(-1)
    raw = d.view(torch.uint8).numpy().tobytes() if d.numel() else b""
    return {
        "dtype": str(d.dtype).removeprefix("torch."),
        "shape": list(t.shape),
        "data": base64.b64encode(raw).decode("ascii"),
    }


def _message(exc: BaseException) -> str:
    try:
        text = str(exc).strip()
    except BaseException:  # noqa: BLE001 — a __str__ that raises
        text = ""
    return text.splitlines()[0][:300] if text else ""


def outcome(fn, *args, **kwargs):
    """What ``fn(*args, **kwargs)`` does: its result, or the Exception it raised (encoded as an error)."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 — the error is the observation
        return exc


def signature_of(fn) -> list:
    """``[[name, kind, repr(default)], ...]`` of ``fn``'s parameters (``"<empty>"``: no default), as
    ``inspect.signature`` lists them, but read from the function's code object and defaults, which are what
    a call binds: ``inspect.signature`` would believe a ``__signature__`` or ``__wrapped__`` the answer
    set on its own function. Not a Python function (no code object): TypeError."""
    code = getattr(fn, "__code__", None)
    if not isinstance(code, type(signature_of.__code__)):
        raise TypeError(
            f"{type(fn).__name__} is not a plain Python function (write it with def)"
        )
    names, n, kw = code.co_varnames, code.co_argcount, code.co_kwonlyargcount
    defaults, kwdefaults = fn.__defaults__ or (), fn.__kwdefaults__ or {}
    first_default = n - len(defaults)
    out = []
    for i, name in enumerate(names[:n]):
        kind = (
            "POSITIONAL_ONLY"
            if i < code.co_posonlyargcount
            else "POSITIONAL_OR_KEYWORD"
        )
        default = repr(defaults[i - first_default]) if i >= first_default else "<empty>"
        out.append([name, kind, default])
    rest = list(names[n + kw :])
    if code.co_flags & inspect.CO_VARARGS:
        out.append([rest.pop(0), "VAR_POSITIONAL", "<empty>"])
    for name in names[n : n + kw]:
        out.append(
            [
                name,
                "KEYWORD_ONLY",
                repr(kwdefaults[name]) if name in kwdefaults else "<empty>",
            ]
        )
    if code.co_flags & inspect.CO_VARKEYWORDS:
        out.append([rest.pop(0), "VAR_KEYWORD", "<empty>"])
    return out


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) % 2**63)


def mlp(sizes: tuple, seed: int) -> nn.Module:
    """A float64 tanh MLP whose weights come from ``seed`` (never from the global generator: the trusted
    side builds the same one in a thread)."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers += [nn.Linear(a, b, dtype=torch.float64)] + [nn.Tanh()] * (
            i < len(sizes) - 2
        )
    model = nn.Sequential(*layers)
    g = generator(seed)
    with torch.no_grad():
        for p in model.parameters():
            fan_in = p.shape[-1] if p.dim() > 1 else p.shape[0]
            p.copy_(
                (torch.rand(p.shape, generator=g, dtype=torch.float64) * 2 - 1)
                / math.sqrt(fan_in)
            )
    return model


def data(shape_x: tuple, shape_y: tuple, seed: int) -> tuple:
    g = generator(seed + 1)
    return (
        torch.randn(shape_x, generator=g, dtype=torch.float64),
        torch.randn(shape_y, generator=g, dtype=torch.float64),
    )


def gradients(shapes: tuple, steps: int, seed: int) -> tuple:
    """Initial values and ``steps`` gradients for parameters of ``shapes`` (float64, from ``seed``)."""
    g = generator(seed)
    init = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    grads = [
        [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
        for _ in range(steps)
    ]
    return init, grads


def run_trace(cls, options: dict, init, grads, missing_every: int = 0) -> list:
    """Step ``cls`` through the fixed gradients; after each step the parameters and each parameter's
    state (a dict). With ``missing_every`` = k the second parameter has no gradient every k-th step."""
    params = [t.clone().requires_grad_() for t in init]
    opt = cls(params, **options)
    seen = []
    for t, step_grads in enumerate(grads):
        for i, (p, g) in enumerate(zip(params, step_grads)):
            skip = missing_every and i == 1 and t % missing_every == 0
            p.grad = None if skip else g.clone()
        opt.step()
        seen.append(
            [[p.detach().clone() for p in params], [_state(opt, p) for p in params]]
        )
    return seen


def _state(opt, p) -> dict:
    st = opt.state.get(p, {})
    plain = (torch.Tensor, nn.Parameter)
    return {k: v.detach().clone() if type(v) in plain else v for k, v in st.items()}


def run_closed_loop(
    cls, options: dict, group_lr: float, seed: int, steps: int = 25
) -> list:
    """A float64 closed loop on an MLP whose first layer is a group with ``lr=group_lr``: the parameters
    after each step."""
    model = mlp((5, 8, 3), seed)
    X, y = data((32, 5), (32, 3), seed)
    first = list(model[0].parameters())
    rest = [p for m in list(model)[1:] for p in m.parameters()]
    opt = cls([{"params": first, "lr": group_lr}, {"params": rest}], **options)
    seen = []
    for _ in range(steps):
        opt.zero_grad()
        ((model(X) - y) ** 2).mean().backward()
        opt.step()
        seen.append([p.detach().clone() for p in model.parameters()])
    return seen


def problem(seed: int):
    """The small regression problem of the state_dict and loss checks: a model and its data."""
    model = mlp((4, 6, 2), seed)
    X, y = data((16, 4), (16, 2), seed)
    return model, X, y


def train(model, opt, X, y, steps: int) -> list:
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = ((model(X) - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def run_round_trip(cls, options: dict, seed: int, steps: int = 10) -> dict:
    """Train ``steps`` steps, save, train ``steps`` more (the uninterrupted run); resume a fresh optimizer
    from the saved state and train ``steps``. Returns the saved model and optimizer state, both runs'
    parameters and the final state_dict's keys (the trusted side resumes torch's class from the save)."""
    model, X, y = problem(seed)
    opt = cls(model.parameters(), **options)
    train(model, opt, X, y, steps)
    saved_model = copy.deepcopy(model.state_dict())
    saved_opt = copy.deepcopy(opt.state_dict())
    train(model, opt, X, y, steps)
    resumed, _, _ = problem(seed)
    resumed.load_state_dict(saved_model)
    opt_b = cls(resumed.parameters(), **options)
    opt_b.load_state_dict(copy.deepcopy(saved_opt))
    train(resumed, opt_b, X, y, steps)
    final = opt.state_dict()
    return {
        "saved_model": [saved_model[k] for k in saved_model],
        "saved_opt": saved_opt,
        "uninterrupted": [p.detach() for p in model.parameters()],
        "resumed": [p.detach() for p in resumed.parameters()],
        "group_keys": sorted(map(str, final["param_groups"][0])),
        "state_keys": {str(k): sorted(map(str, v)) for k, v in final["state"].items()},
    }


def run_missing_grad(cls, options: dict, seed: int) -> dict:
    """Three steps where only the first of two parameters has a gradient: the second before and after, and
    the keys of its state."""
    g = generator(seed)
    a = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    before = b.detach().clone()
    opt = cls([a, b], **options)
    for _ in range(3):
        a.grad = torch.ones_like(a)
        opt.step()
    return {
        "before": before,
        "after": b.detach().clone(),
        "state": sorted(map(str, opt.state.get(b, {}))),
    }


def run_losses(cls, options: dict, seed: int, steps: int = 20) -> list:
    model, X, y = problem(seed)
    return train(model, cls(model.parameters(), **options), X, y, steps)


def switches(cls, names: tuple) -> dict:
    """The parameter group's keys with every switch off, and what ``cls`` does with each switch on."""
    p = [torch.zeros(2, requires_grad=True)]
    off = cls(p, **{n: None if n == "foreach" else False for n in names})
    return {
        "group_keys": sorted(map(str, off.param_groups[0])),
        "on": [_refusal(cls, p, n) for n in names],
    }


def _refusal(cls, p, name):
    result = outcome(cls, p, **{name: True})
    return result if isinstance(result, Exception) else "accepted"
