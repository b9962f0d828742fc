"""Hidden checks of the Rprop assignment: the course's optimizer contract against torch.optim.Rprop."""

import torch

from companion.coursework.checks import (
    check,
    contract,
    raises_like,
    refuses_switches,
    trace_optimizer,
)
from companion.testing import optim_contract as oc

TorchRprop = (
    torch.optim.Rprop
)  # kept before the grader guards torch's class against the answer
OPTIONS = (
    {"maximize": True},
    {"lr": 0.05, "etas": (0.3, 1.5)},
    {"step_sizes": (1e-3, 0.02)},
    {"lr": 0.001, "etas": (0.6, 1.1), "step_sizes": (1e-4, 1.0), "maximize": True},
)


@check(points=1)
def signature(ns):
    """The constructor has torch.optim.Rprop's signature (names, order, keyword-only, defaults)."""
    contract(
        "the constructor's signature differs from torch.optim.Rprop's",
        oc.check_signature,
        ns["Rprop"],
        TorchRprop,
    )


@check(points=1)
def invalid(ns):
    """Invalid lr and etas raise torch's ValueError messages."""
    p = [torch.zeros(2, requires_grad=True)]
    for bad in (
        {"lr": -1.0},
        {"etas": (1.5, 1.2)},
        {"etas": (0.5, 0.9)},
        {"etas": (0.0, 1.2)},
    ):
        raises_like(ns["Rprop"], TorchRprop, p, **bad)


@check(points=1)
def switches(ns):
    """foreach, differentiable and capturable are accepted off and refused on, with a ValueError naming them."""
    refuses_switches(
        ns["Rprop"],
        ("foreach", "differentiable", "capturable"),
        (
            "foreach",
            "differentiable",
            "capturable",
            "maximize",
            "lr",
            "etas",
            "step_sizes",
        ),
    )


@check(points=2)
def first_steps(ns):
    """With the defaults, 30 steps on fixed gradients match torch (parameters and state)."""
    trace_optimizer(ns["Rprop"], TorchRprop, {})


@check(points=2)
def options(ns):
    """maximize, lr, etas and step_sizes: 30 fixed steps and a 25-step closed loop with two groups."""
    for options in OPTIONS:
        trace_optimizer(ns["Rprop"], TorchRprop, options)
        contract(
            f"closed loop with {options}",
            oc.check_closed_loop,
            ns["Rprop"],
            TorchRprop,
            options,
        )


@check(points=1)
def replay(ns):
    """200 steps of a fixed gradient sequence, one parameter missing its gradient every third step."""
    contract(
        "200-step replay (parameter and state differences)",
        oc.check_replay,
        ns["Rprop"],
        TorchRprop,
        {},
    )


@check(points=1)
def state_dict(ns):
    """save, load and continue equals the uninterrupted run; state_dicts move between yours and torch's."""
    for options in ({}, {"etas": (0.3, 1.5)}):
        contract(
            f"state_dict round trip with {options or 'the defaults'}",
            oc.check_state_dict_round_trip,
            ns["Rprop"],
            TorchRprop,
            options,
        )


@check(points=1)
def missing_grad(ns):
    """A parameter without a gradient is left alone and gets no state; the loss falls on a small MLP."""
    contract(
        "a parameter without a gradient changed or got state",
        oc.check_missing_grad_is_noop,
        ns["Rprop"],
        {},
    )
    contract(
        "the loss did not fall in 20 steps",
        oc.check_loss_falls,
        ns["Rprop"],
        {"lr": 0.001},
    )
