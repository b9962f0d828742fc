"""companion.testing.fair_threads: each pytest-xdist worker, and every kernel it starts, gets a fair share of the cores."""

import os
import subprocess
import sys

import pytest

from companion.testing.fair_threads import thread_share, usable_cores


@pytest.mark.parametrize(
    "workers, cores, share",
    [(1, 2, 2), (2, 2, 1), (4, 2, 1), (4, 16, 4), (3, 16, 5), (0, 8, 8)],
)
def test_thread_share(workers, cores, share):
    assert thread_share(workers, cores) == share


def test_usable_cores_is_positive():
    assert usable_cores() >= 1


def test_this_worker_and_its_children_use_their_share():
    """Under pytest-xdist (the project's default), a worker's environment holds its share, and a child
    process started from it (as nbval starts a kernel) gets the same number of torch threads."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        pytest.skip("not running under a pytest-xdist worker (-n 0)")
    if os.environ.get("OMP_NUM_THREADS") is None:
        pytest.fail("the worker's environment has no OMP_NUM_THREADS")
    workers = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    expected = os.environ["OMP_NUM_THREADS"]
    import torch

    assert torch.get_num_threads() == int(expected)
    child = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == expected
    if os.environ.get(
        "COMPANION_THREAD_SHARE"
    ):  # the plugin chose it (the user had set no thread count)
        assert (
            expected
            == os.environ["COMPANION_THREAD_SHARE"]
            == str(thread_share(workers))
        )
