"""``shendu viz kernels|features|saliency|adversarial|style``: pictures of a trained model.

Each command loads a checkpoint written by ``shendu train`` (its config.json beside it, read
by ``shendu.cli.load_run``) and writes PNGs into --out. Images go through Pillow (the
``image`` extra) and plots through matplotlib (the ``plot`` extra).
"""
from __future__ import annotations


def training_attack(config):
    """The PGD attack ``shendu train --adversarial-eps EPS`` trains against, or None.

    ``shendu train`` feeds normalised batches, so the attack works in pixel space through the
    dataset's (mean, std): eps is in [0, 1] pixel units, as in Madry et al.
    """
    from shendu.cli import NORMALIZE
    eps, steps = config.adversarial_eps, config.adversarial_steps
    if not 0 <= eps <= 1:
        raise ValueError(f"--adversarial-eps: expected an L-inf budget in [0, 1] pixel units, "
                         f"got {eps}")
    if config.adversarial_ramp < 0:
        raise ValueError(f"--adversarial-ramp: expected a number of batches >= 0, got "
                         f"{config.adversarial_ramp}")
    if steps < 1:
        raise ValueError(f"--adversarial-steps: expected at least 1 PGD step, got {steps}")
    if eps == 0:
        return None
    from shendu import Generator
    from shendu.viz import PGD
    return PGD(eps=eps, steps=steps, normalization=NORMALIZE[config.dataset],
               ramp=config.adversarial_ramp, generator=Generator(seed=config.seed + 3))


COMMANDS = ("kernels", "features", "saliency", "adversarial", "style")


def add_viz_parser(sub):
    """Register ``viz`` and its sub-commands on the main parser's subparsers."""
    viz = sub.add_parser("viz", help="pictures of a trained model: kernels, features, "
                         "saliency, adversarial examples; style transfer")
    viz.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    cmds = viz.add_subparsers(dest="viz_command", metavar="VIZ_COMMAND", required=True)
    helps = {"kernels": "a conv layer's filters as an image grid",
             "features": "feature maps of one test image, one grid per layer",
             "saliency": "saliency, SmoothGrad, integrated gradients, Grad-CAM, occlusion",
             "adversarial": "clean and robust accuracy against eps; clean / perturbation / "
                            "adversarial images",
             "style": "Gatys style transfer of --content in the style of --style"}
    parsers = {name: cmds.add_parser(name, help=helps[name]) for name in COMMANDS}
    for name in COMMANDS[:4]:
        p = parsers[name]
        p.add_argument("--checkpoint", required=True, help="RUN/best.st from `shendu train`")
        p.add_argument("--out", default=None, help="folder for the PNGs (default: RUN/viz)")
        p.add_argument("--data-dir", default=None)
        p.add_argument("--subset", action="store_true")
        p.add_argument("--seed", type=int, default=0)
    parsers["kernels"].add_argument("--layer", default=None, help="default: the first Conv2d")
    parsers["features"].add_argument("--layers", default=None,
                                     help="comma-separated layer names (default: every Conv2d)")
    parsers["features"].add_argument("--index", type=int, default=0, help="test image index")
    sal = parsers["saliency"]
    sal.add_argument("--count", type=int, default=8, help="test images shown")
    sal.add_argument("--layer", default=None, help="Grad-CAM layer (default: the last Conv2d)")
    sal.add_argument("--ig-steps", type=int, default=50)
    sal.add_argument("--window", type=int, default=6, help="occlusion window side")
    sal.add_argument("--stride", type=int, default=2, help="occlusion stride")
    adv = parsers["adversarial"]
    adv.add_argument("--compare", default=None, help="a second checkpoint (e.g. the "
                     "adversarially trained one) drawn on the same plot")
    adv.add_argument("--eps", default="0,0.05,0.1,0.15,0.2,0.3",
                     help="comma-separated L-inf budgets in pixel units")
    adv.add_argument("--steps", type=int, default=10, help="PGD steps (step 2.5 eps / steps)")
    adv.add_argument("--limit", type=int, default=500, help="test images attacked")
    adv.add_argument("--show-eps", type=float, default=None,
                     help="eps of the example grid (default: the largest --eps)")
    adv.add_argument("--count", type=int, default=8, help="examples in the grid")
    st = parsers["style"]
    st.add_argument("--content", required=True)
    st.add_argument("--style", required=True)
    st.add_argument("--out", default="runs/style")
    st.add_argument("--network", default="random", choices=("random", "vgg19"))
    st.add_argument("--weights", default=None, help="vgg19: safetensors file with torchvision's "
                    "vgg19 keys")
    st.add_argument("--size", type=int, default=64, help="side of the (square) images")
    st.add_argument("--steps", type=int, default=40, help="L-BFGS iterations or Adam steps")
    st.add_argument("--optimizer", default="lbfgs", choices=("lbfgs", "adam"))
    st.add_argument("--style-weight", type=float, default=1e6)
    st.add_argument("--content-weight", type=float, default=1.0)
    st.add_argument("--tv-weight", type=float, default=1e-2)
    st.add_argument("--seed", type=int, default=0)


def run_viz(args, log=print):
    """Dispatch ``shendu viz COMMAND``; returns what the command measured (a dict)."""
    from shendu import cli_viz_commands as commands
    return getattr(commands, args.viz_command)(args, log)
