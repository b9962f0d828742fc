r"""Fused optimizer steps: one Triton kernel updates every parameter of a (device, dtype) bucket.

The per-tensor path (``adam_step``) runs one torch operation per line of the update, and each
operation reads its operands from memory and writes its result back: Adam's ten or so operations move
θ, g, m and v through memory several times a step. The ``foreach`` path batches the launches but not
that traffic. A fused kernel reads each number once and writes each result once: per float32
parameter, Adam reads θ, g, m, v and writes θ, m, v, 7 × 4 = **28 bytes** a step (AMSGrad adds
v^max: 36); SGD with momentum reads θ, g, b and writes θ, b, **20 bytes** (plain SGD: 12). For
bfloat16 parameters halve those numbers. An optimizer step is memory-bound, so bytes are time.

One launch covers a whole bucket (the optimizer's parameters of one device and dtype): the host writes a table of each tensor's data addresses (θ, g, the
state buffers, the step count) and element count, and a map from each block of ``BLOCK`` elements to
its tensor and first element; each program of the kernel reads its row of the table, turns the
addresses back into typed pointers, and updates its block. The math is in float32 (float64 for
float64 parameters); loads and stores are in the parameter's dtype, which the state shares, as in
torch's fused path (a bfloat16 result is rounded to the nearest, ties to even).

The same kernel source runs two ways, chosen per call by the tensors' device: compiled by Triton for
a GPU's tensors, and run on the host by Triton's interpreter (NumPy, element blocks as arrays) for a
CPU's, so ``fused=True`` works on a CPU without ``TRITON_INTERPRET=1``. On a CPU that is a way to
test the kernel, not a way to be fast.
"""

import functools
from types import SimpleNamespace

import torch
from torch import Tensor


try:
    import triton
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction
except ImportError as error:  # fused=True then says why it cannot run; the rest of the package works without
    triton = InterpretedFunction = None
    JITFunction = object
    tl = SimpleNamespace(
        constexpr=None
    )  # enough to define the kernels below, which then never run
    _MISSING = error.name or "triton"
else:
    _MISSING = None

SUPPORTED_DEVICES = ["cuda", "cpu"]  # a CPU's tensors run in Triton's interpreter
BLOCK = {
    "cuda": 1024,
    "cpu": 4096,
}  # elements per program (the interpreter pays per program, not per element)
NUM_WARPS = 4


def fused_unavailable_reason() -> str | None:
    """Why ``fused=True`` cannot run here, or ``None`` where it can."""
    if _MISSING == "numpy":
        return "fused=True needs NumPy: on a CPU, Triton's interpreter runs the kernels with it (pip install numpy)"
    if _MISSING is not None:
        return "fused=True needs Triton (pip install triton; Linux only)"
    return None


class DeviceFunction(JITFunction):
    """A ``triton.jit`` function that also runs in Triton's interpreter whatever ``TRITON_INTERPRET`` says.

    As a ``triton.runtime.jit.JITFunction`` it is compiled (``kernel[grid](...)`` on a GPU's
    tensors, or a call from another compiled function); ``interpreted`` runs the same source on
    the host, and a call from an interpreted kernel goes there too.
    """

    def __init__(self, fn):
        super().__init__(fn)
        self.interpreted = InterpretedFunction(fn)

    def __call__(self, *args, **kwargs):
        # only an interpreted kernel calls a device function directly (compiled code inlines it); that kernel's
        # launch has already patched triton.language for this module, so the rewritten function runs as it is
        return self.interpreted.rewrite()(*args, **kwargs)


def device_function(fn):
    """Decorator: ``fn`` as a :class:`DeviceFunction` (the plain function where Triton is missing)."""
    return fn if triton is None else DeviceFunction(fn)


@device_function
def pointer(table, i, DTYPE: tl.constexpr):
    """Entry ``i`` of a table of data addresses (int64), as a pointer to ``DTYPE``."""
    return tl.load(table + i).to(tl.pointer_type(DTYPE))


