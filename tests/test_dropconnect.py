"""companion.regularization.DropConnectLinear against torch.nn.Linear (and torch's dropout), driven by tables of
constructor arguments and input shapes, in float64."""

import inspect
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from companion.regularization.dropconnect import (
    DropConnectLinear,
    dropconnect_linear,
    gaussian_relu_mean,
    moment_matching_forward,
    sample_mask,
)
from companion.testing.parity import compare_modules, max_abs_diff

DTYPE = torch.float64
EXACT_TOL = 1e-12  # float64 rounding: same math, possibly another summation order
GRAD_TOL = 1e-10

# (in_features, out_features, bias, input shape without the last dimension)
SHAPES = [
    (5, 3, True, (7,)),
    (5, 3, False, (7,)),
    (4, 6, True, ()),  # a single unbatched vector, like nn.Linear allows
    (3, 2, True, (2, 4)),  # extra leading dimensions
    (8, 1, True, (1,)),
]
SHAPE_IDS = [f"{i}->{o}-bias={b}-lead={lead}" for i, o, b, lead in SHAPES]
PS = [0.1, 0.5, 0.9]
MASK_KINDS = [True, False]  # per_example


def _pair(in_features, out_features, bias, p=0.5, seed=0, **kwargs):
    """Our layer and nn.Linear with the same parameters (from the same seed: same initialization)."""
    torch.manual_seed(seed)
    ours = DropConnectLinear(in_features, out_features, bias, p, dtype=DTYPE, **kwargs)
    torch.manual_seed(seed)
    theirs = nn.Linear(in_features, out_features, bias, dtype=DTYPE)
    return ours, theirs


def _input(lead, in_features, seed=1):
    return torch.randn(
        *lead, in_features, generator=torch.Generator().manual_seed(seed), dtype=DTYPE
    )


def test_signature():
    """nn.Linear's arguments in its order, with p after bias and one keyword-only option."""
    params = inspect.signature(DropConnectLinear.__init__).parameters
    assert [(n, p.default) for n, p in params.items()] == [
        ("self", inspect.Parameter.empty),
        ("in_features", inspect.Parameter.empty),
        ("out_features", inspect.Parameter.empty),
        ("bias", True),
        ("p", 0.5),
        ("device", None),
        ("dtype", None),
        ("per_example", True),
    ]
    assert params["per_example"].kind is inspect.Parameter.KEYWORD_ONLY


@pytest.mark.parametrize("in_features, out_features, bias, lead", SHAPES, ids=SHAPE_IDS)
def test_initialization_and_state_dict_match_linear(
    in_features, out_features, bias, lead
):
    """Same seed → bit-identical parameters; state_dicts load both ways with the same keys."""
    ours, theirs = _pair(in_features, out_features, bias)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    assert max_abs_diff(list(ours.parameters()), list(theirs.parameters())) == 0.0
    other = nn.Linear(in_features, out_features, bias, dtype=DTYPE)
    other.load_state_dict(ours.state_dict())
    assert max_abs_diff(list(other.parameters()), list(ours.parameters())) == 0.0
    fresh = DropConnectLinear(in_features, out_features, bias, dtype=DTYPE)
    fresh.load_state_dict(theirs.state_dict())
    assert max_abs_diff(list(fresh.parameters()), list(theirs.parameters())) == 0.0


