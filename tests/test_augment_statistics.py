"""companion.regularization.augment: the statistics of the random transforms (N large; tolerances are > 4 standard errors) and their reproducibility."""

import math
from functools import partial
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from companion.regularization import augment as A
from companion.core.data import Split
from companion.core.train import fit

from test_augment import EXACT_TOL, RANDOM, gen, images


# --- statistics of the random transforms (N large; tolerances are > 4 standard errors) ---

N = 20000


@pytest.mark.parametrize(
    "flip, p",
    [(A.hflip, 0.3), (A.vflip, 0.7), (A.hflip, 0.5)],
    ids=["hflip-0.3", "vflip-0.7", "hflip-0.5"],
)
def test_flip_probability(flip, p):
    x = images(N, 1, 4, 4)
    out = flip(x, p=p, generator=gen(1))
    mirrored = flip(x, p=1.0)
    is_flipped = (out == mirrored).flatten(1).all(1)
    assert (
        (out == x).flatten(1).all(1) | is_flipped
    ).all()  # each image is either kept or mirrored
    frac = is_flipped.double().mean().item()
    assert abs(frac - p) < 4 * math.sqrt(p * (1 - p) / N), frac


@pytest.mark.parametrize("padding", [1, 2])
def test_random_crop_shifts_are_uniform(padding):
    """An impulse at the centre of a 9×9 image shows each image's shift; each of the 2p+1 values is equally likely."""
    x = torch.zeros(N, 1, 9, 9, dtype=torch.float64)
    x[:, :, 4, 4] = 1.0
    out = A.random_crop(x, padding=padding, generator=gen(2))
    assert (out.flatten(1).sum(1) == 1).all()  # nothing lost: a pure shift
    pos = out.flatten(1).argmax(1)
    dy, dx = pos // 9 - 4, pos % 9 - 4
    k = 2 * padding + 1
    for d in (dy, dx):
        counts = torch.bincount(d + padding, minlength=k).double() / N
        assert len(counts) == k
        assert (counts - 1 / k).abs().max().item() < 4 * math.sqrt(
            (1 / k) * (1 - 1 / k) / N
        ), counts


def test_random_affine_parameters_are_uniform():
    """Bilinear interpolation reproduces linear images exactly, so the ramps u and v read back
    cos θ, sin θ and the translation at the centre pixel; θ, tx, ty must be uniform."""
    degrees, translate, h = 30.0, 1.5, 9
    c = (h - 1) // 2
    u = (torch.arange(h, dtype=torch.float64) - c).expand(h, h)
    ramps = torch.stack([u, u.T]).expand(
        N, 2, h, h
    )  # channel 0: u = column − c, channel 1: v = row − c
    out = A.random_affine(ramps, degrees, translate, generator=gen(3))
    # the translation enters as u_s = cos θ (u − tx) − sin θ (v − ty): difference two pixels to remove it
    cos = out[:, 0, c, c + 1] - out[:, 0, c, c]
    sin = out[:, 1, c, c + 1] - out[:, 1, c, c]
    theta = torch.atan2(sin, cos) * 180 / math.pi
    us, vs = out[:, 0, c, c], out[:, 1, c, c]  # = R(−θ)(−tx, −ty)
    tx = -(cos * us + sin * vs)
    ty = -(-sin * us + cos * vs)
    assert (cos**2 + sin**2 - 1).abs().max().item() < 1e-12
    for values, bound in ((theta, degrees), (tx, translate), (ty, translate)):
        assert values.abs().max().item() <= bound + 1e-9
        assert abs(values.mean().item()) < 4 * bound / math.sqrt(3 * N)
        assert (
            abs(values.var().item() / (bound**2 / 3) - 1) < 0.03
        )  # uniform: variance bound²/3