@device_function
def to_storage(x, DTYPE: tl.constexpr):
    """``x`` (float32 or float64) in the storage dtype; to bfloat16 rounded to nearest, ties to even, as torch
    rounds (done on the bits: Triton's interpreter would truncate)."""
    if DTYPE == tl.bfloat16:
        bits = x.to(tl.uint32, bitcast=True)
        # add half a bfloat16 unit in the last place, less one if the kept last bit is even, then cut 16 bits
        bits = bits + 0x7FFF + ((bits >> 16) & 1)
        return (bits >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)
    else:
        return x.to(DTYPE)


@device_function
def square_root(x):
    """√x rounded to nearest, as std::sqrt (torch's) rounds it: float32's ``tl.sqrt`` is approximate on a GPU."""
    if x.dtype == tl.float64:
        return tl.sqrt(x)  # float64's is rounded to nearest
    else:
        return tl.sqrt_rn(x)


@device_function
def divide(x, y):
    """x / y rounded to nearest, as IEEE division rounds it (float32's ``/`` is approximate on a GPU)."""
    return tl.fdiv(x, y, ieee_rounding=True)


@device_function
def powers(beta1, beta2, t):
    r""":math:`\beta_1^t` and :math:`\beta_2^t` in float64 for a step count t (a float32 holding an integer), by
    repeated squaring: :math:`\beta^t = \prod_{j:\ \text{bit } j \text{ of } t \text{ set}} \beta^{2^j}`."""
    k = t.to(tl.int32)
    power1 = tl.full([], 1.0, tl.float64)
    power2 = tl.full([], 1.0, tl.float64)
    while k > 0:
        # bit j of t set: multiply in β^(2^j)
        odd = k % 2 == 1
        power1 = tl.where(odd, power1 * beta1, power1)
        power2 = tl.where(odd, power2 * beta2, power2)
        # β^(2^(j+1)) = (β^(2^j))², for the next bit
        beta1, beta2 = beta1 * beta1, beta2 * beta2
        k = k // 2
    return power1, power2


