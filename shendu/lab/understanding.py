"""N6.2 (visualization and understanding): adversarial perturbations and saliency sanity.

- adversarial: a small CNN trained on MNIST as usual and the same CNN trained adversarially
  (Madry et al.'s scheme, every batch replaced by its attack, with Wong et al.'s one-step
  attack from a random start to fit the lab's time; same steps, batches and optimizer) are
  attacked by 10-step PGD under an L-inf budget ``EPS`` on [0, 1] pixels. Claim part 1: most of the
  standard model's correct predictions flip (``check_each``, fraction > 0.5 on every seed);
  part 2: the adversarially trained model keeps markedly more accuracy under the same attack
  (``compare``, at least ``ROBUST_GAIN`` more).
- saliency: the Spearman rank correlation between the saliency map (|d logit_y / d x|) of the
  trained standard CNN and that of its ``randomized_copy`` (Adebayo et al.'s independent
  randomisation) is low on every seed; control: the maps of two CNNs trained from different
  seeds agree more with each other than a trained map agrees with its random copy's.

One standard and one adversarial CNN per seed, cached within a process and shared by both
claims.
"""
from __future__ import annotations

import itertools

import shendu
from shendu.lab.common import _quiet, mnist, pyplot, save_figure, seed_list, train_steps
from shendu.lab.result import ClaimResult, check_each, combine, compare, summarize

ADVERSARIAL_ID, SALIENCY_ID = "N6.2-adversarial-robustness", "N6.2-saliency-randomization"
EPS = 0.1  # L-inf on [0, 1] pixels: each pixel moves by at most 25.5/255
EPS_GRID = (0.0, 0.05, 0.1, 0.15, 0.2)
ROBUST_GAIN = 0.2  # "markedly more robust": at least 20 accuracy points more under attack
SIMILAR = 0.5  # rank correlation below this: the trained and random maps differ
CONTROL_GAIN = 0.1  # two trained nets' maps must agree by >= 0.1 more rank correlation
ATTACK_STEPS = 10  # PGD steps when evaluating (alpha = 2.5 eps / steps, robust_accuracy's)
# adversarial training attack: one signed step of 1.25 eps from a random start in the ball
# (Wong, Rice & Kolter 2020's fast adversarial training: 2 passes per step, not PGD-k's k + 1)
TRAIN_ALPHA = 1.25
_MODELS = {}


def _config(quick):
    """(training images, test images, steps, batch) of one training run."""
    return (1000, 100, 20, 32) if quick else (20000, 500, 400, 64)


def _cnn():
    """The fault zoo's small LeNet-like CNN (2x average-pooled input, conv 16 and 32 channels,
    ReLU, max pooling, 32 hidden units): (N, 1, 28, 28) in [0, 1] -> logits (N, 10)."""
    from shendu.train.fault_zoo import cnn
    return cnn(channels=(16, 32))


def _trained(kind, quick, seed):
    """The 'standard' or 'adversarial' CNN of ``seed`` (cached); returns (model, setup text)."""
    from shendu.viz import PGD
    key = (kind, quick, seed)
    if key not in _MODELS:
        n_train, n_val, steps, batch = _config(quick)
        x, y, _, _, source = mnist(n_train, n_val)
        shendu.manual_seed(seed)
        model = _cnn()
        attack = None
        if kind == "adversarial":
            # the budget grows over the first quarter of training (Gowal et al.'s schedule) so
            # the small net learns the digits before it must resist the full attack
            attack = PGD(EPS, alpha=TRAIN_ALPHA * EPS, steps=1, ramp=steps // 4,
                         generator=shendu.Generator(seed=seed + 1000))
        train_steps(model, x, y, steps, lr=1e-3, batch=batch, seed=seed, optimizer="adam",
                    attack=attack)
        setup = (f"CNN (fault_zoo.cnn, channels 16/32, ReLU) trained with Adam lr 1e-3, batch "
                 f"{batch}, {steps} steps on {n_train} {source} training images in [0, 1]; "
                 f"adversarial training: every batch replaced by its attack at eps {EPS} (one "
                 f"signed step of {TRAIN_ALPHA} eps from a random start, Wong et al. 2020's "
                 f"fast adversarial training; eps ramped up over the first {steps // 4} steps), "
                 "same steps, batches and optimizer")
        _MODELS[key] = (model, setup)
    return _MODELS[key]


def _test_set(quick):
    """The first test images of the run's size: x (N, 1, 28, 28) in [0, 1], y (N,)."""
    _, _, xv, yv, _ = mnist(1, _config(quick)[1])
    return xv, yv