def test_jitter_brightness_statistics():
    """Brightness alone multiplies each image by b ~ U[1 − s, 1 + s]."""
    s = 0.4
    x = images(N, 1, 3, 3, low=0.1, high=0.5)  # 0.5 × 1.4 < 1: no clamping
    b = (A.jitter(x, brightness=s, generator=gen(4)) / x).flatten(1)
    assert (
        b.max(1).values - b.min(1).values
    ).max().item() < 1e-12  # one factor per image
    b = b[:, 0]
    assert b.min().item() >= 1 - s and b.max().item() <= 1 + s
    assert abs(b.mean().item() - 1) < 4 * s / math.sqrt(3 * N)
    assert abs(b.var().item() / (s**2 / 3) - 1) < 0.03


def test_jitter_contrast_statistics():
    """Contrast alone keeps each image's mean and scales its spread by c ~ U[1 − s, 1 + s]."""
    s = 0.5
    x = images(N, 1, 3, 3, low=0.35, high=0.65)  # stays inside [0, 1]: no clamping
    out = A.jitter(x, contrast=s, generator=gen(5))
    assert (out.mean((1, 2, 3)) - x.mean((1, 2, 3))).abs().max().item() < 1e-12
    c = out.std((1, 2, 3)) / x.std((1, 2, 3))
    assert c.min().item() >= 1 - s - 1e-12 and c.max().item() <= 1 + s + 1e-12
    assert abs(c.mean().item() - 1) < 4 * s / math.sqrt(3 * N)
    assert abs(c.var().item() / (s**2 / 3) - 1) < 0.03


def test_jitter_clamps_to_unit_interval():
    out = A.jitter(images(200), brightness=2.0, contrast=2.0, generator=gen(6))
    assert out.min().item() >= 0.0 and out.max().item() <= 1.0