@device_function
def adam_kernel(
    param_ptrs,
    grad_ptrs,
    exp_avg_ptrs,
    exp_avg_sq_ptrs,
    max_exp_avg_sq_ptrs,
    step_ptrs,
    numels,
    owners,
    starts,
    scalars,
    DTYPE: tl.constexpr,
    COMPUTE: tl.constexpr,
    AMSGRAD: tl.constexpr,
    MAXIMIZE: tl.constexpr,
    WEIGHT_DECAY: tl.constexpr,
    DECOUPLED: tl.constexpr,
    BLOCK: tl.constexpr,
):
    r"""One Adam (or AdamW) step for one block of one tensor of the bucket, in place.

    .. math::
        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\,\theta_{t-1}
            \quad\text{or, decoupled,}\quad \theta_{t-1} \leftarrow (1 - \gamma\lambda)\,\theta_{t-1} \\
        m_t &= m_{t-1} + (1 - \beta_1)(g_t - m_{t-1}) \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2
            \qquad v_t^{\max} = \max(v_{t-1}^{\max}, v_t) \ \text{(AMSGrad, used in place of } v_t) \\
        \theta_t &= \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t}\,
            \frac{m_t}{\sqrt{v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    ``*_ptrs`` hold each tensor's data address, ``numels`` its size; block b of the launch is elements
    ``starts[b]`` … ``starts[b] + BLOCK − 1`` of tensor ``owners[b]``. ``scalars`` holds γ, β₁, β₂, ε, λ in
    float64; t is read from the tensor's float32 step count, already incremented.
    """
    # this program's block: tensor i, elements start … start + BLOCK − 1 of it
    block = tl.program_id(0)
    i = tl.load(owners + block)
    offsets = tl.load(starts + block) + tl.arange(0, BLOCK)
    mask = offsets < tl.load(numels + i)
    # γ, β₁, β₂, ε, λ in float64, as torch's host code holds them
    lr, beta1, beta2 = tl.load(scalars), tl.load(scalars + 1), tl.load(scalars + 2)
    eps, weight_decay = tl.load(scalars + 3).to(COMPUTE), tl.load(scalars + 4)
    # t ← t + 1 happened on the host; read t
    t = tl.load(pointer(step_ptrs, i, tl.float32))
    power1, power2 = powers(beta1, beta2, t)
    # γ / (1 − β₁ᵗ): m̂_t's correction folded into the step size
    step_size = divide(lr, 1 - power1).to(COMPUTE)
    # √(1 − β₂ᵗ): v̂_t's correction, applied to √v_t
    bias2_sqrt = square_root(1 - power2).to(COMPUTE)

    theta_ptr = pointer(param_ptrs, i, DTYPE) + offsets
    m_ptr = pointer(exp_avg_ptrs, i, DTYPE) + offsets
    v_ptr = pointer(exp_avg_sq_ptrs, i, DTYPE) + offsets
    theta = tl.load(theta_ptr, mask=mask).to(COMPUTE)
    g = tl.load(pointer(grad_ptrs, i, DTYPE) + offsets, mask=mask).to(COMPUTE)
    m = tl.load(m_ptr, mask=mask).to(COMPUTE)
    v = tl.load(v_ptr, mask=mask).to(COMPUTE)
    if MAXIMIZE:
        # g_t = −∇f(θ) to maximize f
        g = -g
    if WEIGHT_DECAY:
        if DECOUPLED:
            # θ ← (1 − γλ) θ   (AdamW: the decay never enters m or v)
            theta = theta * (1 - lr * weight_decay).to(COMPUTE)
        else:
            # g_t ← g_t + λ θ_{t−1}
            g = g + theta * weight_decay.to(COMPUTE)
    # m_t = m_{t−1} + w (g_t − m_{t−1}), w = 1 − β₁; for w ≥ ½ as g_t + (w − 1)(g_t − m_{t−1}), as torch's lerp
    w = (1 - beta1).to(COMPUTE)
    small = tl.abs(w) < 0.5
    m = tl.fma(tl.where(small, w, w - 1), g - m, tl.where(small, m, g))
    # v_t = β₂ v_{t−1} + (1 − β₂) g_t²
    v = v * beta2.to(COMPUTE) + (1 - beta2).to(COMPUTE) * g * g
    tl.store(m_ptr, to_storage(m, DTYPE), mask=mask)
    tl.store(v_ptr, to_storage(v, DTYPE), mask=mask)
    if AMSGRAD:
        # v^max_t = max(v^max_{t−1}, v_t), used in place of v_t
        v_max_ptr = pointer(max_exp_avg_sq_ptrs, i, DTYPE) + offsets
        v = tl.maximum(tl.load(v_max_ptr, mask=mask).to(COMPUTE), v)
        tl.store(v_max_ptr, to_storage(v, DTYPE), mask=mask)
    # √v̂_t + ε = √v_t / √(1 − β₂ᵗ) + ε
    denom = divide(square_root(v), bias2_sqrt) + eps
    # θ_t = θ_{t−1} − γ m̂_t / (√v̂_t + ε)
    theta = theta - divide(step_size * m, denom)
    tl.store(theta_ptr, to_storage(theta, DTYPE), mask=mask)


