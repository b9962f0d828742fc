"""What one optimizer step costs: companion's three paths against torch's three, and the copy bandwidth.

An optimizer step reads and writes every parameter and its state once (fused) or several times
(one kernel per operation); either way it does a dozen flops per parameter at most, so it is limited
by memory bandwidth, not arithmetic. This script measures, in one run on one device:

* the device's copy bandwidth, from a large ``dst.copy_(src)`` (bytes moved = 2 × the buffer's size), and
  for comparison that of an in-place ``x.add_(y)`` (3 × the size), the access pattern of a step;
* for SGD with momentum, Adam and AdamW, on models of many layers of transformer shapes, the median time
  of one step of companion's single-tensor, ``foreach=True`` and ``fused=True`` paths and of torch's
  same three, the repeats interleaved (each repeat steps every implementation once, in a rotating
  order, so that a busy machine slows all of them alike);
* the bandwidth each step achieves, counting the bytes a fused step must move (read θ, g and the
  state, write θ and the state: 20 B per float32 parameter for SGD with momentum, 28 for Adam), and its
  fraction of the copy bandwidth.

It prints a markdown table with the device's name, torch's version and the date, and asserts nothing.
A path that cannot run says why (companion's ``fused=True`` on a CPU runs in Triton's interpreter, which
is far too slow to time: it is skipped unless ``--fused-on-cpu``)::

    python benchmarks/optimizer_step.py                    # 8.4 M and 134 M parameters, on CUDA if present
    python benchmarks/optimizer_step.py --quick            # 1 M parameters, a minute at most on a laptop CPU
    python benchmarks/optimizer_step.py --sizes 8.4M --repeats 50 --device cuda:1
"""

import argparse
import datetime
import platform
import statistics
import time

import torch

import companion.optim as ours
from companion.optim import fused as companion_fused
from companion.testing.parity import max_abs_diff

# name: (the tensors a fused step reads, the tensors it writes), per parameter
TRAFFIC = {
    "SGD": (("θ", "g", "momentum buffer b"), ("θ", "b")),
    "Adam": (("θ", "g", "m", "v"), ("θ", "m", "v")),
    "AdamW": (("θ", "g", "m", "v"), ("θ", "m", "v")),
}
OPTIONS = {
    "SGD": dict(lr=0.01, momentum=0.9),
    "Adam": dict(lr=1e-3),
    "AdamW": dict(lr=1e-3),
}
PATHS = {
    "single-tensor": dict(foreach=False),
    "foreach": dict(foreach=True),
    "fused": dict(fused=True),
}
# (width, blocks, vocabulary): an embedding, then blocks of a transformer's shapes (12 d² + 13 d parameters each)
SIZES = {"1M": (128, 4, 2048), "8.4M": (256, 10, 2048), "134M": (1024, 10, 8192)}


def transformer_shapes(
    width: int, blocks: int, vocabulary: int
) -> list[tuple[int, ...]]:
    """The parameter shapes of a small transformer: an embedding, then per block two layer norms, the
    attention's input and output projections and the MLP's two layers (with their biases)."""
    d = width
    shapes = [(vocabulary, d)]
    for _ in range(blocks):
        shapes += [
            (d,),
            (d,),
            (3 * d, d),
            (3 * d,),
            (d, d),
            (d,),
        ]  # layer norm, attention
        shapes += [
            (d,),
            (d,),
            (4 * d, d),
            (4 * d,),
            (d, 4 * d),
            (d,),
        ]  # layer norm, MLP
    return shapes


def fixed_tensors(
    shapes, device, dtype, seed: int, scale: float = 1.0
) -> list[torch.Tensor]:
    """Random tensors of ``shapes``, the same for the same seed on every device."""
    gen = torch.Generator().manual_seed(seed)
    return [
        (scale * torch.randn(s, generator=gen)).to(device=device, dtype=dtype)
        for s in shapes
    ]


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a CUDA step returns before its kernels finish)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_times(
    work: dict, device: torch.device, repeats: int, warmup: int
) -> dict[str, float]:
    """Median seconds per call of each of ``work``'s functions, the calls interleaved in a rotating order."""
    names = list(work)
    times = {name: [] for name in names}
    for i in range(warmup + repeats):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            synchronize(device)
            start = time.perf_counter()
            work[name]()
            synchronize(device)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def stream_bandwidths(
    device: torch.device, mebibytes: int, repeats: int
) -> tuple[float, float]:
    """Bytes per second of ``dst.copy_(src)`` (it reads and writes each byte once: 2 × size) and of the in-place
    ``x.add_(y, alpha=a)`` (reads x and y, writes x: 3 × size, an optimizer step's pattern), for buffers of
    ``mebibytes``."""
    n = mebibytes * 2**20 // 4
    src, x = torch.ones(n, device=device), torch.ones(n, device=device)
    dst = torch.empty_like(src)
    seconds = median_times(
        {"copy": lambda: dst.copy_(src), "in place": lambda: x.add_(src, alpha=1e-6)},
        device,
        repeats,
        warmup=3,
    )
    return 2 * src.nbytes / seconds["copy"], 3 * src.nbytes / seconds["in place"]


