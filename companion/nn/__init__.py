"""From-scratch layers with the contract of ``torch.nn``: same names, arguments, defaults,
parameter and buffer names, and errors."""

from companion.nn.norm_layers import (
    BatchNorm1d,
    BatchNorm2d,
    LayerNorm,
    InstanceNorm1d,
    InstanceNorm2d,
    GroupNorm,
)
from companion.nn.activation_layers import (
    Sigmoid,
    Tanh,
    ReLU,
    LeakyReLU,
    PReLU,
    ELU,
    GELU,
    SiLU,
    Softmax,
    LogSoftmax,
    Maxout,
)
from companion.nn.dropout import Dropout
from companion.nn.conv import Conv1d, Conv2d
from companion.nn.pooling import MaxPool1d, MaxPool2d, AvgPool1d, AvgPool2d
from companion.nn.loss import (
    MSELoss,
    CrossEntropyLoss,
    NLLLoss,
    KLDivLoss,
    HuberLoss,
    MultiMarginLoss,
)
from companion.nn import utils