@device_function
def sgd_kernel(
    param_ptrs,
    grad_ptrs,
    buffer_ptrs,
    firsts,
    numels,
    owners,
    starts,
    scalars,
    DTYPE: tl.constexpr,
    COMPUTE: tl.constexpr,
    MOMENTUM: tl.constexpr,
    NESTEROV: tl.constexpr,
    MAXIMIZE: tl.constexpr,
    WEIGHT_DECAY: tl.constexpr,
    BLOCK: tl.constexpr,
):
    r"""One SGD step for one block of one tensor of the bucket, in place.

    .. math::
        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\,\theta_{t-1} \\
        b_t &= \mu\, b_{t-1} + (1 - \tau)\, g_t \qquad (b_1 = g_1) \\
        d_t &= g_t + \mu\, b_t \ \text{(Nesterov)} \quad\text{or}\quad d_t = b_t \\
        \theta_t &= \theta_{t-1} - \gamma\, d_t

    The table and the block map as in ``adam_kernel``; ``firsts`` marks the tensors whose buffer is
    new (b_1 = g_1: the buffer is written, not read); ``scalars`` holds γ, μ, τ, λ in float64.
    """
    # this program's block: tensor i, elements start … start + BLOCK − 1 of it
    block = tl.program_id(0)
    i = tl.load(owners + block)
    offsets = tl.load(starts + block) + tl.arange(0, BLOCK)
    numel = tl.load(numels + i)
    mask = offsets < numel
    # γ, μ, τ, λ in float64, as torch's host code holds them
    lr, momentum = tl.load(scalars), tl.load(scalars + 1)
    dampening, weight_decay = tl.load(scalars + 2), tl.load(scalars + 3)

    theta_ptr = pointer(param_ptrs, i, DTYPE) + offsets
    theta = tl.load(theta_ptr, mask=mask).to(COMPUTE)
    g = tl.load(pointer(grad_ptrs, i, DTYPE) + offsets, mask=mask).to(COMPUTE)
    if MAXIMIZE:
        # g_t = −∇f(θ) to maximize f
        g = -g
    if WEIGHT_DECAY:
        # g_t ← g_t + λ θ_{t−1}
        g = tl.fma(theta, weight_decay.to(COMPUTE), g)
    if MOMENTUM:
        b_ptr = pointer(buffer_ptrs, i, DTYPE) + offsets
        first = tl.load(firsts + i) != 0
        # b_{t−1}; none of it is read at a buffer's first step
        b = tl.load(b_ptr, mask=offsets < tl.where(first, 0, numel), other=0.0).to(
            COMPUTE
        )
        mu = momentum.to(COMPUTE)
        # b_t = μ b_{t−1} + (1 − τ) g_t, or b_1 = g_1
        b = tl.where(first, g, tl.fma((1 - dampening).to(COMPUTE), g, b * mu))
        tl.store(b_ptr, to_storage(b, DTYPE), mask=mask)
        if NESTEROV:
            # d_t = g_t + μ b_t
            g = tl.fma(b, mu, g)
        else:
            # d_t = b_t
            g = b
    # θ_t = θ_{t−1} − γ d_t
    theta = theta + g * (-lr).to(COMPUTE)
    tl.store(theta_ptr, to_storage(theta, DTYPE), mask=mask)


def check_fused_params(params: list[Tensor]) -> None:
    """torch's check that ``fused=True`` can take these tensors (floating point, on a supported device),
    with torch's RuntimeError and its message, listing our devices."""
    reason = fused_unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    for p in params:
        if not (p.device.type in SUPPORTED_DEVICES and torch.is_floating_point(p)):
            raise RuntimeError(
                "`fused=True` requires all the params to be floating point Tensors of "
                f"supported devices: {SUPPORTED_DEVICES} but {p.dtype} and {p.device.type}"
            )
        if not is_dense(p):
            raise RuntimeError(
                f"fused=True needs each parameter dense in memory; one has shape {tuple(p.shape)} "
                f"and strides {p.stride()}"
            )


