"""Device correctness: every public function and class, fed inputs on a second device, keeps its
outputs and state there and never mixes in a CPU tensor. The second device is CUDA when
``companion.get_device()`` is CUDA, else the CPU stand-in of :mod:`companion.testing.devices`
(which raises on mixing as CUDA does). Each case builds its inputs on the CPU, moves them with
``.to(device)`` and returns what must live on the device; where a result holds no tensor (a number,
a report), a mixing error is what fails the case. Before the fixes made with this file, four cases
failed: mixup with labels on the CPU, run_on_gradients' default start, and the models that
train_with_smoothing and run_method built on the CPU next to data elsewhere."""

from functools import partial

import pytest
import torch

from companion.optim.fused import fused_unavailable_reason
from torch import nn
from torch.nn import functional as F

import companion.init as init
import companion.nn as cnn
import companion.optim as optim
from companion.core import data, debugging, diagnostics, models, train
from companion.core.calibration import reliability
from companion.core.functions import beale, quadratic, rosenbrock, saddle
from companion.core.lr_range import lr_range_test
from companion.experiments import (
    backprop,
    batch_size,
    bias_variance,
    depth_gradients,
    gradient_sequences,
    logit_growth,
    nesterov_forms,
    optimizer_race,
    perceptron,
    regularizer_race,
    shallow_networks,
    sparse_features,
    steps_to_target,
    testbed,
)
from companion.experiments import (
    convex_race,
    factored_moments,
    hidden_matrices,
    iterate_averaging,
    lazy_embeddings,
    warmup_race,
)
from companion.experiments import pooling_race
from companion.nn import conv, pooling
from companion.nn import loss as L
from companion.nn.windows import sliding_windows
from companion.nn.utils import clip_grad_norm_, clip_grad_value_
from companion.optim.lr_scheduler import ReduceLROnPlateau
from companion.regularization import augment as A
from companion.regularization import dropconnect, penalties, proximal
from companion.regularization import stochastic_pooling as SP
from companion.regularization import signal_augment as SA
from companion.regularization.early_stopping import EarlyStopping
from companion.testing.devices import (
    DeviceMixingError,
    ElsewhereTensor,
    on_device,
    second_device,
    stand_in,
)
from companion.testing.parity import (
    assert_modules_close,
    compare_optimizers,
    replay_gradients,
)
from companion.testing.tolerances import assert_close


def cpu(*shape, seed=0, dtype=torch.float64):
    return torch.randn(
        *shape, generator=torch.Generator().manual_seed(seed), dtype=dtype
    )


def labels(n, classes, seed=1):
    return torch.randint(classes, (n,), generator=torch.Generator().manual_seed(seed))


