"""companion.nn normalization layers: torch's errors and warnings, empty batches, and no call of torch's kernels."""

import inspect
import warnings
import pytest
import torch
from torch import nn
from companion.nn import norm_layers as ours_nn
from companion.testing.installed_torch import raised, skip_unless_worded
from companion.testing.parity import max_abs_diff

from test_normalization import TOL, make_pair, pair


# (class, constructor keywords, input shape, training?): torch raises, and we must raise the same
ERRORS = [
    ("BatchNorm1d", dict(num_features=3), (3,), True),
    ("BatchNorm1d", dict(num_features=3), (2, 3, 4, 5), True),
    ("BatchNorm1d", dict(num_features=3), (1, 3), True),
    ("BatchNorm1d", dict(num_features=3), (1, 3, 1), True),
    ("BatchNorm1d", dict(num_features=3), (4, 5), True),
    ("BatchNorm1d", dict(num_features=3), (4, 5), False),
    ("BatchNorm1d", dict(num_features=3, track_running_stats=False), (4, 5), True),
    ("BatchNorm1d", dict(num_features=3, affine=False), (4, 5), True),
    ("BatchNorm1d", dict(num_features=3, eps=0.0), (4, 3), True),
    ("BatchNorm1d", dict(num_features=3, eps=-1.0), (4, 3), False),
    ("BatchNorm2d", dict(num_features=3), (3, 4, 5), True),
    ("BatchNorm2d", dict(num_features=3), (1, 3, 1, 1), True),
    ("InstanceNorm1d", dict(num_features=3), (3,), True),
    ("InstanceNorm1d", dict(num_features=3), (2, 3, 1), True),
    ("InstanceNorm1d", dict(num_features=3), (2, 3, 1), False),
    ("InstanceNorm1d", dict(num_features=3), (3, 1), True),
    ("InstanceNorm1d", dict(num_features=3, affine=True), (2, 4, 5), True),
    ("InstanceNorm2d", dict(num_features=3), (4, 5), True),
    ("InstanceNorm2d", dict(num_features=3), (2, 3, 4, 5, 6), True),
    ("LayerNorm", dict(normalized_shape=4), (2, 3), True),
    ("LayerNorm", dict(normalized_shape=4), (), True),
    ("LayerNorm", dict(normalized_shape=[2, 4]), (4,), True),
    ("LayerNorm", dict(normalized_shape=[2, 3]), (3, 3), True),
    ("GroupNorm", dict(num_groups=2, num_channels=4), (4,), True),
    ("GroupNorm", dict(num_groups=2, num_channels=4), (3, 6), True),
    ("GroupNorm", dict(num_groups=2, num_channels=4), (3, 5), True),
    ("GroupNorm", dict(num_groups=2, num_channels=4, affine=False), (3, 5), True),
    ("GroupNorm", dict(num_groups=4, num_channels=4), (1, 4), True),
    ("GroupNorm", dict(num_groups=4, num_channels=4), (1, 4, 1), False),
    ("GroupNorm", dict(num_groups=2, num_channels=4), (1, 2), True),
]


@pytest.mark.parametrize(
    "name,kwargs,shape,training",
    ERRORS,
    ids=[f"{e[0]}-{e[1]}-{e[2]}-{e[3]}" for e in ERRORS],
)
def test_errors_like_torch(name, kwargs, shape, training):
    """The same exception type and message as torch (ValueError or RuntimeError). An
    older torch in the supported range takes a non-positive eps without an error (2.9)
    or words its refusal without the mode (2.11): that comparison skips, with the
    reason."""
    x = torch.randn(shape)
    if kwargs.get("eps", 1.0) <= 0:
        theirs = raised(lambda: getattr(nn, name)(**kwargs).train(training)(x))
        mode = "positive during training" if training else "non-negative"
        wording, what = f"batch_norm eps must be {mode}", f"eps={kwargs['eps']}"
        skip_unless_worded(theirs, wording, what)
    caught = []
    for cls in pair(name):
        module = cls(**kwargs).train(training)
        with (
            pytest.raises((ValueError, RuntimeError)) as info,
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            module(x)
        caught.append((info.type, str(info.value)))
    assert caught[0] == caught[1]


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("GroupNorm", dict(num_groups=3, num_channels=4)),
        ("GroupNorm", dict(num_groups=4, num_channels=6)),
    ],
)
def test_constructor_errors_like_torch(name, kwargs):
    c, g = kwargs["num_channels"], kwargs["num_groups"]
    # an older torch words it without the numbers
    wording = f"num_channels ({c}) must be divisible by num_groups ({g})"
    theirs = raised(lambda: getattr(nn, name)(**kwargs))
    skip_unless_worded(theirs, wording, f"{c} channels in {g} groups")
    caught = []
    for cls in pair(name):
        with pytest.raises(ValueError) as info:
            cls(**kwargs)
        caught.append(str(info.value))
    assert caught[0] == caught[1]


