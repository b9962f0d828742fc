"""companion.experiments.backprop (the two-layer MLP's forward and backward written by hand) against torch's
autograd through nn.Linear / activation / nn.Linear / nn.MSELoss, against finite differences
(gradcheck, gradgradcheck and our own central differences), and its SGD step against companion.optim.SGD
and torch.optim.SGD, in float64 over a table of shapes and activations."""

import pytest
import torch
from torch import nn

from companion.experiments.backprop import (
    Parameters,
    TwoLayerMSE,
    backward,
    central_differences,
    forward,
    sgd_update,
)
from companion.optim import SGD
from companion.testing.tolerances import assert_close

DTYPE = torch.float64
TORCH_ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}
# (n, d, m, k): batch, inputs, hidden width, outputs; includes the one-of-everything edge case
SHAPES = [(32, 5, 16, 3), (1, 1, 1, 1), (64, 10, 32, 4), (7, 3, 50, 2), (5, 2, 2, 1)]

# Our gradients and autograd's run the same products but reduce them (matrix products over the batch n
# and the width m, sums over the batch) in other orders and kernels. A reduction of K terms of one
# magnitude differs by at most about K·ε relative to its size, and every entry passes through at most
# two such reductions with K ≤ 64 here: 64 ε·scale bounds the difference (we measured ≤ 3).
GRAD_ULPS = 64


def grad_ulps(h, activation):
    """GRAD_ULPS, plus what a saturated tanh unit adds: torch's default kernel computes tanh' = 1 − h·h
    with a rounded product (AVX2/AVX-512 fuse it, we factor it as (1 − h)(1 + h)), and the cancellation
    amplifies that rounding by h²/(1 − h²) relative to tanh' (measured: 43 ε·scale at 1 − h² ≈ 1e-3)."""
    if activation != "tanh":
        return GRAD_ULPS
    return GRAD_ULPS + float((h * h / ((1 - h) * (1 + h))).max())


# The loss: one reduction over N = n·k ≤ 256 squared errors, after an identical forward pass up to
# the activation (ours: 1/(1 + e^{−z}), torch's sigmoid kernel; a few ε each).
LOSS_ULPS = 64


def _torch_net(d, m, k, activation, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(d, m), TORCH_ACTIVATIONS[activation](), nn.Linear(m, k)
    ).to(DTYPE)


def _params(net) -> Parameters:
    return Parameters(
        *(
            t.detach().clone()
            for t in (net[0].weight, net[0].bias, net[2].weight, net[2].bias)
        )
    )


def _data(n, d, k, seed=1):
    g = torch.Generator().manual_seed(seed)
    return 2 * torch.randn(n, d, generator=g, dtype=DTYPE), torch.randn(
        n, k, generator=g, dtype=DTYPE
    )


@pytest.mark.parametrize("activation", sorted(TORCH_ACTIVATIONS))
@pytest.mark.parametrize("shape", SHAPES, ids=[str(s) for s in SHAPES])
def test_forward_and_backward_match_autograd(shape, activation):
    n, d, m, k = shape
    net = _torch_net(d, m, k, activation)
    x, y = _data(n, d, k)
    x_ref = x.clone().requires_grad_()
    loss_ref = nn.MSELoss()(net(x_ref), y)
    loss_ref.backward()
    params = _params(net)
    cache = forward(params, x, y, activation)
    grads, dx = backward(params, cache, activation)
    assert_close(cache.loss, loss_ref.detach(), ulps=LOSS_ULPS, what="loss")
    reference = (
        net[0].weight.grad,
        net[0].bias.grad,
        net[2].weight.grad,
        net[2].bias.grad,
    )
    ulps = grad_ulps(cache.h, activation)
    for name, ours, theirs in zip(Parameters._fields, grads, reference):
        assert ours.shape == theirs.shape
        assert_close(ours, theirs, ulps=ulps, what=f"dL/d{name}")
    assert_close(dx, x_ref.grad, ulps=ulps, what="dL/dx")


@pytest.mark.parametrize("activation", sorted(TORCH_ACTIVATIONS))
def test_gradcheck_and_gradgradcheck(activation):
    n, d, m, k = 6, 3, 4, 2
    x, y = _data(n, d, k)
    params = _params(_torch_net(d, m, k, activation))
    if activation == "relu":
        x = (
            x + 0.1
        )  # keep the pre-activations away from the kink, where finite differences are meaningless
    inputs = [t.clone().requires_grad_() for t in (x, y, *params)]
    fn = lambda *t: TwoLayerMSE.apply(*t, activation)  # noqa: E731
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-8, rtol=1e-6)
    assert torch.autograd.gradgradcheck(fn, inputs, eps=1e-6, atol=1e-8, rtol=1e-6)


