"""companion.nn.Dropout against torch.nn.Dropout, driven by a table of (p, shape, dtype, layout, inplace).

On the CPU the two draw the same mask from the same seed, so outputs and gradients are compared with
tolerance 0 (bit-identical). Statistical checks (used where the streams differ, on CUDA) allow 5
standard errors. The "scaled at test" convention is checked against inverted dropout to 1e-12 (float64).
"""

import inspect

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from companion.nn.dropout import (
    Dropout,
    DropoutScaledAtTest,
    dropout,
    dropout_scaled_at_test,
    keep_mask,
)
from companion.testing.parity import compare_modules

OURS, THEIRS = Dropout, nn.Dropout
EXACT = 0.0
CONVENTION_TOL = 1e-12


class Seeded(nn.Module):
    """Reseed the global generator before every forward, so two modules see the same random stream."""

    def __init__(self, module, seed=0):
        super().__init__()
        self.module, self.seed = module, seed

    def forward(self, x):
        torch.manual_seed(self.seed)
        return self.module(x)


def _input(shape, dtype, layout):
    x = torch.randn(shape, dtype=torch.float64).to(dtype)
    if layout == "transposed":
        x = x.transpose(0, -1)
    elif layout == "strided":
        x = x[..., ::2]
    elif layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    return x


CASES = [
    (p, shape, dtype, layout)
    for p in (0.0, 0.1, 0.5, 0.9, 1.0)
    for shape, layout in (
        ((7,), "contiguous"),
        ((32, 48), "contiguous"),
        ((32, 48), "transposed"),
        ((6, 10), "strided"),
        ((2, 3, 5, 4), "channels_last"),
    )
    for dtype in (torch.float32, torch.float64)
]
IDS = [f"p={p}-{tuple(s)}-{str(d)[6:]}-{l}" for p, s, d, l in CASES]


def test_signature_repr_and_constants():
    assert inspect.signature(OURS.__init__) == inspect.signature(THEIRS.__init__)
    for args in ((), (0.2,), (1, True), (0.0,)):
        assert repr(OURS(*args)) == repr(THEIRS(*args))
    assert OURS.__constants__ == THEIRS.__constants__
    assert OURS(0.3).p == 0.3 and OURS(inplace=True).inplace is True


@pytest.mark.parametrize("p,shape,dtype,layout", CASES, ids=IDS)
def test_same_output_and_gradient_as_torch(p, shape, dtype, layout):
    """Same seed → the same mask, output and input gradient as torch.nn.Dropout (tolerance 0)."""
    x = _input(shape, dtype, layout)
    diff = compare_modules(Seeded(OURS(p)), Seeded(THEIRS(p)), x)
    assert diff["output"] == EXACT and diff["input_grad"] == EXACT, diff


@pytest.mark.parametrize("p,shape,dtype,layout", CASES, ids=IDS)
def test_consumes_the_same_random_numbers(p, shape, dtype, layout):
    """After one call both leave the global generator in the same state (so training runs stay aligned)."""
    x = _input(shape, dtype, layout)
    after = []
    for cls in (OURS, THEIRS):
        torch.manual_seed(3)
        cls(p)(x)
        after.append(torch.rand(4))
    assert torch.equal(after[0], after[1])


@pytest.mark.parametrize("p", [0.2, 0.5, 1.0])
def test_inplace(p):
    x = torch.randn(20, 30, dtype=torch.float64)
    xs = [x.clone(), x.clone()]
    outs = []
    for cls, xi in zip((OURS, THEIRS), xs):
        torch.manual_seed(1)
        outs.append(cls(p, inplace=True)(xi))
        assert (
            outs[-1].data_ptr() == xi.data_ptr()
        )  # the input itself was overwritten and returned
    assert torch.equal(outs[0], outs[1]) and torch.equal(xs[0], xs[1])
    assert not torch.equal(xs[0], x)


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_eval_mode_is_the_identity(p):
    x = torch.randn(5, 4)
    m = OURS(p).eval()
    assert m(x) is x  # like torch: the very same tensor, and no random number drawn
    torch.manual_seed(0)
    m(x)
    a = torch.rand(1)
    torch.manual_seed(0)
    assert torch.equal(a, torch.rand(1))


def test_p_zero_in_training_and_empty_input_are_identities():
    x = torch.randn(4, 3)
    assert OURS(0.0)(x) is x
    e = torch.randn(0, 3)
    assert OURS(0.5)(e) is e


def test_p_one_zeroes_everything_like_torch():
    x = torch.tensor([1.0, -2.0, float("inf"), float("nan")])
    ours, theirs = OURS(1.0)(x), THEIRS(1.0)(x)
    assert torch.equal(
        ours.nan_to_num(7.0), theirs.nan_to_num(7.0)
    )  # 0, 0, nan, nan in both
    assert ours[:2].tolist() == [0.0, 0.0] and ours[2:].isnan().all()


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_statistics(p):
    """Fraction zeroed ≈ p, survivors are exactly x / (1 − p), and the mean is preserved (5 standard errors)."""
    n = 200_000
    x = torch.ones(n, dtype=torch.float64)
    y = OURS(p)(x)
    dropped = (y == 0).double().mean().item()
    se = (p * (1 - p) / n) ** 0.5
    assert abs(dropped - p) < 5 * se
    assert torch.equal(y[y != 0], torch.full_like(y[y != 0], 1 / (1 - p)))
    assert abs(y.mean().item() - 1.0) < 5 * se / (1 - p)


