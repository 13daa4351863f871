"""N2.3 / N2.3.2: convolution arithmetic and the cost of conv blocks, measured with
``shendu.models.summary`` (forward hooks on a real forward pass).

- conv formula: N1 = (N0 + 2P - F) // S + 1 and F*F*A0*B + B parameters, against random convs
  and every conv of LeNet-5 and AlexNet;
- three 3x3 convs vs one 7x7: same 7x7 receptive field, 27 C^2 vs 49 C^2 weights;
- bottleneck (1x1 256->64, 3x3 64, 1x1 64->256) vs the plain block of two 3x3 convs at width
  256: parameters and multiply-accumulates.
"""
from __future__ import annotations

import random

import shendu
from shendu import nn
from shendu.lab.common import _quiet, pyplot, save_figure, seed_list
from shendu.lab.result import ClaimResult, check_each, combine, summarize
from shendu.models.summary import summary

FORMULA_ID, STACK_ID, BOTTLENECK_ID = ("N2.3-conv-formula", "N2.3.2-three-3x3-vs-7x7",
                                       "N2.3-bottleneck-cheaper")


def _random_convs(seed, n):
    rng = random.Random(seed)
    for _ in range(n):
        f, p, s = rng.choice((1, 3, 5, 7)), rng.randint(0, 3), rng.randint(1, 3)
        n0 = rng.randint(f, 40)
        yield nn.Conv2d(rng.randint(1, 8), rng.randint(1, 8), f, stride=s, padding=p), n0


def _conv_inputs(model, shape):
    """(input width, module) of every Conv2d by dotted name, recorded by forward pre-hooks."""
    seen, handles = {}, []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_pre_hook(
                lambda mod, args, name=name: seen.__setitem__(name, (args[0].shape[-1], mod))))
    with shendu.no_grad():
        model.eval()(shendu.zeros(*shape))
    for h in handles:
        h.remove()
    return seen


def _formula_mismatches(seed, n_random, quick):
    """Conv layers whose output shape or parameter count (from summary) differs from the
    formula; returns (mismatches, layers checked)."""
    from shendu.models import LeNet5, resnet20
    cases = [(conv, (1, conv.in_channels, n0, n0)) for conv, n0 in _random_convs(seed, n_random)]
    cases.append((LeNet5(), (1, 1, 28, 28)))
    if not quick:
        cases.append((resnet20(), (1, 3, 32, 32)))
    bad = checked = 0
    for model, shape in cases:
        inputs = _conv_inputs(model, shape)
        for row in summary(model, shape).layers:
            key = row.name if row.name in inputs else ("" if "" in inputs else None)
            if key is None:
                continue
            n0, layer = inputs[key]
            f, p, s = layer.kernel_size[0], layer.padding[0], layer.stride[0]
            n1 = (n0 + 2 * p - f) // s + 1
            bias = layer.out_channels if layer.bias is not None else 0
            params = f * f * layer.in_channels // layer.groups * layer.out_channels + bias
            checked += 1
            bad += int(row.output_shape[-1] != n1 or row.output_shape[1] != layer.out_channels
                       or row.params != params)
    return bad, checked


def run_formula(quick=False, seed=0, seeds=None, out=None, progress=None):
    progress = progress or _quiet()
    seeds = seed_list(seed, seeds, quick)
    mismatches, checked = [], []
    for s in seeds:
        bad, n = _formula_mismatches(s, 8 if quick else 60, quick)
        mismatches.append(bad), checked.append(n)
        progress.update()
    verdict, reason = check_each(mismatches, lambda v: v == 0, "0 layers off the formula")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar([str(s) for s in seeds], checked, label="conv layers checked")
    ax.bar([str(s) for s in seeds], mismatches, color="C3", label="off the formula")
    ax.set_xlabel("seed"), ax.set_ylabel("layers"), ax.legend()
    ax.set_title("N1 = (N0 + 2P - F)/S + 1, params F*F*A0*B + B")
    return ClaimResult(
        FORMULA_ID, "N2.3", "the formula predicts every layer's output shape and parameter count",
        "per seed: random Conv2d layers (F in 1,3,5,7, P 0..3, S 1..3, inputs up to 40x40) plus "
        "every conv of LeNet-5" + ("" if quick else " and ResNet-20") + ", output shape and "
        "parameters from shendu.models.summary (a real forward pass) against the formula",
        {"layers off the formula": summarize(mismatches), "layers checked": summarize(checked)},
        verdict, reason, save_figure(fig, out, FORMULA_ID), quick, seeds)


