"""companion.regularization.augment: exact cases against torch's own ops, statistics of the random transforms,
reproducibility from a seed, argument errors, and CPU/CUDA agreement. Float64 unless stated."""

import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from companion.regularization import augment as A

EXACT_TOL = 1e-12  # float64; flips, shifts and masks are bit-exact (0.0)
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def images(n=6, c=2, h=7, w=7, seed=0, low=0.0, high=1.0):
    g = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(n, c, h, w, generator=g, dtype=torch.float64)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def roll_with_zeros(x, dy, dx):
    """Reference integer shift: torch.roll per image, then zero the rows/columns that wrapped around."""
    out = []
    for img, a, b in zip(x, dy.tolist(), dx.tolist()):
        r = torch.roll(img, shifts=(a, b), dims=(-2, -1))
        if a > 0:
            r[:, :a] = 0
        elif a < 0:
            r[:, a:] = 0
        if b > 0:
            r[:, :, :b] = 0
        elif b < 0:
            r[:, :, b:] = 0
        out.append(r)
    return torch.stack(out)


def pad_and_crop(x, dy, dx, padding):
    """Reference random-crop geometry: F.pad with zeros, then slice the window at offset (padding − dy, padding − dx)."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (padding,) * 4)
    return torch.stack(
        [
            padded[i, :, padding - a : padding - a + h, padding - b : padding - b + w]
            for i, (a, b) in enumerate(zip(dy.tolist(), dx.tolist()))
        ]
    )


def grid_sample_affine(x, angle, tx, ty):
    """Reference rotation + translation with F.affine_grid / F.grid_sample (bilinear, zeros, align_corners=False)."""
    n, _, h, w = x.shape
    t = math.radians(angle)
    cos, sin = math.cos(t), math.sin(t)
    a, b = (
        -cos * tx + sin * ty,
        -sin * tx - cos * ty,
    )  # the translation part of the inverse map, in pixels
    theta = torch.tensor(
        [[cos, -sin * h / w, 2 * a / w], [sin * w / h, cos, 2 * b / h]], dtype=x.dtype
    )
    grid = F.affine_grid(theta.expand(n, 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(
        x, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )


DY, DX = torch.tensor([0, 1, -2, 3, -1, 2]), torch.tensor([0, -1, 2, 0, 3, -3])

# (id, ours(x), reference(x)): each must agree within EXACT_TOL
EXACT = [
    (
        "hflip-p1-is-flip",
        lambda x: A.hflip(x, p=1.0),
        lambda x: torch.flip(x, dims=[-1]),
    ),
    (
        "vflip-p1-is-flip",
        lambda x: A.vflip(x, p=1.0),
        lambda x: torch.flip(x, dims=[-2]),
    ),
    ("hflip-p0-identity", lambda x: A.hflip(x, p=0.0), lambda x: x),
    ("vflip-p0-identity", lambda x: A.vflip(x, p=0.0), lambda x: x),
    (
        "shift-is-roll-with-zeros",
        lambda x: A.shift(x, DY, DX),
        lambda x: roll_with_zeros(x, DY, DX),
    ),
    (
        "shift-is-pad-and-crop",
        lambda x: A.shift(x, DY, DX),
        lambda x: pad_and_crop(x, DY, DX, 3),
    ),
    (
        "random-crop-padding0-identity",
        lambda x: A.random_crop(x, padding=0, generator=gen()),
        lambda x: x,
    ),
    (
        "rotate-90-is-rot90",
        lambda x: A.affine(x, 90.0, 0.0, 0.0),
        lambda x: torch.rot90(x, 1, dims=(-2, -1)),
    ),
    (
        "rotate-180-is-rot90",
        lambda x: A.affine(x, 180.0, 0.0, 0.0),
        lambda x: torch.rot90(x, 2, dims=(-2, -1)),
    ),
    (
        "rotate-270-is-rot90",
        lambda x: A.affine(x, 270.0, 0.0, 0.0),
        lambda x: torch.rot90(x, 3, dims=(-2, -1)),
    ),
    (
        "rotate-minus-90-is-rot90",
        lambda x: A.affine(x, -90.0, 0.0, 0.0),
        lambda x: torch.rot90(x, -1, dims=(-2, -1)),
    ),
    (
        "affine-integer-translation-is-shift",
        lambda x: A.affine(x, 0.0, 2.0, -1.0),
        lambda x: A.shift(x, torch.full((len(x),), -1), torch.full((len(x),), 2)),
    ),
    ("affine-zero-identity", lambda x: A.affine(x, 0.0, 0.0, 0.0), lambda x: x),
    (
        "random-affine-zero-identity",
        lambda x: A.random_affine(x, 0.0, 0.0, generator=gen()),
        lambda x: x,
    ),
    (
        "jitter-zero-identity",
        lambda x: A.jitter(x, 0.0, 0.0, generator=gen()),
        lambda x: x,
    ),
    (
        "noise-zero-identity",
        lambda x: A.gaussian_noise(x, 0.0, generator=gen()),
        lambda x: x,
    ),
    ("cutout-zero-identity", lambda x: A.cutout(x, 0, generator=gen()), lambda x: x),
    (
        "cutout-huge-erases-all",
        lambda x: A.cutout(x, 20, generator=gen()),
        torch.zeros_like,
    ),
    (
        "mixup-alpha0-identity",
        lambda x: A.mixup(x, torch.arange(len(x)) % 3, 0.0, 3, generator=gen())[0],
        lambda x: x,
    ),
]


@pytest.mark.parametrize(
    "ours, reference", [c[1:] for c in EXACT], ids=[c[0] for c in EXACT]
)
@pytest.mark.parametrize("shape", [(6, 2, 7, 7), (6, 1, 8, 8)], ids=str)
def test_exact_against_torch(ours, reference, shape):
    x = images(*shape)
    diff = (ours(x) - reference(x)).abs().max().item()
    assert diff <= EXACT_TOL, diff


AFFINE_CASES = [
    (30.0, 0.0, 0.0),
    (-17.0, 1.3, -0.4),
    (123.0, 0.5, 2.2),
    (0.0, -0.75, 0.25),
    (45.0, 3.0, 3.0),
]


@pytest.mark.parametrize("angle, tx, ty", AFFINE_CASES, ids=str)
@pytest.mark.parametrize("shape", [(3, 2, 7, 7), (2, 1, 6, 9)], ids=str)
def test_affine_against_grid_sample(angle, tx, ty, shape):
    """Any angle and fractional translation, square or not: the same bilinear sampling as torch."""
    x = images(*shape)
    diff = (
        (A.affine(x, angle, tx, ty) - grid_sample_affine(x, angle, tx, ty))
        .abs()
        .max()
        .item()
    )
    assert diff <= EXACT_TOL, diff


def test_affine_per_image_parameters():
    """Each image gets its own angle and translation."""
    x = images(3)
    angle, tx, ty = (
        torch.tensor([90.0, 0.0, 30.0]),
        torch.tensor([0.0, 1.0, 0.5]),
        torch.tensor([0.0, -2.0, 0.0]),
    )
    out = A.affine(x, angle, tx, ty)
    for i in range(3):
        one = A.affine(x[i : i + 1], angle[i].item(), tx[i].item(), ty[i].item())
        assert (out[i] - one[0]).abs().max().item() <= EXACT_TOL


# (name, transform(x, generator)): every random transform, for the reproducibility and CUDA checks
RANDOM = [
    ("hflip", partial(A.hflip, p=0.5)),
    ("vflip", partial(A.vflip, p=0.5)),
    ("random_crop", partial(A.random_crop, padding=2)),
    ("random_affine", partial(A.random_affine, degrees=20.0, translate=1.0)),
    ("jitter", partial(A.jitter, brightness=0.3, contrast=0.3)),
    ("gaussian_noise", partial(A.gaussian_noise, std=0.1)),
    ("cutout", partial(A.cutout, size=3)),
    (
        "mixup",
        lambda x, generator: A.mixup(
            x, torch.arange(len(x)) % 10, 0.4, 10, generator=generator
        )[0],
    ),
]


# --- errors ---

X = images(2, 1, 4, 4)
Y = torch.tensor([0, 1])
ERRORS = [
    (lambda: A.hflip(X, p=-0.1), r"p must be in \[0, 1\], got -0.1"),
    (lambda: A.vflip(X, p=1.5), r"p must be in \[0, 1\], got 1.5"),
    (
        lambda: A.hflip(X[0], p=0.5),
        r"expected a batch of images shaped \(N, C, H, W\), got shape \(1, 4, 4\)",
    ),
    (lambda: A.random_crop(X, padding=-1), "padding must be non-negative, got -1"),
    (
        lambda: A.random_affine(X, degrees=-5.0),
        "degrees must be non-negative, got -5.0",
    ),
    (
        lambda: A.random_affine(X, translate=-1.0),
        "translate must be non-negative, got -1.0",
    ),
    (lambda: A.affine(X.flatten(1), 10.0, 0.0, 0.0), "expected a batch of images"),
    (lambda: A.jitter(X, brightness=-0.2), "brightness must be non-negative, got -0.2"),
    (lambda: A.jitter(X, contrast=-0.2), "contrast must be non-negative, got -0.2"),
    (lambda: A.gaussian_noise(X, std=-1.0), "std must be non-negative, got -1.0"),
    (lambda: A.cutout(X, size=-2), "size must be non-negative, got -2"),
    (lambda: A.shift(X.flatten(1), Y, Y), "expected a batch of images"),
    (
        lambda: A.mixup(X, Y, alpha=-0.5, num_classes=2),
        "alpha must be non-negative, got -0.5",
    ),
    (lambda: A.mixup(X, Y), "num_classes is required when y holds class indices"),
    (
        lambda: A.mixup(X, torch.tensor([0, 1, 1]), num_classes=2),
        "the same number of examples, got 2 and 3",
    ),
    (
        lambda: A.mixup(X, torch.zeros(2, 2, 2)),
        r"soft labels must be shaped \(N, num_classes\)",
    ),
    (
        lambda: A.Augmentation(mixup_alpha=-1.0),
        "mixup_alpha must be non-negative, got -1.0",
    ),
]


@pytest.mark.parametrize("call, message", ERRORS, ids=[e[1][:40] for e in ERRORS])
def test_invalid_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- CUDA: one CPU generator gives the same batch on both devices ---


@CUDA
@pytest.mark.parametrize(
    "transform", [r[1] for r in RANDOM], ids=[r[0] for r in RANDOM]
)
def test_cuda_matches_cpu(transform):
    x = images(32, 1, 8, 8).float()
    cpu = transform(x, generator=gen(21))
    cuda = transform(x.cuda(), generator=gen(21))
    assert cuda.device.type == "cuda"
    assert (cuda.cpu() - cpu).abs().max().item() < 1e-5


@CUDA
def test_cuda_generator():
    """A CUDA generator works too (draws on the GPU), and is reproducible."""
    x = images(32, 1, 8, 8).float().cuda()
    g = lambda: torch.Generator(device="cuda").manual_seed(0)  # noqa: E731
    for _, transform in RANDOM:
        assert (
            transform(x, generator=g()) - transform(x, generator=g())
        ).abs().max().item() == 0.0
