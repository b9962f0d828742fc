"""companion.core.device: the device choice and the one place where seeds become random states."""

import random

import numpy as np
import pytest
import torch

import companion
from companion.core.device import (
    get_device,
    make_generator,
    num_threads,
    rng_seed,
    seed_everything,
    seed_offset,
)


@pytest.mark.parametrize(
    "text, offset", [(None, 0), ("", 0), ("0", 0), ("1000", 1000), (" -3 ", -3)]
)
def test_seed_offset_reads_the_environment(monkeypatch, text, offset):
    if text is None:
        monkeypatch.delenv("COMPANION_SEED_OFFSET", raising=False)
    else:
        monkeypatch.setenv("COMPANION_SEED_OFFSET", text)
    assert seed_offset() == offset
    assert rng_seed(7) == 7 + offset


def test_a_bad_offset_says_what_is_wrong(monkeypatch):
    monkeypatch.setenv("COMPANION_SEED_OFFSET", "ten")
    with pytest.raises(
        ValueError, match="COMPANION_SEED_OFFSET must be an integer, got 'ten'"
    ):
        seed_offset()


@pytest.mark.parametrize("offset", [0, 1000])
def test_seed_everything_and_make_generator_draw_what_the_offset_seed_draws(
    monkeypatch, offset
):
    monkeypatch.setenv("COMPANION_SEED_OFFSET", str(offset))
    g = seed_everything(3)
    torch_draw, python_draw, numpy_draw = (
        torch.rand(4),
        random.random(),
        np.random.rand(),
    )
    torch.manual_seed(3 + offset)
    random.seed(3 + offset)
    np.random.seed(3 + offset)
    assert torch.equal(torch_draw, torch.rand(4))
    assert python_draw == random.random() and numpy_draw == np.random.rand()
    expected = torch.rand(5, generator=torch.Generator().manual_seed(3 + offset))
    assert torch.equal(torch.rand(5, generator=g), expected)
    assert torch.equal(torch.rand(5, generator=make_generator(3)), expected)


def test_another_offset_moves_every_draw(monkeypatch):
    monkeypatch.setenv("COMPANION_SEED_OFFSET", "0")
    base = torch.rand(8, generator=make_generator(0))
    monkeypatch.setenv("COMPANION_SEED_OFFSET", "1000")
    assert not torch.equal(base, torch.rand(8, generator=make_generator(0)))


def test_make_generator_lives_on_the_cpu_by_default():
    assert make_generator(0).device == torch.device("cpu")
    assert make_generator(0, device="cpu").device == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_make_generator_on_cuda():
    g = make_generator(1, device="cuda")
    assert g.device.type == "cuda"
    assert torch.rand(3, device="cuda", generator=g).device.type == "cuda"


def test_get_device_follows_the_environment(monkeypatch):
    monkeypatch.setenv("COMPANION_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    assert get_device("meta") == torch.device("meta")
    assert (
        companion.get_device is get_device
        and companion.make_generator is make_generator
    )


def test_num_threads_sets_and_restores_the_thread_count():
    before = torch.get_num_threads()
    with num_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), num_threads(1):
        raise RuntimeError("the count is restored on errors too")
    assert torch.get_num_threads() == before
    with (
        pytest.raises(ValueError, match="threads must be at least 1, got 0"),
        num_threads(0),
    ):
        pass
