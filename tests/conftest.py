import os

import matplotlib
import pytest
import torch

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture
def broken_bwrap(tmp_path, monkeypatch):
    """A ``bwrap`` on PATH that fails, as in a container without user namespaces."""
    folder = tmp_path / "bin"
    folder.mkdir()
    stub = folder / "bwrap"
    stub.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n"
    )
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("COMPANION_NO_BWRAP", raising=False)
    from companion.coursework import sandbox

    assert not sandbox.bwrap_works()
    return stub


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
