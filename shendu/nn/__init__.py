"""torch.nn's names: Module and containers, Parameter, layers, ``functional``, ``init``,
``utils``."""
from shendu.nn import init, utils
from shendu.nn.container import ModuleDict, ModuleList, Sequential
from shendu.nn.module import Module, Parameter
from shendu.nn import functional
from shendu.nn.activation import (ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax,
                                  Tanh)
from shendu.nn.conv import Conv2d, ConvTranspose2d
from shendu.nn.dropout import Dropout
from shendu.nn.embedding import Embedding
from shendu.nn.linear import Flatten, Identity, Linear, Maxout, Unflatten
from shendu.nn.loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss,
                            NLLLoss)
from shendu.nn.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from shendu.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from shendu.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell
from shendu.nn.attention import MultiheadAttention
from shendu.nn.positional import LearnedPositionalEmbedding, PositionalEncoding
from shendu.nn.transformer import (Transformer, TransformerDecoder, TransformerDecoderLayer,
                                   TransformerEncoder, TransformerEncoderLayer)
