"""Hidden checks of the truncated-normal assignment: the contract of torch.nn.init.trunc_normal_ and the
distribution, tested statistically (generators seeded from the run's seed; the bounds are wide enough that a
right answer fails them less than once in a million seeds).

Each check is a probe (``@probe``: runs in the answer's sandbox, returns what it saw) and a judge (``@check``:
runs in the grader, judges the samples)."""

import math

import torch

from companion.coursework import probes
from companion.coursework.checks import check, plain_tensor, same_signature
from companion.coursework.probes import probe

torch_trunc_normal_ = (
    torch.nn.init.trunc_normal_
)  # the reference: trusted side only (never sent)

CONFIGS = (
    (0.0, 1.0, -2.0, 2.0),
    (1.0, 0.5, 0.0, 3.0),
    (0.0, 1.0, -1.0, 1.0),
    (-2.0, 3.0, -5.0, 0.0),
)
TAILS = ((0.0, 1.0, 2.0, 4.0), (0.0, 1.0, -5.0, -3.0), (0.0, 2.0, 3.0, 3.5))
N = 100_000


@probe
def sample(ns, config, seed, n=N, dtype="float64"):
    g = probes.generator(seed)
    return ns["trunc_normal_"](
        torch.empty(n, dtype=getattr(torch, dtype)), *config, generator=g
    )


def _values(x, n=N, dtype=torch.float64):
    x = plain_tensor(x, "trunc_normal_'s result")
    assert x.shape == (n,) and x.dtype == dtype, (
        "trunc_normal_ must return the tensor it filled"
    )
    return x.to(torch.float64)


def _standard(config):
    mean, std, a, b = config
    return (a - mean) / std, (b - mean) / std


def _cdf(z):
    return torch.special.ndtr(torch.as_tensor(z, dtype=torch.float64))


def _moments(config):
    """The truncated normal's mean and variance."""
    mean, std, *_ = config
    alpha, beta = _standard(config)
    pdf = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    Z = float(_cdf(beta) - _cdf(alpha))
    shift = (pdf(alpha) - pdf(beta)) / Z
    var = 1 + (alpha * pdf(alpha) - beta * pdf(beta)) / Z - shift**2
    return mean + std * shift, std**2 * var


def _ks(x, config):
    """The Kolmogorov–Smirnov distance between the sample and the truncated normal's CDF."""
    mean, std, *_ = config
    alpha, beta = _standard(config)
    lo, hi = _cdf(alpha), _cdf(beta)
    x = x.sort().values
    F = (_cdf((x - mean) / std) - lo) / (hi - lo)
    n = len(x)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return max((i / n - F).max().item(), (F - (i - 1) / n).max().item())


# the 1e-6 critical value (sqrt(ln(2/1e-6) / 2) = 2.69): the seed changes with every submission, so a right
# sampler must fail it almost never; clipping or a wrong scale gives distances several times larger
KS_LIMIT = 2.69 / math.sqrt(N)


@probe
def signature_probe(ns, seed):
    t = torch.zeros(1000)
    return [probes.signature_of(ns["trunc_normal_"]), ns["trunc_normal_"](t) is t, t]


@check(points=1, probe=signature_probe)
def signature(obs, seed):
    """trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None) fills and returns the tensor."""
    sig, same, t = obs
    same_signature(
        sig,
        probes.signature_of(torch_trunc_normal_),
        "the signature differs from torch's",
    )
    assert same is True, "it must return the same tensor object, filled in place"
    t = _values(t, 1000, torch.float32)
    assert t.isfinite().all() and t.std() > 0.1, (
        "the tensor was not filled with random values"
    )


@probe
def parameter_probe(ns, seed):
    p = torch.nn.Parameter(torch.zeros(64, 32))
    out = ns["trunc_normal_"](p, 0.0, 0.02, -0.04, 0.04)
    return [out is p, p.grad_fn is None, p.requires_grad, str(p.dtype), list(p.shape)]


@check(points=1, probe=parameter_probe)
def parameter(obs, seed):
    """Works on an nn.Parameter (no autograd history), keeps the dtype and shape."""
    same, no_history, requires_grad, dtype, shape = obs
    assert same is True and no_history is True and requires_grad is True, (
        "fill in place under torch.no_grad()"
    )
    assert dtype == "torch.float32" and shape == [64, 32], (
        "the dtype or the shape changed"
    )


