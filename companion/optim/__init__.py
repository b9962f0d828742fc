"""From-scratch optimizers with the contract of ``torch.optim``: same names, arguments, defaults,
state keys and errors. Each class validates and stores its hyper-parameters; one readable
per-tensor function (``sgd_step``, ``adam_step``, ...) holds the update rule."""

from companion.optim.sgd import SGD, sgd_foreach, sgd_step
from companion.optim.adagrad import Adagrad, adagrad_foreach, adagrad_step
from companion.optim.adadelta import Adadelta, adadelta_foreach, adadelta_step
from companion.optim.rmsprop import RMSprop, rmsprop_foreach, rmsprop_step
from companion.optim.adam import Adam, adam_foreach, adam_step, decay_weights
from companion.optim.adamw import AdamW, adamw_step
from companion.optim.nadam import NAdam, momentum_schedule, nadam_foreach, nadam_step
from companion.optim.radam import (
    RAdam,
    radam_foreach,
    radam_step,
    rectifier,
    sma_length,
)
from companion.optim.adafactor import Adafactor, adafactor_step
from companion.optim.muon import Muon, adjusted_lr, muon_step, newton_schulz
from companion.optim.asgd import ASGD, asgd_step, averaging_weight, decaying_step
from companion.optim.sparse_adam import SparseAdam, sparse_adam_step
from companion.optim.lbfgs import LBFGS, cubic_minimizer, strong_wolfe, two_loop
from companion.optim import swa_utils  # a module, as torch.optim.swa_utils is
