"""Train the 3-D worked example's U-Net to segment spheres and cubes, write the shipped model file and draw the
pictures of docs/volumes.md.

    pip install -e ".[torch,viz]" && python scripts/train_unet3d.py

Data come from reflrp.shapes (generated in code, seeded). The network is a two-level 3-D U-Net in PyTorch
(convolutions with BatchNorm and ReLU, max pooling down, a transposed convolution up, a concatenation skip, three
classes), trained on the CPU in about a minute, imported with reflrp.from_torch and saved in float32 with
reflrp.save. The file records the seed, the final training loss and the Dice score of each structure on held-out
volumes, measured with the imported reflrp model.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np
import torch
from torch import nn

import reflrp
from reflrp import composites, targets, viz
from reflrp.shapes import CLASSES, make_shapes

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "reflrp" / "data" / "unet3d_shapes.reflrp"
IMAGES = ROOT / "docs" / "images"


def block(cin, cout):
    return nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm3d(cout), nn.ReLU())


class UNet3d(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(block(1, 8), block(8, 8))
        self.pool = nn.MaxPool3d(2)
        self.mid = nn.Sequential(block(8, 16), block(16, 16))
        self.up = nn.ConvTranspose3d(16, 8, 2, stride=2)
        self.dec = nn.Sequential(block(16, 8), block(8, 8))
        self.out = nn.Conv3d(8, len(CLASSES), 1)

    def forward(self, x):
        skip = self.enc(x)
        return self.out(self.dec(torch.cat([skip, torch.relu(self.up(self.mid(self.pool(skip))))], dim=1)))


def dice(predicted, labels, k):
    a, b = predicted == k, labels == k
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=pathlib.Path, default=OUT)
    parser.add_argument("--pictures-only", action="store_true", help="redraw the pictures from the shipped model")
    args = parser.parse_args()
    if args.pictures_only:
        draw(reflrp.load(args.out).astype(np.float64), make_shapes(16, seed=args.seed + 1)[0][:1])
        return
    torch.manual_seed(args.seed)
    volumes, labels = make_shapes(256, seed=args.seed)
    model = UNet3d()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = torch.from_numpy(volumes).float(), torch.from_numpy(labels)
    weights = torch.tensor([0.2, 1.0, 1.0])  # the structures are a few percent of the voxels
    start = time.perf_counter()
    for step in range(args.steps):
        batch = torch.randint(0, len(x), (8,))
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch], weight=weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0:
            print(f"step {step}: loss {loss.item():.4f}")
    model.eval()
    graph = reflrp.from_torch(model.double(), volumes[:1]).astype(np.float32)
    held_out, truth = make_shapes(16, seed=args.seed + 1)
    predicted = np.argmax(graph(held_out.astype(np.float32)), axis=1)
    metadata = {
        "made_by": "scripts/train_unet3d.py", "seed": args.seed, "steps": args.steps,
        "train_seconds": round(time.perf_counter() - start, 1), "final_loss": round(float(loss.item()), 4),
        "held_out_dice": {CLASSES[k]: round(dice(predicted, truth, k), 3) for k in (1, 2)},
        "torch": torch.__version__, "classes": list(CLASSES),
    }
    reflrp.save(graph, args.out, metadata=metadata)
    print(metadata)
    draw(graph.astype(np.float64), held_out[:1])


def draw(graph, volume):
    """The pictures of docs/volumes.md: one voxel of the sphere, and the whole predicted sphere."""
    IMAGES.mkdir(exist_ok=True)
    predicted = np.argmax(graph(volume), axis=1)[0]
    voxel = tuple(int(v) for v in np.argwhere(predicted == 1).mean(axis=0).round())
    e = reflrp.explain(graph, volume, targets.Voxel((1, *voxel)), composites.EpsilonPlus())
    viz.save_volume(IMAGES / "volume_voxel.png", e.relevance[0], voxel, image=volume[0], quantile=1.0,
                    title=f"EpsilonPlus: the sphere's logit at voxel {voxel} (red +, blue -)")
    e = reflrp.explain(graph, volume, targets.ArgmaxRegion(1), composites.EpsilonPlus())
    viz.save_volume(IMAGES / "volume_structure.png", e.relevance[0], voxel, image=volume[0], quantile=1.0,
                    title="EpsilonPlus: every voxel predicted as the sphere (red +, blue -)")


if __name__ == "__main__":
    main()
