"""A voxel of a 3-D U-Net on a 1x128x128x128 volume, explained in float32 and float64: time and peak memory.

    python bench/volume128.py

The U-Net is the suite's ``unet3d_64`` (16 to 128 channels, three levels, BatchNorm merged) with its random
weights; the voxel is the volume's centre.  Peak memory is the process's peak resident set (torch and the model
included), so the float64 row, run second, is the peak of both runs.
"""

from __future__ import annotations

import os
import resource
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import build  # noqa: E402

import reflrp  # noqa: E402
from reflrp import canonize, composites, targets  # noqa: E402


def main():
    for dtype in (torch.float32, torch.float64):
        module = build("unet3d_64", dtype)
        x = torch.rand((1, 1, 128, 128, 128), generator=torch.Generator().manual_seed(1), dtype=dtype)
        graph = canonize.merge_batchnorm(reflrp.from_torch(module, x[:, :, :32, :32, :32]))
        start = time.perf_counter()
        e = reflrp.explain(graph, x.numpy(), targets.Voxel((1, 64, 64, 64)), composites.EpsilonPlus(), cone=False)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        closure = np.abs(e.ledger.closure(relative=True)).max()
        name = str(dtype).split(".")[-1]
        print(f"{name}: {seconds:.1f} s, ledger closure {closure:.1e}, peak resident {peak:.1f} GB", flush=True)


if __name__ == "__main__":
    main()
