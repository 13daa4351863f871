"""The work behind ``shendu viz ...`` (argument parsing lives in ``shendu.cli_viz``).

Every command checks its flags and inputs before it creates --out, then writes PNGs there and
logs what it wrote and measured.
"""
from __future__ import annotations

import os


# --- shared -----------------------------------------------------------------------------------

def _run(args, log):
    """(model taking [0, 1] pixels, config, out folder) of ``args.checkpoint``."""
    from shendu.cli import NORMALIZE, load_run
    from shendu.viz import Normalized
    if not os.path.exists(args.checkpoint):
        raise FileNotFoundError(f"no checkpoint at {args.checkpoint}")
    model, config, _ = load_run(args, log)  # viz re-normalises with the dataset's pair
    mean, std = NORMALIZE[config.dataset]
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), "viz")
    return Normalized(model, mean, std).eval(), config, out


def _test_images(config, count, log):
    """The first ``count`` test images in [0, 1] pixels (N, 1, 28, 28) and their labels."""
    from shendu.cli import NORMALIZE, _loader, load_data
    config.limit_test = count
    x, y = next(iter(_loader(load_data(config, log)[2], count)))
    mean, std = NORMALIZE[config.dataset]
    return (x * std + mean).clamp(0.0, 1.0), y


def _convs(model):
    from shendu import nn
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def _layer(model, name, which, flag):
    convs = _convs(model)
    if name is None:
        if not convs:
            raise ValueError(f"{flag}: the model has no Conv2d; name a layer")
        return convs[which]
    named = dict(model.named_modules())
    if name not in named and "model." + name in named:  # names of the unwrapped model work
        name = "model." + name
    if name not in named:
        raise ValueError(f"{flag}: no layer {name!r}; conv layers: {[n for n, _ in convs]}")
    return name, named[name]


def _enlarge(image, factor):
    """(C, H, W) -> (C, H * factor, W * factor) by pixel repetition (small images stay sharp)."""
    from shendu.tensor import Tensor
    data = image._data.repeat(factor, axis=1).repeat(factor, axis=2)
    return Tensor._wrap(data)


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("this picture needs matplotlib: pip install 'shendu[plot]'") from None
    return plt


def _hwc(image):
    return image.numpy().transpose(1, 2, 0)


def _save_image(image, path, log):
    from shendu.vision.utils import save_image
    save_image(image, path)
    log(f"wrote {path}")


# --- kernels, features --------------------------------------------------------------------------

def kernels(args, log):
    from shendu.viz import kernel_grid
    model, _, out = _run(args, log)
    name, conv = _layer(model, args.layer, 0, "--layer")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"kernels-{name}.png")
    _save_image(_enlarge(kernel_grid(conv), 8), path, log)
    return {"layer": name, "shape": tuple(conv.weight.shape), "path": path}


def features(args, log):
    from shendu.viz import activation_stats, feature_grid, feature_maps
    model, config, out = _run(args, log)
    names = ([_layer(model, n, 0, "--layers")[0] for n in args.layers.split(",")]
             if args.layers else [n for n, _ in _convs(model)])
    x, y = _test_images(config, args.index + 1, log)
    x = x[args.index:args.index + 1]
    maps = feature_maps(model, x, names)
    os.makedirs(out, exist_ok=True)
    _save_image(_enlarge(x[0], 4), os.path.join(out, "features-input.png"), log)
    for name, stats in activation_stats(model, x, names).items():
        log(f"{name}: shape {stats['shape']}, mean {stats['mean']:.3f}, std {stats['std']:.3f}, "
            f"zero fraction {stats['zero_fraction']:.2f}")
    paths = []
    for name, value in maps.items():
        if value.ndim == 4:
            paths.append(os.path.join(out, f"features-{name}.png"))
            _save_image(_enlarge(feature_grid(value), 6), paths[-1], log)
    return {"layers": names, "paths": paths}


# --- saliency -----------------------------------------------------------------------------------

