"""The classic CNNs (N2.3.2) against torchvision: parameter counts, state_dict keys in order
and shapes (golden files written from tests/golden/torchvision_twins.py, a plain-torch
transcription of torchvision's sources), init, and forward/backward parity with the torch twins
after loading our state_dict (what a user with torchvision weights does)."""
import math
import os

import numpy as np
import pytest
import torch

import shendu
from golden import torchvision_twins as tv
from oracle import assert_close, check_layer
from shendu import cli, nn
from shendu.models import (CifarResNet, GoogLeNet, alexnet, get_config, get_model, googlenet,
                           list_models, resnet18, resnet20, resnet50, vgg11_bn, vgg16)
from shendu.models import resnet as zoo_resnet
from shendu.models.vgg import cfgs, make_layers

# torchvision's documented parameter counts (weights meta "num_params"); googlenet_aux adds the
# two auxiliary heads (2 x 3,189,992).
PARAMS = {"alexnet": 61_100_840, "googlenet": 6_624_904, "googlenet_aux": 13_004_888,
          "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
          "resnet101": 44_549_160, "resnet152": 60_192_808, "vgg11": 132_863_336,
          "vgg11_bn": 132_868_840, "vgg13": 133_047_848, "vgg13_bn": 133_053_736,
          "vgg16": 138_357_544, "vgg16_bn": 138_365_992, "vgg19": 143_667_240,
          "vgg19_bn": 143_678_248}
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def golden(name):
    """[(key, shape)] of torchvision's state_dict for ``name``, in order."""
    with open(os.path.join(tv.GOLDEN_DIR, f"{name}.txt")) as f:
        return [(key, eval(shape)) for key, shape in (line.split(" ", 1) for line in f)]


def layout(module, prefix=""):
    return [(prefix + k, tuple(v.shape)) for k, v in module.state_dict().items()]


def n_params(entries):
    return sum(math.prod(shape) for key, shape in entries if not key.endswith(BUFFERS))


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_golden_files_carry_torchvisions_parameter_counts(name):
    assert n_params(golden(name)) == PARAMS[name]


@pytest.mark.parametrize("name, build", [
    ("resnet18", resnet18), ("resnet34", zoo_resnet.resnet34), ("resnet50", resnet50),
    ("resnet101", zoo_resnet.resnet101), ("resnet152", zoo_resnet.resnet152),
    ("googlenet", lambda: googlenet(aux_logits=False)), ("googlenet_aux", googlenet),
    ("alexnet", alexnet), ("vgg16", vgg16)])
def test_state_dict_keys_order_shapes_and_count_equal_torchvision(name, build):
    model = build()
    assert layout(model) == golden(name)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]


@pytest.mark.parametrize("name", ["vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16_bn", "vgg19",
                                  "vgg19_bn"])
def test_vgg_family_features_and_classifier_equal_torchvision(name):
    # building all eight 133M-parameter VGGs takes ~30 s; the features are what differ, and
    # the classifier (identical in all) is checked on vgg16 above
    cfg = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}[name.removesuffix("_bn")]
    features = make_layers(cfgs[cfg], batch_norm=name.endswith("_bn"))
    classifier = [e for e in golden("vgg16") if e[0].startswith("classifier.")]
    assert layout(features, "features.") + classifier == golden(name)


def test_resnet18_equals_torchvision_forward_backward_and_buffers():
    shendu.manual_seed(0)
    # train mode: BN batch statistics, their backward and the running-stat updates (eval mode
    # is covered by the CIFAR ResNet and AlexNet below)
    check_layer(resnet18(), tv.ResNet(*tv.RESNET_LAYERS["resnet18"]), (2, 3, 48, 48),
                passes=1, modes=("train",))


def test_bottleneck_resnet_with_small_stem_equals_torch_twin():
    shendu.manual_seed(1)
    ours = zoo_resnet.ResNet(zoo_resnet.Bottleneck, [1, 1, 1, 1], num_classes=7,
                             small_input=True)
    twin = tv.ResNet(tv.Bottleneck, [1, 1, 1, 1], num_classes=7)
    twin.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, padding=1, bias=False)
    twin.maxpool = torch.nn.Identity()
    check_layer(ours, twin, (2, 3, 12, 12), passes=1, modes=("train",))