def is_dense(t: Tensor) -> bool:
    """Whether ``t``'s elements fill a block of memory without gaps or overlaps, in some order of its dims."""
    expected = 1
    for stride, size in sorted((st, s) for s, st in zip(t.shape, t.stride()) if s != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def laid_out_like(param: Tensor, t: Tensor) -> Tensor:
    """``t``, or a copy of it with ``param``'s strides: the kernel walks all of a parameter's tensors in one order."""
    return t if t.stride() == param.stride() else torch.empty_like(param).copy_(t)


def compute_dtype(dtype: torch.dtype):
    """The dtype the kernel computes in: float64 for float64, float32 otherwise (torch's opmath type)."""
    return tl.float64 if dtype == torch.float64 else tl.float32


def storage_dtype(dtype: torch.dtype):
    """A parameter's dtype as Triton's."""
    return {
        torch.float64: tl.float64,
        torch.float32: tl.float32,
        torch.bfloat16: tl.bfloat16,
        torch.float16: tl.float16,
    }[dtype]


def bucket_tables(
    columns: list[list[int]], numels: list[int], block: int, device
) -> list[Tensor]:
    """The kernel's int64 tables on ``device``: each of ``columns`` (an entry per tensor, copied in one piece
    at every step: a gradient's address can change between steps), then ``numels`` and the block map, each
    block's tensor (``owners``) and first element (``starts``), computed once per layout and kept."""
    addresses = torch.tensor(columns, dtype=torch.int64).to(device, non_blocking=True)
    return [
        *addresses.unbind(0),
        *block_map(tuple(numels), block, torch.device(device)),
    ]


@functools.lru_cache(maxsize=64)
def block_map(
    numels: tuple[int, ...], block: int, device: torch.device
) -> tuple[Tensor, Tensor, Tensor]:
    """The tensors' sizes, and for each block of ``block`` elements its tensor and its first element, on ``device``."""
    sizes = torch.tensor(numels, dtype=torch.int64)
    # ⌈n / BLOCK⌉ blocks per tensor (none for an empty one); tensor i's blocks end before ends[i]
    counts = (sizes + block - 1) // block
    ends = torch.cumsum(counts, 0)
    blocks = torch.arange(int(ends[-1]))
    owners = torch.searchsorted(ends, blocks, right=True)
    starts = (blocks - (ends - counts)[owners]) * block
    return sizes.to(device), owners.to(device), starts.to(device)


def scalars_on(device, lr: float | Tensor, *others: float) -> Tensor:
    """The hyper-parameters as one float64 tensor on ``device``; a tensor ``lr`` is copied there as it is (no
    ``.item()``)."""
    rest = torch.tensor(others, dtype=torch.float64)
    if isinstance(lr, Tensor):
        return torch.cat(
            [
                lr.detach().reshape(1).to(device=device, dtype=torch.float64),
                rest.to(device),
            ]
        )
    return torch.cat([torch.tensor([float(lr)], dtype=torch.float64), rest]).to(device)


def launch(
    kernel: DeviceFunction,
    params: list[Tensor],
    columns: list[list[int]],
    scalars: Tensor,
    **constexprs,
) -> None:
    """One launch of ``kernel`` over every block of ``params`` (one device and dtype), its tables built from
    ``columns``: compiled for a GPU's tensors, interpreted on the host for a CPU's."""
    device, dtype = params[0].device, params[0].dtype
    block = BLOCK[device.type]
    tables = bucket_tables(columns, [p.numel() for p in params], block, device)
    blocks = len(tables[-1])
    if not blocks:
        return  # only empty tensors
    constexprs.update(
        DTYPE=storage_dtype(dtype), COMPUTE=compute_dtype(dtype), BLOCK=block
    )
    if device.type == "cpu":
        kernel.interpreted[(blocks,)](*tables, scalars, **constexprs)
    else:
        with torch.cuda.device(device):
            # fp fusion off: a·b + c rounds twice, as in the interpreter and torch's CPU kernel (tl.fma is explicit)
            kernel[(blocks,)](
                *tables,
                scalars,
                **constexprs,
                num_warps=NUM_WARPS,
                enable_fp_fusion=False,
            )


def address(t: Tensor | None) -> int:
    """A tensor's data address for the table (0 for a buffer the kernel does not read)."""
    return 0 if t is None else t.data_ptr()


def init_adam_state(state: dict, param: Tensor, amsgrad: bool) -> None:
    """torch's fused Adam state: ``step`` a float32 scalar on the parameter's device, the buffers zeros like the
    parameter (in its dtype); state loaded from another path is moved there."""
    if not state:
        # t = 0, m_0 = v_0 = 0 (and v^max_0 = 0)
        state["step"] = torch.zeros((), dtype=torch.float32, device=param.device)
        for key in ("exp_avg", "exp_avg_sq", *(["max_exp_avg_sq"] if amsgrad else [])):
            state[key] = torch.zeros_like(param, memory_format=torch.preserve_format)
    step = state["step"]
    if (
        not isinstance(step, Tensor)
        or step.dtype != torch.float32
        or step.device != param.device
    ):
        state["step"] = torch.as_tensor(step).to(
            device=param.device, dtype=torch.float32
        )
    for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        if key in state:
            state[key] = laid_out_like(param, state[key])


def adam_fused(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict],
    *,
    lr: float | Tensor,
    beta1: float | Tensor,
    beta2: float | Tensor,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled_weight_decay: bool = False,
) -> None:
    r"""The update of :func:`~companion.optim.adam.adam_step` for a list of tensors of one device and dtype, in
    place: t ← t + 1 on every step count, then one launch of ``adam_kernel``.

    ``lr`` may be a 1-element tensor (read inside the kernel); β₁, β₂ are taken as numbers, as torch does.
    """
    check_fused_params(params)
    for param, state in zip(params, states):
        init_adam_state(state, param, amsgrad)
    grads = [
        laid_out_like(p, g) for p, g in zip(params, grads)
    ]  # kept until the launch
    steps = [state["step"] for state in states]
    # t ← t + 1, every tensor's count at once
    torch._foreach_add_(steps, 1)
    buffers = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if amsgrad else [])
    columns = [[address(p) for p in params], [address(g) for g in grads]]
    columns += [[address(state[key]) for state in states] for key in buffers]
    columns += [[0] * len(params)] * (not amsgrad)  # no v^max to point to
    columns.append([address(step) for step in steps])
    scalars = scalars_on(
        params[0].device, lr, float(beta1), float(beta2), eps, weight_decay
    )
    launch(
        adam_kernel,
        params,
        columns,
        scalars,
        AMSGRAD=amsgrad,
        MAXIMIZE=maximize,
        WEIGHT_DECAY=weight_decay != 0,
        DECOUPLED=decoupled_weight_decay,
    )


