"""companion: the course's from-scratch optimizers, regularizers and layers, each checked against PyTorch.

Subpackages mirror torch: ``companion.optim`` (torch.optim), ``companion.nn`` (torch.nn) and
``companion.init`` (torch.nn.init). The helpers the notebooks share live in ``companion.core.data``,
``companion.core.functions``, ``companion.core.models``, ``companion.core.train``, ``companion.core.plot`` and
``companion.testing.parity``.
"""

from companion.core.device import get_device, make_generator, seed_everything

__version__ = "0.1.0"
__all__ = ["get_device", "make_generator", "seed_everything", "__version__"]
