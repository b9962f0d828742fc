"""Device choice and seeding, so that every notebook and test runs the same on CPU and CUDA."""

import os
import random

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


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a CPU ``torch.Generator`` seeded the same."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)
