"""companion.optim.NAdam against torch.optim.NAdam, driven by one table of option combinations."""

import copy
import itertools

import pytest
import torch

from companion.testing import optim_contract as contract
from companion.testing.optim_suite import OptimizerContract
from companion.optim.nadam import NAdam, momentum_schedule
from companion.testing.parity import max_abs_diff

OURS, THEIRS = NAdam, torch.optim.NAdam


def _cases():
    """Every combination of the options that change the math, then betas and eps alone and all together."""
    cases = []
    for weight_decay, decoupled, momentum_decay, maximize in itertools.product(
        (0.0, 0.05), (False, True), (4e-3, 0.0, 0.5), (False, True)
    ):
        cases.append(
            dict(
                lr=0.01,
                weight_decay=weight_decay,
                decoupled_weight_decay=decoupled,
                momentum_decay=momentum_decay,
                maximize=maximize,
            )
        )
    cases += [
        dict(lr=0.01, betas=(0.5, 0.9)),
        dict(lr=0.01, betas=(0.0, 0.99)),
        dict(lr=0.01, eps=1e-3),
        dict(lr=0.01, momentum_decay=1e4),  # μ_t = β₁ from the start
        dict(
            lr=0.01,
            betas=(0.8, 0.95),
            eps=1e-4,
            weight_decay=0.1,
            momentum_decay=0.02,
            decoupled_weight_decay=True,
            maximize=True,
        ),
    ]
    return cases


CASES = _cases()


ROUND_TRIP = [c for c in CASES[::4] + CASES[-5:] if c.get("momentum_decay") != 1e4]


def test_loading_casts_mu_product_like_torch():
    """torch's load_state_dict casts ``mu_product`` (float32) to the parameters' dtype, so a resumed run
    drifts from the uninterrupted one (by ~1e-9 when μ_t = β₁, where Π_t decays slowly). Resumed in
    ours or in torch's class, the two runs still agree to 1e-12, and both hold a float64 product."""
    options = dict(lr=0.01, momentum_decay=1e4)
    model, X, y = contract._problem()
    opt = THEIRS(model.parameters(), **options)
    contract._train(model, opt, X, y, 10)
    saved_model, saved_opt = (
        copy.deepcopy(model.state_dict()),
        copy.deepcopy(opt.state_dict()),
    )
    resumed = []
    for cls in (OURS, THEIRS):
        m, _, _ = contract._problem()
        m.load_state_dict(saved_model)
        o = cls(m.parameters(), **options)
        o.load_state_dict(copy.deepcopy(saved_opt))
        assert all(s["mu_product"].dtype == torch.float64 for s in o.state.values())
        contract._train(m, o, X, y, 10)
        resumed.append(m)
    assert max_abs_diff(resumed[0].parameters(), resumed[1].parameters()) < 1e-12


@pytest.mark.parametrize(
    "t, beta1, psi, expected",
    [
        (1, 0.9, 4e-3, 0.9 * (1 - 0.5 * 0.96**0.004)),
        (250, 0.9, 4e-3, 0.9 * 0.52),
        (5, 0.9, 0.0, 0.45),
        (3, 0.9, 1e4, 0.9),
    ],
)
def test_momentum_schedule(t, beta1, psi, expected):
    assert momentum_schedule(t, beta1, psi) == pytest.approx(expected, abs=1e-12)


class TestNAdam(OptimizerContract):
    """The shared contract, filled with NAdam's tables."""

    ours, theirs = OURS, THEIRS
    cases = CASES
    round_trip = ROUND_TRIP
    # torch's load_state_dict casts the float32 Π to float64 (in ours as in torch's), so the resumed run
    # multiplies a Π that differs by up to 2⁻²⁴ relative: ~1e-12 in the parameters after 10 steps
    round_trip_ulps = 2**20
    missing_grad = [dict(lr=0.1), dict(lr=0.1, weight_decay=0.1)]
    invalid = [
        dict(lr=-0.1),
        dict(eps=-1e-8),
        dict(betas=(1.0, 0.999)),
        dict(betas=(-0.1, 0.999)),
        dict(betas=(0.9, 1.0)),
        dict(weight_decay=-1.0),
        dict(momentum_decay=-1e-3),
        dict(lr=torch.tensor([0.1, 0.2])),
    ]
    switches = ["capturable", "differentiable"]
    scheduled = [dict(lr=0.01, weight_decay=0.01)]
    tensor_lr = [
        dict(lr=torch.tensor(0.01), weight_decay=0.1, decoupled_weight_decay=True)
    ]
    cuda = [dict(lr=0.01, weight_decay=0.01, decoupled_weight_decay=True)]
    state = [dict(lr=0.1), dict(lr=0.1, decoupled_weight_decay=True, weight_decay=0.1)]
    foreach = CASES + [
        dict(lr=torch.tensor(0.01), weight_decay=0.1, decoupled_weight_decay=True)
    ]

    def test_foreach_state_dict(self, options):
        # the resumed runs are held to round_trip_ulps (the cast of Π, as in its comment; torch's own
        # foreach → foreach round trip drifts by 1.8e-11 after 5 + 5 steps)
        if (
            options.get("momentum_decay") == 1e4
        ):  # as ROUND_TRIP: Π decays slowly, the cast costs ~1e-9
            pytest.skip("covered by test_loading_casts_mu_product_like_torch")
        super().test_foreach_state_dict(options)