def _costs(model, shape):
    s = summary(model, shape)
    return s, s.total_params, s.total_macs


def run_stack(quick=False, seed=0, seeds=None, out=None, progress=None):
    progress = progress or _quiet()
    seeds = seed_list(seed, seeds, quick)
    widths = [8, 32] if quick else [8, 32, 64, 128]
    ratios, fields_ok = [], []
    for c in widths:
        stack = nn.Sequential(*[nn.Conv2d(c, c, 3, padding=1) for _ in range(3)])
        one = nn.Conv2d(c, c, 7, padding=3)
        s3, p3, _ = _costs(stack, (1, c, 16, 16))
        s7, p7, _ = _costs(one, (1, c, 16, 16))
        ratios.append(p3 / p7)
        fields_ok.append(s3.layers[-1].receptive_field == s7.layers[-1].receptive_field == (7, 7))
        progress.update()
    parts = [check_each([r if ok else float("inf") for r, ok in zip(ratios, fields_ok)],
                        lambda v: v < 1.0, "both fields 7x7 and params(3x3 stack) / "
                        "params(7x7) < 1", unit="width")]
    verdict, reason = combine(parts)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(widths, ratios, "o-", label="params: three 3x3 / one 7x7")
    ax.axhline(27 / 49, color="k", ls=":", label="27/49 (no biases)")
    ax.set_xscale("log", base=2), ax.set_xlabel("channels C"), ax.set_ylim(0, 1.05)
    ax.set_title("receptive field 7x7 in both (measured)"), ax.legend()
    return ClaimResult(
        STACK_ID, "N2.3.2", "three stacked 3x3 convs have a 7x7 receptive field with fewer "
        "parameters than one 7x7 conv",
        f"Conv2d C->C with biases, C in {widths}, 16x16 input; receptive field and parameters "
        "from shendu.models.summary (deterministic: one measurement per width, seeds unused)",
        {"params ratio 3x3-stack / 7x7": summarize(ratios),
         "fields both 7x7 (1 = yes)": summarize([float(ok) for ok in fields_ok])},
        verdict, reason, save_figure(fig, out, STACK_ID), quick, [])


def run_bottleneck(quick=False, seed=0, seeds=None, out=None, progress=None):
    from shendu.models.resnet import BasicBlock, Bottleneck
    progress = progress or _quiet()
    widths = [64, 128] if quick else [64, 128, 256, 512]
    param_ratio, mac_ratio = [], []
    for w in widths:
        _, pb, mb = _costs(BasicBlock(w, w), (1, w, 7, 7))
        _, pn, mn = _costs(Bottleneck(w, w // 4), (1, w, 7, 7))
        param_ratio.append(pn / pb), mac_ratio.append(mn / mb)
        progress.update()
    far = 0.25
    verdict, reason = combine([
        check_each(param_ratio, lambda v: v < far, f"params(bottleneck) / params(plain) < {far}",
                   unit="width"),
        check_each(mac_ratio, lambda v: v < far, f"MACs(bottleneck) / MACs(plain) < {far}",
                   unit="width")])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(widths, param_ratio, "o-", label="parameters")
    ax.plot(widths, mac_ratio, "s--", label="multiply-accumulates")
    ax.axhline(far, color="k", ls=":", label=f"'far fewer' threshold {far}")
    ax.set_xscale("log", base=2), ax.set_xlabel("block width (in = out channels)")
    ax.set_ylabel("bottleneck / plain"), ax.set_title("ResNet blocks: bottleneck vs plain")
    ax.legend()
    return ClaimResult(
        BOTTLENECK_ID, "N2.3", "a bottleneck block has far fewer parameters and FLOPs than the "
        "plain block of the same width (the 'at similar accuracy' part is not measured here)",
        f"ResNet BasicBlock(w, w) vs Bottleneck(w, w/4) (1x1 w->w/4, 3x3, 1x1 ->w), w in "
        f"{widths}, 7x7 input, from shendu.models.summary; 'far' means below {far} of the plain "
        "block (chosen before measuring); deterministic, seeds unused",
        {"params ratio": summarize(param_ratio), "MACs ratio": summarize(mac_ratio)},
        verdict, reason, save_figure(fig, out, BOTTLENECK_ID), quick, [])