def device_name(device: torch.device) -> str:
    """The GPU's name, or the processor's model and torch's thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                line.split(":", 1)[1].strip()
                for line in f
                if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    return f"{model}, {torch.get_num_threads()} thread(s)"


def implementations(
    name: str, shapes, device, dtype, fused_on_cpu: bool
) -> tuple[dict, dict]:
    """Each (library, path) that can run: its optimizer over fresh parameters sharing one set of gradients;
    and, for the others, why not."""
    grads = fixed_tensors(shapes, device, dtype, seed=1, scale=1e-2)
    optimizers, skipped = {}, {}
    for library, module in (("ours", ours), ("torch", torch.optim)):
        for path, flags in PATHS.items():
            key = f"{library} {path}"
            if library == "ours" and path == "fused":
                reason = companion_fused.fused_unavailable_reason()
                if reason is None and device.type == "cpu" and not fused_on_cpu:
                    reason = "on a CPU it runs in Triton's interpreter, far too slow to time (--fused-on-cpu)"
                if reason is not None:
                    skipped[key] = reason
                    continue
            params = [
                t.requires_grad_() for t in fixed_tensors(shapes, device, dtype, seed=0)
            ]
            for p, g in zip(params, grads):
                p.grad = g  # read-only for every path timed here
            try:
                opt = getattr(module, name)(params, **OPTIONS[name], **flags)
                opt.step()  # a first step creates the state, and shows a path that refuses to run
            except (
                Exception
            ) as error:  # a path that is not there (yet), or refuses these options
                skipped[key] = f"{type(error).__name__}: {error}"
                continue
            optimizers[key] = (opt, params)
    return optimizers, skipped


def measure(name: str, size: str, args, device, dtype) -> tuple[list[tuple], dict]:
    """The table's rows for one optimizer and model size, and the paths that could not run, with the reason."""
    shapes = transformer_shapes(*SIZES[size])
    n = sum(torch.Size(s).numel() for s in shapes)
    optimizers, skipped = implementations(
        name, shapes, device, dtype, args.fused_on_cpu
    )
    seconds = median_times(
        {key: opt.step for key, (opt, _) in optimizers.items()},
        device,
        args.repeats,
        args.warmup,
    )
    reads, writes = TRAFFIC[name]
    bytes_per_param = (len(reads) + len(writes)) * dtype.itemsize
    reference = optimizers.get("torch single-tensor")
    rows = []
    for key, (opt, params) in optimizers.items():
        t = seconds[key]
        diff = (
            max_abs_diff(params, reference[1], relative=True)
            if reference
            else float("nan")
        )
        rows.append(
            (
                name,
                size,
                f"{n:,}",
                len(shapes),
                key,
                f"{t * 1e3:.3f}",
                f"{bytes_per_param * n / t / 1e9:.1f}",
                f"{100 * bytes_per_param * n / t / args.copy_bw:.0f} %",
                f"{t / seconds['torch single-tensor']:.2f}" if reference else "",
                f"{diff:.1e}",
            )
        )
    del optimizers
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows, {f"{name}, {size}, {key}": reason for key, reason in skipped.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument(
        "--sizes", nargs="+", default=["8.4M", "134M"], choices=list(SIZES)
    )
    parser.add_argument(
        "--optimizers", nargs="+", default=list(TRAFFIC), choices=list(TRAFFIC)
    )
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument(
        "--repeats",
        type=int,
        default=30,
        help="interleaved repeats (after --warmup of them)",
    )
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--copy-mib",
        type=int,
        default=None,
        help="the copy's buffer, MiB (1024 on CUDA, 256 on CPU)",
    )
    parser.add_argument(
        "--fused-on-cpu",
        action="store_true",
        help="time companion's fused path in Triton's interpreter (slow)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 M parameters, 20 repeats: a check that it runs",
    )
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    if args.quick:
        args.sizes, args.repeats, args.warmup = ["1M"], 20, 3
    copy_mib = args.copy_mib or (
        64 if args.quick else 1024 if device.type == "cuda" else 256
    )
    args.copy_bw, in_place_bw = stream_bandwidths(
        device, copy_mib, repeats=max(args.repeats, 10)
    )

    print(
        f"device: {device_name(device)} ({device}); torch {torch.__version__}; "
        f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}"
    )
    print(
        f"copy bandwidth (dst.copy_(src), {copy_mib} MiB, bytes = 2 × size): {args.copy_bw / 1e9:.1f} GB/s; "
        f"in place (x.add_(y), bytes = 3 × size): {in_place_bw / 1e9:.1f} GB/s"
    )
    print(
        f"{args.dtype}; median of {args.repeats} interleaved steps after {args.warmup} warm-up steps; "
        "bandwidth = bytes a fused step moves per parameter × parameters / time"
    )
    for name in args.optimizers:
        reads, writes = TRAFFIC[name]
        print(
            f"  {name}: reads {', '.join(reads)}; writes {', '.join(writes)}: "
            f"{(len(reads) + len(writes)) * dtype.itemsize} B per parameter"
        )
    print()
    print(
        "| optimizer | model | parameters | tensors | implementation | ms / step | GB/s | of copy "
        "| time / torch single-tensor | max rel. diff from torch single-tensor |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    skipped = {}
    for size in args.sizes:
        for name in args.optimizers:
            rows, why = measure(name, size, args, device, dtype)
            skipped.update(why)
            for row in rows:
                print("| " + " | ".join(str(c) for c in row) + " |", flush=True)
    if device.type == "cpu":
        print(
            "\n(on a CPU a step can beat the copy's bandwidth: its parameters and state may fit in the caches, "
            "and a copy into a fresh buffer first reads each line it writes)"
        )
    if skipped:
        print("\nnot timed:")
        for key, reason in skipped.items():
            print(f"- {key}: {reason}")


if __name__ == "__main__":
    main()
