"""A pytest plugin (loaded by ``-p companion.testing.fair_threads`` in ``pyproject.toml``) that gives each
pytest-xdist worker, and every kernel or process it starts, a fair share of the cores.

Without it, each of W workers runs torch with one thread per core, and so does every notebook kernel it
starts: W × cores threads spin against each other and the suite runs several times slower than with one
thread each. A share of ``cores // W`` threads (at least 1) is set in the worker's environment
(``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``), which kernels and subprocesses inherit, and in torch itself.
A thread count the user set in the environment is kept.
"""

import os


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the platform says, else ``os.cpu_count()``)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def thread_share(workers: int, cores: int | None = None) -> int:
    """Threads for each of ``workers`` processes sharing ``cores`` cores: ``cores // workers``, at least 1."""
    cores = usable_cores() if cores is None else cores
    return max(1, cores // max(1, workers))


def pytest_configure(config):
    if "OMP_NUM_THREADS" in os.environ:
        return
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return  # the controller (or a run without xdist) leaves torch's default
    share = str(thread_share(workers))
    os.environ["OMP_NUM_THREADS"] = share
    os.environ["MKL_NUM_THREADS"] = share
    os.environ["COMPANION_THREAD_SHARE"] = (
        share  # says that this plugin, not the user, chose the count
    )
    import torch

    torch.set_num_threads(int(share))
