"""Neural style transfer (Gatys, Ecker & Bethge 2016): optimise an image so that its deep
features keep the content image's arrangement and the style image's feature correlations.

Concept: N6.2 (style transfer). Works with any feature network: a user's own module, a
torchvision-layout VGG-19 (``vgg19_features`` with weights from a safetensors file), or
``RandomMultiScale``, a network of random filters (Ustyuzhaninov et al. 2016 show random
multi-scale filters already carry texture), which needs no download.
"""
from __future__ import annotations

from contextlib import contextmanager

from shendu import nn
from shendu.autograd import enable_grad, no_grad
from shendu.tensor import Tensor
from shendu.viz._common import eval_mode
from shendu.viz.inside import capture_outputs, resolve_layers, total_variation

# torchvision's vgg19().features indices of conv1_1, conv2_1, conv3_1, conv4_1, conv5_1 (style)
# and conv4_2 (content), the layers Gatys et al. use (their ReLU outputs, one index later)
VGG19_STYLE_LAYERS = ("features.1", "features.6", "features.11", "features.20", "features.29")
VGG19_CONTENT_LAYERS = ("features.22",)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def gram_matrix(features) -> Tensor:
    """G = F F^T / (C h w) with F the features flattened over space.

    Shape:
        (N, C, h, w) -> (N, C, C).
    """
    if features.ndim != 4:
        raise ValueError(f"gram_matrix: expected features (N, C, h, w), got {features.shape}")
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)  # (N, C, hw)
    return flat.bmm(flat.transpose(1, 2)) / (c * h * w)


class RandomMultiScale(nn.Module):
    """One layer of random filters at several sizes, ReLU, each size a named branch
    ('k3', 'k5', ...): Ustyuzhaninov et al.'s untrained texture network, scaled down.

    Shape:
        (N, C, H, W) -> (N, filters * len(kernel_sizes), H, W) (the branches concatenated).
    """

    def __init__(self, in_channels=3, kernel_sizes=(1, 3, 5, 9), filters=24, seed=0):
        super().__init__()
        from shendu import Generator
        from shendu.nn import init
        gen = Generator(seed=seed)
        self.names = [f"k{k}" for k in kernel_sizes]
        for name, k in zip(self.names, kernel_sizes):
            conv = nn.Conv2d(in_channels, filters, k, padding=k // 2)
            # Gaussian filters of unit norm per output channel, no bias; they are not made
            # zero-mean, so the Gram matrices also see the colours (a zero-mean filter is
            # blind to a flat colour patch)
            init.normal_(conv.weight, 0.0, 1.0, generator=gen)
            with no_grad():
                w = conv.weight
                w.div_((w * w).sum((1, 2, 3), keepdim=True).sqrt())
                conv.bias.zero_()
            setattr(self, name, nn.Sequential(conv, nn.ReLU()))

    def forward(self, x):
        from shendu import cat
        return cat([getattr(self, name)(x) for name in self.names], 1)


def vgg19_features(weights=None):
    """torchvision's VGG-19 conv stack in front of ImageNet normalisation, for images in
    [0, 1]; ``weights`` is a safetensors/npz file with torchvision's vgg19 keys.

    Its layers are named ``features.N`` as in torchvision (see ``VGG19_STYLE_LAYERS``).
    """
    from shendu import serialization
    from shendu.models.vgg import cfgs, make_layers
    features = make_layers(cfgs["E"])  # the conv stack alone: no 120M-parameter classifier
    if weights is not None:
        state = serialization.load(weights)
        state = state.get("model", state)
        prefix = "features."
        features.load_state_dict({k[len(prefix):]: v for k, v in state.items()
                                  if k.startswith(prefix)})
    return _ImageNetInput(features)


class _ImageNetInput(nn.Module):
    def __init__(self, features):
        super().__init__()
        from shendu import tensor
        self.features = features
        self.mean = tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1)
        self.std = tensor(IMAGENET_STD).reshape(1, 3, 1, 1)

    def forward(self, x):
        return self.features((x - self.mean) / self.std)