def images(n=6, c=1, h=6, w=6):
    return torch.rand(
        n, c, h, w, generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def split(dev, n=24, d=8, classes=3):
    return data.Split(cpu(n, d).float().to(dev), labels(n, classes).to(dev))


def digits(dev):
    return data.Digits(split(dev), split(dev, 12), split(dev, 12))


def mlp(dev, d=8, classes=3):
    torch.manual_seed(0)
    return models.mlp(d, (6,), classes).to(dev)


# --- layers: output, input gradient and parameter gradients on the device ---


def layer_case(make, shape):
    def run(dev):
        layer = make().to(dev)
        x = cpu(*shape).to(dev).requires_grad_()
        out = layer(x)
        out.pow(2).sum().backward()
        return [out, x.grad, *[p.grad for p in layer.parameters()], *layer.buffers()]

    return run


f64 = {"dtype": torch.float64}
LAYERS = {
    "Sigmoid": layer_case(cnn.Sigmoid, (4, 3)),
    "Tanh": layer_case(cnn.Tanh, (4, 3)),
    "ReLU": layer_case(cnn.ReLU, (4, 3)),
    "LeakyReLU": layer_case(cnn.LeakyReLU, (4, 3)),
    "PReLU": layer_case(partial(cnn.PReLU, 3, **f64), (4, 3, 2)),
    "ELU": layer_case(cnn.ELU, (4, 3)),
    "GELU": layer_case(cnn.GELU, (4, 3)),
    "GELU-tanh": layer_case(partial(cnn.GELU, "tanh"), (4, 3)),
    "SiLU": layer_case(cnn.SiLU, (4, 3)),
    "Softmax": layer_case(partial(cnn.Softmax, 1), (4, 3)),
    "LogSoftmax": layer_case(partial(cnn.LogSoftmax, 1), (4, 3)),
    "Maxout": layer_case(partial(cnn.Maxout, 3, 2, 3, **f64), (4, 3)),
    "BatchNorm1d": layer_case(partial(cnn.BatchNorm1d, 3, **f64), (5, 3)),
    "BatchNorm2d": layer_case(partial(cnn.BatchNorm2d, 3, **f64), (5, 3, 2, 2)),
    "LayerNorm": layer_case(partial(cnn.LayerNorm, [3], **f64), (5, 3)),
    "InstanceNorm1d": layer_case(
        partial(cnn.InstanceNorm1d, 3, affine=True, track_running_stats=True, **f64),
        (5, 3, 4),
    ),
    "InstanceNorm2d": layer_case(partial(cnn.InstanceNorm2d, 3, **f64), (5, 3, 2, 2)),
    "GroupNorm": layer_case(partial(cnn.GroupNorm, 2, 4, **f64), (5, 4, 3)),
    "BatchNorm1d-cumulative": layer_case(
        partial(cnn.BatchNorm1d, 3, momentum=None, **f64), (5, 3)
    ),
    "BatchNorm2d-no-running-stats": layer_case(
        partial(cnn.BatchNorm2d, 3, affine=False, track_running_stats=False, **f64),
        (5, 3, 2, 2),
    ),
    "LayerNorm-no-bias": layer_case(
        partial(cnn.LayerNorm, [3, 2], bias=False, **f64), (5, 3, 2)
    ),
    "Dropout": layer_case(partial(cnn.Dropout, 0.5), (4, 3)),
    "Conv1d": layer_case(
        partial(cnn.Conv1d, 3, 4, 3, padding="same", groups=1, **f64), (2, 3, 6)
    ),
    "Conv1d-circular": layer_case(
        partial(
            cnn.Conv1d,
            3,
            6,
            2,
            stride=2,
            padding=1,
            padding_mode="circular",
            groups=3,
            **f64,
        ),
        (3, 5),
    ),
    "Conv2d": layer_case(
        partial(cnn.Conv2d, 3, 4, (3, 2), padding=(1, 0), dilation=(1, 2), **f64),
        (2, 3, 5, 5),
    ),
    "Conv2d-reflect": layer_case(
        partial(
            cnn.Conv2d, 2, 2, 3, padding=1, padding_mode="reflect", bias=False, **f64
        ),
        (2, 2, 4, 4),
    ),
    "MaxPool1d": layer_case(partial(cnn.MaxPool1d, 3, 2, 1, ceil_mode=True), (2, 3, 8)),
    "MaxPool2d": layer_case(
        partial(cnn.MaxPool2d, 3, 2, 1, dilation=(1, 2)), (2, 3, 6, 7)
    ),
    "MaxPool2d-indices": lambda dev: list(
        cnn.MaxPool2d(2, return_indices=True)(cpu(2, 3, 4, 5).to(dev))
    ),
    "AvgPool1d": layer_case(
        partial(cnn.AvgPool1d, 3, 2, 1, ceil_mode=True, count_include_pad=False),
        (2, 3, 8),
    ),
    "AvgPool2d": layer_case(
        partial(cnn.AvgPool2d, 3, 2, 1, ceil_mode=True), (2, 3, 6, 7)
    ),
    "AvgPool2d-divisor": layer_case(
        partial(cnn.AvgPool2d, 2, divisor_override=3), (3, 4, 4)
    ),
    "pooling-functionals": lambda dev: [
        *pooling.max_pool1d(cpu(2, 3, 7).to(dev), 3, 2, 1, return_indices=True),
        pooling.max_pool2d(cpu(2, 3, 5, 5).to(dev), 2, ceil_mode=True),
        pooling.avg_pool1d(cpu(3, 7).to(dev), 2, 1, 1),
        pooling.avg_pool2d(cpu(3, 5, 5).to(dev), 3, 2, 1, True, False),
    ],
    "conv-sliding_windows": lambda dev: [
        conv.conv(
            cpu(2, 4, 7).to(dev),
            cpu(6, 2, 3).to(dev),
            cpu(6).to(dev),
            (2,),
            ((1, 2),),
            (1,),
            2,
        ),
        sliding_windows(
            cpu(2, 3, 6, 5).to(dev),
            (2, 3),
            (1, 2),
            ((1, 1), (0, 2)),
            (2, 1),
            float("-inf"),
        ),
    ],
    "DropConnectLinear": layer_case(
        partial(dropconnect.DropConnectLinear, 3, 2, p=0.5, **f64), (4, 3)
    ),
    "DropConnectLinear-shared": layer_case(
        partial(dropconnect.DropConnectLinear, 3, 2, p=0.5, per_example=False, **f64),
        (4, 3),
    ),
}


def eval_layer(dev):
    """Normalization and dropout in eval mode (running statistics, no mask)."""
    out = []
    for layer in (
        cnn.BatchNorm1d(3, **f64),
        cnn.Dropout(0.5),
        dropconnect.DropConnectLinear(3, 2, **f64),
    ):
        layer = layer.to(dev)
        layer(cpu(5, 3).to(dev))
        out.append(layer.eval()(cpu(5, 3).to(dev)))
    return out


def moment_matching(dev):
    model = nn.Sequential(
        dropconnect.DropConnectLinear(3, 4, **f64),
        nn.ReLU(),
        dropconnect.DropConnectLinear(4, 2, **f64),
    ).to(dev)
    return dropconnect.moment_matching_forward(model, cpu(5, 3).to(dev))


# --- losses: functional and module forms, with class weights where they exist ---


def loss_case(fn, make_input, make_target, **kwargs):
    def run(dev):
        x = make_input().to(dev).requires_grad_()
        extra = {
            k: v.to(dev) if isinstance(v, torch.Tensor) else v
            for k, v in kwargs.items()
        }
        out = fn(x, make_target().to(dev), **extra)
        out.sum().backward()
        return [out, x.grad]

    return run


WEIGHT = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
LOSSES = {
    "mse_loss": loss_case(L.mse_loss, lambda: cpu(4, 3), lambda: cpu(4, 3, seed=1)),
    "huber_loss": loss_case(
        L.huber_loss, lambda: cpu(4, 3), lambda: cpu(4, 3, seed=1), delta=0.5
    ),
    "MSELoss": loss_case(L.MSELoss(), lambda: cpu(4, 3), lambda: cpu(4, 3, seed=1)),
    "HuberLoss": loss_case(
        L.HuberLoss(reduction="sum"), lambda: cpu(4, 3), lambda: cpu(4, 3, seed=1)
    ),
    "cross_entropy": loss_case(
        L.cross_entropy, lambda: cpu(4, 3), lambda: labels(4, 3)
    ),
    "cross_entropy-weight-smoothing": loss_case(
        L.cross_entropy,
        lambda: cpu(4, 3),
        lambda: labels(4, 3),
        weight=WEIGHT,
        label_smoothing=0.1,
        ignore_index=1,
    ),
    "cross_entropy-probabilities": loss_case(
        L.cross_entropy,
        lambda: cpu(4, 3),
        lambda: cpu(4, 3, seed=1).softmax(1),
        label_smoothing=0.1,
    ),
    "cross_entropy-none": loss_case(
        L.cross_entropy,
        lambda: cpu(4, 3, 2),
        lambda: labels(8, 3).view(4, 2),
        reduction="none",
    ),
    "CrossEntropyLoss": loss_case(
        lambda x, t: L.CrossEntropyLoss(weight=WEIGHT).to(x.device)(x, t),
        lambda: cpu(4, 3),
        lambda: labels(4, 3),
    ),
    "nll_loss": loss_case(
        L.nll_loss, lambda: cpu(4, 3), lambda: labels(4, 3), weight=WEIGHT
    ),
    "NLLLoss": loss_case(
        lambda x, t: L.NLLLoss(ignore_index=0).to(x.device)(x, t),
        lambda: cpu(4, 3),
        lambda: labels(4, 3),
    ),
    "kl_div": loss_case(
        L.kl_div,
        lambda: cpu(4, 3).log_softmax(1),
        lambda: cpu(4, 3, seed=1).softmax(1),
        reduction="batchmean",
    ),
    "KLDivLoss": loss_case(
        L.KLDivLoss(reduction="batchmean", log_target=True),
        lambda: cpu(4, 3),
        lambda: cpu(4, 3, seed=1),
    ),
    "multi_margin_loss": loss_case(
        L.multi_margin_loss, lambda: cpu(4, 3), lambda: labels(4, 3), p=2, weight=WEIGHT
    ),
    "MultiMarginLoss": loss_case(
        lambda x, t: L.MultiMarginLoss(weight=WEIGHT).to(x.device)(x, t),
        lambda: cpu(4, 3),
        lambda: labels(4, 3),
    ),
    "log_softmax_rows": lambda dev: L.log_softmax_rows(cpu(4, 3).to(dev)),
    "CrossEntropyFunction": loss_case(
        L.CrossEntropyFunction.apply,
        lambda: cpu(4, 3),
        lambda: cpu(4, 3, seed=1).softmax(1),
    ),
}


# --- optimizers: two steps, then parameters and every state tensor on the device ---


def optimizer_case(cls, steps=2, bias=True, **options):
    def run(dev):
        model = nn.Linear(3, 2, bias=bias, dtype=torch.float64).to(dev)
        opt = cls(model.parameters(), **options)
        for _ in range(steps):
            opt.zero_grad()
            model(cpu(4, 3).to(dev)).pow(2).sum().backward()
            opt.step()
        # torch keeps a non-capturable optimizer's step count and NAdam's μ product on the CPU as 0-dim
        # tensors: so do we (same contract)
        state = [
            v for s in opt.state.values() for k, v in s.items() if k not in CPU_STATE
        ]
        return [*model.parameters(), *state]

    return run


CPU_STATE = {"step", "mu_product"}
OPTIMIZERS = {
    "SGD": optimizer_case(
        optim.SGD, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01
    ),
    "SGD-dampening": optimizer_case(
        optim.SGD, lr=0.1, momentum=0.9, dampening=0.5, maximize=True
    ),
    "Adagrad": optimizer_case(optim.Adagrad, lr=0.1, lr_decay=0.01, weight_decay=0.01),
    "Adadelta": optimizer_case(optim.Adadelta, weight_decay=0.01),
    "RMSprop": optimizer_case(
        optim.RMSprop, momentum=0.9, centered=True, weight_decay=0.01
    ),
    "Adam": optimizer_case(optim.Adam, weight_decay=0.01),
    "Adam-amsgrad": optimizer_case(optim.Adam, amsgrad=True),
    "AdamW": optimizer_case(optim.AdamW, amsgrad=True),
    "NAdam": optimizer_case(optim.NAdam, weight_decay=0.01),
    "NAdam-decoupled": optimizer_case(
        optim.NAdam, weight_decay=0.01, decoupled_weight_decay=True
    ),
    "RAdam": optimizer_case(optim.RAdam, lr=0.01, weight_decay=0.01),
    "RAdam-rectified": optimizer_case(
        optim.RAdam, steps=7, lr=0.01
    ),  # ρ_t > 5 from t = 6: the adaptive step
    "RAdam-decoupled": optimizer_case(
        optim.RAdam, weight_decay=0.01, decoupled_weight_decay=True, maximize=True
    ),
    "Adafactor": optimizer_case(
        optim.Adafactor, lr=0.1, weight_decay=0.01
    ),  # a factored weight, a full bias
    "Adafactor-eps1": optimizer_case(
        optim.Adafactor, eps=(1e-3, 1e-3), d=2.0, maximize=True
    ),
    "Muon": optimizer_case(optim.Muon, bias=False, lr=0.01),  # 2-D parameters only
    "Muon-plain": optimizer_case(
        optim.Muon, bias=False, nesterov=False, adjust_lr_fn="match_rms_adamw"
    ),
    "ASGD": optimizer_case(
        optim.ASGD, steps=4, lr=0.1, t0=1, weight_decay=0.01
    ),  # averaging from step 3 on
}


def sparse_optimizer_case(cls, steps=3, **options):
    """An embedding looked up with a repeated index, so the gradient is sparse (SparseAdam refuses dense ones)."""

    def run(dev):
        weight = cpu(10, 3).to(dev).requires_grad_()
        opt = cls([weight], **options)
        for _ in range(steps):
            opt.zero_grad()
            F.embedding(torch.tensor([1, 2, 2, 7]).to(dev), weight, sparse=True).pow(
                2
            ).sum().backward()
            opt.step()
        return [
            weight,
            *(v for s in opt.state.values() for k, v in s.items() if k != "step"),
        ]

    return run


OPTIMIZERS["SparseAdam"] = sparse_optimizer_case(
    optim.SparseAdam, lr=0.1, maximize=True
)
# the foreach paths (sgd_foreach, adagrad_foreach, adadelta_foreach, rmsprop_foreach, adam_foreach, nadam_foreach,
# radam_foreach) and, on a GPU with Triton, the fused kernels (sgd_fused, adam_fused: the CPU's stand-in device
# holds no memory for a kernel to read; tests/test_fused.py runs them on CPU tensors)
OPTIMIZERS.update(
    {
        "SGD-foreach": optimizer_case(
            optim.SGD,
            lr=0.1,
            momentum=0.9,
            nesterov=True,
            weight_decay=0.01,
            foreach=True,
        ),
        "Adagrad-foreach": optimizer_case(
            optim.Adagrad, lr=0.1, lr_decay=0.01, weight_decay=0.01, foreach=True
        ),
        "Adadelta-foreach": optimizer_case(
            optim.Adadelta, weight_decay=0.01, foreach=True
        ),
        "RMSprop-foreach": optimizer_case(
            optim.RMSprop, momentum=0.9, centered=True, weight_decay=0.01, foreach=True
        ),
        "Adam-foreach": optimizer_case(
            optim.Adam, amsgrad=True, weight_decay=0.01, foreach=True
        ),
        "NAdam-foreach": optimizer_case(optim.NAdam, weight_decay=0.01, foreach=True),
        "RAdam-foreach": optimizer_case(optim.RAdam, steps=7, lr=0.01, foreach=True),
    }
)
if fused_unavailable_reason() is None and torch.cuda.is_available():
    OPTIMIZERS.update(
        {
            "SGD-fused": optimizer_case(
                optim.SGD,
                lr=0.1,
                momentum=0.9,
                nesterov=True,
                weight_decay=0.01,
                fused=True,
            ),
            "AdamW-fused": optimizer_case(optim.AdamW, amsgrad=True, fused=True),
        }
    )


def averaged_case(update_bn=False, **options):
    """An averaged copy of a model with a BatchNorm, after three SGD steps; optionally update_bn from CPU batches."""

    def run(dev):
        swa = optim.swa_utils
        model = (
            nn.Sequential(nn.Linear(3, 4), cnn.BatchNorm1d(4), nn.Linear(4, 2))
            .double()
            .to(dev)
        )
        avg = swa.AveragedModel(model, **options)
        sgd = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            sgd.zero_grad()
            model(cpu(5, 3).to(dev)).pow(2).sum().backward()
            sgd.step()
            avg.update_parameters(model)
        if (
            update_bn
        ):  # the loader's batches are on the CPU: update_bn moves them to `device`
            swa.update_bn(
                [(cpu(5, 3, seed=s), None) for s in range(2)], avg, device=dev
            )
        return list(avg.state_dict().values())

    return run


def lbfgs_case(**options):
    """Two closure steps of L-BFGS; its state is one flat vector and lists of them, all on the device."""

    def run(dev):
        model = nn.Linear(3, 2, dtype=torch.float64).to(dev)
        opt = optim.LBFGS(model.parameters(), max_iter=5, **options)

        def closure():
            opt.zero_grad()
            loss = (model(cpu(4, 3).to(dev)) - 1).pow(2).sum()
            loss.backward()
            return loss

        for _ in range(2):
            opt.step(closure)
        state = opt.state[next(iter(model.parameters()))]
        return [
            *model.parameters(),
            state["d"],
            state["prev_flat_grad"],
            *state["old_dirs"],
            *state["old_stps"],
        ]

    return run


OPTIMIZERS["LBFGS"] = lbfgs_case()
OPTIMIZERS["LBFGS-strong_wolfe"] = lbfgs_case(
    line_search_fn="strong_wolfe", history_size=2
)

OPTIMIZERS.update(
    {
        "swa_utils.AveragedModel": averaged_case(update_bn=True),
        "swa_utils.get_ema_multi_avg_fn": averaged_case(
            multi_avg_fn=optim.swa_utils.get_ema_multi_avg_fn(0.9), use_buffers=True
        ),
        "swa_utils.get_swa_multi_avg_fn": averaged_case(
            multi_avg_fn=optim.swa_utils.get_swa_multi_avg_fn()
        ),
        "swa_utils.get_ema_avg_fn": averaged_case(
            avg_fn=optim.swa_utils.get_ema_avg_fn(0.9)
        ),
        "swa_utils.get_swa_avg_fn": averaged_case(
            avg_fn=optim.swa_utils.get_swa_avg_fn(), use_buffers=True
        ),
    }
)
try:  # the papers' forms, where the package has them
    from companion.optim.adam_variants import AdamVariant, DozatNAdam

    OPTIMIZERS["AdamVariant"] = optimizer_case(
        AdamVariant, bias_correction=False, eps_hat=True
    )
    OPTIMIZERS["DozatNAdam"] = optimizer_case(DozatNAdam)
except ImportError:  # pragma: no cover
    pass


@pytest.mark.parametrize(
    "cls", [torch.optim.SGD, torch.optim.Adam, torch.optim.NAdam, torch.optim.Adagrad]
)
def test_torch_keeps_the_same_state_on_the_cpu(cls):
    """The exemption above is torch's contract: its own optimizers keep exactly those keys off the device."""
    with second_device() as device:
        model = nn.Linear(3, 2, dtype=torch.float64).to(device)
        opt = cls(
            model.parameters(),
            lr=0.1,
            **({"momentum": 0.9} if cls is torch.optim.SGD else {}),
        )
        model(cpu(4, 3).to(device)).pow(2).sum().backward()
        opt.step()
        for state in opt.state.values():
            assert state, "no state to check"
            off_device = {
                k
                for k, v in state.items()
                if isinstance(v, torch.Tensor) and not on_device(v, device)
            }
            assert off_device == CPU_STATE & state.keys()


def proximal_case(cls, inner=partial(optim.SGD, lr=0.1), **options):
    def run(dev):
        model = nn.Linear(3, 2, dtype=torch.float64).to(dev)
        opt = cls(inner(model.parameters()), 0.5, **options)
        for _ in range(2):
            opt.zero_grad()
            model(cpu(4, 3).to(dev)).pow(2).sum().backward()
            opt.step()
        return list(model.parameters())

    return run


def clip_case(clip, *args, **kwargs):
    def run(dev):
        model = nn.Linear(3, 2, dtype=torch.float64).to(dev)
        model(cpu(4, 3).to(dev)).pow(2).sum().backward()
        out = clip(model.parameters(), *args, **kwargs)
        return [p.grad for p in model.parameters()] + ([out] if out is not None else [])

    return run


def proximal_step(step):
    def run(dev):
        model = params(dev)
        step(model, 0.5, 0.1)
        return list(model.parameters())

    return run


def params(dev):
    return nn.Linear(3, 2, dtype=torch.float64).to(dev)


def stochastic_pool_case(make, shape, generator=None):
    """A stochastic pooling layer on non-negative input, in training (drawing on the device, or from a CPU
    generator whose uniforms are moved there) and in evaluation."""

    def run(dev):
        pool = make(generator=generator() if generator else None)
        x = cpu(*shape).relu().to(dev).requires_grad_()
        out = [pool(x), pool.eval()(x)]
        sum(o.sum() for o in out).backward()
        return [*out, x.grad]

    return run


REGULARIZERS = {
    "l1_penalty": lambda dev: penalties.l1_penalty(params(dev), 0.1),
    "l2_penalty": lambda dev: penalties.l2_penalty(params(dev), 0.1, include_bias=True),
    "elastic_net_penalty": lambda dev: penalties.elastic_net_penalty(
        params(dev), 0.1, 0.3
    ),
    "soft_threshold": lambda dev: proximal.soft_threshold(cpu(4, 3).to(dev), 0.5),
    "soft_threshold-tensor": lambda dev: proximal.soft_threshold(
        cpu(4, 3).to(dev), cpu(4, 3).abs().to(dev)
    ),
    "hard_threshold": lambda dev: proximal.hard_threshold(cpu(4, 3).to(dev), 0.5),
    "singular_value_threshold": lambda dev: proximal.singular_value_threshold(
        cpu(4, 3).to(dev), 0.5
    ),
    "nuclear_norm": lambda dev: proximal.nuclear_norm(cpu(4, 3).to(dev)),
    "ProximalL1": proximal_case(proximal.ProximalL1),
    "ProximalL1-per-coordinate": proximal_case(
        proximal.ProximalL1, optim.Adam, per_coordinate=True
    ),
    "ProximalL0": proximal_case(proximal.ProximalL0),
    "ProximalNuclear": proximal_case(proximal.ProximalNuclear),
    "penalized_parameters": lambda dev: penalties.penalized_parameters(
        params(dev), include_bias=True
    ),
    "sparsity": lambda dev: penalties.sparsity(
        params(dev), 0.1
    ),  # a Python number: must not mix
    "l1_proximal_step": proximal_step(proximal.l1_proximal_step),
    "l0_proximal_step": proximal_step(proximal.l0_proximal_step),
    "nuclear_proximal_step": proximal_step(proximal.nuclear_proximal_step),
    "vector_norm": lambda dev: [
        cnn.utils.vector_norm(cpu(4, 3).to(dev), p)
        for p in (1.0, 2.0, 3.0, float("inf"))
    ],
    "clip_grad_norm_": clip_case(clip_grad_norm_, 0.1),
    "clip_grad_norm_-inf": clip_case(clip_grad_norm_, 0.1, norm_type="inf"),
    "clip_grad_value_": clip_case(clip_grad_value_, 0.1),
    "dropout": lambda dev: cnn.dropout.dropout(cpu(4, 3).to(dev), 0.5),
    "dropout_scaled_at_test": lambda dev: cnn.dropout.dropout_scaled_at_test(
        cpu(4, 3).to(dev), 0.5
    ),
    "sample_mask": lambda dev: dropconnect.sample_mask(
        (3, 2), 0.5, device=dev, dtype=torch.float64
    ),
    "eval-mode layers": eval_layer,
    "moment_matching_forward": moment_matching,
    "StochasticPool1d": stochastic_pool_case(
        partial(SP.StochasticPool1d, 2), (2, 3, 8)
    ),
    "StochasticPool2d": stochastic_pool_case(
        partial(SP.StochasticPool2d, 2, 1), (3, 4, 5)
    ),
    "StochasticPool2d-cpu-generator": stochastic_pool_case(
        partial(SP.StochasticPool2d, 2), (2, 3, 4, 4), gen
    ),
    "stochastic_pool-inverse_cdf_index": lambda dev: [
        SP.stochastic_pool(cpu(2, 6).relu().to(dev), (3,), generator=gen()),
        SP.inverse_cdf_index(
            cpu(4, 3).abs().to(dev),
            torch.rand(4, generator=gen(), dtype=torch.float64).to(dev),
        ),
    ],
}


# --- augmentation: x on the device with a CPU generator (drawn on the CPU, then moved) ---


def augment_case(transform):
    return lambda dev: transform(images().to(dev), generator=gen())


AUGMENT = {
    "hflip": augment_case(partial(A.hflip, p=0.5)),
    "vflip": augment_case(partial(A.vflip, p=0.5)),
    "random_crop": augment_case(partial(A.random_crop, padding=2)),
    "random_affine": augment_case(
        partial(A.random_affine, degrees=20.0, translate=1.0)
    ),
    "jitter": augment_case(partial(A.jitter, brightness=0.3, contrast=0.3)),
    "gaussian_noise": augment_case(partial(A.gaussian_noise, std=0.1)),
    "cutout": augment_case(partial(A.cutout, size=3)),
    "shift": lambda dev: A.shift(
        images().to(dev),
        torch.tensor([1, 0, -1, 2, 0, 1]).to(dev),
        torch.tensor([0, 1, 1, -2, 0, 0]).to(dev),
    ),
    "affine": lambda dev: A.affine(
        images().to(dev), torch.full((6,), 30.0).to(dev), 0.5, -1.0
    ),
    "mixup": lambda dev: A.mixup(
        images().to(dev), labels(6, 3).to(dev), 0.4, 3, generator=gen()
    ),
    # the labels as a notebook makes them, on the CPU: the mixed labels follow x to its device
    "mixup-cpu-labels": lambda dev: A.mixup(
        images().to(dev), torch.arange(6) % 3, 0.4, 3, generator=gen()
    ),
    "mixup-soft": lambda dev: A.mixup(
        images().to(dev), cpu(6, 3).softmax(1).to(dev), 0.4, generator=gen()
    ),
    "mixup-alpha0": lambda dev: A.mixup(images().to(dev), labels(6, 3).to(dev), 0.0, 3),
    # signals (N, L): every transformation, drawn from a CPU generator and moved to the signals' device
    "SignalAugmentation": lambda dev: SA.SignalAugmentation(
        shift=3, scale=0.2, noise=0.1, corr_noise=0.2, shear=0.5, generator=gen()
    )(cpu(5, 40).to(dev), labels(5, 3).to(dev)),
    "signal_augment-translate-smooth": lambda dev: [
        SA.translate(cpu(5, 40).to(dev), torch.tensor([1, -2, 0, 3, 41])),
        SA.smooth(cpu(5, 7).to(dev), width=2.0),
    ],
    "Augmentation": lambda dev: A.Augmentation(
        [partial(A.random_crop, padding=1), partial(A.cutout, size=2)],
        mixup_alpha=0.3,
        num_classes=3,
        generator=gen(),
    )(images().to(dev), labels(6, 3).to(dev)),
}


# --- initializers: fill a tensor on the device in place ---


def init_case(fill, *args, **kwargs):
    def run(dev):
        t = torch.empty(4, 3, dtype=torch.float64).to(dev)
        return [fill(t, *args, **kwargs), t]

    return run


INITS = {
    "uniform_": init_case(init.uniform_, -1.0, 1.0),
    "normal_": init_case(init.normal_, 0.0, 2.0),
    "constant_": init_case(init.constant_, 0.3),
    "ones_": init_case(init.ones_),
    "zeros_": init_case(init.zeros_),
    "xavier_uniform_": init_case(init.xavier_uniform_),
    "xavier_normal_": init_case(init.xavier_normal_),
    "kaiming_uniform_": init_case(init.kaiming_uniform_, nonlinearity="relu"),
    "kaiming_normal_": init_case(init.kaiming_normal_, mode="fan_out"),
}


# --- the course core and the chapters' harnesses that take tensors, models or splits ---


def fit_case(**kwargs):
    def run(dev):
        model = mlp(dev)
        opt = optim.SGD(model.parameters(), lr=0.1)
        train.fit(
            model,
            opt,
            split(dev),
            split(dev, 12),
            epochs=2,
            batch_size=8,
            generator=gen(),
            progress=False,
            **kwargs,
        )
        return list(model.parameters())

    return run


def backprop_case(dev):
    g = gen()
    p = backprop.Parameters(
        *(
            torch.randn(*s, generator=g, dtype=torch.float64).to(dev)
            for s in [(4, 3), (4,), (2, 4), (2,)]
        )
    )
    cache = backprop.forward(p, cpu(5, 3).to(dev), cpu(5, 2).to(dev))
    grads, *_ = backprop.backward(p, cache)
    return [cache.loss, *grads, *backprop.sgd_update(p, grads, 0.1)]


def gradient_sequence(dev):
    grads = cpu(5, 3).to(dev)
    return gradient_sequences.run_on_gradients(
        optim.Adam, grads, lr=0.1, state_keys=("exp_avg",)
    )


def perceptron_case(dev):
    X, y = perceptron.xor_data(device=dev)
    run = perceptron.perceptron_fit(X, y, epochs=3)
    return [
        run.weight,
        run.bias,
        perceptron.perceptron_predict(run.weight, run.bias, X),
        perceptron.threshold_xor(X),
        *perceptron.least_squares_linear(X, y),
    ]


def shallow(dev):
    x = torch.linspace(-1, 1, 16, dtype=torch.float64).view(-1, 1).to(dev)
    nets, losses = shallow_networks.fit_shallow_networks(
        x, x.sin().view(-1), width=4, seeds=[0, 1], steps=3
    )
    rf = shallow_networks.fit_random_features(
        x, x.sin().view(-1), width=4, seeds=[0, 1]
    )
    return [nets.W, nets.c, nets.v, nets.d, losses, rf.W, rf.v]


def init_linear(dev):
    model = mlp(dev)
    diagnostics.init_linear_(model, init.xavier_normal_)
    return list(model.parameters())


def gradient_check(dev):
    X, W = cpu(3, 2, seed=4).to(dev), cpu(3, 2).to(dev).requires_grad_()
    check = debugging.gradient_check(lambda: (W * X).sum().pow(2), [W], entries=3)
    assert check.passed, check.message
    return W


def noisy_quadratic(dev):
    f = nesterov_forms.spread_quadratic(5, device=dev)
    x = torch.ones(5, dtype=torch.float64).to(dev)
    return [f.eigenvalues, f(x), nesterov_forms.with_noise(f.grad, 0.1, gen())(x)]


def lr_range(dev):
    result = lr_range_test(
        mlp(dev),
        partial(optim.SGD, momentum=0.9),
        split(dev),
        steps=4,
        batch_size=8,
        generator=gen(),
    )
    return debugging.learning_rate_check(result, result.lrs[1])


def overfit(dev):
    model = mlp(dev)
    X, y = split(dev)
    check = debugging.overfit_batch(
        debugging.train_step(model, optim.Adam(model.parameters(), lr=0.01)),
        X,
        y,
        steps=3,
    )
    return [check, *model.parameters()]


def minibatches(dev):
    model = mlp(dev)
    losses = list(
        train.minibatch_steps(
            model,
            optim.SGD(model.parameters(), lr=0.1),
            split(dev),
            8,
            generator=gen(),
            penalty=partial(penalties.l1_penalty, lam=0.01),
        )
    )
    batch_size.train_epoch(
        model, optim.SGD(model.parameters(), lr=0.1), split(dev), 8, generator=gen()
    )
    return [*losses, *model.parameters()]


def over_seeds(dev):
    runs = batch_size.train_over_seeds(
        partial(mlp, dev),
        split(dev),
        split(dev, 12),
        batch_size=8,
        lr=0.1,
        epochs=1,
        seeds=[0, 1],
        optimizer=optim.SGD,
    )
    assert (
        len(runs.train_loss) == 2
    )  # per-seed summaries: Python numbers gathered on the CPU


def to_target(dev):
    model = mlp(dev)
    result = steps_to_target.steps_to_accuracy(
        model,
        optim.SGD(model.parameters(), lr=0.1),
        split(dev),
        split(dev, 12),
        target=0.99,
        max_steps=4,
        eval_every=2,
        batch_size=8,
    )
    return [result, *model.parameters()]


def bed_run(dev):
    data = testbed.testbed_data(device=dev, label_noise=0.2)
    model = testbed.testbed_model(device=dev)
    testbed.train_testbed(model, data, epochs=1, callbacks=[EarlyStopping(patience=0)])
    return [*data.train, *model.parameters()]


def regularizer_run(dev):
    method = regularizer_race.Method(
        fit_kwargs=lambda model: {
            "transform": regularizer_race.on_images(
                A.Augmentation(
                    [partial(A.cutout, size=2)],
                    mixup_alpha=0.2,
                    generator=regularizer_race.run_generator(),
                )
            )
        }
    )
    return regularizer_race.run_method(
        method, testbed.testbed_data(device=dev), epochs=1
    )  # the data's device


def convnet_regularizer_run(dev):
    signals = data.Digits(
        *(
            data.Split(
                cpu(n, 40, seed=s).float().to(dev), labels(n, 10, seed=s + 1).to(dev)
            )
            for s, n in ((0, 30), (2, 10), (4, 20))
        )
    )
    method = regularizer_race.Method(
        dict(norm=cnn.BatchNorm1d, dropout=lambda: cnn.Dropout(0.5)),
        lambda model: {
            "transform": SA.SignalAugmentation(
                shift=2, noise=0.1, generator=regularizer_race.run_generator()
            )
        },
    )
    return regularizer_race.run_method(
        method, signals, epochs=1, testbed=regularizer_race.CONVNET
    )  # the data's device


def pooling_race_run(dev):
    small = data.Digits(
        *(
            data.Split(
                cpu(n, 40, seed=s).float().to(dev), labels(n, 10, seed=s + 1).to(dev)
            )
            for s, n in ((0, 30), (2, 10), (4, 20))
        )
    )
    run = pooling_race.run_pool(
        pooling_race.POOLS["stochastic"], small, epochs=1, channels=2
    )  # the data's device
    pooling_race.sampled_accuracies(
        run.model, small.test, (1, 2)
    )  # CPU numbers by design; the passes must not mix
    return [
        *run.model.parameters(),
        pooling_race.pass_probabilities(run.model, small.test.X, passes=2),
    ]


def race(dev):
    runs = optimizer_race.train_each(
        {"sgd": (optim.SGD, {"lr": 0.1}), "adam": (optim.Adam, {"lr": 0.01})},
        partial(mlp, dev),
        digits(dev),
        epochs=1,
        batch_size=8,
    )
    return [p for run in runs.values() for p in run.model.parameters()]


def smoothing(dev):
    digits_on_device = data.load_digits(device=dev, n_train=64)
    run = logit_growth.train_with_smoothing(
        digits_on_device, 0.1, seed=0, epochs=1, hidden=(8,)
    )
    return [*digits_on_device.train, run]


def bias_variance_run(dev):
    target = torch.sin
    x_train, y_train = bias_variance.sample_training_sets(
        target, n_sets=3, n_train=8, noise_std=0.1, generator=gen()
    )
    decomposition, pred = bias_variance.decompose(
        bias_variance.polynomial_learner(2),
        target,
        noise_std=0.1,
        x_test=cpu(5).to(dev),
        training_sets=(x_train.to(dev), y_train.to(dev)),
        generator=gen(),
    )
    return pred


def perceptron_geometry(dev):
    X, y, w, b = (t.to(dev) for t in perceptron.separable_data(12, generator=gen()))
    layers = [
        nn.Linear(2, 3, dtype=torch.float64).to(dev),
        nn.Linear(3, 1, dtype=torch.float64).to(dev),
    ]
    W, c = perceptron.linear_stack_as_matrix(layers)
    perceptron.novikoff_bound(X, y, w, b)
    return [W, c]


def differences(dev):
    W = cpu(3, 2).to(dev)
    grads = backprop.central_differences(lambda: W.pow(3).sum(), [W])
    debugging.central_difference(lambda: W.pow(3).sum(), W.view(-1), 1)
    depth_gradients.cosine([W], [W + 1])
    return grads


def plateau(dev):
    model = nn.Linear(3, 2, dtype=torch.float64).to(dev)
    opt = optim.SGD(model.parameters(), lr=0.1)
    scheduler = ReduceLROnPlateau(opt, patience=0)
    for _ in range(3):
        scheduler.step(model(cpu(4, 3).to(dev)).pow(2).mean().detach())
    return list(model.parameters())


def functions_2d(dev):
    xy = torch.tensor([[0.5, -0.2], [1.0, 1.0]], dtype=torch.float64).to(dev)
    return [fn(xy) for fn in (quadratic(), rosenbrock(), beale(), saddle())]


def parity(dev):
    optimizers = compare_optimizers(
        optim.Adam, torch.optim.Adam, {"lr": 0.01}, steps=3, device=dev
    )
    replay = replay_gradients(
        optim.SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}, steps=3
    )
    x = cpu(5, 3).to(dev)
    assert_modules_close(
        cnn.BatchNorm1d(3, **f64).to(dev), nn.BatchNorm1d(3, **f64).to(dev), x, ulps=64
    )
    assert_close(x, x.cpu(), ulps=0)
    return [optimizers, replay]


