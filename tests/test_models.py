"""Model zoo: LeNet-5 and MLP against torch twins, the registry, and ``summary`` checked with
the N2.3 convolution arithmetic."""
import io

import numpy as np
import pytest
import torch

import shendu
from oracle import assert_close
from shendu import nn
from shendu.models import (MLP, LeNet5, LeNet5Config, MLPConfig, get_model, list_models,
                           print_summary, summary)


class TorchLeNet(torch.nn.Module):
    """The classic layout written in torch, with the same submodule names as ours."""

    def __init__(self, act, pool):
        super().__init__()
        tnn = torch.nn
        self.features = tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), act(), pool(2),
                                       tnn.Conv2d(6, 16, 5), act(), pool(2))
        self.classifier = tnn.Sequential(tnn.Flatten(), tnn.Linear(400, 120), act(),
                                         tnn.Linear(120, 84), act(), tnn.Linear(84, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def copy_into_torch(ours, theirs):
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                            for k, v in ours.state_dict().items()})


@pytest.mark.parametrize("activation, pool", [("tanh", "max"), ("relu", "avg")])
def test_lenet5_equals_the_torch_layout(activation, pool):
    shendu.manual_seed(0)
    model = LeNet5(activation=activation, pool=pool).double()
    twin = TorchLeNet({"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[activation],
                      {"max": torch.nn.MaxPool2d, "avg": torch.nn.AvgPool2d}[pool]).double()
    copy_into_torch(model, twin)  # succeeds only if every key and shape matches
    x = np.random.default_rng(0).normal(size=(3, 1, 28, 28))
    assert_close(model(shendu.tensor(x)).detach().numpy(),
                 twin(torch.tensor(x)).detach().numpy())
    assert sum(p.numel() for p in model.parameters()) == 61_706


def conv_out(n0, conv):
    (f, _), (p, _), (s, _) = conv.kernel_size, conv.padding, conv.stride
    return (n0 + 2 * p - f) // s + 1


def test_summary_of_lenet5_follows_the_n23_formulas():
    model = LeNet5()
    result = summary(model, (2, 1, 28, 28))
    rows = [(r.name, r.type, r.output_shape, r.params) for r in result.layers]
    assert rows == [
        ("features.0", "Conv2d", (2, 6, 28, 28), 156),
        ("features.1", "Tanh", (2, 6, 28, 28), 0),
        ("features.2", "MaxPool2d", (2, 6, 14, 14), 0),
        ("features.3", "Conv2d", (2, 16, 10, 10), 2416),
        ("features.4", "Tanh", (2, 16, 10, 10), 0),
        ("features.5", "MaxPool2d", (2, 16, 5, 5), 0),
        ("classifier.0", "Flatten", (2, 400), 0),
        ("classifier.1", "Linear", (2, 120), 48_120),
        ("classifier.2", "Tanh", (2, 120), 0),
        ("classifier.3", "Linear", (2, 84), 10_164),
        ("classifier.4", "Tanh", (2, 84), 0),
        ("classifier.5", "Linear", (2, 10), 850),
    ]
    # the same numbers from the notes' formulas: N1 = (N0 + 2P - F)/S + 1, F*F*A0*B + B
    n0, a0 = 28, 1
    for row in result.layers:
        layer = model.get_submodule(row.name)
        if isinstance(layer, nn.Conv2d):
            f, b = layer.kernel_size[0], layer.out_channels
            n1 = conv_out(n0, layer)
            assert row.output_shape == (2, b, n1, n1)
            assert row.params == f * f * a0 * b + b
            n0, a0 = n1, b
        elif isinstance(layer, nn.MaxPool2d):
            n0 //= 2
            assert row.output_shape == (2, a0, n0, n0) and row.params == 0
    assert result.total_params == result.trainable_params == 61_706
    assert model.training  # mode restored
    assert not model.features[0]._forward_hooks  # hooks removed


def test_print_summary_table_and_frozen_params():
    model = MLP((4, 3, 2))
    model.layers[1].weight.requires_grad_(False)
    out = io.StringIO()
    result = print_summary(model, (5, 4), file=out)
    text = out.getvalue()
    assert "Total params: 23" in text and "Trainable params: 11" in text
    assert "Non-trainable params: 12" in text and "(5, 3)" in text
    assert [r.type for r in result.layers] == ["Flatten", "Linear", "ReLU", "Linear"]


def test_mlp_equals_torch_and_places_dropout_after_hidden_activations():
    shendu.manual_seed(0)
    model = MLP((12, 7, 5, 3), activation="tanh").double()
    twin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 7), torch.nn.Tanh(),
                               torch.nn.Linear(7, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    twin.double().load_state_dict({k.removeprefix("layers."): torch.from_numpy(v.numpy().copy())
                                   for k, v in model.state_dict().items()})
    x = np.random.default_rng(1).normal(size=(4, 3, 4))
    assert_close(model(shendu.tensor(x)).detach().numpy(),
                 twin(torch.tensor(x)).detach().numpy())
    dropped = MLP((12, 7, 5, 3), dropout=0.5)
    assert [type(m).__name__ for m in dropped.layers] == [
        "Flatten", "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    with pytest.raises(ValueError, match="12 features"):
        model(shendu.zeros(4, 13, dtype=shendu.float64))
    with pytest.raises(ValueError, match="at least two"):
        MLP((5,))


def test_registry_builds_from_configs():
    assert {"lenet5", "mlp"} <= set(list_models())
    model = get_model("lenet5", activation="relu", pool="avg", num_classes=5)
    assert isinstance(model.features[1], nn.ReLU) and isinstance(model.features[2], nn.AvgPool2d)
    assert model.classifier[-1].out_features == 5
    assert get_model("mlp").sizes == MLPConfig().sizes
    assert LeNet5Config().activation == "tanh"
    with pytest.raises(ValueError, match="available"):
        get_model("resnet9000")
    with pytest.raises(TypeError, match="unknown config field"):
        get_model("lenet5", width=3)
    with pytest.raises(ValueError, match="unknown activation"):
        LeNet5(activation="swish")


def test_lenet5_rejects_wrong_input_by_name():
    with pytest.raises(ValueError, match=r"LeNet5.*expected input \(N, 1, 28, 28\)"):
        LeNet5()(shendu.zeros(2, 28, 28, 1))
    assert LeNet5(input_size=32)(shendu.zeros(1, 1, 32, 32)).shape == (1, 10)
