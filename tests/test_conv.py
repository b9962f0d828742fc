"""companion.nn.Conv1d / Conv2d against torch.nn.Conv1d / Conv2d, driven by a table of (class, constructor
arguments, input shape).

Both layers are built from the same seed, so they draw the same weights (checked bit for bit); outputs, input
gradients and parameter gradients then agree in float64 within CONV_ULPS ε of their scale. Also: gradcheck and
gradgradcheck, state_dict interchange, torch's signature, attributes and repr, the initialization's bound and
variance, and every error torch raises for bad arguments and inputs, with its type and words.
"""

import inspect
import math
import re
import warnings

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import companion.nn as cnn
from companion.core.device import rng_seed
from companion.nn.conv import conv
from companion.testing.installed_torch import raised
from companion.testing.parity import assert_modules_close
from companion.testing.tolerances import assert_close

# A layer's output and gradients are dot products of up to ~200 terms here (C_in/G · Πk ≤ 36 for the output,
# N · Π L_out ≤ 2 · 90 for the weight's gradient), summed in another order than torch's kernels; their rounding
# errors grow like √m ε (m ε at worst) of the terms' scale. Measured: at most 2.2 ε·scale on this machine with
# every kernel (default and AVX2 alike); 64 leaves room for other summation orders, and an error in the
# windows (one position off) is of the order of the values themselves.
CONV_ULPS = 64
CUDA_TOL = 1e-4  # float32 on the GPU (TF32 off), relative to the output's scale

C1 = {"in_channels": 3, "out_channels": 4}
CASES = [
    ("Conv1d", dict(C1, kernel_size=3), (2, 3, 11)),
    ("Conv1d", dict(C1, kernel_size=1), (2, 3, 7)),
    ("Conv1d", dict(C1, kernel_size=5, stride=2, padding=2), (2, 3, 12)),
    ("Conv1d", dict(C1, kernel_size=(3,), stride=(3,), padding=(1,)), (3, 3, 10)),
    ("Conv1d", dict(C1, kernel_size=2, stride=3), (2, 3, 11)),
    ("Conv1d", dict(C1, kernel_size=3, dilation=2, padding=3), (2, 3, 9)),
    ("Conv1d", dict(C1, kernel_size=3, padding="same"), (2, 3, 8)),
    ("Conv1d", dict(C1, kernel_size=4, padding="same"), (2, 3, 8)),
    ("Conv1d", dict(C1, kernel_size=4, padding="same", dilation=3), (2, 3, 13)),
    ("Conv1d", dict(C1, kernel_size=3, padding="valid", stride=2), (2, 3, 9)),
    ("Conv1d", dict(in_channels=6, out_channels=4, kernel_size=3, groups=2), (2, 6, 8)),
    (
        "Conv1d",
        dict(in_channels=4, out_channels=8, kernel_size=3, groups=4, padding=1),
        (2, 4, 8),
    ),  # depthwise
    ("Conv1d", dict(C1, kernel_size=3, bias=False), (2, 3, 8)),
    ("Conv1d", dict(C1, kernel_size=3, padding=2, padding_mode="reflect"), (2, 3, 8)),
    (
        "Conv1d",
        dict(C1, kernel_size=3, padding=2, padding_mode="replicate", stride=2),
        (2, 3, 8),
    ),
    (
        "Conv1d",
        dict(C1, kernel_size=3, padding=2, padding_mode="circular", dilation=2),
        (2, 3, 8),
    ),
    (
        "Conv1d",
        dict(C1, kernel_size=4, padding="same", padding_mode="circular"),
        (2, 3, 8),
    ),
    (
        "Conv1d",
        dict(C1, kernel_size=3, padding="same", padding_mode="reflect", dilation=2),
        (2, 3, 8),
    ),
    ("Conv1d", dict(C1, kernel_size=3, padding=1), (3, 9)),  # unbatched
    ("Conv1d", dict(C1, kernel_size=3), (0, 3, 9)),  # an empty batch
    ("Conv2d", dict(C1, kernel_size=3), (2, 3, 7, 6)),
    (
        "Conv2d",
        dict(C1, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0)),
        (2, 3, 8, 7),
    ),
    ("Conv2d", dict(C1, kernel_size=3, stride=2, padding=1), (2, 3, 9, 8)),
    (
        "Conv2d",
        dict(C1, kernel_size=(2, 3), dilation=(2, 1), padding=(2, 1)),
        (2, 3, 7, 6),
    ),
    ("Conv2d", dict(C1, kernel_size=3, padding="same"), (2, 3, 6, 5)),
    (
        "Conv2d",
        dict(C1, kernel_size=(4, 2), padding="same", dilation=(1, 3)),
        (2, 3, 6, 7),
    ),
    ("Conv2d", dict(C1, kernel_size=2, padding="valid"), (2, 3, 5, 5)),
    (
        "Conv2d",
        dict(in_channels=4, out_channels=6, kernel_size=3, groups=2),
        (2, 4, 6, 6),
    ),
    (
        "Conv2d",
        dict(in_channels=3, out_channels=6, kernel_size=3, groups=3, padding=1),
        (2, 3, 5, 5),
    ),  # depthwise
    ("Conv2d", dict(C1, kernel_size=3, bias=False, stride=(1, 2)), (2, 3, 6, 7)),
    (
        "Conv2d",
        dict(C1, kernel_size=3, padding=(2, 1), padding_mode="reflect"),
        (2, 3, 6, 5),
    ),
    (
        "Conv2d",
        dict(C1, kernel_size=3, padding=(1, 2), padding_mode="replicate"),
        (2, 3, 5, 6),
    ),
    (
        "Conv2d",
        dict(C1, kernel_size=3, padding=2, padding_mode="circular", stride=2),
        (2, 3, 6, 6),
    ),
    (
        "Conv2d",
        dict(C1, kernel_size=(2, 4), padding="same", padding_mode="circular"),
        (2, 3, 5, 6),
    ),
    ("Conv2d", dict(C1, kernel_size=3, padding=1), (3, 5, 5)),  # unbatched
]
IDS = [
    f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items() if k not in C1)}-{shape}"
    for name, kw, shape in CASES
]


