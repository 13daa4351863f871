"""Writes the format-1 checkpoints that tests/test_serialization_compat.py must keep loading.

They were written by the serialization code of commit 04f27b7 (before whole-module saving,
``$array`` nodes and device/requires_grad flags existed):
``git show 04f27b7:shendu/serialization.py`` is that code. To rewrite them, run this script
from a checkout of that commit: ``PYTHONPATH=. python tests/golden/checkpoints/make_v1.py``.
Values are built without random numbers so the test can rebuild them exactly.
"""
import os

import shendu


def nested_checkpoint():
    """A checkpoint with every kind of value format 1 knows (see the test for the expected)."""
    weight = shendu.arange(12, dtype=shendu.float32).reshape(3, 4) / 8
    return {"model": {"fc.weight": weight, "fc.bias": shendu.tensor([0.5, -1.0, 2.0]),
                      "bn.num_batches_tracked": shendu.tensor(7),
                      "mask": shendu.tensor([True, False])},
            "optimizer": {"state": {0: {"step": shendu.tensor(3.0),
                                        "exp_avg": shendu.full((3,), 0.25, dtype=shendu.float64)}},
                          "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1],
                                            "name": "a/b#%c"}]},
            "epoch": 3, "best": float("inf"), "note": None, "history": [0.5, 0.25],
            "@weird": shendu.zeros(2, dtype=shendu.int32), "a/b": [shendu.ones(1)],
            "rng": {"loader": shendu.Generator(seed=0).get_state()}}


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    shendu.save(nested_checkpoint(), os.path.join(here, "v1_nested.safetensors"),
                format="safetensors")
    shendu.save(nested_checkpoint(), os.path.join(here, "v1_nested.npz"), format="npz")
    net = shendu.nn.Sequential(shendu.nn.Linear(2, 3), shendu.nn.BatchNorm1d(3))
    with shendu.no_grad():
        for i, p in enumerate(net.parameters()):
            p.copy_(shendu.arange(p.numel(), dtype=shendu.float32).reshape(p.shape) + i)
    shendu.save(net.state_dict(), os.path.join(here, "v1_state_dict.safetensors"))
