"""companion.optim.Adadelta against torch.optim.Adadelta, driven by one table of option combinations."""

import itertools

import pytest
import torch
from torch import nn

from companion.testing import optim_contract as contract
from companion.optim.adadelta import Adadelta
from companion.testing.parity import max_abs_diff

OURS, THEIRS = Adadelta, torch.optim.Adadelta


def _cases():
    """Every combination of rho, weight_decay and maximize; lr and eps alone; everything together."""
    cases = [
        dict(rho=rho, weight_decay=weight_decay, maximize=maximize)
        for rho, weight_decay, maximize in itertools.product((0.9, 0.5), (0.0, 0.05), (False, True))
    ]
    cases.append(dict(lr=0.5))
    cases.append(dict(eps=1e-3))
    cases.append(dict(lr=0.5, rho=0.5, eps=1e-3, weight_decay=0.05, maximize=True))
    return cases


CASES = _cases()
IDS = ["-".join(f"{k}={v}" for k, v in c.items()) for c in CASES]


def test_signature():
    contract.check_signature(OURS, THEIRS)


@pytest.mark.parametrize("options", CASES, ids=IDS)
def test_closed_loop(options):
    contract.check_closed_loop(OURS, THEIRS, options)


@pytest.mark.parametrize("options", CASES, ids=IDS)
def test_replay(options):
    contract.check_replay(OURS, THEIRS, options)


@pytest.mark.parametrize("options", CASES[::2] + CASES[-1:], ids=str)
def test_state_dict_round_trip(options):
    contract.check_state_dict_round_trip(OURS, THEIRS, options)


@pytest.mark.parametrize("options", [dict(), dict(lr=0.5, rho=0.5, weight_decay=0.1)], ids=str)
def test_missing_grad_is_noop(options):
    contract.check_missing_grad_is_noop(OURS, options)


@pytest.mark.parametrize("options", CASES, ids=IDS)
def test_loss_falls_or_rises_with_maximize(options):
    contract.check_loss_falls(OURS, options)


def test_lr_scheduler():
    contract.check_lr_scheduler(OURS, THEIRS, dict(rho=0.9))


def test_tensor_lr():
    contract.check_closed_loop(OURS, THEIRS, dict(lr=torch.tensor(0.5), rho=0.9))


@pytest.mark.parametrize("default_dtype", [torch.float32, torch.float64])
def test_state_keys_and_step_dtype_like_torch(default_dtype):
    """Created at the first gradient, with torch's keys; step is float32 (float64 when that is the default)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(default_dtype)
    try:
        states = []
        for cls in (OURS, THEIRS):
            p = torch.ones(3, dtype=torch.float64, requires_grad=True)
            opt = cls([p])
            assert len(opt.state[p]) == 0
            p.grad = torch.ones_like(p)
            opt.step()
            states.append(opt.state[p])
        ours, theirs = states
        assert set(ours) == set(theirs) == {"step", "square_avg", "acc_delta"}
        assert ours["step"].dtype == theirs["step"].dtype == default_dtype and ours["step"].dim() == 0
        assert max(max_abs_diff(ours[k], theirs[k]) for k in ours) < 1e-15
    finally:
        torch.set_default_dtype(old)


def test_sparse_gradients_are_refused_like_torch():
    for cls in (OURS, THEIRS):
        emb = nn.Embedding(5, 2, sparse=True)
        opt = cls(emb.parameters())
        emb(torch.tensor([1, 2])).sum().backward()
        with pytest.raises(RuntimeError, match="Adadelta does not support sparse gradients"):
            opt.step()


@pytest.mark.parametrize(
    "bad",
    [dict(lr=-0.1), dict(rho=-0.1), dict(rho=1.5), dict(eps=-1e-6), dict(weight_decay=-1.0),
     dict(lr=torch.tensor([0.1, 0.2]))],
    ids=str,
)
def test_invalid(bad):
    contract.check_invalid(OURS, THEIRS, bad)


def test_refuses_implementation_switches():
    contract.check_refuses_switches(OURS, ["foreach", "capturable", "differentiable"])


def test_closure_returns_loss():
    """One step from p = (1, 2) on f = |p|² (g = 2p, rho = 0.9, eps = 1e-6): Δθ = √eps / √(0.1 g² + eps) · g."""
    p = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    opt = OURS([p])

    def closure():
        opt.zero_grad()
        loss = (p**2).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == pytest.approx(5.0, abs=1e-12)
    g = torch.tensor([2.0, 4.0], dtype=torch.float64)
    expected = torch.tensor([1.0, 2.0], dtype=torch.float64) - (1e-6) ** 0.5 / (0.1 * g**2 + 1e-6).sqrt() * g
    assert max_abs_diff(p, expected) < 1e-15


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda():
    contract.check_cuda(OURS, THEIRS, dict(lr=0.5, rho=0.9, weight_decay=0.01))