def pair(name, kwargs, dtype=torch.float64, seed=0):
    """Ours and torch's layer, each built right after seeding with ``seed``."""
    layers = []
    for module in (cnn, nn):
        torch.manual_seed(rng_seed(seed))
        layers.append(getattr(module, name)(**kwargs, dtype=dtype))
    return layers


def batch(shape, seed=1, dtype=torch.float64):
    return torch.randn(
        shape, generator=torch.Generator().manual_seed(rng_seed(seed)), dtype=dtype
    )


@pytest.mark.filterwarnings(
    "ignore:Using padding='same'"
)  # torch's own note on even kernels
@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=IDS)
def test_same_weights_output_and_gradients_as_torch(name, kwargs, shape):
    ours, theirs = pair(name, kwargs)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(
            a, b
        )  # the same draws from the same seed (same init calls in the same order)
    assert_modules_close(ours, theirs, batch(shape), ulps=CONV_ULPS)


@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=IDS)
def test_attributes_and_repr_like_torch(name, kwargs, shape):
    ours, theirs = pair(name, kwargs)
    for attr in (
        "in_channels",
        "out_channels",
        "kernel_size",
        "stride",
        "padding",
        "dilation",
        "groups",
        "padding_mode",
        "output_padding",
        "transposed",
        "_reversed_padding_repeated_twice",
    ):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    assert repr(ours) == repr(theirs)
    assert [n for n, _ in ours.named_parameters()] == [
        n for n, _ in theirs.named_parameters()
    ]