def calibration(dev):
    """Binned on the CPU by design (a table of numbers): it must only take device inputs."""
    bins = reliability(cpu(20, 3).softmax(1).to(dev), labels(20, 3).to(dev), n_bins=4)
    assert int(bins.count.sum()) == 20


def two_layer_mse(dev):
    g = gen()
    tensors = [
        torch.randn(*shape, generator=g, dtype=torch.float64).to(dev).requires_grad_()
        for shape in [(5, 3), (5, 2), (4, 3), (4,), (2, 4), (2,)]
    ]
    loss = backprop.TwoLayerMSE.apply(*tensors)
    loss.backward()
    return [loss, *(t.grad for t in tensors)]


def race_summary(dev):
    data_on_device = digits(dev)
    runs = optimizer_race.train_each(
        {"sgd": (optim.SGD, {"lr": 0.1})},
        partial(mlp, dev),
        data_on_device,
        epochs=1,
        batch_size=8,
    )
    row = optimizer_race.summarize(runs["sgd"], data_on_device, target_loss=0.5)
    return [row, *runs["sgd"].model.parameters()]


def decayed(dev):
    p = cpu(3).to(dev)
    optim.decay_weights(p, lr=0.1, weight_decay=0.1)
    return p


CORE = {
    "fit": fit_case(),
    "fit-penalty-transform-early-stopping": fit_case(
        penalty=partial(penalties.l2_penalty, lam=0.01),
        callbacks=[EarlyStopping(patience=1)],
        transform=lambda X, y: (
            X
            + 0.01 * torch.randn(X.shape, generator=gen(), dtype=X.dtype).to(X.device),
            y,
        ),
    ),
    "evaluate": lambda dev: train.evaluate(mlp(dev), split(dev)),
    "accuracy": lambda dev: train.accuracy(cpu(5, 3).to(dev), labels(5, 3).to(dev)),
    "batches": lambda dev: [b.X for b in data.batches(split(dev), 8, generator=gen())],
    "make_classification": lambda dev: list(data.make_classification(20, device=dev)),
    "make_regression": lambda dev: list(data.make_regression(20, device=dev)),
    "signal_statistics": lambda dev: diagnostics.signal_statistics(
        mlp(dev), cpu(5, 8).float().to(dev), generator=gen()
    ),
    "hidden_preactivations": lambda dev: diagnostics.hidden_preactivations(
        mlp(dev), cpu(5, 8).float().to(dev)
    ),
    "dead_fraction": lambda dev: diagnostics.dead_fraction(
        mlp(dev), cpu(5, 8).float().to(dev)
    ),
    "init_linear_": init_linear,
    "initial_loss": lambda dev: debugging.initial_loss(mlp(dev), *split(dev)),
    "gradient_check": gradient_check,
    "unit_activity": lambda dev: debugging.unit_activity(
        mlp(dev), cpu(5, 8).float().to(dev)
    ),
    "standardize": lambda dev: list(debugging.standardize(cpu(6, 3).to(dev))),
    "preprocessing_check": lambda dev: debugging.preprocessing_check(cpu(6, 3).to(dev)),
    "hessian_condition": lambda dev: debugging.hessian_condition(cpu(6, 3).to(dev)),
    "backprop": backprop_case,
    "run_on_gradients": gradient_sequence,
    "bias_variance-legendre_features": lambda dev: bias_variance.legendre_features(
        cpu(5).to(dev), 3
    ),
    "bias_variance-polynomial_learner": lambda dev: bias_variance.polynomial_learner(2)(
        cpu(2, 6).to(dev), cpu(2, 6, seed=1).to(dev), cpu(4).to(dev)
    ),
    "depth_gradients": lambda dev: depth_gradients.gradients_through_depth(
        depth_gradients.deep_mlp(8, 4, 3, 3).to(dev), split(dev)
    ),
    "train_clipped": lambda dev: depth_gradients.train_clipped(
        depth_gradients.deep_mlp(8, 4, 3, 3).to(dev), split(dev), clip="norm", steps=3
    ),
    "logit_gap": lambda dev: logit_growth.logit_gap(
        cpu(5, 3).to(dev), labels(5, 3).to(dev)
    ),
    "nesterov_lookahead": lambda dev: list(
        nesterov_forms.nesterov_lookahead(lambda x: 2 * x, cpu(3).to(dev), 0.1, 0.9, 4)
    ),
    "nesterov_1983": lambda dev: nesterov_forms.nesterov_1983(
        lambda x: 2 * x, cpu(3).to(dev), 0.1, 4
    ),
    "run_optimizer": lambda dev: nesterov_forms.run_optimizer(
        optim.SGD, lambda x: 2 * x, cpu(3).to(dev), 4, lr=0.1
    ),
    "spread_quadratic-with_noise": noisy_quadratic,
    "optimizer_race-gap": lambda dev: optimizer_race.gap(quadratic(), cpu(5).to(dev)),
    "perceptron": perceptron_case,
    "shallow_networks": shallow,
    "noisy_labels": lambda dev: testbed.noisy_labels(labels(20, 10).to(dev), 0.3),
    "per_example_gradients-gradient_noise": lambda dev: batch_size.gradient_noise(
        batch_size.per_example_gradients(mlp(dev), split(dev, 12)),
        [2, 4],
        draws=5,
        generator=gen(),
    ),
    "predicted_noise": lambda dev: batch_size.predicted_noise(
        cpu(12, 5).to(dev), [2, 4]
    ),
    "lr_range_test-learning_rate_check": lr_range,
    "train_step-overfit_batch": overfit,
    "minibatch_steps-train_epoch": minibatches,
    "train_over_seeds": over_seeds,
    "steps_to_accuracy": to_target,
    "testbed": bed_run,
    "regularizer_race-run_method": regularizer_run,
    "regularizer_race-run_method-CONVNET": convnet_regularizer_run,
    "pooling_race-run_pool-pass_probabilities": pooling_race_run,
    "optimizer_race-train_each": race,
    "logit_growth-train_with_smoothing": smoothing,
    "bias_variance-decompose": bias_variance_run,
    "perceptron-geometry": perceptron_geometry,
    "central_differences-cosine": differences,
    "ReduceLROnPlateau": plateau,
    "functions-2d": functions_2d,
    "init_shallow_networks": lambda dev: (lambda n: [n.W, n.c, n.v, n.d])(
        shallow_networks.init_shallow_networks(2, 4, [0, 1], device=dev)
    ),
    "make_sparse_features": lambda dev: list(
        sparse_features.make_sparse_features(50, 10, device=dev)
    ),
    "nadam-momentum_schedule": lambda dev: optim.momentum_schedule(
        torch.arange(1, 4).to(dev), 0.9, 0.004
    ),
    "muon-newton_schulz": lambda dev: [
        optim.newton_schulz(cpu(4, 3).to(dev)),
        optim.newton_schulz(cpu(2, 5).to(dev)),
    ],
    "adam-decay_weights": decayed,
    "parity": parity,
    "calibration-reliability": calibration,
    "backprop-TwoLayerMSE": two_layer_mse,
    "optimizer_race-summarize": race_summary,
    "residual-deep_mlp": lambda dev: depth_gradients.gradients_through_depth(
        depth_gradients.deep_mlp(8, 4, 3, 3, residual=True).to(dev), split(dev)
    ),
    "top_hessian_eigenvalue": lambda dev: batch_size.top_hessian_eigenvalue(
        mlp(dev), split(dev, 12), iters=3
    ),
}

