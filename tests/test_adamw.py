"""companion.optim.AdamW against torch.optim.AdamW, driven by one table of option combinations."""

import itertools

import pytest
import torch

from companion.testing.optim_suite import OptimizerContract
from test_adam import INVALID
from companion.optim.adam import Adam
from companion.optim.adamw import AdamW, adamw_step
from companion.testing.parity import replay_gradients
from companion.testing.tolerances import assert_close

OURS, THEIRS = AdamW, torch.optim.AdamW


def _cases():
    """Every combination of the switches that change the math, then betas and eps alone and all together."""
    cases = []
    for weight_decay, amsgrad, maximize in itertools.product(
        (0.0, 0.01, 0.5), (False, True), (False, True)
    ):
        cases.append(
            dict(lr=0.01, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)
        )
    cases += [
        dict(lr=0.01, betas=(0.5, 0.9)),
        dict(lr=0.01, betas=(0.0, 0.99)),
        dict(lr=0.01, eps=1e-3),
        dict(
            lr=0.01,
            betas=(0.8, 0.95),
            eps=1e-4,
            weight_decay=0.1,
            amsgrad=True,
            maximize=True,
        ),
    ]
    return cases


CASES = _cases()


def test_group_records_decoupled_weight_decay():
    """Like torch's AdamW, every parameter group carries ``decoupled_weight_decay=True``."""
    opt = OURS([torch.zeros(2, requires_grad=True)])
    assert opt.param_groups[0]["decoupled_weight_decay"] is True
    assert opt.defaults == THEIRS([torch.zeros(2, requires_grad=True)]).defaults


@pytest.mark.parametrize("amsgrad", [False, True])
def test_equals_adam_with_decoupled_weight_decay(amsgrad):
    """AdamW is Adam(decoupled_weight_decay=True): the same trajectory to 1e-12 over 200 replayed steps."""
    options = dict(lr=0.01, weight_decay=0.3, amsgrad=amsgrad)
    d_param, d_state = replay_gradients(
        OURS,
        lambda params, **o: Adam(params, decoupled_weight_decay=True, **o),
        options,
        missing_every=3,
    )
    assert d_param < 1e-12 and d_state < 1e-12, (d_param, d_state)


def test_decay_is_a_separate_step():
    """With a zero gradient history, one step only shrinks θ by (1 − γλ): one rounded product, so within 1 ε."""
    p = torch.tensor([2.0, -3.0], dtype=torch.float64)
    state: dict = {}
    adamw_step(
        p,
        torch.zeros_like(p),
        state,
        lr=0.1,
        beta1=0.9,
        beta2=0.999,
        eps=1e-8,
        weight_decay=0.5,
        amsgrad=False,
        maximize=False,
    )
    assert_close(p, torch.tensor([2.0, -3.0], dtype=torch.float64) * 0.95, ulps=1)
    assert (
        torch.count_nonzero(state["exp_avg"]) == 0
    )  # the decay never entered the moments


class TestAdamW(OptimizerContract):
    """The shared contract, filled with AdamW's tables."""

    ours, theirs = OURS, THEIRS
    cases = CASES
    round_trip = CASES[::3] + CASES[-4:]
    missing_grad = [dict(lr=0.1), dict(lr=0.1, amsgrad=True, weight_decay=0.1)]
    invalid = INVALID  # the same checks as Adam's, which AdamW inherits
    switches = ["capturable", "differentiable"]
    foreach = CASES
    scheduled = [dict(lr=0.01, weight_decay=0.1)]
    tensor_lr = [
        dict(lr=torch.tensor(0.01), weight_decay=0.1),
        dict(lr=0.01, betas=(torch.tensor(0.8), torch.tensor([0.99]))),
    ]
    cuda = [
        dict(lr=0.01, amsgrad=True, weight_decay=0.1),
        dict(lr=0.01, weight_decay=0.1, foreach=True),
        dict(lr=0.01, weight_decay=0.1, fused=True),
    ]
