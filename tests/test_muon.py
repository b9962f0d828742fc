"""companion.optim.Muon against torch.optim.Muon, driven by one table of option combinations.

Muon takes 2-D parameters only, so the shared suite's problems run here without biases: the closed loop,
the round trip and the loss check on a bias-free MLP, the replay on matrices of several shapes (wide,
tall, square), and the checks written for a vector on a 1 × n matrix. The Newton–Schulz iteration runs in
bfloat16 in both, with the same operations in the same order, so the two agree to float64's rounding."""

import functools
import inspect
import itertools

import pytest
import torch
from torch import nn

import companion.testing.parity as parity
from companion.testing import optim_contract as contract
from companion.testing.installed_torch import accepts
from companion.testing.optim_suite import OptimizerContract
from companion.testing.tolerances import assert_close, eps

if not hasattr(torch.optim, "Muon"):
    pytest.skip(
        f"torch {torch.__version__}: has no torch.optim.Muon", allow_module_level=True
    )
if accepts(torch.optim.Muon, "use_addmm"):
    # a torch whose Muon had a ``use_addmm`` switch, off by default: another signature, and a Newton–Schulz
    # iteration in other bfloat16 arithmetic than the addmm one mirrored here
    pytest.skip(
        f"torch {torch.__version__}: torch.optim.Muon has an argument 'use_addmm' (the Muon mirrored has none)",
        allow_module_level=True,
    )

from companion.optim.muon import Muon, adjusted_lr, newton_schulz  # noqa: E402

OURS, THEIRS = Muon, torch.optim.Muon
SHAPES = ((4, 3), (3, 5), (6, 6), (2, 7))


def _cases():
    """Every combination of the options that change the math, then lr, momentum, the coefficients, ε and
    the number of iterations alone and all together."""
    cases = []
    for weight_decay, nesterov, adjust in itertools.product(
        (0.0, 0.1), (True, False), (None, "original", "match_rms_adamw")
    ):
        cases.append(
            dict(
                lr=0.01,
                weight_decay=weight_decay,
                nesterov=nesterov,
                adjust_lr_fn=adjust,
            )
        )
    cases += [
        dict(),  # torch's defaults
        dict(lr=0.05),
        dict(lr=0.01, momentum=0.0),
        dict(lr=0.01, momentum=0.5, nesterov=False),
        dict(
            lr=0.01, ns_coefficients=(2.0, -1.5, 0.5)
        ),  # the classic cubic-like iteration
        dict(lr=0.01, ns_steps=1),
        dict(lr=0.01, ns_steps=10),
        dict(lr=0.01, eps=1e-2),
        dict(
            lr=0.02,
            weight_decay=0.05,
            momentum=0.9,
            nesterov=False,
            ns_coefficients=(3.0, -3.2, 1.2),
            ns_steps=3,
            adjust_lr_fn="match_rms_adamw",
        ),
    ]
    return cases


CASES = _cases()
ROUND_TRIP = CASES[::3] + CASES[-1:]


def _matrix_mlp(dtype, device, seed):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(5, 8, bias=False), nn.Tanh(), nn.Linear(8, 3, bias=False)
    ).to(device=device, dtype=dtype)


def _matrix_problem(seed=0):
    _, X, y = _UNPATCHED_PROBLEM(seed)
    torch.manual_seed(seed)
    return (
        nn.Sequential(
            nn.Linear(4, 6, bias=False), nn.Tanh(), nn.Linear(6, 2, bias=False)
        ).double(),
        X,
        y,
    )


_UNPATCHED_PROBLEM = contract._problem


@pytest.fixture
def matrices_only(monkeypatch):
    """The shared checks, on problems without vectors: bias-free MLPs and a replay of matrices."""
    monkeypatch.setattr(parity, "_parity_mlp", _matrix_mlp)
    monkeypatch.setattr(contract, "_problem", _matrix_problem)
    monkeypatch.setattr(
        contract,
        "replay_gradients",
        functools.partial(parity.replay_gradients, shapes=SHAPES),
    )


@pytest.mark.parametrize("shape", [(), (3,), (2, 3, 4), (1, 1, 1, 1)])
def test_refuses_parameters_that_are_not_matrices_like_torch(shape):
    messages = []
    for cls in (OURS, THEIRS):
        with pytest.raises(ValueError) as error:
            cls([torch.zeros(shape, requires_grad=True)])
        messages.append(str(error.value))
    assert messages[0] == messages[1]
    assert "Muon only supports 2D parameters" in messages[0]