@pytest.mark.parametrize("std", [0.05, 0.3])
def test_noise_statistics(std):
    x = images(N // 10, 1, 8, 8)
    noise = (A.gaussian_noise(x, std, generator=gen(7)) - x).flatten()
    m = len(noise)
    assert abs(noise.mean().item()) < 4 * std / math.sqrt(m)
    assert abs(noise.std().item() / std - 1) < 0.01
    fourth = (noise**4).mean().item() / std**4  # a Gaussian's kurtosis is 3
    assert abs(fourth - 3) < 0.1


def expected_cutout_fraction(size, h, w):
    """The exact mean erased fraction: average the clipped square's area over all h × w centres."""
    rows = (
        sum(min(cy - size // 2 + size, h) - max(cy - size // 2, 0) for cy in range(h))
        / h
    )
    cols = (
        sum(min(cx - size // 2 + size, w) - max(cx - size // 2, 0) for cx in range(w))
        / w
    )
    return rows * cols / (h * w)


@pytest.mark.parametrize("size, h, w", [(4, 8, 8), (3, 8, 8), (6, 7, 9)], ids=str)
def test_cutout_statistics_and_shape(size, h, w):
    x = torch.ones(N, 2, h, w, dtype=torch.float64)
    out = A.cutout(x, size, generator=gen(8))
    hole = out == 0
    assert (hole[:, 0] == hole[:, 1]).all()  # the same square in every channel
    rows, cols = hole[:, 0].any(2), hole[:, 0].any(1)
    # the erased pixels form one rectangle, at most size × size (smaller where clipped)
    assert (hole[:, 0] == (rows[:, :, None] & cols[:, None, :])).all()
    assert rows.sum(1).max().item() == min(size, h) and cols.sum(1).max().item() == min(
        size, w
    )
    assert (
        rows.sum(1).min().item() == size - size // 2
        and cols.sum(1).min().item() == size - size // 2
    )
    frac = hole.double().mean().item()
    assert abs(frac - expected_cutout_fraction(size, h, w)) < 0.005, frac


@pytest.mark.parametrize("alpha", [0.2, 1.0, 2.0])
def test_mixup_statistics(alpha):
    """With x = one-hot rows equal to the labels, the mixed inputs are the mixed labels, and the
    per-example λ (read where the partner differs) is Beta(α, α): mean ½, variance 1/(4(2α + 1))."""
    n = 4000
    x, y = torch.eye(n, dtype=torch.float64), torch.arange(n)
    mixed_x, mixed_y = A.mixup(x, y, alpha, num_classes=n, generator=gen(9))
    assert (mixed_x - mixed_y).abs().max().item() <= EXACT_TOL
    assert (mixed_y.sum(1) - 1).abs().max().item() <= EXACT_TOL
    assert mixed_y.min().item() >= 0
    lam = mixed_y.diagonal()
    partnered = (
        lam < 1
    )  # a fixed point of the permutation (prob. ≈ 1/n) is mixed with itself
    lam = lam[partnered]
    assert len(lam) > n - 10
    assert abs(lam.mean().item() - 0.5) < 4 * math.sqrt(
        1 / (4 * (2 * alpha + 1)) / len(lam)
    )
    assert abs(lam.var().item() * 4 * (2 * alpha + 1) - 1) < 0.1


def test_mixup_soft_labels_and_cross_entropy():
    """Soft labels in, soft labels out; F.cross_entropy takes them and equals the λ-mix of the two losses."""
    x = images(8, 1, 4, 4)
    y = torch.arange(8) % 4
    soft = F.one_hot(y, 4).double()
    xa, ya = A.mixup(x, y, 0.4, num_classes=4, generator=gen(10))
    xb, yb = A.mixup(x, soft, 0.4, generator=gen(10))
    assert (xa - xb).abs().max().item() <= EXACT_TOL and (
        ya - yb
    ).abs().max().item() <= EXACT_TOL
    logits = torch.randn(8, 4, generator=gen(11), dtype=torch.float64)
    loss = F.cross_entropy(logits, ya)
    manual = -(ya * logits.log_softmax(1)).sum(1).mean()
    assert abs(loss.item() - manual.item()) <= EXACT_TOL


# --- reproducibility ---


@pytest.mark.parametrize(
    "transform", [r[1] for r in RANDOM], ids=[r[0] for r in RANDOM]
)
def test_reproducible_from_a_seed(transform):
    x = images(64, 1, 8, 8)
    a, b = transform(x, generator=gen(42)), transform(x, generator=gen(42))
    c = transform(x, generator=gen(43))
    assert (a - b).abs().max().item() == 0.0
    assert (a - c).abs().max().item() > 1e-3  # another seed, another batch
    assert a.shape == x.shape and a.dtype == x.dtype


@pytest.mark.parametrize(
    "transform", [r[1] for r in RANDOM], ids=[r[0] for r in RANDOM]
)
def test_float32_matches_float64(transform):
    """The random draws are made in float64, so the dtype of the batch does not change them."""
    x = images(16, 1, 8, 8)
    a = transform(x.float(), generator=gen(5))
    b = transform(x, generator=gen(5))
    assert a.dtype == torch.float32
    assert (a.double() - b).abs().max().item() < 1e-5


def test_augmentation_pipeline_equals_the_ops_in_order():
    x, y = images(16, 1, 8, 8), torch.arange(16) % 10
    ops = [partial(A.random_crop, padding=1), partial(A.cutout, size=3)]
    out_x, out_y = A.Augmentation(
        ops, mixup_alpha=0.3, num_classes=10, generator=gen(12)
    )(x, y)
    g = gen(12)
    ref = A.cutout(A.random_crop(x, padding=1, generator=g), size=3, generator=g)
    ref_x, ref_y = A.mixup(ref, y, 0.3, 10, generator=g)
    assert (out_x - ref_x).abs().max().item() <= EXACT_TOL and (
        out_y - ref_y
    ).abs().max().item() <= EXACT_TOL
    plain_x, plain_y = A.Augmentation([], generator=gen(12))(x, y)
    assert plain_x is x and plain_y is y


def test_augmentation_in_fit():
    """The pipeline plugs into companion.core.train.fit's transform hook (images in, soft labels out)."""
    x, y = images(64, 1, 8, 8), torch.arange(64) % 10
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).double()
    aug = A.Augmentation(
        [partial(A.random_affine, degrees=10.0)], mixup_alpha=0.2, generator=gen(13)
    )
    history = fit(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        Split(x, y),
        Split(x, y),
        epochs=3,
        batch_size=16,
        transform=aug,
        progress=False,
    )
    assert history.epochs == 3 and all(math.isfinite(v) for v in history.train_loss)