@pytest.mark.parametrize("name", ["Conv1d", "Conv2d"])
def test_signature_and_constants(name):
    ours, theirs = getattr(cnn, name), getattr(nn, name)
    spec = lambda cls: [
        (p.name, p.kind, p.default)
        for p in inspect.signature(cls.__init__).parameters.values()
    ]
    assert spec(ours) == spec(theirs)
    assert ours.__constants__ == theirs.__constants__


@pytest.mark.parametrize("name", ["Conv1d", "Conv2d"])
def test_state_dict_interchange(name):
    """torch's layer loads ours and ours loads torch's; the keys are the same and the outputs then agree."""
    kwargs = dict(C1, kernel_size=3, padding=1)
    shape = (2, 3, 8) if name == "Conv1d" else (2, 3, 6, 5)
    ours, theirs = pair(name, kwargs, seed=0)
    other_ours, other_theirs = pair(name, kwargs, seed=5)
    assert ours.state_dict().keys() == theirs.state_dict().keys() == {"weight", "bias"}
    theirs.load_state_dict(other_ours.state_dict())
    ours.load_state_dict(other_theirs.state_dict())
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)
    x = batch(shape)
    assert_close(ours(x), theirs(x), ulps=CONV_ULPS)
    no_bias = getattr(cnn, name)(**kwargs, bias=False)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        no_bias.load_state_dict(
            theirs.state_dict()
        )  # as torch: a bias where the layer has none is refused


def test_initialization_bound_and_variance():
    """torch's default: weights and biases uniform in ±1/√fan_in. All draws lie inside the bound, the extremes
    reach past 0.99 of it (all 9216 staying inside would have probability 0.99^9216 ≈ e^-92), and the
    variance is b²/3 within 5 standard errors (the variance of U(-b, b)'s square is 4b⁴/45)."""
    torch.manual_seed(rng_seed(0))
    layer = cnn.Conv2d(16, 64, 3, dtype=torch.float64)
    bound = 1 / math.sqrt(16 * 9)
    w = layer.weight.detach().flatten()
    assert w.abs().max() <= bound and layer.bias.abs().max() <= bound
    assert w.max() > 0.99 * bound and w.min() < -0.99 * bound
    se = math.sqrt(4 * bound**4 / 45 / w.numel())
    assert abs(w.pow(2).mean().item() - bound**2 / 3) < 5 * se
    grouped = cnn.Conv1d(8, 4, 5, groups=2)
    assert grouped.weight.shape == (
        4,
        4,
        5,
    ) and grouped.weight.abs().max() <= 1 / math.sqrt(4 * 5)


GRADCHECK = [
    (
        "Conv1d",
        dict(
            in_channels=2,
            out_channels=2,
            kernel_size=3,
            stride=2,
            padding=1,
            dilation=2,
        ),
        (2, 2, 7),
    ),
    (
        "Conv1d",
        dict(
            in_channels=2,
            out_channels=4,
            kernel_size=2,
            groups=2,
            padding="same",
            padding_mode="reflect",
        ),
        (1, 2, 5),
    ),
    (
        "Conv2d",
        dict(
            in_channels=2,
            out_channels=2,
            kernel_size=(2, 3),
            stride=(1, 2),
            padding=(1, 1),
            padding_mode="circular",
        ),
        (1, 2, 4, 5),
    ),
    (
        "Conv2d",
        dict(
            in_channels=2,
            out_channels=2,
            kernel_size=2,
            padding="same",
            dilation=(2, 1),
        ),
        (2, 4, 4),
    ),
]


@pytest.mark.parametrize(
    "name,kwargs,shape", GRADCHECK, ids=[f"{n}-{s}" for n, _, s in GRADCHECK]
)
def test_gradcheck(name, kwargs, shape):
    """Autograd through the windows view and the product: first and second derivatives, in the input and the
    parameters, against finite differences."""
    layer = getattr(cnn, name)(**kwargs, dtype=torch.float64)
    x = batch(shape).requires_grad_()
    fn = lambda x, w, b: conv_with(layer, x, w, b)  # noqa: E731
    inputs = (
        x,
        layer.weight.detach().clone().requires_grad_(),
        layer.bias.detach().clone().requires_grad_(),
    )
    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)


