"""Adversarial examples: FGSM and PGD under an L-inf budget, with torchattacks' semantics, and
the attack object that adversarial training (``Trainer(adversarial=PGD(...))``) calls.

Concept: N6.2 (adversarial perturbations). Inputs are images in [0, 1]; a model trained on
normalised inputs is attacked through ``Normalized(model, mean, std)``. Every attack runs the
model in eval mode (restored afterwards, as torchattacks does by default) and differentiates
with respect to the input only, so the model's parameters keep no ``.grad``.
"""
from __future__ import annotations

from shendu import nn
from shendu.autograd import no_grad
from shendu.nn import functional as F
from shendu.tensor import Tensor
from shendu.viz._common import check_images, eval_mode, input_gradient


def fgsm(model, x, y, eps, targeted=False) -> Tensor:
    """Fast gradient sign method: x' = clamp(x + eps * sign(d CE(f(x), y) / dx), 0, 1).

    Equal to ``torchattacks.FGSM(model, eps)(x, y)``; with ``targeted=True`` ``y`` holds the
    target classes and the step descends their loss (torchattacks' targeted mode).

    Args:
        model: maps images in [0, 1] to logits (N, classes).
        x: images in [0, 1]. y: (N,) true labels (or targets when ``targeted``).
        eps: L-inf budget (8/255 in torchattacks' default, 0.1-0.3 for MNIST).

    Shape:
        x (N, C, H, W), y (N,) -> (N, C, H, W) in [0, 1], |x' - x| <= eps.

    Concept: N6.2. Goodfellow, Shlens & Szegedy 2015.
    """
    _check_attack(x, y, eps, "fgsm")
    with eval_mode(model):
        grad = _loss_gradient(model, x.detach(), y, targeted)
    return (x.detach() + eps * grad.sign()).clamp(0.0, 1.0)


def pgd(model, x, y, eps, alpha, steps, random_start=True, targeted=False, init=None,
        generator=None) -> Tensor:
    """Projected gradient descent (Madry et al.'s L-inf attack): from x_0 (x, or x + U(-eps,
    eps) clamped to [0, 1]) repeat  x_{k+1} = clamp(x + clamp(x_k + alpha * sign(grad_k) - x,
    -eps, eps), 0, 1).

    Equal to ``torchattacks.PGD(model, eps, alpha, steps, random_start)(x, y)`` given the same
    random start (torchattacks draws it with ``uniform_``; pass it here as ``init``).

    Args:
        alpha: step size. steps: iterations.
        random_start: start from a uniform point of the eps-ball. Default: True.
        targeted: ``y`` are target classes whose loss is descended. Default: False.
        init: optional starting perturbation (N, C, H, W) in [-eps, eps].
        generator: a ``shendu.Generator`` for the random start. Default: the global one.

    Shape:
        x (N, C, H, W), y (N,) -> (N, C, H, W) in [0, 1], |x' - x| <= eps.

    Concept: N6.2. Madry, Makelov, Schmidt, Tsipras & Vladu 2018.
    """
    from shendu import rand
    _check_attack(x, y, eps, "pgd")
    x = x.detach()
    adv = x
    if init is None and random_start:
        init = (rand(*x.shape, dtype=x.dtype, device=x.device, generator=generator) * 2 - 1) * eps
    if init is not None and random_start:
        if tuple(init.shape) != tuple(x.shape):
            raise ValueError(f"pgd: init must have the images' shape {x.shape}, got {init.shape}")
        adv = (x + init.detach()).clamp(0.0, 1.0)
    with eval_mode(model):
        for _ in range(steps):
            stepped = adv + alpha * _loss_gradient(model, adv, y, targeted).sign()
            adv = (x + (stepped - x).clamp(-eps, eps)).clamp(0.0, 1.0)
    return adv


