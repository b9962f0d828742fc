"""Run a learning-rate scheduler of ours and torch's side by side and compare what they set.

Used by ``tests/test_lr_scheduler*.py`` and the schedules chapter. A *factory* builds a scheduler
from an optimizer and a scheduler module (``companion.optim.lr_scheduler`` or
``torch.optim.lr_scheduler``), so one table entry describes both runs (and mixed composites).
"""

import copy
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from companion.testing.tolerances import assert_close

GROUP_LRS = (0.1, 0.03)
"""The learning rates of the two parameter groups every run uses."""


def two_group_optimizer(optimizer_cls, lrs: Sequence[float] = GROUP_LRS, **options):
    """An optimizer over two float64 parameter groups (one tensor each) with different learning rates."""
    g = torch.Generator().manual_seed(0)
    groups = [
        {
            "params": [
                torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
            ],
            "lr": lr,
        }
        for lr in lrs
    ]
    return optimizer_cls(groups, **options)


@dataclass
class Trace:
    """What a scheduler left after each step: ``get_last_lr()``, each group's lr and momentum (or beta1)."""

    last_lr: list = field(default_factory=list)
    group_lr: list = field(default_factory=list)
    momentum: list = field(default_factory=list)

    def record(self, scheduler, optimizer) -> None:
        self.last_lr.append([float(v) for v in scheduler.get_last_lr()])
        self.group_lr.append([float(g["lr"]) for g in optimizer.param_groups])
        self.momentum.append(
            [
                float(g["betas"][0]) if "betas" in g else float(g.get("momentum", 0.0))
                for g in optimizer.param_groups
            ]
        )


def advance(
    scheduler,
    optimizer,
    steps: int,
    trace: Trace,
    metrics: Sequence[float] | None = None,
    start: int = 0,
) -> Trace:
    """``steps`` rounds of optimizer.step() then scheduler.step() (with ``metrics[start + i]`` if given)."""
    for i in range(steps):
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad = torch.ones_like(p)
        optimizer.step()
        if metrics is None:
            scheduler.step()
        else:
            scheduler.step(metrics[start + i])
        trace.record(scheduler, optimizer)
    return trace


def run(
    factory: Callable, module, optimizer_cls, steps: int, metrics=None, **options
) -> Trace:
    """A fresh two-group optimizer, ``factory(optimizer, module)``, then ``steps`` steps (the first record is the start)."""
    optimizer = two_group_optimizer(optimizer_cls, **options)
    scheduler = factory(optimizer, module)
    trace = Trace()
    trace.record(scheduler, optimizer)
    return advance(scheduler, optimizer, steps, trace, metrics)


def resumed(
    factory: Callable, saver, loader, optimizer_cls, steps: int, metrics=None, **options
) -> tuple[Trace, Trace]:
    """Run ``saver``'s scheduler ``steps`` steps, save, then continue ``steps`` more (the uninterrupted run);
    and a fresh optimizer plus a fresh ``loader`` scheduler loading the saved states, continued ``steps`` steps.

    The fresh scheduler is built *before* the optimizer's state is loaded (its construction writes the lrs)."""
    optimizer = two_group_optimizer(optimizer_cls, **options)
    scheduler = factory(optimizer, saver)
    advance(scheduler, optimizer, steps, Trace(), metrics)
    saved_opt, saved_sched = (
        copy.deepcopy(optimizer.state_dict()),
        copy.deepcopy(scheduler.state_dict()),
    )
    straight = advance(scheduler, optimizer, steps, Trace(), metrics, start=steps)

    optimizer_b = two_group_optimizer(optimizer_cls, **options)
    scheduler_b = factory(optimizer_b, loader)
    optimizer_b.load_state_dict(saved_opt)
    scheduler_b.load_state_dict(
        copy.deepcopy(saved_sched)
    )  # torch's load pops keys from the dict it is given
    return straight, advance(
        scheduler_b, optimizer_b, steps, Trace(), metrics, start=steps
    )


def assert_traces_close(
    ours: Trace, theirs: Trace, *, ulps: float, momentum: bool = False, what: str = ""
) -> None:
    """Every step's rates (and momenta) within ``ulps`` · ε · (that step's largest value); step counts equal."""
    assert len(ours.last_lr) == len(theirs.last_lr), (
        len(ours.last_lr),
        len(theirs.last_lr),
    )
    fields = ("last_lr", "group_lr") + (("momentum",) if momentum else ())
    for name in fields:
        for t, (a, b) in enumerate(zip(getattr(ours, name), getattr(theirs, name))):
            a, b = (
                torch.tensor(a, dtype=torch.float64),
                torch.tensor(b, dtype=torch.float64),
            )
            assert_close(a, b, ulps=ulps, what=f"{what} {name} at step {t}")