def conv_with(layer, x, weight, bias):
    """The layer's forward with the given weight and bias (so gradcheck can perturb them)."""
    return torch.func.functional_call(layer, {"weight": weight, "bias": bias}, (x,))


def test_functional_conv_matches_torch():
    """companion.nn.conv.conv with asymmetric zero padding equals torch's conv of the padded input."""
    x, w, b = batch((2, 4, 9)), batch((6, 2, 3), seed=2), batch((6,), seed=3)
    ours = conv(x, w, b, (2,), ((1, 2),), (1,), 2)
    theirs = torch.nn.functional.conv1d(
        torch.nn.functional.pad(x, [1, 2]), w, b, 2, 0, 1, 2
    )
    assert_close(ours, theirs, ulps=CONV_ULPS)


# constructor arguments torch refuses (ValueError), and inputs its forward refuses (RuntimeError)
CONSTRUCTOR_ERRORS = [
    ("Conv1d", dict(C1, kernel_size=3, groups=0)),
    ("Conv1d", dict(C1, kernel_size=3, groups=-1)),
    ("Conv1d", dict(in_channels=3, out_channels=6, kernel_size=3, groups=2)),
    ("Conv2d", dict(in_channels=4, out_channels=5, kernel_size=3, groups=2)),
    ("Conv1d", dict(C1, kernel_size=3, padding="full")),
    ("Conv2d", dict(C1, kernel_size=3, padding="SAME")),
    ("Conv1d", dict(C1, kernel_size=3, padding="same", stride=2)),
    ("Conv2d", dict(C1, kernel_size=3, padding="same", stride=(1, 2))),
    ("Conv1d", dict(C1, kernel_size=3, padding_mode="zero")),
    ("Conv2d", dict(C1, kernel_size=3, padding_mode="symmetric")),
]
FORWARD_ERRORS = [
    ("Conv1d", dict(C1, kernel_size=3), (10,)),
    ("Conv1d", dict(C1, kernel_size=3), (2, 3, 4, 10)),
    ("Conv2d", dict(C1, kernel_size=3), (3, 10)),
    ("Conv2d", dict(C1, kernel_size=3), (1, 3, 4, 4, 4)),
    ("Conv1d", dict(in_channels=4, out_channels=5, kernel_size=3), (2, 3, 10)),
    ("Conv1d", dict(in_channels=4, out_channels=5, kernel_size=3), (3, 10)),
    (
        "Conv1d",
        dict(in_channels=4, out_channels=6, kernel_size=3, groups=2),
        (2, 3, 10),
    ),
    ("Conv2d", dict(in_channels=4, out_channels=5, kernel_size=3), (2, 3, 8, 8)),
    ("Conv1d", dict(C1, kernel_size=11), (2, 3, 10)),
    ("Conv1d", dict(C1, kernel_size=4, dilation=4, padding=1), (2, 3, 10)),
    (
        "Conv1d",
        dict(C1, kernel_size=4, dilation=4, padding=1, padding_mode="reflect"),
        (2, 3, 10),
    ),
    ("Conv2d", dict(C1, kernel_size=(3, 9)), (2, 3, 8, 8)),
    ("Conv2d", dict(C1, kernel_size=(3, 9)), (3, 8, 8)),
    ("Conv1d", dict(C1, kernel_size=1), (2, 3, 0)),
    ("Conv1d", dict(C1, kernel_size=3, stride=0), (2, 3, 10)),
    ("Conv2d", dict(C1, kernel_size=3, stride=(1, -1)), (2, 3, 8, 8)),
    ("Conv1d", dict(C1, kernel_size=3, padding=-1), (2, 3, 10)),
    ("Conv1d", dict(C1, kernel_size=3, padding=-1, stride=0, dilation=-1), (2, 3, 10)),
    ("Conv1d", dict(C1, kernel_size=3, stride=0, dilation=-1), (2, 3, 10)),
    ("Conv1d", dict(C1, kernel_size=3, dilation=-1), (2, 3, 10)),
    ("Conv1d", dict(C1, kernel_size=3, dilation=0), (2, 3, 10)),
    (
        "Conv1d",
        dict(in_channels=4, out_channels=5, kernel_size=3, dilation=0),
        (2, 3, 10),
    ),
    ("Conv2d", dict(in_channels=3, out_channels=0, kernel_size=3), (2, 3, 8, 8)),
    ("Conv1d", dict(C1, kernel_size=3, padding=10, padding_mode="reflect"), (2, 3, 10)),
    (
        "Conv1d",
        dict(C1, kernel_size=3, padding=11, padding_mode="circular"),
        (2, 3, 10),
    ),
]


