"""companion: the course's from-scratch optimizers, regularizers and layers, each checked against PyTorch.

Subpackages mirror torch: ``companion.optim`` (torch.optim), ``companion.nn`` (torch.nn) and
``companion.init`` (torch.nn.init). The helpers the notebooks share live in ``companion.data``,
``companion.functions``, ``companion.models``, ``companion.train``, ``companion.plot`` and
``companion.parity``.
"""

from companion.device import get_device, seed_everything

__version__ = "0.1.0"
__all__ = ["get_device", "seed_everything", "__version__"]
