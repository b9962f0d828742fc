"""Embeddings whose rows are looked up seldom: lazy (sparse) against dense Adam (chapter 8.6, SparseAdam).

A bag-of-tokens classifier on synthetic data whose tokens follow a Zipf law, so that in one mini-batch most
rows of the embedding get no gradient; a training run with either optimizer that records how far the rows
missing from each batch move; the step a row takes on its first lookup at a given global step; and the time
of one training step as the vocabulary grows.
"""

import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion.core.data import Split
from companion.core.device import make_generator, num_threads, seed_everything
from companion.optim.adam import Adam
from companion.optim.sparse_adam import SparseAdam, sparse_adam_step


def zipf_probabilities(
    vocab: int, exponent: float = 1.1, dtype: torch.dtype = torch.float64
) -> Tensor:
    r"""The Zipf law :math:`p_k \propto (k + 1)^{-s}` over ``vocab`` tokens (token 0 the most frequent)."""
    p = torch.arange(1, vocab + 1, dtype=dtype) ** -exponent
    return p / p.sum()


def make_zipf_bags(
    n: int = 6000,
    vocab: int = 2000,
    length: int = 8,
    classes: int = 4,
    exponent: float = 1.1,
    seed: int = 0,
    device=None,
) -> tuple[Split, Split, Tensor]:
    r"""Bags of ``length`` tokens drawn from a Zipf law, labelled by a hidden linear rule.

    Every token k has a true score vector :math:`w^*_k \sim \mathcal N(0, I_{classes})`; a bag's label is the class
    of the largest summed score. Returns (train, test) splits of ``n`` bags in all, two thirds for training
    (``X`` the token indices, ``n × length``; ``y`` the labels) and the true scores.
    """
    g = make_generator(seed)
    p = zipf_probabilities(vocab)
    X = torch.multinomial(p, n * length, replacement=True, generator=g).reshape(
        n, length
    )
    w_true = torch.randn(vocab, classes, generator=g, dtype=torch.float64)
    y = w_true[X].sum(1).argmax(1)
    cut = 2 * n // 3
    return (
        Split(X[:cut], y[:cut]).to(device),
        Split(X[cut:], y[cut:]).to(device),
        w_true,
    )


class BagClassifier(nn.Module):
    """Class scores as the mean of the bag's token embeddings, one row of ``classes`` numbers per token."""

    def __init__(
        self, vocab: int, classes: int, sparse: bool, std: float = 0.01
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, classes, sparse=sparse)
        nn.init.normal_(self.embedding.weight, std=std)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.embedding(tokens).mean(1)


def train_bags(
    lazy: bool,
    train: Split,
    test: Split,
    vocab: int,
    classes: int,
    *,
    seed: int,
    steps: int = 300,
    batch: int = 32,
    lr: float = 0.02,
    threads: int = 1,
) -> dict:
    """Train a :class:`BagClassifier` from the initial weights and batch order of ``seed``, with
    :class:`~companion.optim.sparse_adam.SparseAdam` on the sparse gradient (``lazy``) or
    :class:`~companion.optim.adam.Adam` on the dense one.

    Returns the test loss and accuracy, and for the rows absent from each step's batch: the fraction that
    moved (``untouched_moved``), their mean absolute change relative to the looked-up rows' (``untouched_relative``);
    and, one number per row, the distance it travelled on steps when it was absent (``drift``), in all
    (``travel``, both as sums of the L1 norms of its changes) and how often it was looked up (``lookups``).
    torch runs on ``threads`` threads meanwhile (see :func:`companion.core.device.num_threads`)."""
    with num_threads(threads):
        return _train_bags(lazy, train, test, vocab, classes, seed, steps, batch, lr)


