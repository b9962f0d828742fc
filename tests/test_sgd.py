"""companion.optim.SGD against torch.optim.SGD, driven by one table of option combinations."""

import itertools

import pytest
import torch

from companion.testing import optim_contract as contract
from companion.optim import SGD

OURS, THEIRS = SGD, torch.optim.SGD


def _cases():
    """Every combination of the options that change the math (nesterov only where torch allows it)."""
    cases = []
    for momentum, dampening, nesterov, weight_decay, maximize in itertools.product(
        (0.0, 0.9), (0.0, 0.3), (False, True), (0.0, 0.05), (False, True)
    ):
        if nesterov and (momentum == 0 or dampening != 0):
            continue
        cases.append(dict(lr=0.05, momentum=momentum, dampening=dampening, nesterov=nesterov,
                          weight_decay=weight_decay, maximize=maximize))
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


@pytest.mark.parametrize("options", [c for c in CASES if c["momentum"]] + [dict(lr=0.1)], ids=str)
def test_state_dict_round_trip(options):
    contract.check_state_dict_round_trip(OURS, THEIRS, options)


@pytest.mark.parametrize("options", [dict(lr=0.1), dict(lr=0.1, momentum=0.9, weight_decay=0.1)], ids=str)
def test_missing_grad_is_noop(options):
    contract.check_missing_grad_is_noop(OURS, options)


@pytest.mark.parametrize("options", CASES, ids=IDS)
def test_loss_falls_or_rises_with_maximize(options):
    contract.check_loss_falls(OURS, options)


def test_lr_scheduler():
    contract.check_lr_scheduler(OURS, THEIRS, dict(lr=0.1, momentum=0.9))


def test_tensor_lr():
    contract.check_closed_loop(OURS, THEIRS, dict(lr=torch.tensor(0.05), momentum=0.9))


@pytest.mark.parametrize(
    "bad",
    [dict(lr=-0.1), dict(momentum=-0.5), dict(weight_decay=-1.0), dict(nesterov=True),
     dict(momentum=0.9, dampening=0.1, nesterov=True), dict(lr=torch.tensor([0.1, 0.2]))],
    ids=str,
)
def test_invalid(bad):
    contract.check_invalid(OURS, THEIRS, bad)


def test_refuses_implementation_switches():
    contract.check_refuses_switches(OURS, ["foreach", "differentiable", "fused"])


def test_no_state_without_momentum():
    """Like torch, plain SGD keeps no per-parameter state at all."""
    p = torch.ones(2, requires_grad=True)
    opt = OURS([p], lr=0.1)
    p.grad = torch.ones(2)
    opt.step()
    assert opt.state_dict()["state"] == {}


def test_closure_returns_loss():
    p = torch.tensor([1.0, 2.0], requires_grad=True)
    opt = OURS([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p**2).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == pytest.approx(5.0)
    assert torch.allclose(p.detach(), torch.tensor([0.8, 1.6]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda():
    contract.check_cuda(OURS, THEIRS, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01))
