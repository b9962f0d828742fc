"""companion.init against torch.nn.init: gains, fans, identical draws from the same seed, distributions and errors."""

import inspect
import math
import warnings

import pytest
import torch

from companion import init

TORCH = torch.nn.init
EXACT = 0.0  # the same draws from the same generator: bitwise equal
STD_REL_TOL = (
    0.03  # sample std of 10⁵–10⁶ draws vs the formula (≈ 10 standard errors of margin)
)

SHAPES = [(5, 3), (3, 5), (64, 32), (8, 4, 3), (16, 8, 3, 3), (4, 2, 3, 2, 2), (1, 1)]


# -- signatures --------------------------------------------------------------------------------------

NAMES = [
    "calculate_gain",
    "uniform_",
    "normal_",
    "constant_",
    "ones_",
    "zeros_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
]


@pytest.mark.parametrize("name", NAMES)
def test_signature(name):
    """The same parameter names, kinds and defaults as torch.nn.init (annotations aside)."""
    ours, theirs = (
        inspect.signature(getattr(init, name)),
        inspect.signature(getattr(TORCH, name)),
    )
    assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == [
        (p.name, p.kind, p.default) for p in theirs.parameters.values()
    ]


# -- gains -------------------------------------------------------------------------------------------

GAIN_CASES = [
    ("linear", None),
    ("conv1d", None),
    ("conv2d", None),
    ("conv3d", None),
    ("conv_transpose1d", None),
    ("conv_transpose2d", None),
    ("conv_transpose3d", None),
    ("sigmoid", None),
    ("tanh", None),
    ("relu", None),
    ("leaky_relu", None),
    ("leaky_relu", 0.2),
    ("leaky_relu", 0),
    ("leaky_relu", 3),
    ("leaky_relu", math.sqrt(5)),
    ("selu", None),
    ("relu", 123.0),
]


@pytest.mark.parametrize("nonlinearity,param", GAIN_CASES, ids=str)
def test_calculate_gain(nonlinearity, param):
    """Equal values (within 0: the same float) and the same type (torch returns the int 1 for linear)."""
    ours, theirs = (
        init.calculate_gain(nonlinearity, param),
        TORCH.calculate_gain(nonlinearity, param),
    )
    assert ours == theirs and type(ours) is type(theirs)


@pytest.mark.parametrize(
    "nonlinearity,param",
    [
        ("softplus", None),
        ("ReLU", None),
        ("leaky_relu", True),
        ("leaky_relu", "0.1"),
        ("leaky_relu", [0.1]),
    ],
    ids=str,
)
def test_calculate_gain_errors(nonlinearity, param):
    with pytest.raises(ValueError) as theirs:
        TORCH.calculate_gain(nonlinearity, param)
    with pytest.raises(ValueError) as ours:
        init.calculate_gain(nonlinearity, param)
    assert str(ours.value) == str(theirs.value)


# -- fans --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES + [(2, 0), (0, 3, 2)], ids=str)
def test_fan_in_and_fan_out(shape):
    t = torch.empty(shape)
    assert init.calculate_fan_in_and_fan_out(t) == TORCH._calculate_fan_in_and_fan_out(
        t
    )


def test_fan_of_a_conv_weight():
    """A Conv2d(32 → 64, 3×3) weight: each output sees 32·9 inputs, each input feeds 64·9 outputs."""
    assert init.calculate_fan_in_and_fan_out(torch.empty(64, 32, 3, 3)) == (288, 576)


# -- identical draws from the same seed ----------------------------------------------------------------

