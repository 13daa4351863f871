"""``shendu lm``: train a character language model, sample from it, and the fine-tuning demo.

    shendu lm train --model gpt|lstm|gru|rnn [--data PATH] [--max-steps N] [--time-limit S] ...
    shendu lm sample --checkpoint runs/.../model.st --prompt "ROMEO:" [--max-new-tokens N] ...
    shendu lm finetune-demo --checkpoint runs/.../model.st [--train-per-class N] ...

Concept: N4 (recurrent language models), N5.3 (pre-training and fine-tuning).
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import fields

from shendu.lm.pretrain import HELP, MODELS, LMConfig


def _flag(name):
    return "--" + name.replace("_", "-")


def _add_train(parser):
    defaults = LMConfig()
    for f in fields(LMConfig):
        default = getattr(defaults, f.name)
        if f.name == "bias":  # default True: the --no-bias flag below
            continue
        if f.name == "device":  # _add_device: also accepted before the sub-command
            continue
        if f.type == "bool":
            parser.add_argument(_flag(f.name), action="store_true", help=HELP[f.name])
            continue
        kind = {"int": int, "float": float}.get(f.type.split(" |")[0], str)
        parser.add_argument(_flag(f.name), type=kind, default=default,
                            choices=MODELS if f.name == "model" else None,
                            help=HELP[f.name] + (f"; default: {default}"
                                                 if default is not None else ""))
    parser.add_argument("--no-bias", dest="bias", action="store_false",
                        help="GPT: Linear and LayerNorm layers without biases")
    parser.add_argument("--sample-chars", type=int, default=200,
                        help="characters sampled from the trained model at the end")


def _add_device(parser):
    """--device after the sub-command too; SUPPRESS keeps a value given before it."""
    parser.add_argument("--device", default=argparse.SUPPRESS, choices=("cpu", "cuda"),
                        help="where to compute (also accepted before the sub-command)")


def add_lm_parser(sub):
    """Register ``lm`` and its sub-commands on the main parser's subparsers."""
    lm = sub.add_parser("lm", help="character language models: train, sample, finetune-demo")
    lm.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to compute")
    cmds = lm.add_subparsers(dest="lm_command", metavar="LM_COMMAND", required=True)
    train = cmds.add_parser("train", help="pre-train by next-character prediction "
                            "(default: GPT on tiny Shakespeare)")
    _add_train(train)
    sample = cmds.add_parser("sample", help="generate text from a checkpoint")
    sample.add_argument("--checkpoint", required=True, help="model.st of `shendu lm train`")
    sample.add_argument("--prompt", default="\n", help="text to continue; default: a newline")
    sample.add_argument("--max-new-tokens", type=int, default=500,
                        help="characters to generate; default: 500")
    sample.add_argument("--temperature", type=float, default=1.0,
                        help="divide the logits by this (< 1: safer, > 1: wilder); default: 1")
    sample.add_argument("--top-k", type=int, default=None,
                        help="sample only among the k likeliest characters")
    sample.add_argument("--seed", type=int, default=None, help="seed of the sampling")
    demo = cmds.add_parser("finetune-demo", help="speaker classification with few labels: "
                           "pre-trained + fine-tuned vs from scratch")
    demo.add_argument("--checkpoint", required=True, help="model.st from `shendu lm train`")
    demo.add_argument("--data", default=None,
                      help="text file of the speaker task (default: tiny Shakespeare)")
    demo.add_argument("--num-speakers", type=int, default=6,
                      help="characters (classes) to tell apart; default: 6")
    demo.add_argument("--train-per-class", type=int, default=48,
                      help="labelled lines per speaker; default: 48")
    demo.add_argument("--epochs", type=int, default=30,
                      help="passes over the labelled lines; default: 30")
    demo.add_argument("--lr", type=float, default=1e-3,
                      help="lr of the new head and of the from-scratch run; default: 1e-3")
    demo.add_argument("--body-lr", type=float, default=3e-4,
                      help="lr of the pre-trained body when fine-tuning; default: 3e-4")
    demo.add_argument("--probe-lr", type=float, default=1e-2,
                      help="lr of the linear probe (frozen body); default: 1e-2")
    demo.add_argument("--batch-size", type=int, default=32,
                      help="lines per step; default: 32")
    demo.add_argument("--seed", type=int, default=0,
                      help="seed of the first repeat (then seed + 1, ...); default: 0")
    demo.add_argument("--repeats", type=int, default=3, help="training seeds per method")
    _add_device(train)
    return lm


def run_lm(args, log=print):
    """Run the ``lm`` sub-command in ``args``; returns its result (a dict or the text)."""
    from shendu.distributed import get_rank
    from shendu.lm import finetune_demo, load_pretrained, pretrain, sample_text
    if args.lm_command == "train":
        names = {f.name for f in fields(LMConfig)}
        config = LMConfig(**{k: v for k, v in vars(args).items() if k in names})
        if config.out is None:  # named here so that an interruption can say where it is
            config.out = os.path.join("runs", f"lm-{config.model}-"
                                              f"{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            result = pretrain(config, log=log)
        except KeyboardInterrupt:
            from shendu.cli import Interrupted
            best = os.path.join(config.out, "best.st")
            where = (f"the best checkpoint so far is {best}" if os.path.exists(best)
                     else "no evaluation finished, so no checkpoint was written")
            raise Interrupted(f"interrupted; {where}") from None
        if args.sample_chars > 0 and get_rank() == 0:
            # sampled on the CPU: the prompt ids and the seeded generator live there
            log("sample:\n" + sample_text(result["model"].cpu(), result["vocab"], "\n",
                                          args.sample_chars, top_k=None, seed=config.seed))
        return result
    if args.lm_command == "sample":
        model, vocab, _ = load_pretrained(args.checkpoint)
        text = sample_text(model, vocab, args.prompt, args.max_new_tokens, args.temperature,
                           args.top_k, args.seed)
        log(text)
        return text
    from shendu.data.text import load_text
    return finetune_demo(args.checkpoint, load_text(args.data), args.num_speakers,
                         args.train_per_class, args.epochs, args.lr, args.body_lr,
                         args.probe_lr, args.batch_size, args.seed, args.repeats, log=log)
