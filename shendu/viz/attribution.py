"""Attribution: which input pixels a prediction depends on (Captum's methods and semantics).

Concept: N6.2 (understanding a model through its important pixels). Every function evaluates
the model in eval mode (restored afterwards), differentiates with ``autograd.grad`` with
respect to the input only, so no ``.grad`` is left on the parameters, and returns a Tensor
shaped like the input (``grad_cam``: like the layer's output summed over channels).
"""
from __future__ import annotations

from shendu import autograd
from shendu.autograd import enable_grad, no_grad
from shendu.tensor import Tensor
from shendu.viz._common import (check_images, eval_mode, input_gradient, select_target,
                                target_index)

IG_METHODS = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid",
              "gausslegendre")


def saliency(model, x, target, abs=True) -> Tensor:
    """Gradient of the target logit with respect to the input: d y_target / d x.

    Equal to ``captum.attr.Saliency(model).attribute(x, target, abs=abs)``.

    Args:
        model: maps (N, ...) inputs to (N, classes) logits.
        x: the input batch.
        target: the class whose logit is explained: an int or N indices.
        abs: return |gradient| (Simonyan et al.'s map). Default: True.

    Shape:
        x (N, C, H, W) -> (N, C, H, W).

    Concept: N6.2 (saliency). Simonyan, Vedaldi & Zisserman 2014.

    Example:
        >>> import shendu
        >>> from shendu import nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> saliency(net, shendu.randn(2, 1, 2, 2), target=0).shape
        (2, 1, 2, 2)
    """
    check_images(x, "saliency")
    with eval_mode(model):
        grad, _ = input_gradient(lambda inp: select_target(model(inp), target, "saliency"), x)
    return grad.abs() if abs else grad


def smoothgrad(model, x, target, samples=5, stdev=1.0, noise=None, generator=None,
               abs=True) -> Tensor:
    """Saliency averaged over noisy copies: mean_s saliency(x + noise_s), noise ~ N(0, stdev^2).

    Equal to ``NoiseTunnel(Saliency(model)).attribute(x, nt_type='smoothgrad',
    nt_samples=samples, stdevs=stdev, target=target, abs=abs)`` given the same noise (Captum
    draws it with ``torch.normal``; pass it here as ``noise``).

    Args:
        samples: noisy copies per input. Default: 5 (Captum's).
        stdev: standard deviation of the noise, in input units. Default: 1.0 (Captum's).
        noise: optional (samples, N, ...) noise to use instead of drawing it.
        generator: a ``shendu.Generator`` for the noise. Default: the global one.

    Shape:
        x (N, C, H, W) -> (N, C, H, W); noise (samples, N, C, H, W).

    Concept: N6.2 (saliency). Smilkov et al. 2017.
    """
    from shendu import randn
    check_images(x, "smoothgrad")
    if noise is None:
        noise = randn(samples, *x.shape, dtype=x.dtype, device=x.device,
                      generator=generator) * stdev
    if tuple(noise.shape) != (samples, *x.shape):
        raise ValueError(f"smoothgrad: expected noise of shape {(samples, *x.shape)} "
                         f"(samples, N, ...), got {noise.shape}")
    n = x.shape[0]
    noisy = (x.detach().unsqueeze(0) + noise).reshape(samples * n, *x.shape[1:])
    targets = target_index(target, n, "smoothgrad", x._xp)
    repeated = Tensor._wrap(x._xp.tile(targets, samples))  # sample-major, like noisy
    grads = saliency(model, noisy, repeated, abs=abs)
    return grads.reshape(samples, *x.shape).mean(0)


def integrated_gradients(model, x, target, baseline=None, steps=50,
                         method="riemann_trapezoid", return_convergence_delta=False):
    """Path integral of the gradient from a baseline b to x:
    IG(x) = (x - b) * sum_k w_k * d y_target / dx (b + a_k (x - b)).

    Equal to ``captum.attr.IntegratedGradients(model).attribute(x, baseline, target,
    n_steps=steps, method=method)``: the same nodes a_k and weights w_k, which Captum rounds
    to float32 (so float64 models agree to rounding). Completeness: the attributions of a
    sample sum to y(x) - y(b) up to the quadrature error; the convergence delta is
    sum(IG) - (y(x) - y(b)) per sample.

    Args:
        baseline: the reference input (a Tensor like x, or a number). Default: zeros.
        steps: quadrature nodes. Default: 50.
        method: one of ``IG_METHODS``. Default: 'riemann_trapezoid'.
        return_convergence_delta: also return the (N,) delta. Default: False.

    Shape:
        x (N, C, H, W) -> (N, C, H, W) [, delta (N,)]; the model sees steps * N inputs at once.

    Concept: N6.2 (attribution). Sundararajan, Taly & Yan 2017.
    """
    check_images(x, "integrated_gradients")
    if method not in IG_METHODS:
        raise ValueError(f"integrated_gradients: method must be one of {IG_METHODS}, got "
                         f"{method!r}")
    if not isinstance(steps, int) or steps < (1 if method == "gausslegendre" else 2):
        raise ValueError(f"integrated_gradients: steps must be an int >= 2 (>= 1 for "
                         f"gausslegendre), got {steps!r}")
    xp, n = x._xp, x.shape[0]
    x = x.detach()
    base = _as_baseline(baseline, x, "integrated_gradients")
    weights, alphas = quadrature(method, steps, xp)
    shape = (steps,) + (1,) * x.ndim
    path = base.unsqueeze(0) + Tensor._wrap(alphas.astype(x.dtype).reshape(shape)) * \
        (x - base).unsqueeze(0)
    path = path.reshape(steps * n, *x.shape[1:])  # step-major, as Captum concatenates them
    targets = Tensor._wrap(xp.tile(target_index(target, n, "integrated_gradients", xp), steps))
    with eval_mode(model):
        grads, _ = input_gradient(
            lambda inp: select_target(model(inp), targets, "integrated_gradients"), path)
        grads = grads.reshape(steps, *x.shape)
        total = (grads * Tensor._wrap(weights.astype(x.dtype).reshape(shape))).sum(0)
        attributions = total * (x - base)
        if not return_convergence_delta:
            return attributions
        with no_grad():
            ends = select_target(model(_cat(x, base)), _cat_index(target, n, xp),
                                 "integrated_gradients")
    delta = attributions.reshape(n, -1).sum(1) - (ends[:n] - ends[n:])
    return attributions, delta


