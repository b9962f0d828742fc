r"""Is a classifier's confidence honest? Reliability bins, the expected calibration error, and the
reliability diagram (Guo et al., 2017; Naeini et al., 2015).

A classifier predicts the class :math:`\hat y = \arg\max_c p_c` with confidence :math:`\hat p = \max_c p_c`.
It is *calibrated* when, among the examples predicted with confidence about :math:`q`, a fraction
:math:`q` is right. Sorting the examples into :math:`B` equal-width confidence bins :math:`I_b`:

.. math::
    \mathrm{ECE} = \sum_{b=1}^{B} \frac{|I_b|}{n}\,\big|\operatorname{acc}(I_b) - \operatorname{conf}(I_b)\big| ,

the average gap between accuracy and confidence, weighted by how many examples each bin holds.
"""

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Reliability:
    """Per-bin statistics of a classifier's confidence: what a reliability diagram draws."""

    edges: Tensor
    """(B + 1,) the bin edges, 0 to 1."""
    confidence: Tensor
    """(B,) mean confidence in each bin (nan for an empty bin)."""
    accuracy: Tensor
    """(B,) fraction correct in each bin (nan for an empty bin)."""
    count: Tensor
    """(B,) number of examples in each bin."""

    @property
    def ece(self) -> float:
        r"""The expected calibration error :math:`\sum_b \frac{|I_b|}{n} \lvert \mathrm{acc}(I_b) - \mathrm{conf}(I_b) \rvert` over non-empty bins."""
        full = self.count > 0
        gaps = (self.accuracy[full] - self.confidence[full]).abs()
        return (
            self.count[full].to(gaps.dtype) * gaps
        ).sum().item() / self.count.sum().item()


def reliability(probs: Tensor, labels: Tensor, n_bins: int = 15) -> Reliability:
    """Sort examples by the confidence max_c p_c into ``n_bins`` equal-width bins (right-closed,
    (0, 1/B], (1/B, 2/B], ...) and measure each bin's mean confidence and accuracy.

    ``probs`` is (n, C), rows summing to 1 (softmax outputs); ``labels`` is (n,) class indices."""
    if probs.dim() != 2 or labels.shape != probs.shape[:1]:
        raise ValueError(
            f"expected probs (n, C) and labels (n,), got {tuple(probs.shape)} and {tuple(labels.shape)}"
        )
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    probs = probs.detach().to("cpu", torch.float64)
    labels = labels.detach().cpu()
    # p̂_i = max_c p_ic,  ŷ_i = argmax_c p_ic
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).to(torch.float64)
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    # bin b holds edges[b] < p̂ ≤ edges[b+1] (the first bin also holds p̂ = 0)
    index = (torch.bucketize(conf, edges, right=False) - 1).clamp(0, n_bins - 1)
    count = torch.bincount(index, minlength=n_bins)
    sums_conf = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, index, conf)
    sums_acc = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, index, correct)
    denom = count.to(torch.float64)
    return Reliability(edges, sums_conf / denom, sums_acc / denom, count)


def expected_calibration_error(
    probs: Tensor, labels: Tensor, n_bins: int = 15
) -> float:
    """ECE of softmax outputs ``probs`` (n, C) against ``labels`` (n,); see :func:`reliability`."""
    return reliability(probs, labels, n_bins).ece


def plot_reliability(bins: Reliability, ax=None, label: str | None = None, color=None):
    """Draw a reliability diagram: accuracy against confidence per bin (bars), and the diagonal of a
    perfectly calibrated classifier. Bars below the diagonal are over-confident."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    full = bins.count > 0
    centers = ((bins.edges[:-1] + bins.edges[1:]) / 2)[full]
    width = (bins.edges[1] - bins.edges[0]).item()
    ax.bar(
        centers.numpy(),
        bins.accuracy[full].numpy(),
        width=width * 0.9,
        alpha=0.55,
        label=label,
        color=color,
        edgecolor="black",
        linewidth=0.5,
    )
    ax.plot([0, 1], [0, 1], "k--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (max softmax probability)")
    ax.set_ylabel("accuracy in the bin")
    return ax


__all__ = [
    "Reliability",
    "reliability",
    "expected_calibration_error",
    "plot_reliability",
]
