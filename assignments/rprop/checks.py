"""Hidden checks of the Rprop assignment: the course's optimizer contract against torch.optim.Rprop.

Each check is a probe (``@probe``: runs in the answer's sandbox, returns what it saw) and a judge (``@check``:
runs in the grader, reruns the experiment with torch's class on the same inputs and compares)."""

import torch

from companion.coursework import optim_judges as judge
from companion.coursework import probes
from companion.coursework.checks import check
from companion.coursework.probes import probe

TorchRprop = (
    torch.optim.Rprop
)  # the reference: trusted side only (not a literal, never sent)
DEFAULT_LR = 0.01
OPTIONS = (
    {"maximize": True},
    {"lr": 0.05, "etas": (0.3, 1.5)},
    {"step_sizes": (1e-3, 0.02)},
    {"lr": 0.001, "etas": (0.6, 1.1), "step_sizes": (1e-4, 1.0), "maximize": True},
)
INVALID = (
    {"lr": -1.0},
    {"etas": (1.5, 1.2)},
    {"etas": (0.5, 0.9)},
    {"etas": (0.0, 1.2)},
)
SWITCHES = ("foreach", "differentiable", "capturable")
GROUP_KEYS = SWITCHES + ("maximize", "lr", "etas", "step_sizes")
ROUND_TRIP = ({}, {"etas": (0.3, 1.5)})
SHAPES = ((3, 4), (5,))
REPLAY_SHAPES = ((4, 3), (3,), (2, 2, 2))
TRACE_ULPS = 1e4  # loose on purpose after 30 steps: a reordered formula drifts by a few ε per step


@probe
def signature_probe(ns, seed):
    return probes.signature_of(ns["Rprop"].__init__)


@check(points=1, probe=signature_probe)
def signature(obs, seed):
    """The constructor has torch.optim.Rprop's signature (names, order, keyword-only, defaults)."""
    judge.signature(obs, TorchRprop, "torch.optim.Rprop")


@probe
def invalid_probe(ns, seed):
    p = [torch.zeros(2, requires_grad=True)]
    return [probes.outcome(ns["Rprop"], p, **bad) for bad in INVALID]


@check(points=1, probe=invalid_probe)
def invalid(obs, seed):
    """Invalid lr and etas raise torch's ValueError messages."""
    judge.invalid(obs, TorchRprop, INVALID)


@probe
def switches_probe(ns, seed):
    return probes.switches(ns["Rprop"], SWITCHES)


@check(points=1, probe=switches_probe)
def switches(obs, seed):
    """foreach, differentiable and capturable are accepted off and refused on, with a ValueError naming them."""
    judge.switches(obs, SWITCHES, GROUP_KEYS)


@probe
def first_steps_probe(ns, seed):
    return probes.run_trace(ns["Rprop"], {}, *probes.gradients(SHAPES, 30, seed))


@check(points=2, probe=first_steps_probe)
def first_steps(obs, seed):
    """With the defaults, 30 steps on fixed gradients match torch (parameters and state)."""
    judge.trace(
        obs,
        TorchRprop,
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
            probes.run_trace(ns["Rprop"], o, *probes.gradients(SHAPES, 30, seed + k)),
            probes.run_closed_loop(
                ns["Rprop"], o, o.get("lr", DEFAULT_LR) / 2, seed + k
            ),
        ]
        for k, o in enumerate(OPTIONS)
    ]


@check(points=2, probe=options_probe)
def options(obs, seed):
    """maximize, lr, etas and step_sizes: 30 fixed steps and a 25-step closed loop with two groups."""
    if TorchRprop([torch.zeros(1, requires_grad=True)]).defaults["lr"] != DEFAULT_LR:
        raise RuntimeError("DEFAULT_LR is not torch's: the check itself is wrong")
    if type(obs) is not list or len(obs) != len(OPTIONS):
        obs = [None] * len(OPTIONS)  # fails below, once torch's runs are computed
    for k, (o, pair) in enumerate(zip(OPTIONS, obs)):
        if type(pair) is not list or len(pair) != 2:
            pair = [None, None]  # a malformed observation: fails in the judges
        judge.trace(
            pair[0],
            TorchRprop,
            o,
            SHAPES,
            30,
            seed + k,
            ulps=TRACE_ULPS,
            label=f"with {o}",
        )
        judge.closed_loop(pair[1], TorchRprop, o, o.get("lr", DEFAULT_LR) / 2, seed + k)


@probe
def replay_probe(ns, seed):
    init, grads = probes.gradients(REPLAY_SHAPES, 200, seed)
    return probes.run_trace(ns["Rprop"], {}, init, grads, missing_every=3)


@check(points=1, probe=replay_probe)
def replay(obs, seed):
    """200 steps of a fixed gradient sequence, one parameter missing its gradient every third step."""
    judge.trace(
        obs,
        TorchRprop,
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
    return [probes.run_round_trip(ns["Rprop"], o, seed) for o in ROUND_TRIP]


@check(points=1, probe=state_dict_probe)
def state_dict(obs, seed):
    """save, load and continue equals the uninterrupted run; state_dicts move between yours and torch's."""
    options = ROUND_TRIP
    if type(obs) is not list or len(obs) != len(options):
        raise AssertionError("one observation per set of options expected")
    for o, got in zip(options, obs):
        judge.round_trip(got, TorchRprop, "torch.optim.Rprop", o, seed)


@probe
def missing_grad_probe(ns, seed):
    return [
        probes.run_missing_grad(ns["Rprop"], {}, seed),
        probes.run_losses(ns["Rprop"], {"lr": 0.001}, seed),
    ]


@check(points=1, probe=missing_grad_probe)
def missing_grad(obs, seed):
    """A parameter without a gradient is left alone and gets no state; the loss falls on a small MLP."""
    if type(obs) is not list or len(obs) != 2:
        raise AssertionError("a malformed observation")
    judge.missing_grad(obs[0], seed)
    judge.loss_falls(obs[1], {"lr": 0.001})