def test_central_differences_agree_with_the_hand_gradients():
    n, d, m, k = 8, 3, 5, 2
    x, y = _data(n, d, k)
    params = _params(_torch_net(d, m, k, "tanh"))
    grads, _ = backward(params, forward(params, x, y, "tanh"), "tanh")
    h = 6e-6  # ≈ ε^{1/3}: truncation O(h²) and rounding O(ε/h) balance
    numeric = central_differences(
        lambda: forward(params, x, y, "tanh").loss, list(params), h=h
    )
    # The error of a central difference is about h²|f'''|/6 + ε|f|/h ≈ 1e-10 for |f|, |f'''| of order 1:
    # a bound relative to the gradients' size, and far above float64 rounding, so it could only fail
    # if a hand gradient were wrong.
    for name, ours, fd in zip(Parameters._fields, grads, numeric):
        assert (ours - fd).abs().max() <= 1e-8 * max(1.0, ours.abs().max().item()), name


def test_central_differences_of_a_known_function():
    t = torch.tensor([0.3, -1.2, 2.0], dtype=DTYPE)
    (g,) = central_differences(lambda: (t**3).sum(), [t], h=1e-5)
    # exact: 3t²; the central difference of a cubic errs by exactly h² (f''' = 6, error h²·6/6)
    assert (g - 3 * t**2).abs().max() <= 1e-10 + 1e-9
    assert torch.equal(
        t, torch.tensor([0.3, -1.2, 2.0], dtype=DTYPE)
    )  # restored in place


@pytest.mark.parametrize("activation", sorted(TORCH_ACTIVATIONS))
def test_one_sgd_step_by_hand_equals_companion_and_torch_sgd(activation):
    n, d, m, k, lr = 16, 4, 8, 3, 0.5
    x, y = _data(n, d, k)
    nets = {name: _torch_net(d, m, k, activation) for name in ("ours", "torch")}
    params = _params(nets["ours"])
    grads, _ = backward(params, forward(params, x, y, activation), activation)
    by_hand = sgd_update(params, grads, lr)
    for name, opt_class in (("ours", SGD), ("torch", torch.optim.SGD)):
        net = nets[name]
        opt = opt_class(net.parameters(), lr=lr)
        nn.MSELoss()(net(x), y).backward()
        opt.step()
        # θ − η g: the gradients agree within GRAD_ULPS of their scale, and η|g| ≤ |θ| here, plus one
        # rounding of θ − ηg (torch may fuse the multiply-add): GRAD_ULPS + 2 of the parameters' scale
        for pname, ours, stepped in zip(Parameters._fields, by_hand, _params(net)):
            assert_close(
                ours,
                stepped,
                ulps=GRAD_ULPS + 2,
                what=f"{name}: {pname} after one step",
            )


def test_sgd_update_lowers_the_loss_and_validates():
    x, _ = _data(32, 2, 1)
    y = torch.tanh(x[:, :1] - x[:, 1:])  # a target the network can learn
    params = _params(_torch_net(2, 8, 1, "sigmoid"))
    losses = []
    for _ in range(50):
        cache = forward(params, x, y)
        losses.append(cache.loss.item())
        params = sgd_update(params, backward(params, cache)[0], lr=0.1)
    assert all(
        b < a for a, b in zip(losses, losses[1:])
    )  # a small step on a smooth loss: always down
    assert losses[-1] < 0.25 * losses[0]  # measured: 0.74 → 0.11
    with pytest.raises(ValueError, match="Invalid learning rate"):
        sgd_update(params, params, lr=-1.0)


def test_bad_input():
    params = _params(_torch_net(3, 4, 2, "tanh"))
    x, y = _data(5, 3, 2)
    with pytest.raises(ValueError, match="activation must be one of"):
        forward(params, x, y, "softplus")
    with pytest.raises(ValueError, match="x must be"):
        forward(params, x[:, :2], y)
    with pytest.raises(ValueError, match="y must be"):
        forward(params, x, y[:, :1])
