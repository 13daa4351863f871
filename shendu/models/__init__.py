"""The model zoo: classic networks with dataclass configs, a name registry and ``summary``.

``get_model('lenet5', activation='relu')`` builds a model from its registered config;
``list_models()`` names what is available. Concept: N2.3.2.
"""
from __future__ import annotations

from dataclasses import asdict, fields

from shendu.models.lenet import LeNet5, LeNet5Config
from shendu.models.mlp import MLP, MLPConfig
from shendu.models.summary import LayerInfo, ModelSummary, print_summary, summary

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

__all__ = ["LeNet5", "LeNet5Config", "MLP", "MLPConfig", "LayerInfo", "ModelSummary",
           "get_config", "get_model", "list_models", "print_summary", "register_model",
           "summary"]