def test_masks_are_independent_across_calls_and_reproducible_from_a_seed():
    x = torch.ones(1000)
    m = OURS(0.5)
    torch.manual_seed(0)
    a, b = m(x), m(x)
    torch.manual_seed(0)
    c = m(x)
    assert torch.equal(a, c)
    agree = ((a == 0) == (b == 0)).float().mean().item()
    assert 0.4 < agree < 0.6  # two independent masks agree on about half the entries


def test_keep_mask_is_bernoulli_from_one_uniform_per_element():
    x = torch.empty(50, 20)
    torch.manual_seed(4)
    ours = keep_mask(x, 0.7)
    torch.manual_seed(4)
    theirs = torch.empty_like(x).bernoulli_(0.7)
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("p", [0.2, 0.6])
def test_gradcheck(p):
    """No hand-written backward (autograd differentiates m ⊙ x), but check it with a fixed mask."""
    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    fn = Seeded(OURS(p), seed=2)
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-10)
    assert torch.autograd.gradgradcheck(fn, (x,), eps=1e-6, atol=1e-10)


def test_functional_matches_torch_functional():
    x = torch.randn(40, 7, dtype=torch.float64)
    for p, training in ((0.3, True), (0.3, False), (0.0, True), (1.0, True)):
        torch.manual_seed(9)
        a = dropout(x, p, training)
        torch.manual_seed(9)
        b = F.dropout(x, p, training)
        assert torch.equal(a, b)


def test_state_dict_interchange():
    """Dropout has no parameters or buffers: both state_dicts are empty and load into each other."""
    a, b = OURS(0.3), THEIRS(0.3)
    assert a.state_dict() == b.state_dict() == {}
    a.load_state_dict(b.state_dict())
    b.load_state_dict(a.state_dict())
    net = lambda cls: nn.Sequential(nn.Linear(4, 8), cls(0.5), nn.Linear(8, 2))
    torch.manual_seed(0)
    ours = net(OURS)
    theirs = net(THEIRS)
    theirs.load_state_dict(
        ours.state_dict()
    )  # the same keys: a model moves between the two
    assert ours.state_dict().keys() == theirs.state_dict().keys()


def test_training_trajectory_matches_torch():
    """A small float64 MLP trained with either Dropout from the same seed ends with identical weights."""
    gen = torch.Generator().manual_seed(0)
    X, y = (
        torch.randn(64, 10, generator=gen, dtype=torch.float64),
        torch.randint(3, (64,), generator=gen),
    )
    finals = []
    for cls in (OURS, THEIRS):
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Linear(10, 32), nn.ReLU(), cls(0.4), nn.Linear(32, 3)
        ).double()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(30):
            opt.zero_grad()
            F.cross_entropy(model(X), y).backward()
            opt.step()
        finals.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert (finals[0] - finals[1]).abs().max().item() == EXACT


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_scaled_at_test_convention(p):
    """Training: the same mask without the 1/(1 − p); test: multiply by 1 − p. Both conventions agree in
    expectation: the train-mode average over many masks is the eval-mode output (5 standard errors)."""
    x = torch.randn(30, 20, dtype=torch.float64)
    torch.manual_seed(5)
    classic = dropout_scaled_at_test(x, p, training=True)
    torch.manual_seed(5)
    inverted = dropout(x, p, training=True)
    assert (classic / (1 - p) - inverted).abs().max().item() < CONVENTION_TOL
    assert (
        dropout_scaled_at_test(x, p, training=False) - (1 - p) * x
    ).abs().max().item() < CONVENTION_TOL
    n = 4000
    torch.manual_seed(6)
    mean = torch.stack([dropout_scaled_at_test(x, p) for _ in range(n)]).mean(0)
    se = x.abs() * (p * (1 - p) / n) ** 0.5
    assert ((mean - (1 - p) * x).abs() <= 5 * se + 1e-12).all()
    module = DropoutScaledAtTest(p)
    assert repr(module) == f"DropoutScaledAtTest(p={p})"
    assert torch.equal(module.eval()(x), dropout_scaled_at_test(x, p, training=False))


@pytest.mark.parametrize("p", [-0.1, 1.1, 2, -1e-9, float("inf")])
def test_invalid_p(p):
    """The same ValueError message as torch, from the module and from the function."""
    with pytest.raises(ValueError) as theirs:
        THEIRS(p)
    for call in (
        lambda: OURS(p),
        lambda: dropout(torch.ones(2), p),
        lambda: DropoutScaledAtTest(p),
        lambda: dropout_scaled_at_test(torch.ones(2), p),
    ):
        with pytest.raises(ValueError) as ours:
            call()
        assert str(ours.value) == str(theirs.value)
    with pytest.raises(ValueError) as theirs_f:
        F.dropout(torch.ones(2), p)
    assert str(theirs_f.value) == str(theirs.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda():
    """On CUDA torch uses a fused kernel with its own random stream: compare statistics, not masks."""
    p, n = 0.3, 1_000_000
    x = torch.ones(n, device="cuda")
    y = OURS(p)(x)
    se = (p * (1 - p) / n) ** 0.5
    assert y.device.type == "cuda"
    assert abs((y == 0).float().mean().item() - p) < 5 * se
    assert abs((y.mean().item() - 1.0)) < 5 * se / (1 - p) + 1e-5
    assert OURS(p).eval()(x) is x
    g = torch.randn(1000, device="cuda", requires_grad=True)
    out = OURS(p)(g)
    out.sum().backward()
    assert (
        g.grad - (out != 0).float() / (1 - p)
    ).abs().max().item() < 1e-6  # the gradient is the mask