@pytest.mark.parametrize("in_features, out_features, bias, lead", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("per_example", MASK_KINDS)
def test_p_zero_equals_linear_in_training(
    in_features, out_features, bias, lead, per_example
):
    """At p = 0 nothing is dropped: output and all gradients equal nn.Linear's."""
    ours, theirs = _pair(
        in_features, out_features, bias, p=0.0, per_example=per_example
    )
    diffs = compare_modules(ours.train(), theirs.train(), _input(lead, in_features))
    assert max(diffs.values()) < EXACT_TOL, diffs


@pytest.mark.parametrize("in_features, out_features, bias, lead", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("p", PS)
def test_eval_mean_rule_equals_linear(in_features, out_features, bias, lead, p):
    """In eval mode the mean-weight rule is exactly nn.Linear (output and gradients)."""
    ours, theirs = _pair(in_features, out_features, bias, p=p)
    diffs = compare_modules(ours.eval(), theirs.eval(), _input(lead, in_features))
    assert max(diffs.values()) < EXACT_TOL, diffs


def _all_masks(out_features, in_features):
    """Every 0/1 mask of shape (out, in) (2^(out·in) of them)."""
    n = out_features * in_features
    for bits in itertools.product((0.0, 1.0), repeat=n):
        yield torch.tensor(bits, dtype=DTYPE).reshape(out_features, in_features)


@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("bias", [True, False])
def test_expectation_and_variance_are_exact(p, bias):
    """Enumerating all 2^6 masks of a 3→2 layer: E[u] = W x + b (nn.Linear) and Var[u] = moments()'s."""
    ours, theirs = _pair(3, 2, bias, p=p)
    x = _input((4,), 3)
    mean = torch.zeros(4, 2, dtype=DTYPE)
    second = torch.zeros(4, 2, dtype=DTYPE)
    for mask in _all_masks(2, 3):
        kept = mask.sum().item()
        prob = (1 - p) ** kept * p ** (mask.numel() - kept)
        u = dropconnect_linear(x, ours.weight, ours.bias, mask, p)
        mean += prob * u
        second += prob * u**2
    m, v = ours.moments(x)
    assert max_abs_diff(mean, theirs(x)) < EXACT_TOL
    assert max_abs_diff(m, theirs(x)) < EXACT_TOL
    assert max_abs_diff(second - mean**2, v) < 1e-10


@pytest.mark.parametrize("per_example", MASK_KINDS)
def test_monte_carlo_mean_approaches_linear(per_example):
    """The average of 4000 training-mode outputs is within 5 standard errors of nn.Linear's output."""
    ours, theirs = _pair(6, 4, True, p=0.5, per_example=per_example)
    x = _input((3,), 6)
    n = 4000
    torch.manual_seed(0)
    with torch.no_grad():
        samples = torch.stack([ours.train()(x) for _ in range(n)])
        _, var = ours.moments(x)
        z = (samples.mean(0) - theirs(x)) / (var / n).sqrt()
    assert z.abs().max().item() < 5.0, z


@pytest.mark.parametrize("p", PS)
def test_gradient_flows_only_through_kept_weights(p):
    """With one example, weight.grad is zero exactly where the mask dropped the weight, and equals
    mask ⊙ (g xᵀ) / (1 − p) elsewhere."""
    ours, _ = _pair(5, 4, True, p=p)
    x = _input((), 5)
    mask = sample_mask((4, 5), p, dtype=DTYPE)
    g = torch.randn(4, dtype=DTYPE, generator=torch.Generator().manual_seed(3))
    (dropconnect_linear(x, ours.weight, ours.bias, mask, p) * g).sum().backward()
    assert (ours.weight.grad[mask == 0] == 0).all()
    expected = mask * torch.outer(g, x) / (1 - p)
    assert max_abs_diff(ours.weight.grad, expected) < EXACT_TOL
    assert max_abs_diff(ours.bias.grad, g) < EXACT_TOL  # the bias is never dropped


@pytest.mark.parametrize("per_example", MASK_KINDS)
def test_module_gradient_matches_its_mask(per_example):
    """Training mode: replaying the module's own mask (same seed) through the pure function gives the
    same output and gradients."""
    layer = DropConnectLinear(6, 5, p=0.3, dtype=DTYPE, per_example=per_example)
    x = _input((8,), 6)
    torch.manual_seed(11)
    out = layer(x)
    torch.manual_seed(11)
    mask = sample_mask((8, 5, 6) if per_example else (5, 6), 0.3, dtype=DTYPE)
    assert (
        max_abs_diff(out, dropconnect_linear(x, layer.weight, layer.bias, mask, 0.3))
        < EXACT_TOL
    )


@pytest.mark.parametrize(
    "mask_shape", [(4, 3, 5), (3, 5)], ids=["per-example", "shared"]
)
@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_with_fixed_mask(mask_shape, bias):
    """gradcheck and gradgradcheck (float64) of the pure function with a fixed mask, w.r.t. input,
    weight and bias."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(4, 5, dtype=DTYPE, generator=gen, requires_grad=True)
    w = torch.randn(3, 5, dtype=DTYPE, generator=gen, requires_grad=True)
    b = torch.randn(3, dtype=DTYPE, generator=gen, requires_grad=True) if bias else None
    mask = (torch.rand(mask_shape, generator=gen, dtype=DTYPE) >= 0.4).to(DTYPE)
    fn = lambda x, w, *b: dropconnect_linear(x, w, b[0] if b else None, mask, 0.4)  # noqa: E731
    inputs = (x, w, b) if bias else (x, w)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-8)
    assert torch.autograd.gradgradcheck(fn, inputs, eps=1e-6, atol=1e-8)


def test_column_mask_is_dropout_of_the_input():
    """Dropping whole columns of W (one 0/1 per input unit) is dropout on the layer's input: with the
    mask torch's F.dropout drew, our layer equals nn.Linear(F.dropout(x))."""
    ours, theirs = _pair(6, 4, True, p=0.5)
    x = (
        _input((5,), 6).abs() + 0.1
    )  # no zero inputs, so dropout's zeros reveal its mask
    torch.manual_seed(7)
    dropped = F.dropout(x, p=0.5, training=True)
    keep = (dropped != 0).to(DTYPE)  # (5, 6): which inputs survived, per example
    mask = keep[:, None, :].expand(
        5, 4, 6
    )  # the same 0/1 down each column of every W_n
    ours_out = dropconnect_linear(x, ours.weight, ours.bias, mask, 0.5)
    assert max_abs_diff(ours_out, theirs(dropped)) < EXACT_TOL


@pytest.mark.parametrize("per_example", MASK_KINDS)
def test_reproducible_from_seed(per_example):
    """The same seed gives the same training-mode output; another seed another output."""
    layer = DropConnectLinear(10, 7, dtype=DTYPE, per_example=per_example)
    x = _input((6,), 10)
    torch.manual_seed(123)
    a = layer(x)
    torch.manual_seed(123)
    b = layer(x)
    torch.manual_seed(124)
    c = layer(x)
    assert max_abs_diff(a, b) == 0.0
    assert max_abs_diff(a, c) > 1e-3


@pytest.mark.parametrize("per_example", MASK_KINDS)
def test_drop_rate_and_sharing(per_example):
    """Masks drop a fraction p of weights (±0.01 over 10⁵ draws); per-example masks differ between
    examples, a shared mask does not (checked through the per-example outputs of one repeated input)."""
    torch.manual_seed(0)
    m = sample_mask((100, 1000), 0.3, dtype=DTYPE)
    assert abs((1 - m.mean().item()) - 0.3) < 0.01
    layer = DropConnectLinear(
        20, 20, bias=False, p=0.5, dtype=DTYPE, per_example=per_example
    )
    x = _input((), 20).expand(4, 20)  # four copies of one example
    out = layer(x)
    spread = (out - out[0]).abs().max().item()
    assert (spread > 1e-6) if per_example else (spread < EXACT_TOL)


def test_gaussian_relu_mean():
    """E[ReLU(u)] for u ~ N(μ, σ²): the closed form against a 10⁶-sample average (within 5 standard
    errors), and max(μ, 0) at σ = 0."""
    mu = torch.tensor([-2.0, -0.3, 0.0, 0.4, 3.0], dtype=DTYPE)
    var = torch.tensor([1.0, 0.5, 2.0, 0.1, 4.0], dtype=DTYPE)
    gen = torch.Generator().manual_seed(0)
    u = mu + var.sqrt() * torch.randn(10**6, 5, generator=gen, dtype=DTYPE)
    r = u.clamp_min(0)
    z = (gaussian_relu_mean(mu, var) - r.mean(0)) / (r.std(0) / 1000)
    assert z.abs().max().item() < 5.0, z
    zero = torch.zeros(5, dtype=DTYPE)
    assert max_abs_diff(gaussian_relu_mean(mu, zero), mu.clamp_min(0)) < EXACT_TOL


def test_moment_matching_forward():
    """At p → 0 moment matching equals the plain eval-mode network; at p = 0.5 it is at least the mean
    rule's first-layer ReLU (Jensen: E[ReLU(u)] ≥ ReLU(E[u]))."""
    torch.manual_seed(0)
    net = nn.Sequential(
        DropConnectLinear(6, 8, p=1e-12, dtype=DTYPE),
        nn.ReLU(),
        DropConnectLinear(8, 3, p=1e-12, dtype=DTYPE),
    )
    x = _input((5,), 6)
    assert max_abs_diff(moment_matching_forward(net, x), net.eval()(x)) < 1e-9
    first = nn.Sequential(
        DropConnectLinear(6, 8, p=0.5, dtype=DTYPE), nn.ReLU()
    ).train()
    mm = moment_matching_forward(first, x)
    assert all(m.training for m in first)  # the modules' modes are left as they were
    assert (mm - first.eval()(x) >= -EXACT_TOL).all()
    assert (mm - first(x)).max().item() > 1e-3  # and strictly above somewhere


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan")])
def test_invalid_p(p):
    with pytest.raises(
        ValueError, match=r"dropconnect probability must be in \[0, 1\)"
    ):
        DropConnectLinear(3, 2, p=p)


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("shape", [(4, 5), (5,), ()], ids=str)
def test_wrong_input_shape(train, shape):
    layer = DropConnectLinear(3, 2).train(train)
    with pytest.raises(ValueError, match="expected input with last dimension 3"):
        layer(torch.randn(shape))


def test_wrong_mask_shape():
    w = torch.randn(2, 3)
    with pytest.raises(ValueError, match="expected a mask of shape"):
        dropconnect_linear(torch.randn(4, 3), w, None, torch.ones(3, 2), 0.5)
    with pytest.raises(ValueError, match="expected a mask of shape"):
        dropconnect_linear(torch.randn(4, 3), w, None, torch.ones(5, 2, 3), 0.5)


def test_extra_repr():
    assert repr(DropConnectLinear(3, 2, p=0.25)) == (
        "DropConnectLinear(in_features=3, out_features=2, bias=True, p=0.25, per_example=True)"
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("per_example", MASK_KINDS)
def test_cuda(per_example):
    """float32 on CUDA: eval equals nn.Linear, p = 0 equals nn.Linear in training, masks live on the
    device, and training-mode outputs are reproducible from a seed (tolerance 1e-5)."""
    torch.manual_seed(0)
    ours = DropConnectLinear(16, 8, p=0.5, device="cuda", per_example=per_example)
    theirs = nn.Linear(16, 8, device="cuda")
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(4, 16, device="cuda")
    assert max(compare_modules(ours.eval(), theirs, x).values()) < 1e-5
    ours.train()
    torch.manual_seed(1)
    a = ours(x)
    torch.manual_seed(1)
    b = ours(x)
    assert a.device.type == "cuda" and max_abs_diff(a, b) < 1e-5
    zero = DropConnectLinear(16, 8, p=0.0, device="cuda")
    zero.load_state_dict(theirs.state_dict())
    assert max(compare_modules(zero.train(), theirs, x).values()) < 1e-5