def sgd_fused(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict],
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
) -> None:
    r"""The update of :func:`~companion.optim.sgd.sgd_step` for a list of tensors of one device and dtype, in
    place: one launch of ``sgd_kernel``.

    With μ ≠ 0 a tensor without a buffer gets one (``state["momentum_buffer"]``), filled by the kernel
    with g_1; unlike torch's fused path this also holds for a tensor whose first gradient comes after the
    group's first step.
    """
    check_fused_params(params)
    firsts = []
    for param, state in zip(params, states):
        firsts.append(momentum != 0 and state.get("momentum_buffer") is None)
        if firsts[-1]:
            state["momentum_buffer"] = torch.empty_like(
                param, memory_format=torch.preserve_format
            )
        elif momentum != 0:
            state["momentum_buffer"] = laid_out_like(param, state["momentum_buffer"])
    grads = [
        laid_out_like(p, g) for p, g in zip(params, grads)
    ]  # kept until the launch
    columns = [
        [address(p) for p in params],
        [address(g) for g in grads],
        [address(state.get("momentum_buffer")) for state in states],
        [int(first) for first in firsts],
    ]
    launch(
        sgd_kernel,
        params,
        columns,
        scalars_on(params[0].device, lr, momentum, dampening, weight_decay),
        MOMENTUM=momentum != 0,
        NESTEROV=nesterov,
        MAXIMIZE=maximize,
        WEIGHT_DECAY=weight_decay != 0,
    )
