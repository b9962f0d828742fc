"""companion.nn losses raise torch's errors (same exception type, same message) and keep torch's module
contract: constructor signatures, the ``weight`` buffer in the state_dict, the deprecated
``size_average``/``reduce`` pair, and no call to torch's own loss functions."""

import inspect
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from companion.nn import loss as L
from companion.testing.installed_torch import raised, skip_unless_worded

NAMES = [
    "MSELoss",
    "HuberLoss",
    "CrossEntropyLoss",
    "NLLLoss",
    "KLDivLoss",
    "MultiMarginLoss",
]
x = torch.randn(3, 4, dtype=torch.float64)
p = torch.softmax(x, 1)

# (what, loss name, constructor arguments, input, target)
ERRORS = [
    ("batch mismatch", "CrossEntropyLoss", {}, x, torch.tensor([0, 1])),
    ("target too large", "CrossEntropyLoss", {}, x, torch.tensor([0, 1, 4])),
    ("negative target", "CrossEntropyLoss", {}, x, torch.tensor([0, 1, -1])),
    (
        "ignored is not out of bounds, other is",
        "CrossEntropyLoss",
        dict(ignore_index=7),
        x,
        torch.tensor([7, 9, 0]),
    ),
    (
        "weight size",
        "CrossEntropyLoss",
        dict(weight=torch.ones(3, dtype=torch.float64)),
        x,
        torch.tensor([0, 1, 2]),
    ),
    (
        "weight size, probabilities",
        "CrossEntropyLoss",
        dict(weight=torch.ones(5, dtype=torch.float64)),
        x,
        p,
    ),
    (
        "smoothing > 1",
        "CrossEntropyLoss",
        dict(label_smoothing=1.5),
        x,
        torch.tensor([0, 1, 2]),
    ),
    (
        "bad reduction",
        "CrossEntropyLoss",
        dict(reduction="foo"),
        x,
        torch.tensor([0, 1, 2]),
    ),
    ("multi-target", "CrossEntropyLoss", {}, x, torch.rand(3, 5, dtype=torch.float64)),
    (
        "float indices",
        "CrossEntropyLoss",
        {},
        x,
        torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64),
    ),
    ("ignore_index with probabilities", "CrossEntropyLoss", dict(ignore_index=1), x, p),
    (
        "long target of the input's shape",
        "CrossEntropyLoss",
        {},
        x,
        torch.zeros(3, 4, dtype=torch.long),
    ),
    (
        "k-d size mismatch",
        "CrossEntropyLoss",
        {},
        torch.randn(2, 3, 4, 5),
        torch.randint(3, (2, 4, 6)),
    ),
    ("batch mismatch", "NLLLoss", {}, x, torch.tensor([0, 1])),
    ("target too large", "NLLLoss", {}, x, torch.tensor([0, 1, 4])),
    ("float target", "NLLLoss", {}, x, torch.tensor([0, 1, 2.0])),
    ("0-d input", "NLLLoss", {}, torch.randn(()), torch.tensor(1)),
    ("2-d target", "NLLLoss", {}, x, torch.tensor([[0, 1, 1]])),
    (
        "k-d size mismatch",
        "NLLLoss",
        {},
        torch.randn(2, 3, 4, 5),
        torch.randint(3, (2, 4, 6)),
    ),
    ("bad reduction", "NLLLoss", dict(reduction="avg"), x, torch.tensor([0, 1, 2])),
    (
        "shapes do not broadcast",
        "MSELoss",
        {},
        x,
        torch.randn(2, 4, dtype=torch.float64),
    ),
    ("bad reduction", "MSELoss", dict(reduction="avg"), x, x),
    ("negative delta", "HuberLoss", dict(delta=-1.0), x, x),
    ("zero delta", "HuberLoss", dict(delta=0), x, x),
    ("bad reduction", "KLDivLoss", dict(reduction="avg"), x, p),
    ("target size", "MultiMarginLoss", {}, x, torch.tensor([0, 1])),
    ("target out of range", "MultiMarginLoss", {}, x, torch.tensor([0, 1, 5])),
    ("negative target", "MultiMarginLoss", {}, x, torch.tensor([0, 1, -100])),
    ("3-d input", "MultiMarginLoss", {}, torch.randn(2, 3, 4), torch.tensor([1, 1])),
    ("no classes", "MultiMarginLoss", {}, torch.randn(3, 0), torch.tensor([0, 0, 0])),
    (
        "weight size",
        "MultiMarginLoss",
        dict(weight=torch.ones(3, dtype=torch.float64)),
        x,
        torch.tensor([0, 1, 2]),
    ),
]
# Errors an older torch in the supported range words differently (or does not raise):
# (loss, what) -> a phrase of the message the mirror implements. Where the installed
# torch's message lacks it, the comparison skips with the reason
# (companion.testing.installed_torch); every other row must match torch exactly.
LONG_TARGET = "expected target dtype to be Long or Byte, but got"
WORDING = {
    ("CrossEntropyLoss", "float indices"): LONG_TARGET,
    ("NLLLoss", "float target"): LONG_TARGET,
    ("MultiMarginLoss", "target size"): "Expected target size [3], but got [2]",
    ("HuberLoss", "delta='1'"): "delta must be a float or int, got: <class 'str'>",
}


