"""torch.nn's names: Module and containers, Parameter, layers, ``functional``, ``init``,
``utils``."""
from shendu.nn import init, utils
from shendu.nn.module import Module, ModuleDict, ModuleList, Parameter, Sequential
