"""shendu (深度, "depth"): a deep-learning framework written from the ground up on NumPy.

The public surface follows PyTorch: ``shendu.tensor``, ``shendu.zeros``, ``shendu.no_grad``,
``shendu.manual_seed``, the op functions (``shendu.matmul``, ``shendu.cat``, ...),
``shendu.save``/``shendu.load``, and the sub-packages ``autograd``, ``nn`` and ``optim``
(``shendu.data``, ``shendu.train`` and ``shendu.models`` are imported on demand).
"""
from shendu import allocator  # first: tunes the C heap on import (see shendu/allocator.py)
from shendu import autograd
from shendu.autograd import (enable_grad, inference_mode, is_grad_enabled, no_grad,
                             set_grad_enabled)
from shendu.backend import (Generator, bool_, cuda_available, float16, float32, float64,
                            get_default_device, int32, int64, manual_seed, set_default_device,
                            uint8)
from shendu.creation import (arange, as_tensor, empty, eye, from_numpy, full, full_like,
                             linspace, ones, ones_like, rand, rand_like, randint, randn,
                             randn_like, randperm, tensor, zeros, zeros_like)
from shendu.ops import *  # noqa: F401,F403 - the op set is the public API
from shendu.tensor import Tensor
from shendu.devices import device
from shendu.legacy import (BoolTensor, ByteTensor, DoubleTensor, FloatTensor, HalfTensor,
                           IntTensor, LongTensor)
from shendu.threads import get_num_threads, set_num_threads

bool = bool_  # noqa: A001 - torch's spelling: shendu.bool
long = int64
double = float64
float = float32  # noqa: A001
int = int32  # noqa: A001

__version__ = "0.1.0"

from shendu import nn, optim  # noqa: E402 - they build on the names above
from shendu.serialization import load, save  # noqa: E402 - checkpoint I/O, no pickle
from shendu import accelerator, backends, cuda, utils  # noqa: E402 - torch's module names