def quadrature(method, steps, xp):
    """(weights, nodes) on [0, 1] of Captum's integral approximations, as float64 xp arrays.

    The Riemann rules use weights 1/steps (the trapezoid halves both ends) and nodes from a
    float32 ``linspace``; Gauss-Legendre nodes and weights come from the Golub-Welsch
    eigenproblem (what numpy's leggauss computes). Captum rounds every rule's weights to
    float32, and so do we.
    """
    f32 = xp.float32
    if method == "gausslegendre":
        k = xp.arange(1, steps, dtype=xp.float64)
        off = k / xp.sqrt(4 * k * k - 1)  # the Jacobi matrix of the Legendre polynomials
        nodes, vectors = xp.linalg.eigh(xp.diag(off, 1) + xp.diag(off, -1))
        weights = vectors[0] ** 2  # 2 v0^2 on [-1, 1], halved onto [0, 1]
        return weights.astype(f32).astype(xp.float64), 0.5 * (1 + nodes)
    weights = xp.full(steps, 1.0 / steps)
    if method == "riemann_trapezoid":
        weights[0] /= 2
        weights[-1] /= 2
    start, end = {"riemann_trapezoid": (0.0, 1.0), "riemann_left": (0.0, 1 - 1 / steps),
                  "riemann_right": (1 / steps, 1.0),
                  "riemann_middle": (1 / (2 * steps), 1 - 1 / (2 * steps))}[method]
    return weights.astype(f32).astype(xp.float64), _torch_linspace32(start, end, steps, xp)