@pytest.mark.parametrize(
    "options, error",
    [
        (dict(ns_steps=100), "Number of steps must be less than 100"),
        (
            dict(ns_coefficients=(1.0, 2.0)),
            "Coefficients must be a tuple of exactly 3 values",
        ),
    ],
)
def test_refuses_bad_iterations_at_the_step_like_torch(options, error):
    for cls in (OURS, THEIRS):
        p = torch.zeros(2, 3, requires_grad=True)
        p.grad = torch.ones_like(p)
        opt = cls([p], **options)
        with pytest.raises(ValueError, match=error):
            opt.step()


@pytest.mark.parametrize("shape", [(8, 8), (4, 16), (16, 4)])
def test_newton_schulz_nearly_orthogonalizes(shape):
    """After 5 iterations every singular value lies roughly in [0.7, 1.2] (not at 1: the quintic overshoots
    on purpose), while U and V are kept: the result is close to U Vᵀ."""
    g = torch.randn(
        shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    o = newton_schulz(g).double()
    s = torch.linalg.svdvals(o)
    assert o.shape == g.shape and s.min() > 0.6 and s.max() < 1.25, s
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    assert (o - u @ vh).norm() / (u @ vh).norm() < 0.35


@pytest.mark.parametrize(
    "fn, shape, factor",
    [(None, (8, 2), 2.0), ("original", (2, 8), 1.0), ("match_rms_adamw", (4, 25), 1.0)],
)
def test_adjusted_lr(fn, shape, factor):
    assert adjusted_lr(0.5, fn, shape) == pytest.approx(0.5 * factor)


def test_state_like_torch():
    """torch's single state key, ``momentum_buffer``, of the gradient's shape and dtype, and equal values."""
    states = []
    for cls in (OURS, THEIRS):
        p = torch.ones(3, 4, dtype=torch.float64, requires_grad=True)
        opt = cls([p], lr=0.1)
        for k in range(3):
            p.grad = torch.linspace(-1, 1, 12, dtype=torch.float64).view(3, 4) * (
                1.0 - 0.4 * k
            )
            opt.step()
        states.append(opt.state[p])
    assert set(states[0]) == set(states[1]) == {"momentum_buffer"}
    a, b = states[0]["momentum_buffer"], states[1]["momentum_buffer"]
    assert (a.dtype, a.shape) == (b.dtype, b.shape)
    assert_close(a, b, ulps=8)  # three lerps: a few ε


def test_missing_grad_is_noop():
    a = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    before = b.detach().clone()
    opt = OURS([a, b], lr=0.1)
    for _ in range(3):
        a.grad = torch.ones_like(a)
        opt.step()
    assert torch.equal(b.detach(), before) and len(opt.state.get(b, {})) == 0


@pytest.mark.usefixtures("matrices_only")
class TestMuon(OptimizerContract):
    """The shared contract, filled with Muon's tables, on matrices only."""

    ours, theirs = OURS, THEIRS
    cases = CASES
    round_trip = ROUND_TRIP
    invalid = [
        dict(lr=-0.1),
        dict(momentum=-0.5),
        dict(weight_decay=-1.0),
        dict(adjust_lr_fn="rms"),
        dict(lr=torch.tensor([0.1, 0.2])),
    ]
    scheduled = [dict(lr=0.01, weight_decay=0.01)]
    cuda = [dict(lr=0.01, adjust_lr_fn="match_rms_adamw")]
    closure = [dict(lr=0.1), dict(lr=0.1, nesterov=False, weight_decay=0.0)]
    closure_shape = (1, 2)  # Muon takes matrices only
    # the suite's versions use a vector parameter: the matrix versions above replace them
    state = missing_grad = []

    def test_closed_loop(self, options):
        """``check_closed_loop``, whose default-lr probe builds torch's optimizer on a vector, which Muon refuses."""
        lr = options.get("lr", inspect.signature(THEIRS).parameters["lr"].default)
        diff = parity.compare_optimizers(
            OURS, THEIRS, options, steps=25, group_options={"lr": lr / 2}, relative=True
        )
        assert diff <= contract.CLOSED_LOOP_ULPS * eps(torch.float64), (
            f"closed loop: relative difference {diff:.3g}"
        )

    @pytest.mark.parametrize(
        "lr", [torch.tensor(0.01), torch.tensor([0.01])], ids=["0-dim", "1-element"]
    )
    def test_tensor_lr(
        self, lr
    ):  # the suite's probe steps a vector, which Muon refuses
        self.test_closed_loop(dict(lr=lr, weight_decay=0.1))
