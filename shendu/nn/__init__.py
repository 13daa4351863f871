"""torch.nn's names: Module and containers, Parameter, layers, ``functional``, ``init``,
``utils``."""
from shendu.nn import init, utils
from shendu.nn.container import (ModuleDict, ModuleList, ParameterDict, ParameterList,
                                 Sequential)
from shendu.nn.module import Module, Parameter
from shendu.nn import functional
from shendu.nn.activation import (ELU, GELU, SELU, Hardtanh, LeakyReLU, LogSigmoid,
                                  LogSoftmax, Mish, PReLU, ReLU, ReLU6, Sigmoid, SiLU, Softmax,
                                  Softplus, Tanh)
from shendu.nn.conv import Conv1d, Conv2d, ConvTranspose2d
from shendu.nn.distance import CosineSimilarity
from shendu.nn.dropout import Dropout, Dropout1d, Dropout2d
from shendu.nn.embedding import Embedding
from shendu.nn.fold import Fold, Unfold
from shendu.nn.linear import Flatten, Identity, Linear, Maxout, Unflatten
from shendu.nn.loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss,
                            KLDivLoss, L1Loss, MSELoss, NLLLoss, SmoothL1Loss)
from shendu.nn.normalization import (BatchNorm1d, BatchNorm2d, GroupNorm, InstanceNorm1d,
                                     InstanceNorm2d, LayerNorm)
from shendu.nn.padding import ConstantPad1d, ConstantPad2d, ZeroPad1d, ZeroPad2d
from shendu.nn.pooling import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveMaxPool1d,
                               AdaptiveMaxPool2d, AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d)
from shendu.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell
from shendu.nn.attention import MultiheadAttention
from shendu.nn.positional import LearnedPositionalEmbedding, PositionalEncoding
from shendu.nn.transformer import (Transformer, TransformerDecoder, TransformerDecoderLayer,
                                   TransformerEncoder, TransformerEncoderLayer)
from shendu.nn.upsampling import (PixelShuffle, PixelUnshuffle, Upsample,
                                  UpsamplingBilinear2d, UpsamplingNearest2d)
