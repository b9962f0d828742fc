"""Checks every companion optimizer must pass against its torch namesake.

Each optimizer's test file holds a table of option combinations and calls these functions, so the
contract is written once (see CONTRIBUTING.md, "Adding an optimizer").
"""

import copy
import inspect

import pytest
import torch
from torch import nn

from companion.testing.parity import compare_optimizers, max_abs_diff, replay_gradients, state_diff

CLOSED_LOOP_TOL = 1e-10
REPLAY_TOL = 1e-12


def check_signature(ours, theirs) -> None:
    """Same parameter names, order, kinds and defaults as torch's constructor."""
    a, b = inspect.signature(ours.__init__), inspect.signature(theirs.__init__)
    assert [(p.name, p.kind, p.default) for p in a.parameters.values()] == [
        (p.name, p.kind, p.default) for p in b.parameters.values()
    ]


def check_closed_loop(ours, theirs, options, steps=25) -> None:
    """Float64 closed loop on a small MLP with two parameter groups (the first with half the lr)."""
    group = {"lr": options.get("lr", theirs([torch.zeros(1, requires_grad=True)]).defaults["lr"]) / 2}
    diff = compare_optimizers(ours, theirs, options, steps=steps, group_options=group)
    assert diff < CLOSED_LOOP_TOL, diff


def check_replay(ours, theirs, options, steps=200) -> None:
    """A fixed gradient sequence, with one parameter missing its gradient every third step."""
    d_param, d_state = replay_gradients(ours, theirs, options, steps=steps, missing_every=3)
    assert d_param < REPLAY_TOL and d_state < REPLAY_TOL, (d_param, d_state)


def _problem(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    g = torch.Generator().manual_seed(seed)
    X, y = torch.randn(16, 4, generator=g, dtype=torch.float64), torch.randn(16, 2, generator=g, dtype=torch.float64)
    return model, X, y


def _train(model, opt, X, y, steps, sign=1.0):
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = sign * ((model(X) - y) ** 2).mean()
        (sign * loss).backward()  # the gradient of the plain loss; ``sign`` only flips what we record
        opt.step()
        losses.append(sign * loss.item())
    return losses


def check_state_dict_round_trip(ours, theirs, options, steps=10) -> None:
    """save → load → continue equals the uninterrupted run; and state_dicts move between ours and torch's."""
    model_a, X, y = _problem()
    opt_a = ours(model_a.parameters(), **options)
    _train(model_a, opt_a, X, y, steps)
    saved_model, saved_opt = copy.deepcopy(model_a.state_dict()), copy.deepcopy(opt_a.state_dict())
    _train(model_a, opt_a, X, y, steps)  # the uninterrupted run

    for cls in (ours, theirs):  # resume into a fresh optimizer of either class
        model_b, _, _ = _problem()
        model_b.load_state_dict(saved_model)
        opt_b = cls(model_b.parameters(), **options)
        opt_b.load_state_dict(copy.deepcopy(saved_opt))  # loading keeps (aliases) the saved tensors
        _train(model_b, opt_b, X, y, steps)
        assert max_abs_diff(model_a.parameters(), model_b.parameters()) < REPLAY_TOL, cls

    # the same keys in param_groups and in the per-parameter state as torch
    model_t, _, _ = _problem()
    opt_t = theirs(model_t.parameters(), **options)
    _train(model_t, opt_t, X, y, steps)
    ours_sd, torch_sd = opt_a.state_dict(), opt_t.state_dict()
    assert set(ours_sd["param_groups"][0]) == set(torch_sd["param_groups"][0])
    assert ours_sd["state"].keys() == torch_sd["state"].keys()
    for k in torch_sd["state"]:
        assert set(ours_sd["state"][k]) == set(torch_sd["state"][k])


def check_missing_grad_is_noop(ours, options) -> None:
    """A parameter without a gradient is left alone, and no state is created for it."""
    a = torch.randn(3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    before = b.detach().clone()
    opt = ours([a, b], **options)
    for _ in range(3):
        a.grad = torch.ones_like(a)
        opt.step()
    assert torch.equal(b.detach(), before)
    assert len(opt.state.get(b, {})) == 0


def check_loss_falls(ours, options, steps=20) -> None:
    """The loss falls within ``steps`` steps; with maximize=True the optimizer climbs instead."""
    model, X, y = _problem()
    opt = ours(model.parameters(), **options)
    losses = _train(model, opt, X, y, steps)
    if options.get("maximize"):
        assert losses[-1] > losses[0]
    else:
        assert losses[-1] < losses[0]


def check_invalid(ours, theirs, bad_options) -> None:
    """Both reject ``bad_options`` with a ValueError carrying the same message."""
    p = [torch.zeros(2, requires_grad=True)]
    with pytest.raises(ValueError) as torch_error:
        theirs(p, **bad_options)
    with pytest.raises(ValueError) as our_error:
        ours(p, **bad_options)
    assert str(our_error.value) == str(torch_error.value)


def check_refuses_switches(ours, switches) -> None:
    """Pure implementation switches (foreach, fused, ...) are refused with a clear ValueError."""
    p = [torch.zeros(2, requires_grad=True)]
    for name in switches:
        with pytest.raises(ValueError, match=name):
            ours(p, **{name: True})


def check_cuda(ours, theirs, options, steps=20) -> None:
    """On CUDA in float32 the two stay within a loose tolerance."""
    diff = compare_optimizers(ours, theirs, options, steps=steps, dtype=torch.float32, device="cuda")
    assert diff < 1e-4, diff


def check_lr_scheduler(ours, theirs, options, steps=25) -> None:
    """Works under torch.optim.lr_scheduler (the scheduler edits ``group['lr']`` between steps)."""
    sched = lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
    diff = compare_optimizers(ours, theirs, options, steps=steps, scheduler=sched)
    assert diff < CLOSED_LOOP_TOL, diff


__all__ = [
    "check_signature", "check_closed_loop", "check_replay", "check_state_dict_round_trip",
    "check_missing_grad_is_noop", "check_loss_falls", "check_invalid", "check_refuses_switches",
    "check_cuda", "check_lr_scheduler", "state_diff",
]
