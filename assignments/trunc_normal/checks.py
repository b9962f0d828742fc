"""Hidden checks of the truncated-normal assignment: the contract of torch.nn.init.trunc_normal_ and the
distribution, tested statistically (fixed seeds, so the grades are reproducible)."""

import inspect
import math

import torch

torch_trunc_normal_ = (
    torch.nn.init.trunc_normal_
)  # kept before the grader guards torch's function

from companion.coursework.checks import check  # noqa: E402

CONFIGS = (
    (0.0, 1.0, -2.0, 2.0),
    (1.0, 0.5, 0.0, 3.0),
    (0.0, 1.0, -1.0, 1.0),
    (-2.0, 3.0, -5.0, 0.0),
)
TAILS = ((0.0, 1.0, 2.0, 4.0), (0.0, 1.0, -5.0, -3.0), (0.0, 2.0, 3.0, 3.5))
N = 100_000


def _sample(ns, config, n=N, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    out = ns["trunc_normal_"](torch.empty(n, dtype=dtype), *config, generator=g)
    assert isinstance(out, torch.Tensor) and out.shape == (n,), (
        "trunc_normal_ must return the tensor it filled"
    )
    return out.to(torch.float64)


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


KS_LIMIT = 1.95 / math.sqrt(
    N
)  # the 0.1 % critical value: a correct sampler fails it once in a thousand seeds


@check(points=1)
def signature(ns):
    """trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None) fills and returns the tensor."""
    a, b = (
        inspect.signature(ns["trunc_normal_"]),
        inspect.signature(torch_trunc_normal_),
    )
    ours = [(p.name, p.kind, p.default) for p in a.parameters.values()]
    theirs = [(p.name, p.kind, p.default) for p in b.parameters.values()]
    assert ours == theirs, (
        f"the signature is {a}, torch's is (tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None)"
    )
    t = torch.zeros(1000)
    assert ns["trunc_normal_"](t) is t, (
        "it must return the same tensor object, filled in place"
    )
    assert t.isfinite().all() and t.std() > 0.1, (
        "the tensor was not filled with random values"
    )


@check(points=1)
def parameter(ns):
    """Works on an nn.Parameter (no autograd history), keeps the dtype and shape."""
    p = torch.nn.Parameter(torch.zeros(64, 32))
    out = ns["trunc_normal_"](p, 0.0, 0.02, -0.04, 0.04)
    assert out is p and p.grad_fn is None and p.requires_grad, (
        "fill in place under torch.no_grad()"
    )
    assert p.dtype == torch.float32 and p.shape == (64, 32), (
        "the dtype or the shape changed"
    )


@check(points=1)
def bounds(ns):
    """Every value lies in [a, b] for several means, standard deviations and intervals."""
    for config in CONFIGS + TAILS:
        x = _sample(ns, config)
        _, _, a, b = config
        assert a <= x.min().item() and x.max().item() <= b, (
            f"with mean, std, a, b = {config} values fall outside: range [{x.min().item():.4g}, {x.max().item():.4g}]"
        )


@check(points=2)
def moments(ns):
    """The sample mean and variance agree with the truncated normal's (within 5 standard errors)."""
    for config in CONFIGS:
        x = _sample(ns, config)
        m, v = _moments(config)
        se_m, se_v = (
            math.sqrt(v / N),
            v * math.sqrt(2 / N) * 2,
        )  # variance's SE, doubled for the short tails' kurtosis
        assert abs(x.mean().item() - m) < 5 * se_m, (
            f"with mean, std, a, b = {config} the sample mean is {x.mean().item():.5f}, expected {m:.5f}"
        )
        assert abs(x.var().item() - v) < 5 * se_v, (
            f"with mean, std, a, b = {config} the sample variance is {x.var().item():.5f}, expected {v:.5f}"
        )


@check(points=2)
def distribution(ns):
    """A Kolmogorov–Smirnov test against the truncated normal's CDF passes (100 000 values, 0.1 % level)."""
    for config in CONFIGS:
        d = _ks(_sample(ns, config), config)
        assert d < KS_LIMIT, (
            f"with mean, std, a, b = {config} the KS distance is {d:.4f} (limit {KS_LIMIT:.4f})"
        )


@check(points=1)
def tails(ns):
    """Intervals far in a tail ([2, 4], [-5, -3], ...) are sampled correctly too."""
    for config in TAILS:
        d = _ks(_sample(ns, config), config)
        assert d < KS_LIMIT, (
            f"with mean, std, a, b = {config} the KS distance is {d:.4f} (limit {KS_LIMIT:.4f})"
        )


@check(points=1)
def generator(ns):
    """With a generator: the same seed gives the same values, and the global random state is untouched."""
    state = torch.get_rng_state()
    x, y = (
        _sample(ns, CONFIGS[0], n=1000, seed=3),
        _sample(ns, CONFIGS[0], n=1000, seed=3),
    )
    z = _sample(ns, CONFIGS[0], n=1000, seed=4)
    assert torch.equal(x, y), "the same generator seed gave different values"
    assert not torch.equal(x, z), "different generator seeds gave the same values"
    assert torch.equal(state, torch.get_rng_state()), (
        "the global random generator was used although a generator was given"
    )


@check(points=1)
def float32(ns):
    """A float32 tensor is filled correctly (range and mean)."""
    x = _sample(ns, CONFIGS[1], dtype=torch.float32)
    m, v = _moments(CONFIGS[1])
    assert 0.0 <= x.min().item() and x.max().item() <= 3.0, (
        "float32 values outside [a, b]"
    )
    assert abs(x.mean().item() - m) < 5 * math.sqrt(v / N), (
        f"float32 sample mean {x.mean().item():.5f}, expected {m:.5f}"
    )
