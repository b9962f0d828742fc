import matplotlib
import pytest
import torch

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