def _train_bags(lazy, train, test, vocab, classes, seed, steps, batch, lr) -> dict:
    seed_everything(seed)  # the same initial weights for both optimizers
    model = BagClassifier(vocab, classes, sparse=lazy).to(train.X.device)
    weight = model.embedding.weight
    opt = (SparseAdam if lazy else Adam)(model.parameters(), lr=lr)
    order = make_generator(seed + 1)
    drift = torch.zeros(vocab, dtype=torch.float64, device=weight.device)
    travel, lookups = torch.zeros_like(drift), torch.zeros_like(drift)
    moved = absent_total = 0
    relative = []
    for _ in range(steps):
        rows = torch.randint(len(train), (batch,), generator=order).to(train.X.device)
        tokens = train.X[rows]
        before = weight.detach().clone()
        opt.zero_grad()
        F.cross_entropy(model(tokens), train.y[rows]).backward()
        opt.step()
        change = (
            (weight.detach() - before).abs().sum(1).double()
        )  # |Δ row|₁ of every row
        absent = torch.ones(vocab, dtype=torch.bool, device=weight.device)
        absent[tokens.flatten()] = False
        drift += torch.where(absent, change, 0)
        travel += change
        lookups += torch.bincount(tokens.flatten(), minlength=vocab)
        moved += int((change[absent] > 0).sum())
        absent_total += int(absent.sum())
        relative.append((change[absent].mean() / change[~absent].mean()).item())
    with torch.no_grad():
        logits = model(test.X)
        loss = F.cross_entropy(logits, test.y).item()
        accuracy = (logits.argmax(1) == test.y).double().mean().item()
    return dict(
        loss=loss,
        accuracy=accuracy,
        untouched_moved=moved / absent_total,
        untouched_relative=sum(relative) / len(relative),
        drift=drift.cpu(),
        travel=travel.cpu(),
        lookups=lookups.cpu(),
    )


def first_lookup_steps(
    t: int,
    absent_after: int = 0,
    *,
    lr: float = 1e-3,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> tuple[float, float]:
    """The displacement, in units of ``lr``, of a row looked up for the first time at global step ``t`` (gradient
    1, its moments still 0) and then absent for ``absent_after`` steps: (lazy Adam's, dense Adam's)."""
    lazy_row = torch.zeros(1, 1, dtype=torch.float64)
    # a row never seen has m = v = 0 whatever the step count
    state = {
        "step": t - 1,
        "exp_avg": torch.zeros_like(lazy_row),
        "exp_avg_sq": torch.zeros_like(lazy_row),
    }
    sparse_adam_step(
        lazy_row,
        torch.ones(1, 1, dtype=torch.float64).to_sparse(),
        state,
        lr=lr,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        maximize=False,
    )
    dense_row = torch.zeros(1, 1, dtype=torch.float64, requires_grad=True)
    opt = Adam([dense_row], lr=lr, betas=(beta1, beta2), eps=eps)
    opt.state[dense_row] = {
        "step": torch.tensor(float(t - 1)),
        "exp_avg": torch.zeros_like(dense_row),
        "exp_avg_sq": torch.zeros_like(dense_row),
    }
    dense_row.grad = torch.ones_like(dense_row)
    opt.step()
    dense_row.grad = torch.zeros_like(
        dense_row
    )  # then absent: dense Adam sees a zero gradient
    for _ in range(absent_after):
        opt.step()
    return -lazy_row.item() / lr, -dense_row.item() / lr


def time_steps(
    vocab_sizes,
    *,
    dim: int = 32,
    lookups: int = 512,
    repeats: int = 11,
    steps: int = 5,
    seed: int = 0,
    threads: int = 1,
) -> dict:
    """Seconds per training step (zero_grad, forward, backward, step) of an embedding of ``vocab × dim`` with a
    fixed batch of ``lookups`` Zipf-distributed tokens, lazy (sparse gradient, SparseAdam) and dense (Adam).

    The (size, method) pairs are interleaved in every repeat, so that a busy machine slows them alike, and torch
    runs on ``threads`` threads meanwhile (one by default: on a shared machine, fewer threads contend less);
    returns {vocab: {"lazy": [seconds per step, one per repeat], "dense": [...]}}."""
    g = make_generator(seed)
    setups = {}
    for vocab in vocab_sizes:
        tokens = torch.multinomial(
            zipf_probabilities(vocab), lookups, replacement=True, generator=g
        )
        for lazy in (True, False):
            embedding = nn.Embedding(vocab, dim, sparse=lazy)
            opt = (SparseAdam if lazy else Adam)(embedding.parameters(), lr=1e-3)
            setups[vocab, lazy] = (embedding, opt, tokens)
    times = {vocab: {"lazy": [], "dense": []} for vocab in vocab_sizes}
    with num_threads(threads):
        _interleave(setups, times, repeats, steps)
    return times


def _interleave(setups: dict, times: dict, repeats: int, steps: int) -> None:
    for repeat in range(repeats + 1):  # repeat 0 warms up and is dropped
        for (vocab, lazy), (embedding, opt, tokens) in setups.items():
            start = time.perf_counter()
            for _ in range(steps):
                opt.zero_grad()
                embedding(tokens).square().sum().backward()
                opt.step()
            if repeat:
                times[vocab]["lazy" if lazy else "dense"].append(
                    (time.perf_counter() - start) / steps
                )
