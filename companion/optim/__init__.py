"""From-scratch optimizers with the contract of ``torch.optim``: same names, arguments, defaults,
state keys and errors. Each class validates and stores its hyper-parameters; one readable
per-tensor function (``sgd_step``, ``adam_step``, ...) holds the update rule."""

from companion.optim.sgd import SGD, sgd_step