def test_instance_norm_channel_mismatch_warns_like_torch():
    x = torch.randn(2, 4, 5, dtype=torch.float64)
    outs, messages = [], []
    for cls in pair("InstanceNorm1d"):
        with pytest.warns(UserWarning) as record:
            outs.append(cls(3)(x))
        messages.append(str(record[0].message))
    assert messages[0] == messages[1]
    assert max_abs_diff(outs[0], outs[1]) < TOL


# empty batches: torch returns an empty output, zero parameter gradients, and (BatchNorm) leaves the
# running buffers alone while counting the batch; InstanceNorm's running buffers become NaN
EMPTY = [
    ("BatchNorm1d", dict(num_features=3), (0, 3)),
    ("BatchNorm1d", dict(num_features=3, momentum=None), (0, 3, 4)),
    ("BatchNorm1d", dict(num_features=3), (2, 3, 0)),
    ("BatchNorm2d", dict(num_features=3), (0, 3, 2, 2)),
    ("LayerNorm", dict(normalized_shape=3), (0, 3)),
    ("InstanceNorm1d", dict(num_features=3), (0, 3, 5)),
    ("InstanceNorm1d", dict(num_features=3, track_running_stats=True), (0, 3, 5)),
    ("GroupNorm", dict(num_groups=2, num_channels=4), (0, 4)),
    ("GroupNorm", dict(num_groups=2, num_channels=4), (0, 4, 3)),
]


@pytest.mark.parametrize(
    "name,kwargs,shape", EMPTY, ids=[f"{e[0]}-{e[1]}-{e[2]}" for e in EMPTY]
)
def test_empty_batch_like_torch(name, kwargs, shape):
    ours, theirs = make_pair(name, kwargs)
    results = []
    for module in (ours, theirs):
        x = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
        y = module(x)
        y.sum().backward()
        results.append(
            (
                y.shape,
                x.grad.shape,
                [p.grad for p in module.parameters()],
                dict(module.named_buffers()),
            )
        )
    (ya, ga, pa, ba), (yb, gb, pb, bb) = results
    assert ya == yb == torch.Size(shape) and ga == gb
    for a, b in zip(pa, pb):
        torch.testing.assert_close(a, b, atol=0.0, rtol=0.0)  # zeros in both
    assert ba.keys() == bb.keys()
    for key in ba:
        torch.testing.assert_close(ba[key], bb[key], atol=TOL, rtol=0.0, equal_nan=True)


def test_empty_batch_affine_instance_norm():
    """The one documented difference: torch's InstanceNorm with affine=True fails on an empty batch
    (IndexError inside its kernel); ours returns the empty output, with zero parameter gradients."""
    x = torch.zeros(0, 3, 5, dtype=torch.float64, requires_grad=True)
    with pytest.raises(IndexError):
        nn.InstanceNorm1d(3, affine=True, dtype=torch.float64)(x)
    module = ours_nn.InstanceNorm1d(3, affine=True, dtype=torch.float64)
    module(x).sum().backward()
    assert x.grad.shape == x.shape
    assert (
        module.weight.grad.abs().max().item() == 0.0
        and module.bias.grad.abs().max().item() == 0.0
    )


def test_implementation_uses_no_torch_normalization():
    """From scratch: no attribute access to torch's normalization kernels (F.batch_norm, torch.layer_norm, ...)."""
    import ast

    import companion.nn.norm_layers
    import companion.nn.normalization

    banned = {
        "batch_norm",
        "layer_norm",
        "group_norm",
        "instance_norm",
        "native_batch_norm",
        "native_layer_norm",
        "native_group_norm",
        "BatchNorm1d",
        "BatchNorm2d",
        "LayerNorm",
        "InstanceNorm1d",
        "InstanceNorm2d",
        "GroupNorm",
    }
    for module in (companion.nn.normalization, companion.nn.norm_layers):
        tree = ast.parse(inspect.getsource(module))
        used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        assert not used & banned, (module.__name__, used & banned)
