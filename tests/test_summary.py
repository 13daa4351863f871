"""``shendu.models.summary``: golden tables (LeNet-5, ResNet-20), MACs and receptive fields from
the N2.3 formulas, and the N2.3/N2.3.2 claims (three 3x3 convs vs one 7x7; bottleneck vs basic
block). ``python tests/test_summary.py`` rewrites the golden tables after a deliberate change."""
import io
import math
import os

import pytest

import shendu
from shendu import nn
from shendu.models import LeNet5, print_summary, resnet18, resnet20, summary
from shendu.models.resnet import BasicBlock, Bottleneck
from shendu.models.vgg import cfgs, make_layers

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "summaries")
TABLES = {"lenet5": (LeNet5, (1, 1, 28, 28)), "resnet20": (resnet20, (1, 3, 32, 32))}


def table(name):
    build, shape = TABLES[name]
    out = io.StringIO()
    print_summary(build(), shape, file=out)
    return out.getvalue()


@pytest.mark.parametrize("name", sorted(TABLES))
def test_summary_table_matches_golden_file(name):
    with open(os.path.join(GOLDEN, f"{name}.txt")) as f:
        assert table(name) == f.read()


def receptive_field(layers):
    """r and j along a chain of (kernel, stride) pairs: r += (k - 1) j, j *= s."""
    r, j = 1, 1
    for k, s in layers:
        r, j = r + (k - 1) * j, j * s
    return r


def test_macs_follow_the_conv_and_linear_formulas():
    model = resnet20()
    result = summary(model, (3, 3, 32, 32))
    for row in result.layers:
        layer = model.get_submodule(row.name)
        if isinstance(layer, nn.Conv2d):
            _, c_out, h, w = row.output_shape
            kh, kw = layer.kernel_size
            assert row.macs == c_out * h * w * (layer.in_channels // layer.groups) * kh * kw
        elif isinstance(layer, nn.Linear):
            assert row.macs == layer.in_features * layer.out_features
        else:
            assert row.macs == 0, row.name
    # per sample (the batch of 3 divides out); the usual "40.55M" of ResNet-20
    assert result.total_macs == sum(r.macs for r in result.layers) == 40_551_040


def test_receptive_fields_of_classic_chains():
    # LeNet-5: conv5, pool2, conv5, pool2, then the flatten sees the 5x5 map (k = 5, j = 4)
    lenet = summary(LeNet5(), (1, 1, 28, 28)).layers
    assert [r.receptive_field[0] for r in lenet if r.type in ("Conv2d", "MaxPool2d")] == \
        [5, 6, 14, 16]
    assert lenet[-1].receptive_field == (32, 32) and lenet[-1].jump == (4, 4)
    # VGG-16's features: 212 pixels (13 convs 3x3/1, 5 pools 2x2/2)
    cfg = [(2, 2) if v == "M" else (3, 1) for v in cfgs["D"]]
    vgg = summary(make_layers(cfgs["D"]), (1, 3, 32, 32)).layers
    assert vgg[-1].receptive_field == (212, 212) == (receptive_field(cfg),) * 2
    # ResNet-18's layer4 (longest path through the residual blocks): 435 pixels
    rows = summary(resnet18(), (1, 3, 64, 64)).layers
    last_block = [r for r in rows if r.name.startswith("layer4.1.")][-1]
    path = [(7, 2), (3, 2)] + [(3, 1)] * 4 + [(3, 2)] + [(3, 1)] * 3 \
        + [(3, 2)] + [(3, 1)] * 3 + [(3, 2)] + [(3, 1)] * 3
    assert last_block.receptive_field == (receptive_field(path),) * 2 == (435, 435)
    shortcut = next(r for r in rows if r.name == "layer2.0.downsample.0")
    assert shortcut.receptive_field == (43, 43)  # layer1's output; a 1x1 adds nothing
    assert shortcut.jump == (8, 8)


class TwoBranch(nn.Module):
    """A 3x3 branch and a 1x1 branch concatenated, then a 1x1 conv."""

    def __init__(self):
        super().__init__()
        self.wide = nn.Conv2d(2, 2, 3, padding=1)
        self.narrow = nn.Conv2d(2, 2, 1)
        self.mix = nn.Conv2d(4, 3, 1)

    def forward(self, x):
        return self.mix(shendu.cat([self.narrow(x), self.wide(x)], 1))


def test_branches_take_the_largest_field_and_unknown_rules_show_a_dash():
    rows = {r.name: r for r in summary(TwoBranch(), (1, 2, 9, 9)).layers}
    assert rows["narrow"].receptive_field == (1, 1) and rows["wide"].receptive_field == (3, 3)
    assert rows["mix"].receptive_field == (3, 3)
    up = nn.Sequential(nn.ConvTranspose2d(4, 2, 3, stride=2), nn.ReLU())
    result = summary(up, (2, 4, 5, 5))
    assert result.layers[0].macs == 4 * 5 * 5 * 2 * 3 * 3
    assert result.layers[0].receptive_field is None and result.layers[1].receptive_field is None
    assert str(result).splitlines()[5].endswith("  -")  # the ReLU row


def test_three_stacked_3x3_convs_see_7x7_with_fewer_weights():
    """N2.3.2 (VGG): same 7x7 field, 3 * 9 C^2 = 27 C^2 weights against 49 C^2."""
    c = 16
    stack = nn.Sequential(*[nn.Conv2d(c, c, 3, padding=1, bias=False) for _ in range(3)])
    one = nn.Conv2d(c, c, 7, padding=3, bias=False)
    s3, s7 = summary(stack, (1, c, 20, 20)), summary(one, (1, c, 20, 20))
    assert s3.layers[-1].receptive_field == s7.layers[-1].receptive_field == (7, 7)
    assert [r.receptive_field[0] for r in s3.layers] == [3, 5, 7]
    assert s3.total_params == 27 * c * c and s7.total_params == 49 * c * c
    assert s3.total_macs == 27 * c * c * 400 and s7.total_macs == 49 * c * c * 400


def test_bottleneck_block_costs_far_less_than_a_basic_block_of_the_same_width():
    """N2.3 (1x1 convs as a bottleneck): 256 -> 64 -> 64 -> 256 against two 3x3 convs at 256."""
    basic = summary(BasicBlock(256, 256), (1, 256, 8, 8))
    bottle = summary(Bottleneck(256, 64), (1, 256, 8, 8))
    assert basic.layers[-1].output_shape == bottle.layers[-1].output_shape == (1, 256, 8, 8)
    convs = 256 * 64 + 9 * 64 * 64 + 64 * 256
    assert bottle.total_params == convs + 2 * (64 + 64 + 256)
    assert basic.total_params == 2 * 9 * 256 * 256 + 2 * 2 * 256
    assert bottle.total_macs == convs * 64 and basic.total_macs == 2 * 9 * 256 * 256 * 64
    assert basic.total_params > 16 * bottle.total_params
    assert basic.total_macs > 16 * bottle.total_macs
    assert math.isclose(basic.total_macs / bottle.total_macs, 2 * 9 * 256 / (convs / 256))


def write_golden():
    os.makedirs(GOLDEN, exist_ok=True)
    for name in TABLES:
        with open(os.path.join(GOLDEN, f"{name}.txt"), "w") as f:
            f.write(table(name))


if __name__ == "__main__":
    write_golden()
