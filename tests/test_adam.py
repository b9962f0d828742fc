"""companion.optim.Adam against torch.optim.Adam, driven by one table of option combinations."""

import itertools

import pytest
import torch

from companion.testing import optim_contract as contract
from companion.optim.adam import Adam

OURS, THEIRS = Adam, torch.optim.Adam


def _cases():
    """Every combination of the switches that change the math, then betas and eps alone and all together."""
    cases = []
    for weight_decay, decoupled, amsgrad, maximize in itertools.product(
        (0.0, 0.05), (False, True), (False, True), (False, True)
    ):
        cases.append(dict(lr=0.01, weight_decay=weight_decay, decoupled_weight_decay=decoupled,
                          amsgrad=amsgrad, maximize=maximize))
    cases += [
        dict(lr=0.01, betas=(0.5, 0.9)),
        dict(lr=0.01, betas=(0.0, 0.99)),
        dict(lr=0.01, eps=1e-3),
        dict(lr=0.01, betas=(0.8, 0.95), eps=1e-4, weight_decay=0.1, amsgrad=True, maximize=True,
             decoupled_weight_decay=True),
    ]
    return cases


CASES = _cases()


@pytest.mark.parametrize("default_dtype", [torch.float32, torch.float64])
def test_step_is_a_tensor_of_torchs_dtype(default_dtype):
    """``step`` is a CPU scalar tensor whose dtype follows torch's rule (float64 only as the default dtype)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(default_dtype)
    try:
        steps = []
        for cls in (OURS, THEIRS):
            p = torch.ones(2, dtype=torch.float64, requires_grad=True)
            opt = cls([p], lr=0.1, amsgrad=True)
            p.grad = torch.ones_like(p)
            opt.step()
            steps.append(opt.state[p]["step"])
            assert set(opt.state[p]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
        assert steps[0].dtype == steps[1].dtype and steps[0].shape == steps[1].shape == ()
        assert steps[0].item() == steps[1].item() == 1.0
    finally:
        torch.set_default_dtype(previous)


def test_constant_gradient_step_is_lr():
    """With a constant gradient, the bias-corrected step is exactly lr at every t (up to eps), to 1e-12."""
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = OURS([p], lr=0.1, eps=0.0)
    for t in range(1, 51):
        p.grad = torch.tensor([1.0, -2.0, 1e-3], dtype=torch.float64)
        before = p.detach().clone()
        opt.step()
        step = (p.detach() - before).abs()
        assert torch.allclose(step, torch.full_like(step, 0.1), rtol=0, atol=1e-12), (t, step)


class TestAdam(contract.OptimizerContract):
    """The shared contract, filled with Adam's tables."""
    ours, theirs = OURS, THEIRS
    cases = CASES
    round_trip = CASES[::3] + CASES[-4:]
    missing_grad = [dict(lr=0.1), dict(lr=0.1, amsgrad=True, weight_decay=0.1)]
    invalid = [dict(lr=-0.1), dict(eps=-1e-8), dict(betas=(1.0, 0.999)), dict(betas=(-0.1, 0.999)),
        dict(betas=(0.9, 1.0)), dict(weight_decay=-1.0), dict(betas=(0.9, torch.tensor(0.99))),
        dict(betas=(0, 0.999)), dict(lr=torch.tensor([0.1, 0.2]))]
    switches = ["foreach", "capturable", "differentiable", "fused"]
    scheduled = [dict(lr=0.01, amsgrad=True)]
    tensor_lr = [dict(lr=torch.tensor(0.01)), dict(lr=0.01, betas=(torch.tensor(0.8), torch.tensor([0.99])))]
    cuda = [dict(lr=0.01, amsgrad=True, weight_decay=0.01), dict(lr=0.01, weight_decay=0.01, decoupled_weight_decay=True)]
