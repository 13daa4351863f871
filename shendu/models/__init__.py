"""The model zoo: classic networks with dataclass configs, a name registry and ``summary``.

``get_model('lenet5', activation='relu')`` builds a model from its registered config;
``list_models()`` names what is available. Concept: N2.3.2.
"""
from __future__ import annotations

from dataclasses import asdict, fields

from shendu.models.lenet import LeNet5, LeNet5Config
from shendu.models.mlp import MLP, MLPConfig
from shendu.models.summary import LayerInfo, ModelSummary, print_summary, summary

# The classic CNNs (N2.3.2): torchvision's ImageNet layouts, small-input variants, CIFAR ResNets.
from shendu.models import alexnet as _alexnet
from shendu.models import googlenet as _googlenet
from shendu.models import resnet as _resnet
from shendu.models import vgg as _vgg
from shendu.models.alexnet import AlexNet, alexnet
from shendu.models.googlenet import GoogLeNet, googlenet
from shendu.models.resnet import (CifarResNet, ResNet, resnet18, resnet20, resnet32, resnet34,
                                  resnet44, resnet50, resnet56, resnet101, resnet110, resnet152)
from shendu.models.vgg import (VGG, vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19,
                               vgg19_bn)

_REGISTRY = {}


def register_model(name, cls, config_cls):
    """Make ``cls`` buildable as ``get_model(name, **config)`` with ``config_cls`` defaults."""
    if name in _REGISTRY:
        raise ValueError(f"register_model: a model named {name!r} is already registered")
    _REGISTRY[name] = (cls, config_cls)


def list_models():
    """Sorted names accepted by ``get_model``."""
    return sorted(_REGISTRY)


def get_config(name, **config):
    """The dataclass config of model ``name`` with the given fields overridden."""
    if name not in _REGISTRY:
        raise ValueError(f"get_model: unknown model {name!r}; available: {list_models()}")
    config_cls = _REGISTRY[name][1]
    allowed = {f.name for f in fields(config_cls)}
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise TypeError(f"get_model({name!r}): unknown config field(s) {unknown}; "
                        f"{config_cls.__name__} has {sorted(allowed)}")
    return config_cls(**config)


def get_model(name, **config):
    """Build the registered model ``name``; keyword arguments override its config."""
    cls = _REGISTRY[name][0] if name in _REGISTRY else None
    return cls(**asdict(get_config(name, **config)))


register_model("mlp", MLP, MLPConfig)
register_model("lenet5", LeNet5, LeNet5Config)
register_model("alexnet", _alexnet.alexnet, _alexnet.AlexNetConfig)
register_model("googlenet", _googlenet.googlenet, _googlenet.GoogLeNetConfig)
for _name in ("vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"):
    register_model(_name, getattr(_vgg, _name), _vgg.VGGConfig)
for _name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
    register_model(_name, getattr(_resnet, _name), _resnet.ResNetConfig)
register_model("resnet18_small", _resnet.resnet18, _resnet.SmallResNetConfig)
register_model("vgg11_small", _vgg.vgg11_bn, _vgg.SmallVGGConfig)
register_model("vgg16_small", _vgg.vgg16_bn, _vgg.SmallVGGConfig)
for _name in ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110"):
    register_model(_name, getattr(_resnet, _name), _resnet.CifarResNetConfig)
del _name

__all__ = ["LeNet5", "LeNet5Config", "MLP", "MLPConfig", "LayerInfo", "ModelSummary",
           "get_config", "get_model", "list_models", "print_summary", "register_model",
           "summary"]
__all__ += ["VGG", "AlexNet", "CifarResNet", "GoogLeNet", "ResNet", "alexnet", "googlenet",
            "resnet18", "resnet20", "resnet32", "resnet34", "resnet44", "resnet50", "resnet56",
            "resnet101", "resnet110", "resnet152", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn",
            "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]

# Language models (N4, N5.3): nanoGPT's decoder-only Transformer and the char-level RNNs.
from shendu.models.char_rnn import CharRNN, CharRNNConfig  # noqa: E402
from shendu.models.gpt import GPT, GPTConfig  # noqa: E402


def _build_gpt(**config):
    """``GPT(GPTConfig(**config))``: the registry builds models from keyword arguments (not
    named ``gpt``, which would hide the submodule ``shendu.models.gpt``)."""
    return GPT(GPTConfig(**config))


register_model("gpt", _build_gpt, GPTConfig)
register_model("char_rnn", CharRNN, CharRNNConfig)
__all__ += ["CharRNN", "CharRNNConfig", "GPT", "GPTConfig"]