# --- the harnesses of Part 8 (optimizers after Adam): they run on their inputs' device ---


def warmup_train_steps(dev):
    model = mlp(dev)
    opt = optim.Adam(model.parameters(), lr=0.01)
    warmup_race.train_steps(
        model,
        opt,
        split(dev),
        split(dev, 12),
        steps=3,
        batch_size=8,
        generator=gen(),
        scheduler=lambda o: warmup_race.linear_warmup(o, 2),
        record_updates=2,
    )
    return [
        *model.parameters(),
        *(v for s in opt.state.values() for k, v in s.items() if k != "step"),
    ]


def muon_on_hidden(dev):
    torch.manual_seed(0)
    model = models.mlp(8, (6, 6), 3).to(dev)
    hidden, rest = hidden_matrices.split_hidden(model)
    pair = hidden_matrices.muon_with_adamw(model, muon_lr=0.02, adamw_lr=0.01)
    for _ in range(2):
        pair.zero_grad()
        F.cross_entropy(model(split(dev).X), split(dev).y).backward()
        pair.step()
    return [*hidden, *rest]


def softmax_race(dev):
    problem = convex_race.softmax_regression(split(dev))
    # the curves are CPU records of numbers by design; the runs themselves must not mix devices
    convex_race.full_batch_curve(
        problem, lambda p: optim.LBFGS(p, line_search_fn="strong_wolfe"), 4
    )
    convex_race.minibatch_run(
        problem, lambda p: optim.SGD(p, lr=0.1), passes=1, batch_size=8, seed=0
    )
    step = cpu(*problem.start().shape, seed=3).to(dev) * 1e-2
    return [
        problem.X,
        *convex_race.secant_curvature(
            problem, problem.start().detach(), step, 8, 0, draws=2
        ),
    ]


