#!/usr/bin/env python3
"""Write, or check, the API reference pages `book/api/*.md` from the package's modules.

Each page is a short introduction plus one `automodule` section per public module (found by walking
the package, so a new module gets its section by running this script); Sphinx's autodoc renders the
docstrings, equation blocks included. Names starting with `_` are private and left out.

    .ci/api_pages.py           # rewrite the pages
    .ci/api_pages.py --check   # exit 1, naming them, if a page is out of date (a module added or removed)
"""

import argparse
import importlib
import pathlib
import pkgutil
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
API = ROOT / "book" / "api"
sys.path.insert(0, str(ROOT))

# page: (title, introduction, packages whose public modules it documents, module -> chapter teaching it)
PAGES = {
    "optim": (
        "companion.optim",
        """From-scratch optimizers and learning-rate schedulers with the contract of `torch.optim`: the
same names, arguments, defaults, state keys and errors, so `companion.optim.Adam` (documented below as
`companion.optim.adam.Adam`, where it is defined) takes the same arguments as `torch.optim.Adam` and
their state_dicts move both ways. Each optimizer validates and stores its hyper-parameters; its update
rule is one per-tensor function (`sgd_step`, `adam_step`, ...) whose docstring holds the equations;
`foreach=True` computes it over lists of tensors (`sgd_foreach`, `adam_foreach`, ...) and `fused=True`
with one Triton kernel (`companion.optim.fused`).
The optimizers are importable from `companion.optim`, the schedulers from `companion.optim.lr_scheduler`.""",
        ["companion.optim", "companion.optim.lr_scheduler"],
        {
            "sgd": "optimization/momentum",
            "adagrad": "optimization/adagrad",
            "adadelta": "optimization/adadelta",
            "rmsprop": "optimization/rmsprop",
            "adam": "optimization/adam",
            "adamw": "optimization/adam",
            "nadam": "optimization/nadam",
            "adam_variants": "optimization/adam",
            "radam": "after_adam/radam",
            "adafactor": "after_adam/adafactor",
            "muon": "after_adam/muon",
            "lbfgs": "after_adam/lbfgs",
            "asgd": "after_adam/averaging",
            "swa_utils": "after_adam/averaging",
            "sparse_adam": "after_adam/sparse_adam",
            "fused": "optimization/step_cost",
        },
    ),
    "nn": (
        "companion.nn",
        """From-scratch layers, losses and utilities with the contract of `torch.nn`: the same names,
arguments, defaults, parameter and buffer names, and errors.""",
        ["companion.nn", "companion.nn.loss", "companion.nn.utils"],
        {
            "activations": "initialization/activations",
            "normalization": "initialization/normalization",
            "dropout": "regularization/dropout",
            "conv": "convnets/convnets",
            "windows": "convnets/convnets",
            "pooling": "convnets/convnets",
            "pooling_checks": "convnets/convnets",
        },
    ),
    "init": (
        "companion.init",
        "Weight initializers with the contract of `torch.nn.init`.",
        ["companion.init"],
        {"init": "initialization/initialization"},
    ),
    "regularization": (
        "companion.regularization",
        """Regularizers that are not torch layers, and the hook of
{py:func}`companion.core.train.fit` each one plugs into; dropout is a torch mirror and lives in {doc}`nn`.

| regularizer | module | how it enters training |
|---|---|---|
| L1, L2, elastic-net penalties | `companion.regularization.penalties` | `fit(..., penalty=partial(l2_penalty, lam=...))`: added to the loss |
| proximal steps | `companion.regularization.proximal` | `fit(..., optimizer=ProximalL1(opt, lam))`: after every step |
| data augmentation, mixup | `companion.regularization.augment` | `fit(..., transform=Augmentation(...))`: applied to each batch |
| DropConnect | `companion.regularization.dropconnect` | a layer of the model (`DropConnectLinear`) |
| early stopping | `companion.regularization.early_stopping` | `fit(..., callbacks=[EarlyStopping(...)])`: ends the run |
| stochastic pooling | `companion.regularization.stochastic_pooling` | a layer of the model (`StochasticPool1d`, in place of max pooling) |""",
        ["companion.regularization"],
        {
            "augment": "regularization/augmentation",
            "penalties": "regularization/norm_penalties",
            "proximal": "regularization/norm_penalties",
            "dropconnect": "regularization/dropconnect",
            "early_stopping": "regularization/early_stopping",
            "stochastic_pooling": "convnets/stochastic_pooling",
        },
    ),
    "core": (
        "companion.core",
        """The course core that most chapters import: device and seeding, data sets, 2-D test
functions, models, the training loop, plots and diagnostics. `companion.get_device()` and
`companion.seed_everything(seed)` are also importable from the top level, `companion`.""",
        ["companion.core"],
        {},
    ),
    "experiments": (
        "companion.experiments",
        "The chapters' experiment harnesses; each module's docstring names the "
        "chapters that use it.",
        ["companion.experiments"],
        {},
    ),
    "testing": (
        "companion.testing",
        """Checks shared by the tests, the notebooks and the coursework grader: parity with
torch, the contract every optimizer must meet, and tolerances with a reason.""",
        ["companion.testing"],
        {},
    ),
}
# Not documented here: companion.coursework, the instructors' grading tooling (its docstrings are laid out
# as plain text, not reStructuredText).
FIRST = {
    "core": ["device", "data", "functions", "models", "train", "plot", "diagnostics"]
}  # reading order


def public_modules(package: str) -> list[str]:
    module = importlib.import_module(package)
    if not hasattr(module, "__path__"):
        return [package]
    return [
        f"{package}.{m.name}"
        for m in pkgutil.iter_modules(module.__path__)
        if not m.name.startswith("_") and not m.ispkg
    ]


def page_text(page: str) -> str:
    title, intro, packages, chapters = PAGES[page]
    modules = [m for p in packages for m in public_modules(p)]
    order = FIRST.get(page, [])
    modules.sort(
        key=lambda m: (
            order.index(m.rsplit(".", 1)[1])
            if m.rsplit(".", 1)[1] in order
            else len(order)
        )
    )
    out = [f"# `{title}`\n\n{intro}\n"]
    for name in modules:
        leaf = name.rsplit(".", 1)[1]
        taught = (
            f"Taught in {{doc}}`../{chapters[leaf]}`.\n\n" if leaf in chapters else ""
        )
        out.append(
            f"\n## `{name}`\n\n{taught}```{{eval-rst}}\n.. automodule:: {name}\n   :members:\n```\n"
        )
    return "".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="change nothing; exit 1 if a page is out of date",
    )
    args = parser.parse_args(argv)
    stale = []
    for page in PAGES:
        path, text = API / f"{page}.md", page_text(page)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(path)
            if not args.check:
                path.write_text(text, encoding="utf-8")
    for path in stale:
        print(
            f"{path.relative_to(ROOT)}: {'out of date (run .ci/api_pages.py)' if args.check else 'written'}"
        )
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