def _torch_linspace32(start, end, steps, xp):
    """torch.linspace(start, end, steps) in float32: the first half counts up from start,
    the second half down from end, each step product rounded to float32."""
    f32 = xp.float32
    start, end = f32(start), f32(end)
    step = (end - start) / f32(steps - 1)
    idx = xp.arange(steps, dtype=f32)
    up = start + step * idx
    down = end - step * (f32(steps - 1) - idx)
    return xp.where(xp.arange(steps) < steps // 2, up, down).astype(xp.float64)


def grad_cam(model, layer, x, target, relu=True) -> Tensor:
    """Grad-CAM: ReLU(sum_k a_k A_k) with A the layer's output and a_k the spatial mean of
    d y_target / d A_k.

    Equal to ``captum.attr.LayerGradCam(model, layer).attribute(x, target,
    relu_attributions=relu)``; upsample it to the input size for display (``overlay`` does).

    Args:
        layer: a sub-module of ``model`` whose output is (N, K, h, w) (usually the last conv).
        relu: keep only the positive evidence. Default: True.

    Shape:
        x (N, C, H, W) -> (N, 1, h, w).

    Concept: N6.2 (class activation maps). Selvaraju et al. 2017.
    """
    from shendu.viz.inside import capture_outputs
    check_images(x, "grad_cam")
    with eval_mode(model), enable_grad(), capture_outputs(model, [layer]) as outputs:
        score = select_target(model(x.detach()), target, "grad_cam")
        activation = outputs[layer]
        if activation.ndim < 3:
            raise ValueError(f"grad_cam: expected the layer to output (N, K, h, w), got shape "
                             f"{activation.shape}")
        (grad,) = autograd.grad(score.sum(), [activation])
    spatial = tuple(range(2, activation.ndim))
    weights = grad.mean(spatial, keepdim=True)  # (N, K, 1, 1)
    cam = (weights * activation.detach()).sum(1, keepdim=True)  # (N, 1, h, w)
    return cam.relu() if relu else cam


def occlusion(model, x, target, window, strides=1, baseline=0.0, perturbations_per_eval=64):
    """Occlusion: how much the target logit drops when a window of the input is replaced by
    the baseline, averaged over the windows covering each element.

    Equal to ``captum.attr.Occlusion(model).attribute(x, sliding_window_shapes=window,
    strides=strides, baselines=baseline, target=target)``: windows start every stride along
    each non-batch dimension, ceil((size - window) / stride) + 1 of them (the last one is cut
    off at the border).

    Args:
        window: the window over all non-batch dims, e.g. (C, 4, 4); (4, 4) means (C, 4, 4).
        strides: an int or one per non-batch dim ((2, 2) means (1, 2, 2)). Default: 1.
        baseline: what replaces the window (a number or a Tensor like one input). Default: 0.
        perturbations_per_eval: windows evaluated in one forward pass. Default: 64.

    Shape:
        x (N, C, H, W) -> (N, C, H, W); the model sees perturbations_per_eval * N inputs.

    Concept: N6.2 (attribution by perturbation). Zeiler & Fergus 2014.
    """
    check_images(x, "occlusion")
    x = x.detach()
    xp, dims, n = x._xp, tuple(x.shape[1:]), x.shape[0]
    window, strides = _window_and_strides(window, strides, dims)
    masks = _window_masks(window, strides, dims, xp, x.dtype)  # (P, *dims)
    base = _as_baseline(baseline, x, "occlusion")
    with eval_mode(model), no_grad():
        clean = select_target(model(x), target, "occlusion")._data  # (N,)
        total = xp.zeros((n,) + dims, dtype=x.dtype)
        for start in range(0, masks.shape[0], perturbations_per_eval):
            chunk = masks[start:start + perturbations_per_eval][:, None]  # (p, 1, *dims)
            occluded = x._data[None] * (1 - chunk) + base._data[None] * chunk  # (p, N, *dims)
            p = chunk.shape[0]
            batch = Tensor._wrap(occluded.reshape((p * n,) + dims))
            targets = Tensor._wrap(xp.tile(target_index(target, n, "occlusion", xp), p))
            drop = clean[None] - select_target(model(batch), targets, "occlusion")._data.reshape(
                p, n)
            total += (drop.reshape((p, n) + (1,) * len(dims)) * chunk).sum(0)
    return Tensor._wrap(total / masks.sum(0))


def _window_and_strides(window, strides, dims):
    window = tuple(int(w) for w in window)
    if len(window) == len(dims) - 1:
        window = (dims[0],) + window
    strides = (strides,) * len(dims) if isinstance(strides, int) else tuple(strides)
    if len(strides) == len(dims) - 1:
        strides = (1,) + strides
    if len(window) != len(dims) or len(strides) != len(dims):
        raise ValueError(f"occlusion: expected a window and strides for the input's dims "
                         f"{dims}, got window {window} and strides {strides}")
    for size, w, s in zip(dims, window, strides):
        if not 1 <= w <= size or s < 1 or (w < size and s > w):
            raise ValueError(f"occlusion: window {window} with strides {strides} does not fit "
                             f"inputs of shape {dims} (need 1 <= window <= size and 1 <= "
                             "stride <= window)")
    return window, strides


def _window_masks(window, strides, dims, xp, dtype):
    """(P, *dims) 0/1 masks, one per window position (P = product of the per-dim counts)."""
    mask = None
    for size, w, s in zip(dims, window, strides):
        count = -(-(size - w) // s) + 1
        begin = xp.arange(count)[:, None] * s
        pos = xp.arange(size)[None, :]
        m = ((pos >= begin) & (pos < begin + w)).astype(dtype)  # (count, size)
        if mask is None:
            mask = m
            continue
        # outer product: (c_0..c_i, s_0..s_i) x (c_j, s_j) -> (c_0..c_i, c_j, s_0..s_i, s_j)
        k = mask.ndim // 2
        mask = mask.reshape(mask.shape[:k] + (1,) + mask.shape[k:] + (1,)) * \
            m.reshape((1,) * k + (m.shape[0],) + (1,) * k + (m.shape[1],))
    return mask.reshape(-1, *dims)


def _as_baseline(baseline, x, caller):
    if baseline is None:
        baseline = 0.0
    if isinstance(baseline, (int, float)):
        return Tensor._wrap(x._xp.full(x.shape, baseline, dtype=x.dtype))
    if not isinstance(baseline, Tensor):
        raise TypeError(f"{caller}: baseline must be a number or a Tensor, got "
                        f"{type(baseline).__name__}")
    if tuple(baseline.shape) == tuple(x.shape[1:]):
        baseline = baseline.unsqueeze(0)
    if baseline.shape[1:] != x.shape[1:] or baseline.shape[0] not in (1, x.shape[0]):
        raise ValueError(f"{caller}: baseline of shape {baseline.shape} does not match inputs "
                         f"of shape {x.shape}")
    return Tensor._wrap(x._xp.broadcast_to(baseline.detach()._data, x.shape).astype(x.dtype))


def _cat(a, b):
    from shendu import cat
    return cat([a, b], 0)


def _cat_index(target, n, xp):
    index = target_index(target, n, "integrated_gradients", xp)
    return Tensor._wrap(xp.concatenate([index, index]))
