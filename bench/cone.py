"""The receptive cone (issue 22): one output pixel of the U-Net at 3x256x256 on its cone, on the whole model and
with Zennit, 64 pixels of the 3x128x128 U-Net on their cones and on the whole model, and one voxel of the 3-D U-Net
at 1x64x64x64, side by side in one run.
Benchmarks, never assertions.  Zennit joins when it imports (the Zennit venv of ``nox -s peers -- zennit``).

    python bench/cone.py [--repeat 5] [--out bench/results/cone.md]
"""

from __future__ import annotations

import argparse
import datetime
import os

import suite


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--zennit", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                      "cone.md"))
    args = parser.parse_args(argv)
    lines = [*suite.one_pixel(args.repeat, args.zennit), suite.many_targets(args.repeat),
             *suite.one_output("unet3d_64", (1, 64, 64, 64), ((32, 32, 32), (4, 4, 4)), "voxel", "3-D U-Net",
                               args.repeat, args.zennit)]
    for line in lines:
        print(line, flush=True)
    with open(args.out, "w") as handle:
        handle.write(f"# The receptive cone, {datetime.date.today()}\n\n{suite.machine()}\n\n"
                     f"Times in ms: median (min-max) of the repeats (`python bench/cone.py`).\n\n"
                     + "".join(f"- {line}\n" for line in lines))


if __name__ == "__main__":
    main()