def _attack(model, x, y, seed):
    """PGD at ``EPS`` with the evaluation settings: (N, 1, 28, 28) -> same, |x' - x| <= EPS."""
    from shendu.viz import pgd
    return pgd(model, x, y, EPS, 2.5 * EPS / ATTACK_STEPS, ATTACK_STEPS,
               generator=shendu.Generator(seed=seed))


def _predict(model, x):
    """Predicted classes (N,) of ``model`` on x (N, 1, 28, 28), in eval mode, no grad."""
    was_training = model.training
    with shendu.no_grad():
        pred = model.eval()(x).argmax(1)
    model.train(was_training)
    return pred


def run_adversarial(quick=False, seed=0, seeds=None, out=None, progress=None):
    from shendu.viz import robust_accuracy
    progress = progress or _quiet()
    seeds = seed_list(seed, seeds, quick)
    xv, yv = _test_set(quick)
    grid = (0.0, EPS) if quick else EPS_GRID
    curves = {"standard": [], "adversarial": []}
    flipped, clean, robust = [], {"standard": [], "adversarial": []}, \
        {"standard": [], "adversarial": []}
    examples = None
    for s in seeds:
        for kind in curves:
            model, setup = _trained(kind, quick, s)
            gen = shendu.Generator(seed=s + 2000)
            right = _predict(model, xv) == yv
            adv = _attack(model, xv, yv, s + 3000)  # the attack both parts of the claim use
            correct_adv = _predict(model, adv) == yv
            if kind == "standard":
                # part 1: of the test images the model gets right, the fraction PGD flips
                flipped.append((right & ~correct_adv).sum().item() / max(right.sum().item(), 1))
                model_std, adv_std = model, adv
            clean[kind].append(right.double().mean().item())
            robust[kind].append(correct_adv.double().mean().item())
            curves[kind].append([clean[kind][-1] if e == 0 else robust[kind][-1] if e == EPS
                                 else robust_accuracy(model, xv, yv, e, steps=ATTACK_STEPS,
                                                      generator=gen) for e in grid])
        model, adv = model_std, adv_std
        if examples is None:
            robust_model = _trained("adversarial", quick, s)[0]
            adv_robust = _attack(robust_model, xv[:4], yv[:4], s + 4000)
            examples = (xv[:4], adv[:4], adv_robust, yv[:4], _predict(model, xv[:4]),
                        _predict(model, adv[:4]), _predict(robust_model, adv_robust))
        progress.update()
    parts = [check_each(flipped, lambda v: v > 0.5, f"> half of the standard model's correct "
                        f"predictions flipped by PGD at eps {EPS}"),
             compare(robust["adversarial"], robust["standard"], "adversarial training",
                     "standard training", min_effect=ROBUST_GAIN)]
    verdict, reason = combine(parts)
    fig = _adversarial_figure(grid, curves, examples)
    return ClaimResult(
        ADVERSARIAL_ID, "N6.2", "a perturbation too small to see flips most predictions of a "
        "standard model, and adversarial training makes the model markedly more robust to it",
        f"{setup}. Attack: PGD (shendu.viz.pgd, random start, {ATTACK_STEPS} steps of 2.5 "
        f"eps / {ATTACK_STEPS}) under the L-inf bound eps = {EPS} on [0, 1] pixels (no pixel "
        f"moves by more than {EPS * 255:.1f}/255; the digits stay readable, see the figure), "
        f"on the first {xv.shape[0]} test images. Part 1: fraction of the standard "
        f"model's correct predictions that the attack flips, > 0.5 on every seed; part 2: "
        f"accuracy under the attack, adversarial vs standard model, at least {ROBUST_GAIN} "
        "higher (one-sided Welch p < 0.05 over seeds)",
        {"standard: flipped fraction": summarize(flipped),
         "standard clean acc": summarize(clean["standard"]),
         "adversarial clean acc": summarize(clean["adversarial"]),
         f"standard acc under PGD eps {EPS}": summarize(robust["standard"]),
         f"adversarial acc under PGD eps {EPS}": summarize(robust["adversarial"])},
        verdict, reason, save_figure(fig, out, ADVERSARIAL_ID), quick, seeds)


def _image(t):
    """(1, 28, 28) or (28, 28) tensor -> nested lists for imshow."""
    return t.reshape(28, 28).tolist()


