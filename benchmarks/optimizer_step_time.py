"""Step time of every companion optimizer against torch's single-tensor path (``foreach=False``).

For each optimizer and model size, ours and torch's take turns (interleaved, so that a busy machine
slows both alike) stepping identical copies of a model whose gradients are fixed random tensors; the
table gives each median step time and the ratio ours / torch. It measures and asserts nothing:

    python benchmarks/optimizer_step_time.py            # small MLP and an 8-million-parameter one
    python benchmarks/optimizer_step_time.py --repeats 50 --sizes small

Run it with ``OMP_NUM_THREADS=1`` to compare the arithmetic rather than the threading.
"""

import argparse
import copy
import statistics
import time

import torch
from torch import nn

import companion.optim as ours

# (name, options): every optimizer, with the options that take its usual path
OPTIMIZERS = [
    ("SGD", dict(lr=0.01, momentum=0.9)),
    ("Adagrad", dict(lr=0.01)),
    ("Adadelta", dict()),
    ("RMSprop", dict(lr=0.01)),
    ("Adam", dict(lr=0.001)),
    ("AdamW", dict(lr=0.001)),
    ("NAdam", dict(lr=0.002)),
]
SIZES = {  # layer widths of a ReLU MLP
    "small": [64, 256, 256, 10],  # the digits MLP of the chapters: 85 k parameters
    "8M": [1024, 2048, 2048, 1024],  # 8.4 M parameters
}


def model_with_grads(widths: list[int], seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-2
    return model


def median_step_times(
    name: str, options: dict, widths: list[int], repeats: int, warmup: int = 3
) -> tuple[float, float]:
    models = [model_with_grads(widths), model_with_grads(widths)]
    opts = [
        getattr(ours, name)(models[0].parameters(), **options),
        getattr(torch.optim, name)(models[1].parameters(), **options, foreach=False),
    ]
    times: list[list[float]] = [[], []]
    for i in range(warmup + repeats):
        for k in (0, 1) if i % 2 == 0 else (1, 0):  # alternate who goes first
            start = time.perf_counter()
            opts[k].step()
            elapsed = time.perf_counter() - start
            if i >= warmup:
                times[k].append(elapsed)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), median of {args.repeats} steps"
    )
    print(
        f"| optimizer | model | parameters | ours (ms) | torch foreach=False (ms) | ours / torch |"
    )
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        n = sum(p.numel() for p in model_with_grads(SIZES[size]).parameters())
        for name, options in OPTIMIZERS:
            a, b = median_step_times(name, options, SIZES[size], args.repeats)
            print(
                f"| {name} | {size} | {n:,} | {a * 1e3:.3f} | {b * 1e3:.3f} | {a / b:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