def zipf_bags(dev):
    train, test, probabilities = lazy_embeddings.make_zipf_bags(
        n=40, vocab=50, device=dev
    )
    model = lazy_embeddings.BagClassifier(50, 4, sparse=True).to(dev)
    lazy_embeddings.train_bags(
        True, train, test, 50, 4, seed=0, steps=3
    )  # its results are CPU numbers
    return [train.X, test.X, model(train.X)]


def second_moments(dev):
    model = nn.Sequential(
        factored_moments.FlatLinear(8, 5), nn.ReLU(), nn.Linear(5, 3)
    ).to(dev)
    opt = optim.Adafactor(model.parameters())
    return list(
        factored_moments.track_second_moments(
            model, opt, split(dev), steps=2, batch_size=8, generator=gen()
        ).values()
    )


AFTER_ADAM = {
    "warmup_race.train_steps": warmup_train_steps,
    "first_order_variance": lambda dev: warmup_race.first_order_variance(
        cpu(3).to(dev).abs() + 10
    ),
    "split_hidden-muon_with_adamw": muon_on_hidden,
    "polynomial_iterates": lambda dev: hidden_matrices.polynomial_iterates(
        cpu(5).to(dev).abs(), hidden_matrices.CUBIC, 3
    ),
    "singular_values": lambda dev: hidden_matrices.singular_values(cpu(4, 3).to(dev)),
    "convex_race": softmax_race,
    # its result is a CPU record of mean errors by design; the iterates live on the eigenvalues' device
    "polyak_ruppert": lambda dev: [
        iterate_averaging.polyak_ruppert(
            cpu(3).to(dev).abs() + 0.5, steps=20, lr=0.1, runs=4, chunk=10
        )
        and cpu(3).to(dev)
    ],
    "row_column_estimate-frobenius_rank1": lambda dev: [
        factored_moments.row_column_estimate(cpu(4, 3).to(dev).abs()),
        factored_moments.frobenius_rank1(cpu(4, 3).to(dev)),
    ],
    "track_second_moments-FlatLinear": second_moments,
    "lazy_embeddings": zipf_bags,
}