def test_alexnet_logits_equal_torchvision():
    # 61M parameters: float32 logits in eval mode only (the layers are covered in float64 by
    # the other nets)
    shendu.manual_seed(2)
    ours, twin = alexnet().eval(), tv.AlexNet().eval()
    twin.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(2).normal(size=(2, 3, 67, 67)).astype(np.float32)
    with torch.no_grad(), shendu.no_grad():
        logits, expected = ours(shendu.tensor(x)), twin(torch.from_numpy(x))
    scale = float(np.abs(expected.numpy()).max())
    assert logits.dtype == shendu.float32
    assert_close(logits, expected, rtol=1e-4, atol=1e-5 * scale)


def test_googlenet_with_aux_heads_and_transform_input_equals_torchvision():
    shendu.manual_seed(3)
    ours = googlenet(transform_input=True, dropout=0.0, dropout_aux=0.0)
    twin = tv.GoogLeNet(transform_input=True, dropout=0.0, dropout_aux=0.0)
    # train mode only (the aux heads run in training); eval is covered by the ResNets
    check_layer(ours, twin, (2, 3, 32, 32), passes=1, modes=("train",))
    out = ours.train()(shendu.zeros(2, 3, 32, 32))
    assert type(out).__name__ == "GoogLeNetOutputs" and len(out) == 3
    assert ours.eval()(shendu.zeros(1, 3, 32, 32)).shape == (1, 1000)


def test_small_vgg_equals_torch_twin():
    shendu.manual_seed(4)
    ours = vgg11_bn(num_classes=10, in_channels=1, small_input=True, width=0.25, dropout=0.0)
    cfg = [16, "M", 32, "M", 64, 64, "M", 128, 128, "M", 128, 128]  # cfg A / 4, last 'M' gone
    twin = tv.VGG(tv.make_layers(cfg, True, in_channels=1), 10, 0.0, pool=1, flat=128,
                  hidden=128)
    check_layer(ours, twin, (2, 1, 28, 28), passes=1)


def test_cifar_resnet20_option_a_equals_torch_twin():
    shendu.manual_seed(5)
    check_layer(resnet20(), tv.CifarResNet(20), (2, 3, 16, 16), passes=1)


def cifar_params(depth, shortcut):
    """Parameters of the paper's 6n+2 CIFAR net, counted by hand: 3x3 convs without bias,
    BN (2 per channel), option B adds conv1x1 + BN at the two widenings, fc 64 -> 10."""
    n, total, c_in = (depth - 2) // 6, 9 * 3 * 16 + 2 * 16, 16
    for c in (16, 32, 64):
        for i in range(n):
            total += 9 * (c_in if i == 0 else c) * c + 9 * c * c + 4 * c
        if shortcut == "B" and c != c_in:
            total += c_in * c + 2 * c
        c_in = c
    return total + 64 * 10 + 10


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_cifar_resnet_depths_and_counts(depth):
    model = get_model(f"resnet{depth}")
    count = sum(p.numel() for p in model.parameters())
    assert count == cifar_params(depth, "A")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) + 1 == depth  # + fc: 6n + 2 weighted layers
    if depth == 20:
        assert count == 269_722  # the paper's "0.27M"
        option_b = CifarResNet(20, shortcut="B")
        assert sum(p.numel() for p in option_b.parameters()) == cifar_params(20, "B")
        assert "layer2.0.downsample.0.weight" in option_b.state_dict()


def as_np(t):
    return t.detach().numpy()


