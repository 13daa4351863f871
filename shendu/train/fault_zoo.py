"""The fault zoo: small training runs, each with one known injected fault or known healthy.

``CASES`` maps a name to a ``Case``; ``run_case(name, repair=False)`` trains it (a few
seconds on 2 CPU cores: 2,000 MNIST / Fashion-MNIST images, or synthetic data when the
datasets are absent) with a ``Doctor`` and returns a ``CaseResult`` with the diagnosis and
the final validation metrics. ``benchmarks/doctor.py`` runs them all; the claims lab runs
``run_case(name)`` against the same run with one remedy (``remedied``) to show whether each
remedy of Table 3 fixes its fault. Concept: N3.1.1, N3.1.2, N3.2.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import shendu
from shendu import nn, optim
from shendu.data import DataLoader, TensorDataset

MNIST_DIR = "/work/shared/data/mnist"
_DATA = {}


class Rows(nn.Module):
    """(N, 1, 28, 28) images read row by row by a recurrent layer; the last state classifies.

    Shape: input (N, 1, 28, 28) -> logits (N, 10).
    """

    def __init__(self, cell="rnn", hidden=32):
        super().__init__()
        self.rnn = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell](28, hidden,
                                                                         batch_first=True)
        self.head = nn.Linear(hidden, 10)

    def forward(self, x):
        out, _ = self.rnn(x.reshape(x.shape[0], 28, 28))
        return self.head(out[:, -1])


def mlp(widths, act=nn.ReLU, batch_norm=False):
    layers = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            if batch_norm:
                layers.append(nn.BatchNorm1d(b))
            layers.append(act())
    return nn.Sequential(*layers)


def cnn(act=nn.ReLU, channels=(8, 16), batch_norm=False):
    """A small LeNet-like net on 14x14 inputs (the images are pooled 2x first for speed)."""
    c1, c2 = channels
    extra = (lambda c: [nn.BatchNorm2d(c)]) if batch_norm else (lambda c: [])
    return nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(1, c1, 3, padding=1), *extra(c1), act(),
                         nn.MaxPool2d(2), nn.Conv2d(c1, c2, 3, padding=1), *extra(c2), act(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(c2 * 9, 32), act(),
                         nn.Linear(32, 10))


def _images(dataset, n_train, n_val):
    """(x_train, y_train, x_val, y_val) as normalised float32 tensors, from the real set if it
    is on disk, else the Fashion-MNIST subset shipped with shendu."""
    key = (dataset, n_train, n_val)
    if key not in _DATA:
        from shendu.data import MNIST, FashionMNIST
        source = MNIST(MNIST_DIR, train=True) if dataset == "mnist" else \
            FashionMNIST(None, True, allow_subset=True)
        x = source.data.float() / 255.0
        x = ((x - x.mean()) / x.std()).reshape(x.shape[0], 1, 28, 28)
        y = source.targets
        g = shendu.Generator(seed=123)
        order = shendu.randperm(x.shape[0], generator=g)[:n_train + n_val]
        x, y = x[order], y[order]
        _DATA[key] = (x[:n_train], y[:n_train], x[n_train:], y[n_train:])
    return _DATA[key]


@dataclass
class Case:
    """One zoo run: how to build it and what the doctor should find.

    ``fault`` is the code the doctor must report ('' for a healthy run); ``build(seed)``
    returns (model, optimizer); ``inject`` optionally alters the model or data.
    """

    name: str
    family: str
    fault: str
    build: object
    dataset: str = "mnist"
    n_train: int = 2000
    epochs: int = 4
    batch_size: int = 50
    nan_inputs: bool = False
    note: str = ""


@dataclass
class CaseResult:
    name: str
    fault: str
    codes: set
    val_accuracy: float
    val_loss: float
    seconds: float
    steps: int
    diagnosis: object = None
    repairs: list = field(default_factory=list)

    @property
    def detected(self):
        return self.fault in self.codes if self.fault else not self.codes


def _init(model, kind, std=None, bias=None):
    """Re-initialise the weight layers: 'gauss' with ``std`` (no fan scaling) or keep the
    default; biases set to ``bias`` when given."""
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if isinstance(module, (nn.Linear, nn.Conv2d)) and weight is not None:
            if kind == "gauss":
                nn.init.normal_(weight, 0.0, std)
            if bias is not None and module.bias is not None:
                nn.init.constant_(module.bias, bias)
    return model


def _sgd(lr, momentum=0.9):
    return lambda model: optim.SGD(model.parameters(), lr=lr, momentum=momentum)


def _adam(lr=1e-3):
    return lambda model: optim.Adam(model.parameters(), lr=lr)


def _case(name, family, fault, make_model, make_opt, **kw):
    def build():
        model = make_model()
        return model, make_opt(model)
    return Case(name, family, fault, build, **kw)


def _deep(act, depth=8, width=64):
    return [784] + [width] * depth + [10]


def _cases():
    relu, tanh, sig = nn.ReLU, nn.Tanh, nn.Sigmoid
    c = [
        # --- healthy: every family --------------------------------------------------------
        _case("mlp_relu", "mlp", "", lambda: mlp([784, 128, 64, 10]), _sgd(0.05)),
        _case("mlp_relu_fashion", "mlp", "", lambda: mlp([784, 128, 64, 10]), _adam(),
              dataset="fashion"),
        _case("mlp_tanh", "mlp", "", lambda: mlp([784, 128, 10], tanh), _sgd(0.05)),
        _case("mlp_sigmoid_shallow", "mlp", "", lambda: mlp([784, 128, 10], sig), _adam()),
        _case("mlp_deep_bn", "mlp", "", lambda: mlp(_deep(relu, 6), relu, True), _adam()),
        _case("cnn_relu", "cnn", "", lambda: cnn(), _adam(2e-3)),
        _case("cnn_tanh", "cnn", "", lambda: cnn(tanh), _adam(2e-3), dataset="fashion"),
        _case("cnn_bn", "cnn", "", lambda: cnn(batch_norm=True), _sgd(0.05)),
        _case("rnn_tanh", "rnn", "", lambda: Rows("rnn", 64), _adam(3e-3), epochs=8),
        _case("gru", "rnn", "", lambda: Rows("gru"), _adam(3e-3)),
        _case("lstm", "rnn", "", lambda: Rows("lstm"), _adam(3e-3)),
        # --- Table 3: vanishing -------------------------------------------------------------
        _case("mlp_deep_sigmoid_small_init", "mlp", "vanishing_gradients",
              lambda: _init(mlp(_deep(sig), sig), "gauss", 0.01), _sgd(0.05)),
        _case("mlp_deep_sigmoid_default_init", "mlp", "vanishing_gradients",
              lambda: mlp(_deep(sig, 10), sig), _sgd(0.05), dataset="fashion"),
        _case("mlp_deep_tanh_small_init", "mlp", "vanishing_gradients",
              lambda: _init(mlp(_deep(tanh), tanh), "gauss", 0.01), _sgd(0.05)),
        _case("cnn_sigmoid_small_init", "cnn", "vanishing_gradients",
              lambda: _init(cnn(sig), "gauss", 0.01), _sgd(0.05)),
        # --- Table 3: exploding -------------------------------------------------------------
        _case("mlp_relu_large_gauss_init", "mlp", "exploding_gradients",
              lambda: _init(mlp(_deep(relu, 4, 256), relu), "gauss", 1.0), _sgd(0.01)),
        _case("cnn_relu_large_gauss_init", "cnn", "exploding_gradients",
              lambda: _init(cnn(), "gauss", 1.0), _sgd(0.01)),
        _case("mlp_relu_high_lr", "mlp", "exploding_gradients",
              lambda: mlp([784, 128, 64, 10]), _sgd(3.0)),
        _case("cnn_high_lr", "cnn", "exploding_gradients", lambda: cnn(), _sgd(2.0)),
        _case("rnn_high_lr", "rnn", "exploding_gradients", lambda: Rows("rnn"), _sgd(5.0),
              epochs=6),
        # --- activations -------------------------------------------------------------------
        _case("mlp_tanh_large_gauss_init", "mlp", "saturated_activations",
              lambda: _init(mlp([784, 256, 256, 10], tanh), "gauss", 1.0), _sgd(0.01)),
        _case("mlp_sigmoid_large_gauss_init", "mlp", "saturated_activations",
              lambda: _init(mlp([784, 256, 256, 10], sig), "gauss", 1.0), _sgd(0.01),
              dataset="fashion"),
        _case("mlp_relu_negative_bias", "mlp", "dead_relu",
              lambda: _init(mlp([784, 128, 64, 10]), "default", bias=-8.0), _sgd(0.05)),
        _case("cnn_relu_negative_bias", "cnn", "dead_relu",
              lambda: _init(cnn(), "default", bias=-8.0), _sgd(0.05)),
        # --- learning rate ------------------------------------------------------------------
        _case("mlp_tiny_lr", "mlp", "slow_convergence", lambda: mlp([784, 128, 64, 10]),
              _sgd(1e-5), epochs=6),
        _case("cnn_tiny_lr", "cnn", "slow_convergence", lambda: cnn(), _sgd(1e-5),
              dataset="fashion", epochs=6),
        _case("gru_tiny_lr", "rnn", "slow_convergence", lambda: Rows("gru"), _sgd(1e-5),
              epochs=6),
        _case("mlp_lr_too_high_for_momentum", "mlp", "exploding_gradients",
              lambda: mlp([784, 128, 64, 10]), _sgd(0.2)),
        _case("mlp_oscillating_lr", "mlp", "loss_oscillation",
              lambda: mlp([784, 128, 64, 10]), _sgd(0.05, momentum=0.99)),
        # --- Table 2 ------------------------------------------------------------------------
        _case("mlp_tiny_data_big_model", "mlp", "overfitting",
              lambda: mlp([784, 512, 512, 10]), _adam(), n_train=100, epochs=40,
              batch_size=25),
        _case("cnn_tiny_data", "cnn", "overfitting", lambda: cnn(channels=(16, 32)),
              _adam(3e-3), n_train=100, epochs=40, batch_size=25, dataset="fashion"),
        _case("mlp_too_small", "mlp", "underfitting", lambda: mlp([784, 1, 10]), _adam()),
        _case("cnn_too_small", "cnn", "underfitting", lambda: cnn(channels=(1, 1)),
              _adam(), dataset="fashion"),
        # --- data ---------------------------------------------------------------------------
        _case("mlp_nan_inputs", "mlp", "nonfinite", lambda: mlp([784, 128, 64, 10]), _sgd(0.05),
              nan_inputs=True),
        _case("cnn_nan_inputs", "cnn", "nonfinite", lambda: cnn(), _adam(), nan_inputs=True),
        _case("lstm_nan_inputs", "rnn", "nonfinite", lambda: Rows("lstm"), _adam(),
              nan_inputs=True),
    ]
    return {case.name: case for case in c}


CASES = _cases()


# --- one remedy by hand (Table 3), for the claims lab's N3.1.2 experiment ------------------
REMEDIES = ("relu", "init", "batch_norm", "clip", "adam")


def _with_batch_norm(model):
    """``model`` (an ``nn.Sequential`` as ``mlp`` builds it) with a BatchNorm1d/2d inserted
    after every Linear/Conv2d that feeds an activation (the layout of ``batch_norm=True``);
    the layers keep their (possibly faulty) weights."""
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"remedied: batch_norm needs an nn.Sequential model (mlp / cnn), got "
                         f"{type(model).__name__}")
    acts = (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.ELU)
    mods = list(model)
    layers = []
    for i, m in enumerate(mods):
        layers.append(m)
        if i + 1 < len(mods) and isinstance(mods[i + 1], acts):
            if isinstance(m, nn.Linear):
                layers.append(nn.BatchNorm1d(m.out_features))
            elif isinstance(m, nn.Conv2d):
                layers.append(nn.BatchNorm2d(m.out_channels))
    return nn.Sequential(*layers)


def remedied(name, remedy, build=None):
    """``(build, grad_clip_norm)`` for ``run_case(name, build=..., grad_clip_norm=...)``: the
    case with exactly one remedy of Table 3 applied, everything else (data, seed, epochs,
    optimizer and its hyper-parameters) unchanged.

    ``remedy``: 'relu' (Sigmoid/Tanh -> ReLU with the matching kaiming_uniform_ init, as the
    doctor's ``relu`` repair does), 'init' (kaiming_uniform_ / xavier_uniform_ matching the
    activation, zero biases), 'batch_norm' (a BatchNorm after every hidden Linear/Conv2d),
    'clip' (gradient norm clipped at 1.0), 'adam' (the optimizer replaced by Adam, lr 1e-3).
    ``build`` replaces the case's own builder (a variant of the case). Concept: N3.1.2.
    """
    from shendu.train.repair import _swap, reinit
    if name not in CASES:
        raise ValueError(f"remedied: unknown case {name!r}; known: {sorted(CASES)}")
    if remedy not in REMEDIES:
        raise ValueError(f"remedied: unknown remedy {remedy!r}; known: {REMEDIES}")
    base = build or CASES[name].build
    if remedy == "clip":
        return base, 1.0

    def fixed():
        model, optimizer = base()
        if remedy == "relu":
            if not _swap(model, lambda m: isinstance(m, (nn.Sigmoid, nn.Tanh)),
                         lambda m: nn.ReLU()):
                raise ValueError(f"remedied: case {name!r} has no Sigmoid/Tanh layer to "
                                 "replace by ReLU")
            reinit(model, "relu")
        elif remedy == "init":
            reinit(model)
        elif remedy == "batch_norm":
            model = _with_batch_norm(model)
            # a fresh optimizer of the same kind and settings, now over the BN scales too
            optimizer = type(optimizer)(model.parameters(), **optimizer.defaults)
        elif remedy == "adam":
            optimizer = optim.Adam(model.parameters(), lr=1e-3)
        return model, optimizer
    return fixed, None


def loaders(case, seed=0):
    """(train loader, val loader) for ``case``; NaN-input cases get a few NaN pixels in 1%
    of the training images (a corrupted file)."""
    x, y, xv, yv = _images(case.dataset, case.n_train, 1000)
    if case.nan_inputs:
        x = x.clone()
        data = x.data
        data[::100, 0, 5, 5] = math.nan
    g = shendu.Generator(seed=seed + 1)
    return (DataLoader(TensorDataset(x, y), batch_size=case.batch_size, shuffle=True,
                       generator=g),
            DataLoader(TensorDataset(xv, yv), batch_size=500))


def run_case(name, repair=False, seed=0, doctor=True, epochs=None, log=None, build=None,
             grad_clip_norm=None, **doctor_args):
    """Train zoo case ``name`` with a Doctor (or none with doctor=False); a ``CaseResult``.

    ``build() -> (model, optimizer)`` replaces the case's own builder and ``grad_clip_norm``
    clips the gradient norm, so a variant of the case with one remedy applied by hand (the
    claims lab's N3.1.2 experiment) trains on the same data, seed, epochs and batches.
    """
    from shendu.train import Doctor, Trainer
    if name not in CASES:
        raise ValueError(f"run_case: unknown case {name!r}; known: {sorted(CASES)}")
    if build is not None and not callable(build):
        raise TypeError(f"run_case: build must be a callable () -> (model, optimizer), got "
                        f"{type(build).__name__}")
    case = CASES[name]
    shendu.manual_seed(seed)
    model, optimizer = (build or case.build)()
    train_loader, val_loader = loaders(case, seed)
    callbacks = []
    doc = None
    if doctor:
        doc = Doctor(repair=repair, log=log or (lambda *a: None), **doctor_args)
        callbacks.append(doc)
    trainer = Trainer(model, optimizer, nn.CrossEntropyLoss(), callbacks=callbacks,
                      grad_clip_norm=grad_clip_norm)
    start = time.perf_counter()
    history = trainer.fit(train_loader, val_loader, epochs=epochs or case.epochs)
    seconds = time.perf_counter() - start
    final = trainer.evaluate(val_loader)
    diagnosis = doc.diagnosis() if doc is not None else None
    steps = len(history.epoch) * len(train_loader)
    return CaseResult(name, case.fault, set() if diagnosis is None else diagnosis.codes,
                      final["accuracy"], final["loss"], seconds, steps, diagnosis,
                      [] if diagnosis is None else diagnosis.repairs)
