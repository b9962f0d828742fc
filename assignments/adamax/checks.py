"""Hidden checks of the Adamax assignment: the course's optimizer contract against torch.optim.Adamax."""

import torch

from companion.coursework.checks import (
    check,
    contract,
    raises_like,
    refuses_switches,
    trace_optimizer,
)
from companion.testing import optim_contract as oc

TorchAdamax = (
    torch.optim.Adamax
)  # kept before the grader guards torch's class against the answer
OPTIONS = (
    {"weight_decay": 0.1},
    {"maximize": True},
    {"lr": 0.01, "betas": (0.5, 0.9), "eps": 1e-3},
    {"weight_decay": 0.05, "maximize": True, "lr": 0.005},
)


@check(points=1)
def signature(ns):
    """The constructor has torch.optim.Adamax's signature (names, order, keyword-only, defaults)."""
    contract(
        "the constructor's signature differs from torch.optim.Adamax's",
        oc.check_signature,
        ns["Adamax"],
        TorchAdamax,
    )


@check(points=1)
def invalid(ns):
    """Invalid lr, eps, betas and weight_decay raise torch's ValueError messages."""
    p = [torch.zeros(2, requires_grad=True)]
    for bad in (
        {"lr": -1.0},
        {"eps": -1e-3},
        {"betas": (1.0, 0.999)},
        {"betas": (0.9, -0.1)},
        {"weight_decay": -1.0},
    ):
        raises_like(ns["Adamax"], TorchAdamax, p, **bad)


@check(points=1)
def switches(ns):
    """foreach, differentiable and capturable are accepted off and refused on, with a ValueError naming them."""
    refuses_switches(
        ns["Adamax"],
        ("foreach", "differentiable", "capturable"),
        (
            "foreach",
            "differentiable",
            "capturable",
            "maximize",
            "lr",
            "betas",
            "eps",
            "weight_decay",
        ),
    )


@check(points=2)
def first_steps(ns):
    """With the defaults, 30 steps on fixed gradients match torch (parameters and state)."""
    trace_optimizer(ns["Adamax"], TorchAdamax, {})


@check(points=2)
def options(ns):
    """weight_decay, maximize, lr, betas and eps: 30 fixed steps and a 25-step closed loop with two groups."""
    for options in OPTIONS:
        trace_optimizer(ns["Adamax"], TorchAdamax, options)
        contract(
            f"closed loop with {options}",
            oc.check_closed_loop,
            ns["Adamax"],
            TorchAdamax,
            options,
        )


@check(points=1)
def replay(ns):
    """200 steps of a fixed gradient sequence, one parameter missing its gradient every third step."""
    contract(
        "200-step replay (parameter and state differences)",
        oc.check_replay,
        ns["Adamax"],
        TorchAdamax,
        {},
    )


@check(points=1)
def state_dict(ns):
    """save, load and continue equals the uninterrupted run; state_dicts move between yours and torch's."""
    for options in ({}, {"weight_decay": 0.1}):
        contract(
            f"state_dict round trip with {options or 'the defaults'}",
            oc.check_state_dict_round_trip,
            ns["Adamax"],
            TorchAdamax,
            options,
        )


@check(points=1)
def missing_grad(ns):
    """A parameter without a gradient is left alone and gets no state; the loss falls on a small MLP."""
    contract(
        "a parameter without a gradient changed or got state",
        oc.check_missing_grad_is_noop,
        ns["Adamax"],
        {},
    )
    contract(
        "the loss did not fall in 20 steps",
        oc.check_loss_falls,
        ns["Adamax"],
        {"lr": 0.01},
    )