class PGD:
    """A PGD attack as a callable ``attack(model, x, y) -> x_adv`` (torchattacks' object
    style), for ``Trainer(adversarial=PGD(...))`` (Madry et al.'s adversarial training) and
    for ``robust_accuracy``.

    Args:
        eps, alpha, steps, random_start: as in ``pgd``.
        normalization: (mean, std) when the batches arrive normalised, (x - mean) / std, as
            ``shendu train`` feeds them: the attack then works in pixel space ([0, 1]) and
            returns normalised images. Default: None (batches are images in [0, 1]).
        ramp: grow the budget linearly from eps / ramp to eps over the first ``ramp`` calls
            (training batches), so a small network is not pushed into predicting one class
            before it has learnt anything (an eps schedule, as in Gowal et al. 2018).
            Default: 0 (the full eps from the start, as Madry et al.).
        generator: a ``shendu.Generator`` for the random starts.
    """

    def __init__(self, eps, alpha=None, steps=7, random_start=True, normalization=None,
                 ramp=0, generator=None):
        if eps < 0 or steps < 0 or ramp < 0:
            raise ValueError(f"PGD: eps, steps and ramp must be >= 0, got eps={eps}, "
                             f"steps={steps}, ramp={ramp}")
        self.eps, self.steps, self.random_start = eps, steps, random_start
        self.ramp, self.calls = ramp, 0
        # Madry et al.: 40 steps of 0.01 for eps 0.3; 2.5 eps / steps reaches the ball's edge
        self.alpha = 2.5 * eps / max(steps, 1) if alpha is None else alpha
        self.normalization, self.generator = normalization, generator

    def __repr__(self):
        return (f"PGD(eps={self.eps}, alpha={self.alpha:.4g}, steps={self.steps}, "
                f"random_start={self.random_start})")

    def __call__(self, model, x, y):
        self.calls += 1
        scale = min(1.0, self.calls / self.ramp) if self.ramp else 1.0
        eps, alpha = self.eps * scale, self.alpha * scale
        if self.normalization is None:
            return pgd(model, x, y, eps, alpha, self.steps, self.random_start,
                       generator=self.generator)
        mean, std = self.normalization
        pixels = (x.detach() * std + mean).clamp(0.0, 1.0)
        adv = pgd(Normalized(model, mean, std), pixels, y, eps, alpha, self.steps,
                  self.random_start, generator=self.generator)
        return (adv - mean) / std


class Normalized(nn.Module):
    """``model((x - mean) / std)``: lets attacks work on [0, 1] pixels of a model trained on
    normalised inputs (torchattacks' ``set_normalization_used``).

    Shape:
        x (N, C, H, W) -> model's output.
    """

    def __init__(self, model, mean, std):
        super().__init__()
        self.model, self.mean, self.std = model, float(mean), float(std)

    def forward(self, x):
        return self.model((x - self.mean) / self.std)


def robust_accuracy(model, x, y, eps, attack="pgd", steps=10, alpha=None, batch_size=500,
                    generator=None) -> float:
    """Accuracy on adversarial versions of (x, y): FGSM or PGD (alpha = 2.5 eps / steps) at
    budget ``eps``; eps = 0 gives the clean accuracy. The claim it measures: a perturbation
    too small to see flips most predictions of a standard model, not of a robust one.

    Shape:
        x (N, C, H, W) in [0, 1], y (N,) -> a float in [0, 1].
    """
    if attack not in ("pgd", "fgsm"):
        raise ValueError(f"robust_accuracy: attack must be 'pgd' or 'fgsm', got {attack!r}")
    correct = 0
    for start in range(0, x.shape[0], batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        if eps > 0 and attack == "fgsm":
            xb = fgsm(model, xb, yb, eps)
        elif eps > 0:
            step = 2.5 * eps / steps if alpha is None else alpha
            xb = pgd(model, xb, yb, eps, step, steps, generator=generator)
        with eval_mode(model), no_grad():
            correct += int((model(xb).argmax(1) == yb).sum().item())
    return correct / x.shape[0]


def _loss_gradient(model, images, y, targeted):
    """d CE / d images (the sign of this is the attack step); -CE for a targeted attack."""
    def loss(inp):
        value = F.cross_entropy(model(inp), y)
        return -value if targeted else value
    grad, _ = input_gradient(lambda inp: loss(inp).reshape(1), images)
    return grad


def _check_attack(x, y, eps, caller):
    check_images(x, caller)
    if not isinstance(y, Tensor) or y.shape != (x.shape[0],):
        raise ValueError(f"{caller}: expected labels y of shape ({x.shape[0]},), got "
                         f"{getattr(y, 'shape', type(y).__name__)}")
    if eps < 0:
        raise ValueError(f"{caller}: eps must be >= 0, got {eps}")
    low, high = float(x.min().item()), float(x.max().item())
    if low < 0 or high > 1:
        raise ValueError(f"{caller}: expected images in [0, 1], got values in [{low:.3g}, "
                         f"{high:.3g}]; attack a normalised model through Normalized(model, "
                         "mean, std)")
