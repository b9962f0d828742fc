r"""Backpropagation by hand: the forward and backward pass of a two-layer MLP with the mean squared error.

Used by chapter 3.2 (*Backpropagation by hand*). The computational graph, for a batch ``x`` (n, d) and
targets ``y`` (n, k), with the weights in ``torch.nn.Linear``'s layout (out_features, in_features):

.. math::
    z_1 = x W_1^\top + b_1, \quad h = \sigma(z_1), \quad \hat y = h W_2^\top + b_2, \quad
    L = \frac1N \sum_{i,j} (\hat y_{ij} - y_{ij})^2, \quad N = n k .

The backward pass runs the chain rule through the graph in reverse, one node at a time:

.. math::
    \delta_2 &= \frac{\partial L}{\partial \hat y} = \frac2N (\hat y - y), &
    \frac{\partial L}{\partial W_2} &= \delta_2^\top h, &
    \frac{\partial L}{\partial b_2} &= \textstyle\sum_i \delta_{2,i}, \\
    \frac{\partial L}{\partial h} &= \delta_2 W_2, &
    \delta_1 &= \frac{\partial L}{\partial z_1} = \frac{\partial L}{\partial h} \odot \sigma'(z_1), \\
    \frac{\partial L}{\partial W_1} &= \delta_1^\top x, &
    \frac{\partial L}{\partial b_1} &= \textstyle\sum_i \delta_{1,i}, &
    \frac{\partial L}{\partial x} &= \delta_1 W_1 .

Nothing here calls torch's autograd, ``nn.Linear``, ``nn.MSELoss`` or ``torch.sigmoid``: the chapter
checks these functions against them.
"""

from typing import Callable, NamedTuple

import torch
from torch import Tensor

from companion.core.debugging import central_difference


class Parameters(NamedTuple):
    """The four parameter tensors (or their gradients): ``W1`` (m, d), ``b1`` (m,), ``W2`` (k, m), ``b2`` (k,)."""

    W1: Tensor
    b1: Tensor
    W2: Tensor
    b2: Tensor


class Cache(NamedTuple):
    """What the forward pass stores for the backward pass: every node of the graph."""

    x: Tensor
    y: Tensor
    z1: Tensor
    h: Tensor
    y_hat: Tensor
    loss: Tensor


def _sigmoid(z: Tensor) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    # σ(z) = 1 / (1 + e^{−z});  σ'(z) = σ(z)(1 − σ(z))
    h = 1 / (1 + torch.exp(-z))
    return h, lambda h: h * (1 - h)


def _tanh(z: Tensor) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    # tanh(z) = (e^{2z} − 1)/(e^{2z} + 1), computed by torch.tanh;  tanh'(z) = 1 − tanh²(z) = (1 − h)(1 + h)
    # (the factored form avoids the cancellation of 1 − h² for a saturated unit, |h| → 1)
    h = torch.tanh(z)
    return h, lambda h: (1 - h) * (1 + h)


def _relu(z: Tensor) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    # relu(z) = max(z, 0);  relu'(z) = 1[z > 0]  (0 at z = 0, as torch takes it)
    h = torch.where(z > 0, z, torch.zeros_like(z))
    return h, lambda h: (h > 0).to(h.dtype)


ACTIVATIONS = {"sigmoid": _sigmoid, "tanh": _tanh, "relu": _relu}
"""Each activation returns σ(z) and its derivative written as a function of σ(z) itself."""


def _activation(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}"
        )
    return ACTIVATIONS[name]


def forward(
    params: Parameters, x: Tensor, y: Tensor, activation: str = "sigmoid"
) -> Cache:
    r"""The forward pass, keeping every intermediate value (see the module's equations).

    .. math::
        z_1 = x W_1^\top + b_1, \quad h = \sigma(z_1), \quad \hat y = h W_2^\top + b_2, \quad
        L = \frac{1}{N}\sum_{i,j} (\hat y_{ij} - y_{ij})^2
    """
    W1, b1, W2, b2 = params
    if x.dim() != 2 or x.shape[1] != W1.shape[1]:
        raise ValueError(f"x must be (n, {W1.shape[1]}), got {tuple(x.shape)}")
    if y.shape != (x.shape[0], W2.shape[0]):
        raise ValueError(
            f"y must be ({x.shape[0]}, {W2.shape[0]}), got {tuple(y.shape)}"
        )
    # z₁ = x W₁ᵀ + b₁
    z1 = x @ W1.T + b1
    # h = σ(z₁)
    h, _ = _activation(activation)(z1)
    # ŷ = h W₂ᵀ + b₂
    y_hat = h @ W2.T + b2
    # L = (1/N) Σ (ŷ − y)²
    loss = ((y_hat - y) ** 2).sum() / y.numel()
    return Cache(x, y, z1, h, y_hat, loss)


