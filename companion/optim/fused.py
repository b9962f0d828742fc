"""Fused optimizer steps: one Triton kernel per update (to be written)."""


def fused_unavailable_reason() -> str | None:
    """Why ``fused=True`` cannot run here, or ``None`` where it can."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return "fused=True needs Triton (pip install triton; Linux only)"
    return None
