"""The receptive cone (issue 22): one output pixel of the U-Net at 3x256x256 on its cone, on the whole model and
with Zennit, 64 pixels of the 3x128x128 U-Net on their cones and on the whole model, and one voxel of the 3-D U-Net
at 1x64x64x64, side by side in one run.
Benchmarks, never assertions.  Zennit joins when it imports (the Zennit venv of ``nox -s peers -- zennit``).

    python bench/cone.py [--repeat 5] [--out bench/results/cone.md]
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os

import suite
import torch
from models import build
from timing import timed

import reflrp
from reflrp import canonize, composites, targets


def one_voxel(repeat, with_zennit=True):
    """One output voxel of the 3-D U-Net at 1x64x64x64 (float32, EpsilonPlus, batch 1), its centre and a corner: on
    its cone, on the whole model, and Zennit's."""
    module = build("unet3d_64", torch.float32)
    x = torch.rand((1, 1, 64, 64, 64), generator=torch.Generator().manual_seed(1))
    graph = canonize.merge_batchnorm(reflrp.from_torch(module, x))
    lines = []
    for voxel in ((32, 32, 32), (4, 4, 4)):
        explain = functools.partial(reflrp.explain, graph, x.numpy(), targets.Voxel((1, *voxel)),
                                    composites.EpsilonPlus())
        cone = timed(lambda: explain(cone=True), repeat)  # noqa: B023 (timed calls it at once)
        whole = timed(lambda: explain(cone=False), repeat)  # noqa: B023
        line = (f"one voxel {voxel} of the 3-D U-Net at 1x64x64x64 (float32, EpsilonPlus, batch 1): on its cone "
                f"{suite.fmt(cone)} ms, on the whole model {suite.fmt(whole)} ms ({cone[0] / whole[0]:.2f}x)")
        zennit = suite.zennit_explainer(module, "EpsilonPlus", x, (1, *voxel)) if with_zennit else None
        if zennit is not None:
            theirs = timed(zennit, repeat)
            line += f"; Zennit {suite.fmt(theirs)} ms: the cone {cone[0] / theirs[0]:.2f}x Zennit"
        lines.append(line)
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--zennit", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                      "cone.md"))
    args = parser.parse_args(argv)
    lines = [*suite.one_pixel(args.repeat, args.zennit), suite.many_targets(args.repeat),
             *one_voxel(args.repeat, args.zennit)]
    for line in lines:
        print(line, flush=True)
    with open(args.out, "w") as handle:
        handle.write(f"# The receptive cone, {datetime.date.today()}\n\n{suite.machine()}\n\n"
                     f"Times in ms: median (min-max) of the repeats (`python bench/cone.py`).\n\n"
                     + "".join(f"- {line}\n" for line in lines))


if __name__ == "__main__":
    main()