def test_init_follows_torchvision():
    shendu.manual_seed(6)
    net = resnet18(zero_init_residual=True)
    w = as_np(net.layer3[0].conv1.weight)  # kaiming_normal_, fan_out = 256 * 9, gain sqrt(2)
    assert abs(w.std() / math.sqrt(2 / (256 * 9)) - 1) < 0.02 and abs(w.mean()) < 1e-3
    assert all(not np.any(as_np(b.bn2.weight)) for layer in (net.layer1, net.layer4)
               for b in layer)
    assert np.all(as_np(net.layer1[0].bn1.weight) == 1) and not np.any(as_np(net.bn1.bias))
    bottleneck = zoo_resnet.ResNet(zoo_resnet.Bottleneck, [1, 1, 1, 1], zero_init_residual=True)
    assert not np.any(as_np(bottleneck.layer2[0].bn3.weight))
    vgg = vgg11_bn(small_input=True, width=0.5)
    lin = as_np(vgg.classifier[0].weight)
    assert abs(lin.std() / 0.01 - 1) < 0.05 and not np.any(as_np(vgg.classifier[0].bias))
    assert not np.any(as_np(vgg.features[0].bias))
    w = as_np(GoogLeNet(aux_logits=False).inception4e.branch2[1].conv.weight)
    assert abs(w.std() / 0.01 - 1) < 0.02 and np.abs(w).max() < 0.06


@pytest.mark.parametrize("name", ["vgg11_small", "resnet20", "resnet56", "lenet5",
                                  "googlenet"])
def test_registered_models_train_on_grey_28x28_images_as_the_cli_builds_them(name):
    model = get_model(name, **cli.data_fields(name))
    x = shendu.randn(2, 1, 28, 28)
    out = model(x)
    assert out.shape == (2, 10) and out.dtype == shendu.float32
    nn.CrossEntropyLoss()(out, shendu.tensor([1, 2])).backward()
    assert all(p.grad is not None for p in model.parameters())
    if name != "lenet5":
        assert model.eval()(shendu.randn(1, 1, 32, 32)).shape == (1, 10)


def test_registry_lists_the_zoo_and_small_stems():
    expected = set(PARAMS) - {"googlenet_aux"} | {"resnet18_small", "vgg11_small",
                                                  "vgg16_small", "resnet20", "resnet32",
                                                  "resnet44", "resnet56", "resnet110"}
    assert expected <= set(list_models())
    small = get_model("resnet18_small", in_channels=1)
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
    assert isinstance(small.maxpool, nn.Identity)
    assert [k for k, _ in layout(small)] == [k for k, _ in golden("resnet18")]  # same keys
    assert get_config("googlenet").aux_logits is False  # plain logits for `shendu train`
    assert cli.data_fields("mlp") == {}
    assert cli.data_fields("resnet20") == {"in_channels": 1, "num_classes": 10}


def test_cli_trains_a_cifar_resnet_on_grey_images(tmp_path, capsys):
    args = ["train", "--model", "resnet20", "--subset", "--epochs", "1", "--limit-train", "32",
            "--batch-size", "32", "--val-size", "32", "--limit-test", "32",
            "--out", str(tmp_path)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "resnet20: 269,434 parameters" in out  # 1 input channel: 269,722 - 2 * 144
    assert "on 32 test images" in out


def test_bad_configurations_raise_by_name():
    with pytest.raises(ValueError, match=r"CifarResNet: depth must be 6n \+ 2.*got 21"):
        CifarResNet(21)
    with pytest.raises(ValueError, match="CifarResNet: shortcut must be 'A' or 'B'"):
        CifarResNet(20, shortcut="C")
    with pytest.raises(ValueError, match="GoogLeNet: transform_input needs in_channels=3"):
        GoogLeNet(transform_input=True, in_channels=1)
    with pytest.raises(ValueError, match="make_layers: width must be positive"):
        make_layers(cfgs["A"], width=0)
    with pytest.raises(ValueError, match="BasicBlock: only groups=1"):
        zoo_resnet.BasicBlock(64, 64, groups=2)
    with pytest.raises(ValueError, match=r"Conv2d\(3, 16.*expected input \(N, 3, H, W\)"):
        resnet20()(shendu.zeros(1, 1, 32, 32))
    with pytest.raises(TypeError, match="unknown config field"):
        get_model("resnet20", depth=8)
    assert torch.__version__  # the twins need torch; keeps the import honest
