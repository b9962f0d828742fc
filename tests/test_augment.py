"""companion.regularization.augment: exact cases against torch's own ops, statistics of the random transforms,
reproducibility from a seed, argument errors, and CPU/CUDA agreement. Float64 unless stated."""

import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from companion.regularization import augment as A
from companion.core.data import Split
from companion.core.train import fit

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
    return torch.stack([padded[i, :, padding - a : padding - a + h, padding - b : padding - b + w]
                        for i, (a, b) in enumerate(zip(dy.tolist(), dx.tolist()))])


def grid_sample_affine(x, angle, tx, ty):
    """Reference rotation + translation with F.affine_grid / F.grid_sample (bilinear, zeros, align_corners=False)."""
    n, _, h, w = x.shape
    t = math.radians(angle)
    cos, sin = math.cos(t), math.sin(t)
    a, b = -cos * tx + sin * ty, -sin * tx - cos * ty  # the translation part of the inverse map, in pixels
    theta = torch.tensor([[cos, -sin * h / w, 2 * a / w], [sin * w / h, cos, 2 * b / h]], dtype=x.dtype)
    grid = F.affine_grid(theta.expand(n, 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


DY, DX = torch.tensor([0, 1, -2, 3, -1, 2]), torch.tensor([0, -1, 2, 0, 3, -3])

# (id, ours(x), reference(x)): each must agree within EXACT_TOL
EXACT = [
    ("hflip-p1-is-flip", lambda x: A.hflip(x, p=1.0), lambda x: torch.flip(x, dims=[-1])),
    ("vflip-p1-is-flip", lambda x: A.vflip(x, p=1.0), lambda x: torch.flip(x, dims=[-2])),
    ("hflip-p0-identity", lambda x: A.hflip(x, p=0.0), lambda x: x),
    ("vflip-p0-identity", lambda x: A.vflip(x, p=0.0), lambda x: x),
    ("shift-is-roll-with-zeros", lambda x: A.shift(x, DY, DX), lambda x: roll_with_zeros(x, DY, DX)),
    ("shift-is-pad-and-crop", lambda x: A.shift(x, DY, DX), lambda x: pad_and_crop(x, DY, DX, 3)),
    ("random-crop-padding0-identity", lambda x: A.random_crop(x, padding=0, generator=gen()), lambda x: x),
    ("rotate-90-is-rot90", lambda x: A.affine(x, 90.0, 0.0, 0.0), lambda x: torch.rot90(x, 1, dims=(-2, -1))),
    ("rotate-180-is-rot90", lambda x: A.affine(x, 180.0, 0.0, 0.0), lambda x: torch.rot90(x, 2, dims=(-2, -1))),
    ("rotate-270-is-rot90", lambda x: A.affine(x, 270.0, 0.0, 0.0), lambda x: torch.rot90(x, 3, dims=(-2, -1))),
    ("rotate-minus-90-is-rot90", lambda x: A.affine(x, -90.0, 0.0, 0.0), lambda x: torch.rot90(x, -1, dims=(-2, -1))),
    ("affine-integer-translation-is-shift", lambda x: A.affine(x, 0.0, 2.0, -1.0),
     lambda x: A.shift(x, torch.full((len(x),), -1), torch.full((len(x),), 2))),
    ("affine-zero-identity", lambda x: A.affine(x, 0.0, 0.0, 0.0), lambda x: x),
    ("random-affine-zero-identity", lambda x: A.random_affine(x, 0.0, 0.0, generator=gen()), lambda x: x),
    ("jitter-zero-identity", lambda x: A.jitter(x, 0.0, 0.0, generator=gen()), lambda x: x),
    ("noise-zero-identity", lambda x: A.gaussian_noise(x, 0.0, generator=gen()), lambda x: x),
    ("cutout-zero-identity", lambda x: A.cutout(x, 0, generator=gen()), lambda x: x),
    ("cutout-huge-erases-all", lambda x: A.cutout(x, 20, generator=gen()), torch.zeros_like),
    ("mixup-alpha0-identity", lambda x: A.mixup(x, torch.arange(len(x)) % 3, 0.0, 3, generator=gen())[0], lambda x: x),
]


@pytest.mark.parametrize("ours, reference", [c[1:] for c in EXACT], ids=[c[0] for c in EXACT])
@pytest.mark.parametrize("shape", [(6, 2, 7, 7), (6, 1, 8, 8)], ids=str)
def test_exact_against_torch(ours, reference, shape):
    x = images(*shape)
    diff = (ours(x) - reference(x)).abs().max().item()
    assert diff <= EXACT_TOL, diff


AFFINE_CASES = [(30.0, 0.0, 0.0), (-17.0, 1.3, -0.4), (123.0, 0.5, 2.2), (0.0, -0.75, 0.25), (45.0, 3.0, 3.0)]


@pytest.mark.parametrize("angle, tx, ty", AFFINE_CASES, ids=str)
@pytest.mark.parametrize("shape", [(3, 2, 7, 7), (2, 1, 6, 9)], ids=str)
def test_affine_against_grid_sample(angle, tx, ty, shape):
    """Any angle and fractional translation, square or not: the same bilinear sampling as torch."""
    x = images(*shape)
    diff = (A.affine(x, angle, tx, ty) - grid_sample_affine(x, angle, tx, ty)).abs().max().item()
    assert diff <= EXACT_TOL, diff


def test_affine_per_image_parameters():
    """Each image gets its own angle and translation."""
    x = images(3)
    angle, tx, ty = torch.tensor([90.0, 0.0, 30.0]), torch.tensor([0.0, 1.0, 0.5]), torch.tensor([0.0, -2.0, 0.0])
    out = A.affine(x, angle, tx, ty)
    for i in range(3):
        one = A.affine(x[i : i + 1], angle[i].item(), tx[i].item(), ty[i].item())
        assert (out[i] - one[0]).abs().max().item() <= EXACT_TOL


# --- statistics of the random transforms (N large; tolerances are > 4 standard errors) ---

N = 20000


@pytest.mark.parametrize("flip, p", [(A.hflip, 0.3), (A.vflip, 0.7), (A.hflip, 0.5)], ids=str)
def test_flip_probability(flip, p):
    x = images(N, 1, 4, 4)
    out = flip(x, p=p, generator=gen(1))
    mirrored = flip(x, p=1.0)
    is_flipped = (out == mirrored).flatten(1).all(1)
    assert ((out == x).flatten(1).all(1) | is_flipped).all()  # each image is either kept or mirrored
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
        assert (counts - 1 / k).abs().max().item() < 4 * math.sqrt((1 / k) * (1 - 1 / k) / N), counts


def test_random_affine_parameters_are_uniform():
    """Bilinear interpolation reproduces linear images exactly, so the ramps u and v read back
    cos θ, sin θ and the translation at the centre pixel; θ, tx, ty must be uniform."""
    degrees, translate, h = 30.0, 1.5, 9
    c = (h - 1) // 2
    u = (torch.arange(h, dtype=torch.float64) - c).expand(h, h)
    ramps = torch.stack([u, u.T]).expand(N, 2, h, h)  # channel 0: u = column − c, channel 1: v = row − c
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
        assert abs(values.var().item() / (bound**2 / 3) - 1) < 0.03  # uniform: variance bound²/3


def test_jitter_brightness_statistics():
    """Brightness alone multiplies each image by b ~ U[1 − s, 1 + s]."""
    s = 0.4
    x = images(N, 1, 3, 3, low=0.1, high=0.5)  # 0.5 × 1.4 < 1: no clamping
    b = (A.jitter(x, brightness=s, generator=gen(4)) / x).flatten(1)
    assert (b.max(1).values - b.min(1).values).max().item() < 1e-12  # one factor per image
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
    rows = sum(min(cy - size // 2 + size, h) - max(cy - size // 2, 0) for cy in range(h)) / h
    cols = sum(min(cx - size // 2 + size, w) - max(cx - size // 2, 0) for cx in range(w)) / w
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
    assert rows.sum(1).max().item() == min(size, h) and cols.sum(1).max().item() == min(size, w)
    assert rows.sum(1).min().item() == size - size // 2 and cols.sum(1).min().item() == size - size // 2
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
    partnered = lam < 1  # a fixed point of the permutation (prob. ≈ 1/n) is mixed with itself
    lam = lam[partnered]
    assert len(lam) > n - 10
    assert abs(lam.mean().item() - 0.5) < 4 * math.sqrt(1 / (4 * (2 * alpha + 1)) / len(lam))
    assert abs(lam.var().item() * 4 * (2 * alpha + 1) - 1) < 0.1


def test_mixup_soft_labels_and_cross_entropy():
    """Soft labels in, soft labels out; F.cross_entropy takes them and equals the λ-mix of the two losses."""
    x = images(8, 1, 4, 4)
    y = torch.arange(8) % 4
    soft = F.one_hot(y, 4).double()
    xa, ya = A.mixup(x, y, 0.4, num_classes=4, generator=gen(10))
    xb, yb = A.mixup(x, soft, 0.4, generator=gen(10))
    assert (xa - xb).abs().max().item() <= EXACT_TOL and (ya - yb).abs().max().item() <= EXACT_TOL
    logits = torch.randn(8, 4, generator=gen(11), dtype=torch.float64)
    loss = F.cross_entropy(logits, ya)
    manual = -(ya * logits.log_softmax(1)).sum(1).mean()
    assert abs(loss.item() - manual.item()) <= EXACT_TOL


# --- reproducibility ---

RANDOM = [
    ("hflip", partial(A.hflip, p=0.5)),
    ("vflip", partial(A.vflip, p=0.5)),
    ("random_crop", partial(A.random_crop, padding=2)),
    ("random_affine", partial(A.random_affine, degrees=20.0, translate=1.0)),
    ("jitter", partial(A.jitter, brightness=0.3, contrast=0.3)),
    ("gaussian_noise", partial(A.gaussian_noise, std=0.1)),
    ("cutout", partial(A.cutout, size=3)),
    ("mixup", lambda x, generator: A.mixup(x, torch.arange(len(x)) % 10, 0.4, 10, generator=generator)[0]),
]


@pytest.mark.parametrize("transform", [r[1] for r in RANDOM], ids=[r[0] for r in RANDOM])
def test_reproducible_from_a_seed(transform):
    x = images(64, 1, 8, 8)
    a, b = transform(x, generator=gen(42)), transform(x, generator=gen(42))
    c = transform(x, generator=gen(43))
    assert (a - b).abs().max().item() == 0.0
    assert (a - c).abs().max().item() > 1e-3  # another seed, another batch
    assert a.shape == x.shape and a.dtype == x.dtype


@pytest.mark.parametrize("transform", [r[1] for r in RANDOM], ids=[r[0] for r in RANDOM])
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
    out_x, out_y = A.Augmentation(ops, mixup_alpha=0.3, num_classes=10, generator=gen(12))(x, y)
    g = gen(12)
    ref = A.cutout(A.random_crop(x, padding=1, generator=g), size=3, generator=g)
    ref_x, ref_y = A.mixup(ref, y, 0.3, 10, generator=g)
    assert (out_x - ref_x).abs().max().item() <= EXACT_TOL and (out_y - ref_y).abs().max().item() <= EXACT_TOL
    plain_x, plain_y = A.Augmentation([], generator=gen(12))(x, y)
    assert plain_x is x and plain_y is y


def test_augmentation_in_fit():
    """The pipeline plugs into companion.core.train.fit's transform hook (images in, soft labels out)."""
    x, y = images(64, 1, 8, 8), torch.arange(64) % 10
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).double()
    aug = A.Augmentation([partial(A.random_affine, degrees=10.0)], mixup_alpha=0.2, generator=gen(13))
    history = fit(model, torch.optim.SGD(model.parameters(), lr=0.1), Split(x, y), Split(x, y),
                  epochs=3, batch_size=16, transform=aug, progress=False)
    assert history.epochs == 3 and all(math.isfinite(v) for v in history.train_loss)


# --- errors ---

X = images(2, 1, 4, 4)
Y = torch.tensor([0, 1])
ERRORS = [
    (lambda: A.hflip(X, p=-0.1), r"p must be in \[0, 1\], got -0.1"),
    (lambda: A.vflip(X, p=1.5), r"p must be in \[0, 1\], got 1.5"),
    (lambda: A.hflip(X[0], p=0.5), r"expected a batch of images shaped \(N, C, H, W\), got shape \(1, 4, 4\)"),
    (lambda: A.random_crop(X, padding=-1), "padding must be non-negative, got -1"),
    (lambda: A.random_affine(X, degrees=-5.0), "degrees must be non-negative, got -5.0"),
    (lambda: A.random_affine(X, translate=-1.0), "translate must be non-negative, got -1.0"),
    (lambda: A.affine(X.flatten(1), 10.0, 0.0, 0.0), "expected a batch of images"),
    (lambda: A.jitter(X, brightness=-0.2), "brightness must be non-negative, got -0.2"),
    (lambda: A.jitter(X, contrast=-0.2), "contrast must be non-negative, got -0.2"),
    (lambda: A.gaussian_noise(X, std=-1.0), "std must be non-negative, got -1.0"),
    (lambda: A.cutout(X, size=-2), "size must be non-negative, got -2"),
    (lambda: A.shift(X.flatten(1), Y, Y), "expected a batch of images"),
    (lambda: A.mixup(X, Y, alpha=-0.5, num_classes=2), "alpha must be non-negative, got -0.5"),
    (lambda: A.mixup(X, Y), "num_classes is required when y holds class indices"),
    (lambda: A.mixup(X, torch.tensor([0, 1, 1]), num_classes=2), "the same number of examples, got 2 and 3"),
    (lambda: A.mixup(X, torch.zeros(2, 2, 2)), r"soft labels must be shaped \(N, num_classes\)"),
    (lambda: A.Augmentation(mixup_alpha=-1.0), "mixup_alpha must be non-negative, got -1.0"),
]


@pytest.mark.parametrize("call, message", ERRORS, ids=[e[1][:40] for e in ERRORS])
def test_invalid_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- CUDA: one CPU generator gives the same batch on both devices ---


@CUDA
@pytest.mark.parametrize("transform", [r[1] for r in RANDOM], ids=[r[0] for r in RANDOM])
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
        assert (transform(x, generator=g()) - transform(x, generator=g())).abs().max().item() == 0.0
