"""R-CNN against Fast R-CNN: training and test time per image on the same MNIST scenes.

Both detectors share the proposals (grouped connected components, ~50 per scene), the
backbone widths and the head sizes; they differ only in where the CNN runs: once per warped
region (R-CNN) or once per image with RoI pooling (Fast R-CNN). Steps of the two alternate so
that both see the same machine load, and each is timed in wall-clock and in process CPU
seconds (the CPU figure is the one to trust on a shared machine). Proposal time is printed
separately (the Fast R-CNN paper's timings also exclude proposals). Weights come from run
folders when given (--rcnn / --fast-rcnn point at best.st files), else from initialisation;
the time per image barely depends on them.

Run: ``python benchmarks/detection.py [--scenes 16] [--repeats 3] [--data-dir DIR]``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import shendu
from shendu.vision.datasets import MNISTScenes
from shendu.vision.detection import RCNN, FastRCNN, grouped_component_proposals


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", default="/work/shared/data/mnist")
    parser.add_argument("--rcnn", default=None)
    parser.add_argument("--fast-rcnn", default=None)
    args = parser.parse_args()
    data = MNISTScenes(root=args.data_dir, train=False, num_scenes=args.scenes, seed=2)
    images, targets = data.get_batch(np.arange(args.scenes))
    models = {"R-CNN": RCNN(), "Fast R-CNN": FastRCNN()}
    for name, path in (("R-CNN", args.rcnn), ("Fast R-CNN", args.fast_rcnn)):
        if path:
            models[name].load_state_dict(shendu.load(path)["model"])
    wall, cpu = timed(lambda: grouped_component_proposals(images))
    proposals = grouped_component_proposals(images)
    count = np.mean([p.shape[0] for p in proposals])
    print(f"proposals: {count:.1f} per scene, {1e3 * wall / args.scenes:.1f} ms wall, "
          f"{1e3 * cpu / args.scenes:.1f} ms CPU per scene")
    results = {name: {"test": [], "train": []} for name in models}
    for _ in range(args.repeats):
        for name, model in models.items():
            model.eval()
            with shendu.no_grad():
                results[name]["test"].append(timed(lambda: model(images, proposals=proposals)))
            model.train()
            opt = shendu.optim.SGD(model.parameters(), lr=0.0)

            def step():
                loss = sum(model(images, targets, proposals=proposals).values())
                opt.zero_grad()
                loss.backward()
                opt.step()
            results[name]["train"].append(timed(step))
    for phase in ("test", "train"):
        rows = {}
        for name in models:
            w = statistics.median(t[0] for t in results[name][phase]) / args.scenes
            c = statistics.median(t[1] for t in results[name][phase]) / args.scenes
            rows[name] = (w, c)
            print(f"{phase:5s} {name:10s}: {1e3 * w:8.1f} ms wall, {1e3 * c:8.1f} ms CPU per image")
        print(f"{phase:5s} R-CNN / Fast R-CNN: {rows['R-CNN'][0] / rows['Fast R-CNN'][0]:.1f}x "
              f"wall, {rows['R-CNN'][1] / rows['Fast R-CNN'][1]:.1f}x CPU")


if __name__ == "__main__":
    main()
