"""Hidden checks of the Adamax assignment: the course's optimizer contract against torch.optim.Adamax.

Each check is a probe (``@probe``: runs in the answer's sandbox, returns what it saw) and a judge (``@check``:
runs in the grader, reruns the experiment with torch's class on the same inputs and compares)."""

import torch

from companion.coursework import optim_judges as judge
from companion.coursework import probes
from companion.coursework.checks import check
from companion.coursework.probes import probe

TorchAdamax = (
    torch.optim.Adamax
)  # the reference: trusted side only (not a literal, never sent)
DEFAULT_LR = 0.002
OPTIONS = (
    {"weight_decay": 0.1},
    {"maximize": True},
    {"lr": 0.01, "betas": (0.5, 0.9), "eps": 1e-3},
    {"weight_decay": 0.05, "maximize": True, "lr": 0.005},
)
INVALID = (
    {"lr": -1.0},
    {"eps": -1e-3},
    {"betas": (1.0, 0.999)},
    {"betas": (0.9, -0.1)},
    {"weight_decay": -1.0},
)
SWITCHES = ("foreach", "differentiable", "capturable")
GROUP_KEYS = SWITCHES + ("maximize", "lr", "betas", "eps", "weight_decay")
SHAPES = ((3, 4), (5,))
REPLAY_SHAPES = ((4, 3), (3,), (2, 2, 2))
TRACE_ULPS = 1e4  # loose on purpose after 30 steps: a reordered formula drifts by a few ε per step


@probe
def signature_probe(ns, seed):
    return probes.signature_of(ns["Adamax"].__init__)


@check(points=1, probe=signature_probe)
def signature(obs, seed):
    """The constructor has torch.optim.Adamax's signature (names, order, keyword-only, defaults)."""
    judge.signature(obs, TorchAdamax, "torch.optim.Adamax")


@probe
def invalid_probe(ns, seed):
    p = [torch.zeros(2, requires_grad=True)]
    return [probes.outcome(ns["Adamax"], p, **bad) for bad in INVALID]


@check(points=1, probe=invalid_probe)
def invalid(obs, seed):
    """Invalid lr, eps, betas and weight_decay raise torch's ValueError messages."""
    judge.invalid(obs, TorchAdamax, INVALID)


@probe
def switches_probe(ns, seed):
    return probes.switches(ns["Adamax"], SWITCHES)


@check(points=1, probe=switches_probe)
def switches(obs, seed):
    """foreach, differentiable and capturable are accepted off and refused on, with a ValueError naming them."""
    judge.switches(obs, SWITCHES, GROUP_KEYS)


@probe
def first_steps_probe(ns, seed):
    return probes.run_trace(ns["Adamax"], {}, *probes.gradients(SHAPES, 30, seed))


@check(points=2, probe=first_steps_probe)
def first_steps(obs, seed):
    """With the defaults, 30 steps on fixed gradients match torch (parameters and state)."""
    judge.trace(
        obs,
        TorchAdamax,
        {},
        SHAPES,
        30,
        seed,
        ulps=TRACE_ULPS,
        label="with the defaults",
    )


@probe
def options_probe(ns, seed):
    return [
        [
            probes.run_trace(ns["Adamax"], o, *probes.gradients(SHAPES, 30, seed + k)),
            probes.run_closed_loop(
                ns["Adamax"], o, o.get("lr", DEFAULT_LR) / 2, seed + k
            ),
        ]
        for k, o in enumerate(OPTIONS)
    ]


@check(points=2, probe=options_probe)
def options(obs, seed):
    """weight_decay, maximize, lr, betas and eps: 30 fixed steps and a 25-step closed loop with two groups."""
    if TorchAdamax([torch.zeros(1, requires_grad=True)]).defaults["lr"] != DEFAULT_LR:
        raise RuntimeError("DEFAULT_LR is not torch's: the check itself is wrong")
    if type(obs) is not list or len(obs) != len(OPTIONS):
        obs = [None] * len(OPTIONS)  # fails below, once torch's runs are computed
    for k, (o, pair) in enumerate(zip(OPTIONS, obs)):
        if type(pair) is not list or len(pair) != 2:
            pair = [None, None]  # a malformed observation: fails in the judges
        judge.trace(
            pair[0],
            TorchAdamax,
            o,
            SHAPES,
            30,
            seed + k,
            ulps=TRACE_ULPS,
            label=f"with {o}",
        )
        judge.closed_loop(
            pair[1], TorchAdamax, o, o.get("lr", DEFAULT_LR) / 2, seed + k
        )


@probe
def replay_probe(ns, seed):
    init, grads = probes.gradients(REPLAY_SHAPES, 200, seed)
    return probes.run_trace(ns["Adamax"], {}, init, grads, missing_every=3)


@check(points=1, probe=replay_probe)
def replay(obs, seed):
    """200 steps of a fixed gradient sequence, one parameter missing its gradient every third step."""
    judge.trace(
        obs,
        TorchAdamax,
        {},
        REPLAY_SHAPES,
        200,
        seed,
        ulps=judge.REPLAY_ULPS,
        label="200-step replay",
        missing_every=3,
    )


@probe
def state_dict_probe(ns, seed):
    return [
        probes.run_round_trip(ns["Adamax"], o, seed)
        for o in ({}, {"weight_decay": 0.1})
    ]


@check(points=1, probe=state_dict_probe)
def state_dict(obs, seed):
    """save, load and continue equals the uninterrupted run; state_dicts move between yours and torch's."""
    options = ({}, {"weight_decay": 0.1})
    if type(obs) is not list or len(obs) != len(options):
        raise AssertionError("one observation per set of options expected")
    for o, got in zip(options, obs):
        judge.round_trip(got, TorchAdamax, "torch.optim.Adamax", o, seed)


@probe
def missing_grad_probe(ns, seed):
    return [
        probes.run_missing_grad(ns["Adamax"], {}, seed),
        probes.run_losses(ns["Adamax"], {"lr": 0.01}, seed),
    ]


@check(points=1, probe=missing_grad_probe)
def missing_grad(obs, seed):
    """A parameter without a gradient is left alone and gets no state; the loss falls on a small MLP."""
    if type(obs) is not list or len(obs) != 2:
        raise AssertionError("a malformed observation")
    judge.missing_grad(obs[0], seed)
    judge.loss_falls(obs[1], {"lr": 0.01})
