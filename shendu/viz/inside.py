"""Looking inside a model: its kernels, its layers' outputs (feature maps) and what excites a
unit. Concept: N6.2 (visualising kernels and layer outputs; activation maximisation).

Feature maps come from forward hooks that live only inside ``capture_outputs``: they are
removed when the block ends, also when it raises.
"""
from __future__ import annotations

from contextlib import contextmanager

from shendu import autograd
from shendu.autograd import enable_grad, no_grad
from shendu.tensor import Tensor
from shendu.viz._common import eval_mode


def resolve_layers(model, layers):
    """[(name, module)] for ``layers`` given as names of ``model.named_modules()`` or modules."""
    named = dict(model.named_modules())
    by_id = {id(m): name for name, m in named.items()}
    resolved = []
    for layer in ([layers] if isinstance(layers, str) else list(layers)):
        if isinstance(layer, str):
            if layer not in named:
                raise ValueError(f"feature_maps: the model has no layer {layer!r}; its layers "
                                 f"are {[n for n in named if n][:20]}")
            resolved.append((layer, named[layer]))
        elif id(layer) in by_id:
            resolved.append((by_id[id(layer)] or type(layer).__name__, layer))
        else:
            raise ValueError(f"feature_maps: {type(layer).__name__} is not a sub-module of the "
                             "model")
    return resolved


@contextmanager
def capture_outputs(model, layers):
    """Inside the block, ``outputs[layer]`` (keyed by the module and by its name) holds the
    layer's latest output, with its graph; the hooks are removed on exit, also on error."""
    outputs, handles = {}, []

    def hook_for(name):
        def hook(module, inputs, output):
            outputs[module] = outputs[name] = output
        return hook

    try:
        for name, module in resolve_layers(model, layers):
            handles.append(module.register_forward_hook(hook_for(name)))
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def feature_maps(model, x, layers) -> dict:
    """The outputs of ``layers`` for input ``x``, detached, keyed by layer name (in order).

    Args:
        model: any Module; it runs once in eval mode (restored afterwards).
        x: the input batch.
        layers: names from ``model.named_modules()`` (e.g. 'features.0') or the modules.

    Shape:
        x (N, C, H, W) -> {name: (N, K, h, w) (or whatever shape the layer outputs)}.

    Concept: N6.2 (layer outputs). Zeiler & Fergus 2014.

    Example:
        >>> import shendu
        >>> from shendu import nn
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
        >>> {k: v.shape for k, v in feature_maps(net, shendu.randn(2, 1, 8, 8), ['0']).items()}
        {'0': (2, 4, 6, 6)}
    """
    names = [name for name, _ in resolve_layers(model, layers)]
    with eval_mode(model), no_grad(), capture_outputs(model, layers) as outputs:
        model(x)
    return {name: outputs[name].detach() for name in names}


def feature_grid(maps, sample=0, nrow=8) -> Tensor:
    """One sample's (K, h, w) channels tiled as a grid, each channel scaled to [0, 1].

    Shape:
        maps (N, K, h, w) -> (3, H', W') image in [0, 1].
    """
    from shendu.vision.utils import make_grid
    if maps.ndim != 4:
        raise ValueError(f"feature_grid: expected feature maps (N, K, h, w), got shape "
                         f"{maps.shape}")
    channels = maps[sample].unsqueeze(1)  # (K, 1, h, w)
    return make_grid(channels, nrow=nrow, normalize=True, scale_each=True, pad_value=1.0)


def kernel_grid(conv, nrow=8, in_channel=None) -> Tensor:
    """A conv layer's filters as an image grid, each filter scaled to [0, 1] on its own.

    A first layer with 1 or 3 input channels shows each filter as one grey or colour tile;
    a deeper layer shows one tile per (out, in) pair, or only input channel ``in_channel``.

    Shape:
        weight (C_out, C_in, kh, kw) -> (3, H', W') image in [0, 1].

    Concept: N6.2 (visualising kernels). Krizhevsky et al. 2012, fig. 3.
    """
    from shendu.vision.utils import make_grid
    weight = getattr(conv, "weight", None)
    if not isinstance(weight, Tensor) or weight.ndim != 4:
        raise ValueError(f"kernel_grid: expected a Conv2d (weight (C_out, C_in, kh, kw)), got "
                         f"{type(conv).__name__} with weight "
                         f"{None if weight is None else weight.shape}")
    w = weight.detach()
    out_c, in_c, kh, kw = w.shape
    if in_channel is not None:
        tiles = w[:, in_channel:in_channel + 1]
    elif in_c in (1, 3):
        tiles = w
    else:
        tiles = w.reshape(out_c * in_c, 1, kh, kw)
        nrow = in_c
    return make_grid(tiles, nrow=nrow, normalize=True, scale_each=True, pad_value=1.0, padding=1)