def backward(
    params: Parameters, cache: Cache, activation: str = "sigmoid"
) -> tuple[Parameters, Tensor]:
    r"""The backward pass: the gradient of L with respect to every parameter, and to the input x.

    .. math::
        \delta_2 = \tfrac2N (\hat y - y), \quad
        \nabla_{W_2} = \delta_2^\top h, \quad \nabla_{b_2} = \textstyle\sum_i \delta_{2,i}, \quad
        \nabla_h = \delta_2 W_2, \quad \delta_1 = \nabla_h \odot \sigma'(z_1), \quad
        \nabla_{W_1} = \delta_1^\top x, \quad \nabla_{b_1} = \textstyle\sum_i \delta_{1,i}, \quad
        \nabla_x = \delta_1 W_1

    Returns ``(Parameters(∇W₁, ∇b₁, ∇W₂, ∇b₂), ∇x)``.
    """
    W1, _, W2, _ = params
    x, y, _, h, y_hat, _ = cache
    _, sigma_prime = _activation(activation)(cache.z1)
    # δ₂ = ∂L/∂ŷ = (2/N)(ŷ − y)
    delta2 = 2 * (y_hat - y) / y.numel()
    # ∂L/∂W₂ = δ₂ᵀ h
    dW2 = delta2.T @ h
    # ∂L/∂b₂ = Σ_i δ₂,i
    db2 = delta2.sum(dim=0)
    # ∂L/∂h = δ₂ W₂
    dh = delta2 @ W2
    # δ₁ = ∂L/∂z₁ = ∂L/∂h ⊙ σ'(z₁)
    delta1 = dh * sigma_prime(h)
    # ∂L/∂W₁ = δ₁ᵀ x
    dW1 = delta1.T @ x
    # ∂L/∂b₁ = Σ_i δ₁,i
    db1 = delta1.sum(dim=0)
    # ∂L/∂x = δ₁ W₁
    dx = delta1 @ W1
    return Parameters(dW1, db1, dW2, db2), dx


def sgd_update(params: Parameters, grads: Parameters, lr: float) -> Parameters:
    r"""One plain gradient-descent step on every parameter, as new tensors: :math:`\theta \leftarrow \theta - \eta\, \nabla_\theta L`."""
    if lr < 0:
        raise ValueError(f"Invalid learning rate: {lr}")
    # θ ← θ − η ∇θ L
    return Parameters(*(p - lr * g for p, g in zip(params, grads)))


class TwoLayerMSE(torch.autograd.Function):
    r"""The whole graph as one autograd node whose backward is :func:`backward`, for ``gradcheck``.

    ``TwoLayerMSE.apply(x, y, W1, b1, W2, b2, activation)`` returns L. The backward recomputes the
    forward pass from the saved inputs (instead of saving z₁ and h), so that it is itself made of
    differentiable operations and ``gradgradcheck`` applies too. It also returns
    :math:`\partial L/\partial y = -\delta_2`.
    """

    @staticmethod
    def forward(ctx, x, y, W1, b1, W2, b2, activation="sigmoid"):
        ctx.save_for_backward(x, y, W1, b1, W2, b2)
        ctx.activation = activation
        return forward(Parameters(W1, b1, W2, b2), x, y, activation).loss

    @staticmethod
    def backward(ctx, grad_loss):
        x, y, W1, b1, W2, b2 = ctx.saved_tensors
        params = Parameters(W1, b1, W2, b2)
        cache = forward(params, x, y, ctx.activation)
        grads, dx = backward(params, cache, ctx.activation)
        # ∂L/∂y = −(2/N)(ŷ − y) = −δ₂
        dy = -2 * (cache.y_hat - y) / y.numel()
        # the chain rule's last factor: every gradient times ∂(whatever follows)/∂L
        return (grad_loss * dx, grad_loss * dy, *(grad_loss * g for g in grads), None)


def central_differences(
    f: Callable[[], Tensor], tensors: list[Tensor], h: float = 1e-6
) -> list[Tensor]:
    r"""The gradient of the scalar ``f()`` with respect to each tensor, by central differences.

    .. math::
        \frac{\partial f}{\partial \theta_i} \approx \frac{f(\theta + h e_i) - f(\theta - h e_i)}{2h}

    Each entry is nudged in place and restored. The truncation error is :math:`O(h^2)` and the rounding
    error :math:`O(\varepsilon / h)`, smallest near :math:`h \approx \varepsilon^{1/3}` (6e-6 in float64).
    """
    grads = []
    with torch.no_grad():
        for t in tensors:
            g = torch.empty_like(t)
            flat, gflat = t.view(-1), g.view(-1)
            for i in range(flat.numel()):
                # (f(θ + h eᵢ) − f(θ − h eᵢ)) / 2h
                gflat[i] = central_difference(f, flat, i, h)
            grads.append(g)
    return grads
