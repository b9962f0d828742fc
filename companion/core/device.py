"""Device choice and seeding, so that every notebook and test runs the same on CPU and CUDA.

Every seed a chapter or harness uses becomes a random state through :func:`seed_everything` or
:func:`make_generator`, and both add :func:`seed_offset` (the integer in the environment variable
``COMPANION_SEED_OFFSET``, default 0). With the offset at 0 a chapter prints the numbers on its page;
with any other offset every random draw changes, and every claim the chapter asserts must still hold.
"""

import os
import random
from contextlib import contextmanager

import numpy as np
import torch


def get_device(prefer: str | None = None) -> torch.device:
    """The device the course runs on: CUDA when it is there, else the CPU.

    ``prefer`` (or the environment variable ``COMPANION_DEVICE``) forces one, e.g. ``"cpu"``.
    """
    choice = prefer or os.environ.get("COMPANION_DEVICE")
    if choice:
        return torch.device(choice)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_offset() -> int:
    """The integer in ``COMPANION_SEED_OFFSET`` (0 when unset), added to every seed the course uses."""
    text = os.environ.get("COMPANION_SEED_OFFSET", "").strip()
    if not text:
        return 0
    try:
        return int(text)
    except ValueError:
        raise ValueError(
            f"COMPANION_SEED_OFFSET must be an integer, got {text!r}"
        ) from None


def rng_seed(seed: int) -> int:
    """The seed a random state is actually given: ``seed + seed_offset()``."""
    return int(seed) + seed_offset()


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA) with ``rng_seed(seed)``; return a CPU generator seeded the same."""
    s = rng_seed(seed)
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)  # also seeds every CUDA device
    return torch.Generator().manual_seed(s)


def make_generator(
    seed: int = 0, device: torch.device | str | None = None
) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` (the CPU by default) seeded with ``rng_seed(seed)``."""
    return torch.Generator(device=device or "cpu").manual_seed(rng_seed(seed))


@contextmanager
def num_threads(threads: int):
    """Run the body with ``torch.set_num_threads(threads)`` and restore the previous count afterwards.

    Two uses: CPU time (``time.process_time``) adds up the time of every thread of the process, so a timing
    that compares CPU seconds must fix the thread count; and on a shared machine small tensors on fewer
    threads contend less (two threads on a busy 2-core machine can make each small operation many times slower).
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