def saliency(args, log):
    from shendu import viz
    from shendu.viz.draw import overlay
    if args.count < 1 or args.ig_steps < 2 or args.window < 1 or args.stride < 1:
        raise ValueError("--count, --window, --stride must be >= 1 and --ig-steps >= 2")
    plt = _pyplot()
    model, config, out = _run(args, log)
    name, layer = _layer(model, args.layer, -1, "--layer")
    x, y = _test_images(config, args.count, log)
    target = model(x).argmax(1).detach()
    from shendu import Generator
    maps = {
        "saliency": viz.saliency(model, x, target),
        "SmoothGrad": viz.smoothgrad(model, x, target, samples=16, stdev=0.15,
                                     generator=Generator(seed=args.seed)),
        "integrated gradients": viz.integrated_gradients(model, x, target,
                                                         steps=args.ig_steps),
        f"Grad-CAM ({name})": viz.grad_cam(model, layer, x, target),
        "occlusion": viz.occlusion(model, x, target, window=(args.window, args.window),
                                   strides=(args.stride, args.stride)).relu(),
    }
    from shendu import cat
    rows = [("image", cat([x] * 3, 1) if x.shape[1] == 1 else x)]
    rows += [(title, overlay(x, m)) for title, m in maps.items()]
    fig, axes = plt.subplots(len(rows), args.count, figsize=(1.3 * args.count, 1.4 * len(rows)),
                             squeeze=False)
    for r, (title, images) in enumerate(rows):
        for c in range(args.count):
            ax = axes[r][c]
            ax.imshow(_hwc(images[c]), vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(title, fontsize=7)
            if r == 0:
                ax.set_title(f"pred {int(target[c].item())}", fontsize=7)
    fig.tight_layout()
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "saliency.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    log(f"wrote {path}")
    return {"path": path}


# --- adversarial ----------------------------------------------------------------------------------

def _eps_list(text):
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--eps: expected comma-separated numbers, got {text!r}") from None
    if not values or any(not 0 <= v <= 1 for v in values):
        raise ValueError(f"--eps: expected budgets in [0, 1], got {text!r}")
    return values


def adversarial(args, log):
    """Robust accuracy against eps for --checkpoint (and --compare), plot and example grid."""
    from shendu import Generator
    from shendu.viz import pgd, robust_accuracy
    eps_values = _eps_list(args.eps)
    show = max(eps_values) if args.show_eps is None else args.show_eps
    if not 0 < show <= 1 or args.steps < 1 or args.limit < 1 or args.count < 1:
        raise ValueError("--show-eps must lie in (0, 1]; --steps, --limit and --count >= 1")
    if args.compare is not None and not os.path.exists(args.compare):
        raise FileNotFoundError(f"no checkpoint at {args.compare}")
    plt = _pyplot()
    runs = [_run(args, log)]
    if args.compare is not None:
        other = type(args)(**{**vars(args), "checkpoint": args.compare})
        runs.append(_run(other, log))
    x, y = _test_images(runs[0][1], args.limit, log)
    curves = {}
    for (model, config, _), path in zip(runs, [args.checkpoint, args.compare]):
        label = _run_label(config, path)
        curves[label] = [robust_accuracy(model, x, y, eps, steps=args.steps,
                                         generator=Generator(seed=args.seed))
                         for eps in eps_values]
        log(f"{label}: " + ", ".join(f"eps {e:g}: {a:.3f}" for e, a in
                                     zip(eps_values, curves[label])))
    out = runs[0][2]
    os.makedirs(out, exist_ok=True)
    paths = [_plot_curves(plt, eps_values, curves, args, runs[0][1].dataset, out, log)]
    xs, ys = x[:args.count], y[:args.count]
    panels = []
    for (model, config, _), label in zip(runs, curves):
        adv = pgd(model, xs, ys, show, 2.5 * show / args.steps, args.steps,
                  generator=Generator(seed=args.seed))
        panels.append((label, xs, adv, model(xs).argmax(1).tolist(), model(adv).argmax(1).tolist()))
    paths.append(_plot_examples(plt, panels, ys.tolist(), show, out, log))
    return {"eps": eps_values, "accuracy": curves, "paths": paths}


def _run_label(config, path):
    kind = (f"PGD-trained (eps {config.adversarial_eps:g})" if config.adversarial_eps
            else "standard")
    run = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return f"{kind} {config.model} ({run}/{os.path.basename(path)})"


def _plot_curves(plt, eps_values, curves, args, dataset, out, log):
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for label, acc in curves.items():
        ax.plot(eps_values, acc, marker="o", label=label)
    ax.set_xlabel("L-inf budget eps (pixels in [0, 1])")
    ax.set_ylabel(f"accuracy under PGD-{args.steps}")
    ax.set_title(f"{dataset}: {args.limit} test images", fontsize=9)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(out, "robust-accuracy.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    log(f"wrote {path}")
    return path


def _plot_examples(plt, panels, labels, eps, out, log):
    """Rows per model: clean (with prediction), perturbation (grey = 0), adversarial."""
    count = len(labels)
    fig, axes = plt.subplots(3 * len(panels), count, squeeze=False,
                             figsize=(1.25 * count, 1.45 * 3 * len(panels)))
    for p, (label, clean, adv, pred, adv_pred) in enumerate(panels):
        delta = (adv - clean) / (2 * eps) + 0.5
        for r, (name, images, preds) in enumerate((("clean", clean, pred),
                                                   ("perturbation", delta, None),
                                                   ("adversarial", adv, adv_pred))):
            for c in range(count):
                ax = axes[3 * p + r][c]
                ax.imshow(images[c, 0].numpy(), cmap="gray", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                if preds is not None:
                    ok = preds[c] == labels[c]
                    ax.set_title(f"pred {preds[c]}", fontsize=7, color="black" if ok else "red")
                if c == 0:
                    ax.set_ylabel(f"{name}\n{label}" if r == 0 else name, fontsize=6)
    fig.suptitle(f"PGD at eps {eps:g} (red: wrong prediction)", fontsize=8)
    fig.tight_layout()
    path = os.path.join(out, "adversarial-examples.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    log(f"wrote {path}")
    return path


# --- style ----------------------------------------------------------------------------------------

def _load_rgb(path, size):
    from shendu import backend, tensor
    try:
        from PIL import Image
    except ImportError:
        raise ValueError("style transfer reads images with Pillow: pip install "
                         "'shendu[image]'") from None
    if not os.path.exists(path):
        raise FileNotFoundError(f"no image at {path}")
    pixels = Image.open(path).convert("RGB").resize((size, size), Image.BICUBIC)
    xp = backend.namespace("cpu")
    array = xp.asarray(pixels, dtype=xp.float32) / 255.0  # (H, W, 3)
    return tensor(array.transpose(2, 0, 1)[None].copy())


def style(args, log):
    """Gatys style transfer; writes the result and content | style | result side by side."""
    from shendu import manual_seed
    from shendu.vision.utils import make_grid
    from shendu.viz import style as st
    if args.size < 16 or args.steps < 1:
        raise ValueError(f"--size must be >= 16 and --steps >= 1, got {args.size}, {args.steps}")
    if args.network == "vgg19" and args.weights is None:
        raise ValueError("--network vgg19 needs --weights FILE (torchvision's vgg19 keys in "
                         "safetensors); without it use --network random")
    content, style_image = _load_rgb(args.content, args.size), _load_rgb(args.style, args.size)
    manual_seed(args.seed)
    if args.network == "random":
        net = st.RandomMultiScale(seed=args.seed)
        style_layers, content_layers = net.names, net.names[:1]
    else:
        net = st.vgg19_features(args.weights)
        style_layers, content_layers = st.VGG19_STYLE_LAYERS, st.VGG19_CONTENT_LAYERS
    result, losses = st.style_transfer(
        net, content, style_image, style_layers, content_layers, style_weight=args.style_weight,
        content_weight=args.content_weight, tv_weight=args.tv_weight, steps=args.steps,
        optimizer=args.optimizer)
    for when in ("before", "after"):
        log(f"{when}: " + ", ".join(f"{k} {v:.4g}" for k, v in losses[when].items()))
    os.makedirs(args.out, exist_ok=True)
    _save_image(result, os.path.join(args.out, "style-result.png"), log)
    side = make_grid([content[0], style_image[0], result[0]], nrow=3, padding=4, pad_value=1.0)
    _save_image(_enlarge(side, 3), os.path.join(args.out, "style-side-by-side.png"), log)
    return losses