CASES = {
    **{f"nn.{k}": v for k, v in LAYERS.items()},
    **{f"loss.{k}": v for k, v in LOSSES.items()},
    **{f"optim.{k}": v for k, v in OPTIMIZERS.items()},
    **{f"reg.{k}": v for k, v in REGULARIZERS.items()},
    **{f"augment.{k}": v for k, v in AUGMENT.items()},
    **{f"init.{k}": v for k, v in INITS.items()},
    **{f"core.{k}": v for k, v in CORE.items()},
    **{f"after_adam.{k}": v for k, v in AFTER_ADAM.items()},
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_outputs_stay_on_the_inputs_device(case):
    with second_device() as device:
        out = case(device)
        assert on_device(out, device), f"outputs left the device: {out}"


# every class and function the torch mirrors and the regularizers export has a case (by name), or a reason
COVERED_ELSEWHERE = {
    "sgd_step adagrad_step adadelta_step rmsprop_step adam_step adamw_step nadam_step radam_step adafactor_step muon_step asgd_step sparse_adam_step two_loop cubic_minimizer strong_wolfe": "run by their optimizer",
    "rectifier sma_length adjusted_lr decaying_step averaging_weight": "take numbers (RAdam's ρ_t and r_t, Muon's rate, ASGD's η_t and μ_t), run by their optimizer",
    "SWALR": "sets learning rates, takes no tensor",
    "check_lambda calculate_gain calculate_fan_in_and_fan_out xavier_std kaiming_std": "take no tensor, or only read its shape",
}
EXPORTS = [
    "companion.nn",
    "companion.nn.loss",
    "companion.nn.utils",
    "companion.optim",
    "companion.optim.swa_utils",
    "companion.regularization",
    "companion.init",
]


@pytest.mark.parametrize("package", EXPORTS)
def test_every_export_has_a_device_case(package):
    import importlib
    import inspect
    import pathlib
    import re

    module = importlib.import_module(package)
    source = pathlib.Path(__file__).read_text()
    exempt = {name for names in COVERED_ELSEWHERE for name in names.split()}
    names = [
        n
        for n, obj in vars(module).items()
        if not n.startswith("_")
        and not inspect.ismodule(obj)
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and obj.__module__.startswith(package)
    ]
    assert names, f"{package} exports nothing"
    missing = [
        n
        for n in names
        if n not in exempt
        and not re.search(rf"\b{n}\b", source.split("COVERED_ELSEWHERE")[0])
    ]
    assert not missing, f"no device case for {package}: {missing}"


# --- the stand-in itself: it must catch what CUDA catches, and allow what CUDA allows ---


def mixed_one_hot(y, x):
    """The mixup bug: a one-hot table on the CPU next to weights on the device."""
    soft = (y.view(-1, 1) == torch.arange(3)).to(x.dtype)
    return x[:, :1] * soft


MIXING = {
    "cpu-table": lambda x: mixed_one_hot(torch.arange(4) % 3, x),
    "arange-without-device": lambda x: x + torch.arange(3, dtype=x.dtype),
    "zeros-without-device": lambda x: torch.cat([x, torch.zeros(4, 3, dtype=x.dtype)]),
    "cpu-generator-draws": lambda x: (
        x + torch.randn(4, 3, generator=gen(), dtype=x.dtype)
    ),
    "cpu-generator-on-device": lambda x: torch.rand(
        3, generator=gen(), device=x.device
    ),
    "cpu-generator-in-place": lambda x: init.uniform_(x, generator=gen()),
    "index_select-cpu-index": lambda x: x.index_select(0, torch.tensor([0, 2])),
    "matmul": lambda x: x @ torch.ones(3, 2, dtype=x.dtype),
}


@pytest.mark.parametrize("mix", MIXING.values(), ids=MIXING.keys())
def test_mixing_raises(mix):
    with second_device() as device:
        with pytest.raises(RuntimeError):
            mix(cpu(4, 3).to(device))


ALLOWED = {
    "cpu-scalar": lambda x: x * torch.tensor(2.0, dtype=x.dtype),
    "cpu-index": lambda x: x[torch.tensor([0, 2])],
    "cpu-mask": lambda x: x[torch.tensor([True, False, True, False])],
    "index-put": lambda x: x.index_put(
        (torch.tensor([0, 2]),), torch.tensor(1.0, dtype=x.dtype, device=x.device)
    ),
    "like": lambda x: (
        x + torch.zeros_like(x) + x.new_ones(3) + torch.arange(3, device=x.device)
    ),
    "tensor-on-device": lambda x: (
        x * torch.tensor([1.0, 2.0, 3.0], dtype=x.dtype, device=x.device)
    ),
    "moved": lambda x: x + torch.ones(3, dtype=x.dtype).to(x.device),
}


@pytest.mark.parametrize("ok", ALLOWED.values(), ids=ALLOWED.keys())
def test_what_cuda_allows_passes(ok):
    with second_device() as device:
        out = ok(cpu(4, 3).to(device))
        assert on_device(out, device)


def test_stand_in_keeps_values_and_gradients():
    """Values, .item(), .tolist() and autograd through .to(device) and back work as on CUDA."""
    x = cpu(4, 3).requires_grad_()
    with stand_in() as device:
        y = x.to(device)
        assert isinstance(y, ElsewhereTensor) and y.device == device
        z = (y * y).sum()
        assert z.item() == pytest.approx((x * x).sum().item(), rel=1e-15)
        assert y.detach().tolist() == x.detach().tolist()
        z.backward()
        inplace = y.detach()
        assert (
            inplace.mul_(1.0) is inplace
        )  # an in-place operation returns its own tensor, as torch does
        back = y.detach().cpu()
        assert type(back) is torch.Tensor and torch.equal(back, x.detach())
        with pytest.raises(TypeError, match="numpy"):
            y.detach().numpy()
    assert torch.equal(x.grad, 2 * x.detach())


def test_stand_in_error_is_a_device_mixing_error():
    with stand_in() as device:
        with pytest.raises(DeviceMixingError, match="same device"):
            mixed_one_hot(torch.arange(4) % 3, cpu(4, 3).to(device))


def test_on_device_rejects_cpu_and_data_less_meta_tensors():
    with stand_in() as device:
        assert on_device([cpu(2).to(device)], device)
        assert not on_device([cpu(2).to(device), cpu(2)], device)
    assert not on_device(torch.empty(2, device="meta"), torch.device("meta"))
