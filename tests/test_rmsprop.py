"""companion.optim.RMSprop against torch.optim.RMSprop, driven by one table of option combinations."""

import itertools

import pytest
import torch
from torch import nn

from companion.testing import optim_contract as contract
from companion.optim.rmsprop import RMSprop
from companion.testing.parity import max_abs_diff

OURS, THEIRS = RMSprop, torch.optim.RMSprop


def _cases():
    """Every combination of weight_decay, momentum, centered and maximize; alpha and eps alone; all together."""
    cases = [
        dict(lr=0.01, weight_decay=weight_decay, momentum=momentum, centered=centered, maximize=maximize)
        for weight_decay, momentum, centered, maximize in itertools.product((0.0, 0.05), (0.0, 0.9), (False, True), (False, True))
    ]
    cases.append(dict(lr=0.01, alpha=0.9))
    cases.append(dict(lr=0.01, eps=1e-3))
    cases.append(dict(lr=0.01, alpha=0.9, eps=1e-3, weight_decay=0.05, momentum=0.9, centered=True, maximize=True))
    return cases


CASES = _cases()
IDS = ["-".join(f"{k}={v}" for k, v in c.items() if k != "lr") for c in CASES]


def test_signature():
    contract.check_signature(OURS, THEIRS)


@pytest.mark.parametrize("options", CASES, ids=IDS)
def test_closed_loop(options):
    contract.check_closed_loop(OURS, THEIRS, options)


@pytest.mark.parametrize("options", CASES, ids=IDS)
def test_replay(options):
    contract.check_replay(OURS, THEIRS, options)


@pytest.mark.parametrize("options", CASES[::3] + CASES[-1:], ids=str)
def test_state_dict_round_trip(options):
    contract.check_state_dict_round_trip(OURS, THEIRS, options)


@pytest.mark.parametrize("options", [dict(), dict(momentum=0.9, centered=True, weight_decay=0.1)], ids=str)
def test_missing_grad_is_noop(options):
    contract.check_missing_grad_is_noop(OURS, options)


@pytest.mark.parametrize("options", CASES, ids=IDS)
def test_loss_falls_or_rises_with_maximize(options):
    contract.check_loss_falls(OURS, options)


def test_lr_scheduler():
    contract.check_lr_scheduler(OURS, THEIRS, dict(lr=0.01, momentum=0.9, centered=True))


def test_tensor_lr():
    contract.check_closed_loop(OURS, THEIRS, dict(lr=torch.tensor(0.01), momentum=0.9))


@pytest.mark.parametrize(
    "options, keys",
    [(dict(), {"step", "square_avg"}),
     (dict(momentum=0.9), {"step", "square_avg", "momentum_buffer"}),
     (dict(centered=True), {"step", "square_avg", "grad_avg"}),
     (dict(momentum=0.9, centered=True), {"step", "square_avg", "momentum_buffer", "grad_avg"})],
    ids=str,
)
@pytest.mark.parametrize("default_dtype", [torch.float32, torch.float64])
def test_state_keys_and_step_dtype_like_torch(options, keys, default_dtype):
    """Only the buffers the options need, with torch's keys; step is float32 (float64 when that is the default)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(default_dtype)
    try:
        states = []
        for cls in (OURS, THEIRS):
            p = torch.ones(3, dtype=torch.float64, requires_grad=True)
            opt = cls([p], **options)
            p.grad = torch.ones_like(p)
            opt.step()
            states.append(opt.state[p])
        ours, theirs = states
        assert set(ours) == set(theirs) == keys
        assert ours["step"].dtype == theirs["step"].dtype == default_dtype and ours["step"].dim() == 0
        assert max(max_abs_diff(ours[k], theirs[k]) for k in ours) < 1e-15
    finally:
        torch.set_default_dtype(old)


def test_sparse_gradients_are_refused_like_torch():
    for cls in (OURS, THEIRS):
        emb = nn.Embedding(5, 2, sparse=True)
        opt = cls(emb.parameters())
        emb(torch.tensor([1, 2])).sum().backward()
        with pytest.raises(RuntimeError, match="RMSprop does not support sparse gradients"):
            opt.step()


@pytest.mark.parametrize(
    "bad",
    [dict(lr=-0.1), dict(eps=-1e-8), dict(momentum=-0.5), dict(weight_decay=-1.0), dict(alpha=-0.1),
     dict(lr=torch.tensor([0.1, 0.2]))],
    ids=str,
)
def test_invalid(bad):
    contract.check_invalid(OURS, THEIRS, bad)


def test_refuses_implementation_switches():
    contract.check_refuses_switches(OURS, ["capturable", "foreach", "differentiable"])


def test_closure_returns_loss():
    """One step from p = (1, 2) on f = |p|² (g = 2p, alpha = 0.99): θ ← θ − lr · g / (√(0.01 g²) + eps)."""
    p = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    opt = OURS([p], lr=0.01)

    def closure():
        opt.zero_grad()
        loss = (p**2).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == pytest.approx(5.0, abs=1e-12)
    g = torch.tensor([2.0, 4.0], dtype=torch.float64)
    expected = torch.tensor([1.0, 2.0], dtype=torch.float64) - 0.01 * g / ((0.01 * g**2).sqrt() + 1e-8)
    assert max_abs_diff(p, expected) < 1e-15


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda():
    contract.check_cuda(OURS, THEIRS, dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.01))