@pytest.mark.parametrize(
    "what,name,kw,input,target", ERRORS, ids=[f"{e[1]}-{e[0]}" for e in ERRORS]
)
def test_same_error_as_torch(what, name, kw, input, target):
    theirs = raised(lambda: getattr(nn, name)(**kw)(input, target))
    if (name, what) in WORDING:
        skip_unless_worded(theirs, WORDING[name, what], what)
    assert theirs is not None, f"torch accepts {what}"
    ours = raised(lambda: getattr(L, name)(**kw)(input, target))
    assert ours == theirs, f"{what}: ours {ours}, torch {theirs}"


CONSTRUCTOR_ERRORS = [
    ("p=3", "MultiMarginLoss", dict(p=3)),
    ("2-d weight", "MultiMarginLoss", dict(weight=torch.ones(2, 2))),
    ("delta='1'", "HuberLoss", dict(delta="1")),
]


@pytest.mark.parametrize(
    "what,name,kw",
    CONSTRUCTOR_ERRORS,
    ids=[f"{n}-{k}" for _, n, k in CONSTRUCTOR_ERRORS],
)
def test_same_constructor_error_as_torch(what, name, kw):
    theirs = raised(lambda: getattr(nn, name)(**kw))
    if (name, what) in WORDING:
        skip_unless_worded(theirs, WORDING[name, what], what)
    assert theirs is not None, f"torch accepts {what}"
    assert raised(lambda: getattr(L, name)(**kw)) == theirs


@pytest.mark.parametrize("name", NAMES)
def test_signature_matches_torch(name):
    def shape(cls):
        return [
            (q.name, q.kind, q.default)
            for q in inspect.signature(cls.__init__).parameters.values()
        ]

    assert shape(getattr(L, name)) == shape(getattr(nn, name))


@pytest.mark.parametrize(
    "size_average,reduce", [(None, False), (False, None), (True, True), (False, True)]
)
@pytest.mark.parametrize(
    "name", ["MSELoss", "CrossEntropyLoss", "NLLLoss", "KLDivLoss", "MultiMarginLoss"]
)
def test_legacy_reduction_arguments(name, size_average, reduce):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = getattr(L, name)(size_average=size_average, reduce=reduce)
        theirs = getattr(nn, name)(size_average=size_average, reduce=reduce)
    assert ours.reduction == theirs.reduction


@pytest.mark.parametrize("name", ["CrossEntropyLoss", "NLLLoss", "MultiMarginLoss"])
def test_weight_buffer_state_dict_both_ways(name):
    w = torch.rand(4, dtype=torch.float64)
    ours, theirs = (
        getattr(L, name)(weight=w.clone()),
        getattr(nn, name)(weight=torch.zeros(4, dtype=torch.float64)),
    )
    theirs.load_state_dict(ours.state_dict())
    assert torch.equal(theirs.weight, w) and list(ours.state_dict()) == ["weight"]
    ours.load_state_dict(getattr(nn, name)(weight=2 * w).state_dict())
    assert torch.equal(ours.weight, 2 * w)
    assert "weight" in dict(ours.named_buffers())
    assert getattr(L, name)().weight is None


def test_no_torch_loss_is_called(monkeypatch):
    """From scratch: the losses run with torch's own loss functions and log-softmax disabled."""

    def refuse(*args, **kwargs):
        raise AssertionError("a torch loss function was called")

    for fn in (
        "cross_entropy",
        "nll_loss",
        "kl_div",
        "mse_loss",
        "huber_loss",
        "multi_margin_loss",
        "log_softmax",
        "softmax",
        "smooth_l1_loss",
    ):
        monkeypatch.setattr(F, fn, refuse)
    for fn in ("logsumexp", "log_softmax", "softmax", "kl_div", "xlogy"):
        monkeypatch.setattr(torch, fn, refuse)
    y = torch.tensor([0, 1, 2])
    z = x.clone().requires_grad_()
    total = (
        L.CrossEntropyLoss(label_smoothing=0.1)(z, y)
        + L.CrossEntropyLoss()(z, p)
        + L.NLLLoss()(z, y)
        + L.MSELoss()(z, x)
        + L.HuberLoss()(z, 2 * x)
        + L.KLDivLoss(reduction="batchmean")(z, p)
        + L.MultiMarginLoss()(z, y)
    )
    total.backward()
    assert z.grad.isfinite().all()
