"""From-scratch mirrors of ``torch.nn.utils``: gradient clipping by norm and by value."""

from companion.nn.utils.clip_grad import clip_grad_norm_, clip_grad_value_, vector_norm

__all__ = ["clip_grad_norm_", "clip_grad_value_", "vector_norm"]