def style_losses(net, image, targets, style_layers, content_layers, weights):
    """{'style', 'content', 'tv', 'total'} of ``image`` against precomputed ``targets``
    (keyed ('style', layer) -> Gram matrix, ('content', layer) -> features); Tensors with
    graphs."""
    with capture_outputs(net, list(style_layers) + list(content_layers)) as out:
        net(image)
        style = sum(((gram_matrix(out[name]) - targets["style", name]) ** 2).sum()
                    for name in style_layers) / len(style_layers)
        content = sum(((out[name] - targets["content", name]) ** 2).mean()
                      for name in content_layers) / len(content_layers)
    tv = total_variation(image) / image.numel()
    total = weights["style"] * style + weights["content"] * content + weights["tv"] * tv
    return {"style": style, "content": content, "tv": tv, "total": total}


def style_transfer(net, content, style, style_layers, content_layers, style_weight=1e4,
                   content_weight=1.0, tv_weight=1e-2, steps=100, optimizer="lbfgs", lr=0.02,
                   init=None):
    """Gatys et al.: argmin_x  style_weight * mean_l ||G_l(x) - G_l(s)||^2
    + content_weight * ||F_c(x) - F_c(c)||^2 / size + tv_weight * TV(x) / size,
    from x = content (or ``init``), kept in [0, 1].

    Args:
        net: the feature network (eval mode during the run, restored afterwards).
        content, style: images (1, C, H, W) in [0, 1] (they may differ in size).
        style_layers, content_layers: names (or modules) of ``net`` whose outputs are used.
        style_weight, content_weight, tv_weight: the loss weights. Defaults: 1e4, 1, 1e-2.
        steps: L-BFGS iterations (in rounds of 20) or Adam steps. Default: 100.
        optimizer: 'lbfgs' (``optim.LBFGS`` with strong Wolfe) or 'adam' (lr). Default lbfgs.

    Returns:
        (image (1, C, H, W), {'before': losses, 'after': losses}) with float losses.

    Concept: N6.2 (style transfer). Gatys et al. 2016; Johnson et al. 2016 (TV term).
    """
    from shendu import optim
    if optimizer not in ("lbfgs", "adam"):
        raise ValueError(f"style_transfer: optimizer must be 'lbfgs' or 'adam', got {optimizer!r}")
    for name, img in (("content", content), ("style", style)):
        if not isinstance(img, Tensor) or img.ndim != 4 or img.shape[0] != 1:
            raise ValueError(f"style_transfer: expected the {name} image as (1, C, H, W), got "
                             f"{getattr(img, 'shape', type(img).__name__)}")
    style_layers = [n for n, _ in resolve_layers(net, style_layers)]
    content_layers = [n for n, _ in resolve_layers(net, content_layers)]
    weights = {"style": style_weight, "content": content_weight, "tv": tv_weight}
    with eval_mode(net), _frozen(net):
        targets = _targets(net, content, style, style_layers, content_layers)
        image = (content if init is None else init).detach().clone().requires_grad_()

        def losses():
            return style_losses(net, image, targets, style_layers, content_layers, weights)

        with no_grad():
            before = {k: float(v.item()) for k, v in losses().items()}
        # L-BFGS runs in rounds of 20 iterations with the [0, 1] clamp between rounds (a
        # clamp inside the line search would corrupt its (s, y) history)
        if optimizer == "lbfgs":
            opt = optim.LBFGS([image], max_iter=min(steps, 20), line_search_fn="strong_wolfe")
        else:
            opt = optim.Adam([image], lr=lr)

        def closure():
            opt.zero_grad()
            with enable_grad():
                loss = losses()["total"]
                loss.backward()
            return loss

        for _ in range(max(1, steps // 20) if optimizer == "lbfgs" else steps):
            opt.step(closure)
            with no_grad():
                image.clamp_(0.0, 1.0)
        with no_grad():
            after = {k: float(v.item()) for k, v in losses().items()}
    return image.detach(), {"before": before, "after": after}


@contextmanager
def _frozen(net):
    """Parameters stop requiring grad inside the block (no weight gradients are computed
    or left behind), then get their flags back."""
    flags = [(p, p.requires_grad) for p in net.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _targets(net, content, style, style_layers, content_layers):
    targets = {}
    with no_grad(), capture_outputs(net, style_layers + content_layers) as out:
        net(style)
        targets.update({("style", name): gram_matrix(out[name]).detach()
                        for name in style_layers})
        net(content)
        targets.update({("content", name): out[name].detach() for name in content_layers})
    return targets