def _adversarial_figure(grid, curves, examples):
    plt = pyplot()
    fig = plt.figure(figsize=(10, 4))
    spec = fig.add_gridspec(3, 6)
    ax = fig.add_subplot(spec[:, :2])
    for kind, color in (("standard", "C3"), ("adversarial", "C0")):
        runs = curves[kind]
        mid = [sum(r[i] for r in runs) / len(runs) for i in range(len(grid))]
        ax.plot(grid, mid, marker="o", color=color, label=f"{kind} training")
        if len(runs) > 1:
            ax.fill_between(grid, [min(r[i] for r in runs) for i in range(len(grid))],
                            [max(r[i] for r in runs) for i in range(len(grid))], color=color,
                            alpha=0.2)
    ax.axvline(EPS, color="k", ls=":", lw=0.8)
    ax.set_xlabel("PGD budget eps (L-inf, pixels in [0, 1])"), ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02), ax.legend(fontsize=8), ax.set_title("accuracy under attack")
    x, adv, adv_robust, y, pred, pred_adv, pred_robust = examples
    for col in range(4):
        for row, (img, title) in enumerate((
                (x[col], f"label {y[col].item()}, std: {pred[col].item()}"),
                (adv[col], f"vs std: {pred_adv[col].item()}"),
                (adv_robust[col], f"vs robust: {pred_robust[col].item()}"))):
            a = fig.add_subplot(spec[row, 2 + col])
            a.imshow(_image(img), cmap="gray", vmin=0, vmax=1)
            a.set_title(title, fontsize=7), a.axis("off")
    fig.suptitle(f"rows: clean image (standard model's prediction); PGD eps {EPS} against the "
                 f"standard model; PGD eps {EPS} against the adversarially trained one",
                 fontsize=8)
    return fig


def run_saliency(quick=False, seed=0, seeds=None, out=None, progress=None):
    from shendu.viz import (randomized_copy, rank_correlation, saliency,
                            saliency_randomization_check)
    progress = progress or _quiet()
    seeds = seed_list(seed, seeds, quick)
    xv, yv = _test_set(quick)
    maps, random_corr, shown = {}, [], None
    for s in seeds:
        model, setup = _trained("standard", quick, s)
        random_corr.append(saliency_randomization_check(
            model, xv, yv, generator=shendu.Generator(seed=s + 5000)))
        maps[s] = saliency(model, xv, yv)
        if shown is None:  # the same random draw as the check's, for the figure
            random_net = randomized_copy(model, generator=shendu.Generator(seed=s + 5000))
            shown = (xv[:4], maps[s][:4], saliency(random_net, xv[:4], yv[:4]))
        progress.update()
    parts = [check_each(random_corr, lambda v: v < SIMILAR, f"mean Spearman correlation of "
                        f"trained vs randomized-weights saliency < {SIMILAR}")]
    # control: every pair of seeds' maps, two nets that both learnt the digits (3 pairs for
    # 3 seeds; 2 seeds give a single pair, too few for the test, which then says so)
    trained_corr = [rank_correlation(maps[a], maps[b]).mean().item()
                    for a, b in itertools.combinations(seeds, 2)]
    measurement = {"trained vs random rank corr": summarize(random_corr)}
    if trained_corr:
        parts.append(compare(trained_corr, random_corr, "trained vs trained (another seed)",
                             "trained vs random weights", min_effect=CONTROL_GAIN))
        measurement["trained vs trained (other seed) rank corr"] = summarize(trained_corr)
    verdict, reason = combine(parts)
    fig = _saliency_figure(*shown)
    return ClaimResult(
        SALIENCY_ID, "N6.2", "saliency maps of a trained model differ from those of the same "
        "model with random weights (the map reflects what was learned, not only the input)",
        f"{setup}. Saliency |d logit_label / d x| (shendu.viz.saliency) on the first "
        f"{xv.shape[0]} test images, for the trained standard CNN and its "
        "randomized_copy (every parameter redrawn from N(0, s^2), s its trained std); per "
        f"seed the mean per-image Spearman rank correlation, < {SIMILAR} on every seed; "
        "control (with >= 2 seeds): the maps of CNNs trained from two different seeds (every "
        f"pair) agree more than trained vs random, by at least {CONTROL_GAIN} (one-sided Welch "
        "p < 0.05)",
        measurement, verdict, reason, save_figure(fig, out, SALIENCY_ID), quick, seeds)


def _saliency_figure(images, trained, random):
    plt = pyplot()
    fig, axes = plt.subplots(3, 4, figsize=(6, 4.6))
    for col in range(4):
        for row, (t, title, cmap) in enumerate(((images[col], "input", "gray"),
                                                (trained[col], "trained", "hot"),
                                                (random[col], "random weights", "hot"))):
            ax = axes[row][col]
            ax.imshow(_image(t), cmap=cmap)
            ax.set_title(title, fontsize=7), ax.axis("off")
    fig.suptitle("saliency |d logit / d x|: trained CNN vs its randomized copy", fontsize=9)
    return fig