DRAW_CASES = [
    ("uniform_", {}),
    ("uniform_", dict(a=-2.0, b=3.0)),
    ("normal_", {}),
    ("normal_", dict(mean=1.5, std=0.3)),
    ("xavier_uniform_", {}),
    ("xavier_uniform_", dict(gain=5 / 3)),
    ("xavier_normal_", {}),
    ("xavier_normal_", dict(gain=math.sqrt(2))),
    ("kaiming_uniform_", {}),
    ("kaiming_uniform_", dict(a=math.sqrt(5))),
    ("kaiming_uniform_", dict(mode="fan_out", nonlinearity="relu")),
    ("kaiming_uniform_", dict(a=0.2, mode="FAN_OUT")),
    ("kaiming_uniform_", dict(nonlinearity="tanh")),
    ("kaiming_normal_", {}),
    ("kaiming_normal_", dict(mode="fan_out", nonlinearity="relu")),
    ("kaiming_normal_", dict(a=0.1, nonlinearity="leaky_relu")),
    ("kaiming_normal_", dict(nonlinearity="selu")),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name,options", DRAW_CASES, ids=str)
def test_same_draws_as_torch_with_a_generator(name, options, shape, dtype):
    """From generators with the same seed, ours and torch's fill a tensor with the same values
    (difference exactly 0), and return the tensor they were given."""
    ours_t, torch_t = torch.empty(shape, dtype=dtype), torch.empty(shape, dtype=dtype)
    returned = getattr(init, name)(
        ours_t, **options, generator=torch.Generator().manual_seed(7)
    )
    getattr(TORCH, name)(torch_t, **options, generator=torch.Generator().manual_seed(7))
    assert returned is ours_t
    assert (ours_t - torch_t).abs().max().item() <= EXACT


@pytest.mark.parametrize("name,options", DRAW_CASES, ids=str)
def test_same_draws_as_torch_from_the_global_seed(name, options):
    ours_t, torch_t = torch.empty(32, 16), torch.empty(32, 16)
    torch.manual_seed(3)
    getattr(init, name)(ours_t, **options)
    torch.manual_seed(3)
    getattr(TORCH, name)(torch_t, **options)
    assert (ours_t - torch_t).abs().max().item() <= EXACT


@pytest.mark.parametrize("val", [0.0, 0.3, -2.5, 7])
def test_constant_zeros_ones(val):
    """Exact fills (tolerance 0), like torch."""
    for ours, theirs, args in [
        (init.constant_, TORCH.constant_, (val,)),
        (init.zeros_, TORCH.zeros_, ()),
        (init.ones_, TORCH.ones_, ()),
    ]:
        a, b = torch.randn(4, 3), torch.randn(4, 3)
        assert torch.equal(ours(a, *args), theirs(b, *args))


def test_works_on_parameters_without_recording_a_graph():
    """Initializing an nn.Parameter (requires_grad) works in place and records no autograd history."""
    layer = torch.nn.Linear(20, 10)
    for fn in (
        init.xavier_uniform_,
        init.kaiming_normal_,
        init.zeros_,
        lambda w: init.constant_(w, 0.5),
    ):
        out = fn(layer.weight)
        assert out is layer.weight and out.grad_fn is None and out.requires_grad


# -- the distributions -------------------------------------------------------------------------------

STD_CASES = [
    # (function, options, shape, expected std)
    ("xavier_uniform_", {}, (300, 500), math.sqrt(2 / 800)),
    ("xavier_normal_", dict(gain=5 / 3), (300, 500), 5 / 3 * math.sqrt(2 / 800)),
    ("kaiming_uniform_", dict(nonlinearity="relu"), (400, 250), math.sqrt(2 / 250)),
    (
        "kaiming_normal_",
        dict(nonlinearity="relu", mode="fan_out"),
        (400, 250),
        math.sqrt(2 / 400),
    ),
    (
        "kaiming_normal_",
        dict(a=0.3),
        (64, 32, 3, 3),
        math.sqrt(2 / (1 + 0.09)) / math.sqrt(32 * 9),
    ),
    ("kaiming_uniform_", dict(a=math.sqrt(5)), (200, 100), 1 / math.sqrt(3 * 100)),
]


@pytest.mark.parametrize("name,options,shape,expected", STD_CASES, ids=str)
def test_standard_deviation_matches_the_formula(name, options, shape, expected):
    """Mean 0 (within 0.03 std) and the formula's std (within 3 %) on ≥ 10⁵ draws."""
    w = getattr(init, name)(
        torch.empty(shape, dtype=torch.float64),
        **options,
        generator=torch.Generator().manual_seed(0),
    )
    assert abs(w.mean().item()) < 0.03 * expected
    assert abs(w.std().item() / expected - 1) < STD_REL_TOL


def test_uniform_bound():
    """xavier_uniform_ stays inside ±√(6 / (n_in + n_out)) and reaches within 1 % of it."""
    w = init.xavier_uniform_(
        torch.empty(300, 500, dtype=torch.float64),
        generator=torch.Generator().manual_seed(0),
    )
    a = math.sqrt(6 / 800)
    assert w.abs().max().item() <= a and w.abs().max().item() > 0.99 * a


# -- errors ------------------------------------------------------------------------------------------

ERROR_CASES = [
    ("xavier_uniform_", (5,), {}),
    ("xavier_normal_", (5,), {}),
    ("xavier_uniform_", (), {}),
    ("kaiming_uniform_", (5,), {}),
    ("kaiming_normal_", (5,), {}),
    ("kaiming_normal_", (), {}),
    ("kaiming_uniform_", (4, 3), dict(mode="fan_avg")),
    ("kaiming_normal_", (4, 3), dict(mode="FAN")),
    ("kaiming_uniform_", (4, 3), dict(nonlinearity="softplus")),
    ("kaiming_normal_", (4, 3), dict(nonlinearity="leaky_relu", a=True)),
    (
        "kaiming_normal_",
        (5,),
        dict(mode="bad"),
    ),  # the mode is checked before the shape, as torch
]


@pytest.mark.parametrize("name,shape,options", ERROR_CASES, ids=str)
def test_errors_match_torch(name, shape, options):
    """The same ValueError message as torch, for too few dimensions, a bad mode or a bad nonlinearity."""
    with pytest.raises(ValueError) as theirs:
        getattr(TORCH, name)(torch.empty(shape), **options)
    with pytest.raises(ValueError) as ours:
        getattr(init, name)(torch.empty(shape), **options)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("shape", [(), (7,)], ids=str)
def test_fan_error_matches_torch(shape):
    with pytest.raises(ValueError) as theirs:
        TORCH._calculate_fan_in_and_fan_out(torch.empty(shape))
    with pytest.raises(ValueError) as ours:
        init.calculate_fan_in_and_fan_out(torch.empty(shape))
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("name", ["kaiming_uniform_", "kaiming_normal_"])
def test_zero_element_tensor_warns_and_is_left_alone(name):
    t = torch.empty(0, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert getattr(init, name)(t) is t
    assert [str(w.message) for w in caught] == [
        "Initializing zero-element tensors is a no-op"
    ]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name,options", DRAW_CASES, ids=str)
def test_cuda(name, options):
    """On CUDA, the same values as torch from CUDA generators with the same seed (difference 0)."""
    a, b = torch.empty(64, 32, device="cuda"), torch.empty(64, 32, device="cuda")
    getattr(init, name)(a, **options, generator=torch.Generator("cuda").manual_seed(1))
    getattr(TORCH, name)(b, **options, generator=torch.Generator("cuda").manual_seed(1))
    assert (a - b).abs().max().item() <= EXACT
