"""companion.experiments.gradient_sequences: recording an optimizer on a prescribed gradient sequence."""

import pytest
import torch

from companion.experiments.gradient_sequences import bias_factor, run_on_gradients
from companion.optim import SGD, Adam

TOL = 1e-12


@pytest.mark.parametrize("shape", [(4,), (2, 3)])
def test_records_adam_state_and_steps(shape):
    """The recorded moments are Adam's own, and the updates sum to the final displacement (1e-12)."""
    g = torch.Generator().manual_seed(0)
    grads = torch.randn(30, *shape, generator=g, dtype=torch.float64)
    out = run_on_gradients(Adam, grads, lr=0.01)
    assert out["param"].shape == (31, *shape) and out["exp_avg_sq"].shape == (
        30,
        *shape,
    )
    v = torch.zeros(shape, dtype=torch.float64)
    for t in range(30):
        v = 0.999 * v + 0.001 * grads[t] ** 2
        assert torch.allclose(out["exp_avg_sq"][t], v, rtol=0, atol=TOL)
    assert torch.allclose(
        out["update"].sum(0), out["param"][-1] - out["param"][0], rtol=0, atol=TOL
    )


def test_gradient_function_projection_and_scheduler():
    """A gradient function, a clamp onto [−1, 1] and an lr scheduler are applied in that order."""
    out = run_on_gradients(
        SGD,
        lambda t, theta: -torch.ones_like(theta),
        steps=5,
        start=torch.zeros(2, dtype=torch.float64),
        project=lambda theta: theta.clamp_(-1, 1),
        state_keys=(),
        lr=0.4,
        scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(
            opt, step_size=1, gamma=0.5
        ),
    )
    expected = torch.tensor([0.0, 0.4, 0.6, 0.7, 0.75, 0.775], dtype=torch.float64)
    assert torch.allclose(out["param"][:, 0], expected, rtol=0, atol=TOL)
    long = run_on_gradients(
        SGD,
        lambda t, theta: -torch.ones_like(theta),
        steps=5,
        start=torch.zeros(1, dtype=torch.float64),
        project=lambda th: th.clamp_(-1, 1),
        lr=0.4,
    )
    assert long["param"][-1].item() == 1.0 and "exp_avg" not in long


def test_gradient_function_needs_steps_and_start():
    with pytest.raises(ValueError, match="steps"):
        run_on_gradients(SGD, lambda t, theta: theta, lr=0.1)


@pytest.mark.parametrize("beta", [0.9, 0.999])
def test_bias_factor(beta):
    assert torch.allclose(
        bias_factor(beta, 3),
        torch.tensor([1 - beta, 1 - beta**2, 1 - beta**3], dtype=torch.float64),
        rtol=0,
        atol=TOL,
    )