def activation_stats(model, x, layers) -> dict:
    """Per layer: mean, std, min, max and the fraction of exact zeros (dead ReLUs) of its
    output on ``x``. Concept: N6.2; N3.1 (watching activations during training).

    Shape:
        {name: {'shape': tuple, 'mean', 'std', 'min', 'max', 'zero_fraction': float}}
    """
    stats = {}
    for name, out in feature_maps(model, x, layers).items():
        stats[name] = {"shape": tuple(out.shape), "mean": float(out.mean().item()),
                       "std": float(out.std().item()), "min": float(out.min().item()),
                       "max": float(out.max().item()),
                       "zero_fraction": float((out == 0).float().mean().item())}
    return stats


def activation_maximization(model, layer, channel, shape, steps=200, lr=0.05, l2=1e-3,
                            tv=1e-2, jitter=2, init_scale=0.01, generator=None) -> Tensor:
    """An input that maximises the mean activation of one channel (or logit) of ``layer``:
    argmax_x  mean(A_channel(x)) - l2 ||x||^2 - tv TV(x), by Adam on x, with random jitter
    (a circular shift of up to ``jitter`` pixels each step) so the image does not exploit
    exact pixel positions, kept in [0, 1].

    Args:
        layer: name or sub-module; its output (N, K, ...) is indexed by ``channel`` on dim 1.
        shape: the input shape of one image (C, H, W).
        steps, lr: Adam iterations and step size. Defaults: 200, 0.05.
        l2, tv: weights of the L2 decay and total-variation regularisers. Defaults: 1e-3, 1e-2.
        jitter: maximal random shift in pixels. Default: 2.
        init_scale: the image starts at 0.5 + init_scale * noise. Default: 0.01.

    Shape:
        -> (1, C, H, W) in [0, 1].

    Concept: N6.2 (activation maximisation). Erhan et al. 2009; Simonyan et al. 2014;
    Yosinski et al. 2015 (regularisers); Mahendran & Vedaldi 2015 (TV).
    """
    from shendu import optim, randint, randn
    image = (randn(1, *shape, generator=generator) * init_scale + 0.5).requires_grad_()
    opt = optim.Adam([image], lr=lr)
    with eval_mode(model), capture_outputs(model, [layer]) as outputs:
        for _ in range(steps):
            with enable_grad():
                shifted = _roll(image, randint(-jitter, jitter + 1, (2,),
                                               generator=generator).tolist()) if jitter else image
                model(shifted)
                act = outputs[layer][:, channel]
                objective = act.mean() - l2 * (image * image).sum() - tv * total_variation(image)
                (grad,) = autograd.grad(-objective, [image])
            image.grad = grad
            opt.step()
            with no_grad():
                image.clamp_(0.0, 1.0)
    return image.detach()


def total_variation(image) -> Tensor:
    """Anisotropic TV: sum |x[i+1, j] - x[i, j]| + |x[i, j+1] - x[i, j]| over (N, C, H, W)."""
    return (image[:, :, 1:] - image[:, :, :-1]).abs().sum() + \
        (image[:, :, :, 1:] - image[:, :, :, :-1]).abs().sum()


def _roll(image, shift):
    """Circular shift of the last two dims by (dy, dx) pixels, differentiably."""
    from shendu import cat
    dy, dx = int(shift[0]), int(shift[1])
    if dy:
        image = cat([image[:, :, -dy:], image[:, :, :-dy]], 2)
    if dx:
        image = cat([image[:, :, :, -dx:], image[:, :, :, :-dx]], 3)
    return image