@probe
def bounds_probe(ns, seed):
    return [sample(ns, c, seed + k) for k, c in enumerate(CONFIGS + TAILS)]


@check(points=1, probe=bounds_probe)
def bounds(obs, seed):
    """Every value lies in [a, b] for several means, standard deviations and intervals."""
    for config, x in zip(CONFIGS + TAILS, obs, strict=True):
        x = _values(x)
        _, _, a, b = config
        assert (
            bool(x.isfinite().all()) and a <= x.min().item() and x.max().item() <= b
        ), (
            f"with mean, std, a, b = {config} values fall outside: range [{x.min().item():.4g}, {x.max().item():.4g}]"
        )


@probe
def moments_probe(ns, seed):
    return [sample(ns, c, seed + 10 + k) for k, c in enumerate(CONFIGS)]


@check(points=2, probe=moments_probe)
def moments(obs, seed):
    """The sample mean and variance agree with the truncated normal's (within 5 standard errors)."""
    for config, x in zip(CONFIGS, obs, strict=True):
        x = _values(x)
        m, v = _moments(config)
        # the variance's SE, doubled for the short tails' kurtosis
        se_m, se_v = math.sqrt(v / N), v * math.sqrt(2 / N) * 2
        assert abs(x.mean().item() - m) < 5 * se_m, (
            f"with mean, std, a, b = {config} the sample mean is {x.mean().item():.5f}, expected {m:.5f}"
        )
        assert abs(x.var().item() - v) < 5 * se_v, (
            f"with mean, std, a, b = {config} the sample variance is {x.var().item():.5f}, expected {v:.5f}"
        )


@probe
def distribution_probe(ns, seed):
    return [sample(ns, c, seed + 20 + k) for k, c in enumerate(CONFIGS)]


@check(points=2, probe=distribution_probe)
def distribution(obs, seed):
    """A Kolmogorov–Smirnov test against the truncated normal's CDF passes (100 000 values, 1e-6 level)."""
    for config, x in zip(CONFIGS, obs, strict=True):
        d = _ks(_values(x), config)
        assert d < KS_LIMIT, (
            f"with mean, std, a, b = {config} the KS distance is {d:.4f} (limit {KS_LIMIT:.4f})"
        )


@probe
def tails_probe(ns, seed):
    return [sample(ns, c, seed + 30 + k) for k, c in enumerate(TAILS)]


@check(points=1, probe=tails_probe)
def tails(obs, seed):
    """Intervals far in a tail ([2, 4], [-5, -3], ...) are sampled correctly too."""
    for config, x in zip(TAILS, obs, strict=True):
        d = _ks(_values(x), config)
        assert d < KS_LIMIT, (
            f"with mean, std, a, b = {config} the KS distance is {d:.4f} (limit {KS_LIMIT:.4f})"
        )


@probe
def generator_probe(ns, seed):
    state = torch.get_rng_state()
    x = sample(ns, CONFIGS[0], seed + 3, n=1000)
    y = sample(ns, CONFIGS[0], seed + 3, n=1000)
    z = sample(ns, CONFIGS[0], seed + 4, n=1000)
    return [x, y, z, torch.equal(state, torch.get_rng_state())]


@check(points=1, probe=generator_probe)
def generator(obs, seed):
    """With a generator: the same seed gives the same values, and the global random state is untouched."""
    x, y, z, untouched = obs
    x, y, z = (_values(t, 1000) for t in (x, y, z))
    assert torch.equal(x, y), "the same generator seed gave different values"
    assert not torch.equal(x, z), "different generator seeds gave the same values"
    assert untouched is True, (
        "the global random generator was used although a generator was given"
    )


@probe
def float32_probe(ns, seed):
    return sample(ns, CONFIGS[1], seed + 40, dtype="float32")


@check(points=1, probe=float32_probe)
def float32(obs, seed):
    """A float32 tensor is filled correctly (range and mean)."""
    x = _values(obs, N, torch.float32)
    m, v = _moments(CONFIGS[1])
    assert 0.0 <= x.min().item() and x.max().item() <= 3.0, (
        "float32 values outside [a, b]"
    )
    assert abs(x.mean().item() - m) < 5 * math.sqrt(v / N), (
        f"float32 sample mean {x.mean().item():.5f}, expected {m:.5f}"
    )