def both_raise(name, kwargs, call=lambda layer: layer):
    """(type, message) of what ours and torch's raise for ``call(layer built with kwargs)``."""
    out = []
    for module in (cnn, nn):
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # a zero-element weight warns at initialization, in both
            out.append(raised(lambda: call(getattr(module, name)(**kwargs))))
    return out


def set_in_order(message: str) -> str:
    """The message with the items of a printed set sorted. torch prints a set literal, whose order follows the
    string hashes of the process that compiled torch's bytecode: the order is torch's accident, not its words."""
    return re.sub(
        r"\{([^}]*)\}",
        lambda m: "{" + ", ".join(sorted(m.group(1).split(", "))) + "}",
        message,
    )


@pytest.mark.parametrize(
    "name,kwargs", CONSTRUCTOR_ERRORS, ids=[f"{n}-{k}" for n, k in CONSTRUCTOR_ERRORS]
)
def test_constructor_errors_like_torch(name, kwargs):
    ours, theirs = both_raise(name, kwargs)
    assert theirs is not None and theirs[0] is ValueError
    assert ours[0] is theirs[0] and set_in_order(ours[1]) == set_in_order(theirs[1])


@pytest.mark.parametrize(
    "name,kwargs,shape",
    FORWARD_ERRORS,
    ids=[f"{n}-{k}-{s}" for n, k, s in FORWARD_ERRORS],
)
def test_forward_errors_like_torch(name, kwargs, shape):
    x = torch.randn(shape)
    ours, theirs = both_raise(name, kwargs, lambda layer: layer(x))
    assert theirs is not None and theirs[0] is RuntimeError
    assert ours == theirs


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name,kwargs,shape", CASES[::4], ids=IDS[::4])
def test_cuda(name, kwargs, shape):
    """float32 on the GPU against torch's CUDA kernels, TF32 off (1e-4 of the scale)."""
    ours, theirs = (layer.cuda() for layer in pair(name, kwargs, dtype=torch.float32))
    x = batch(shape, dtype=torch.float32).cuda()
    allow_tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        assert_modules_close(
            ours, theirs, x, ulps=CUDA_TOL / torch.finfo(torch.float32).eps
        )
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = (
            allow_tf32
        )
    assert ours(x).device.type == "cuda"


class AtenOps(TorchDispatchMode):
    """Records the name of every aten operation run inside it (forward and backward)."""

    def __init__(self):
        super().__init__()
        self.names = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(func.__name__)
        return func(*args, **(kwargs or {}))


def test_runs_no_torch_convolution_kernel():
    """From scratch: forward and backward run no aten convolution (nor im2col, F.unfold's kernel); torch's
    own layer, run the same way, does (so the check can fail)."""
    for name, kwargs, shape in CASES:
        for module, runs_kernel in ((cnn, False), (nn, True)):
            layer = getattr(module, name)(**kwargs, dtype=torch.float64)
            x = batch(shape).requires_grad_()
            with AtenOps() as ops, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                layer(x).sum().backward()
            found = {
                n for n in ops.names if "conv" in n or "im2col" in n or "col2im" in n
            }
            assert bool(found) == runs_kernel, (name, kwargs, found)
