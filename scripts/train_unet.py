"""Train the demo U-Net to segment digit strokes, and write the shipped model file.

    pip install -e ".[torch]" && python scripts/train_unet.py

Data come from reflrp.digits (generated in code, seeded). The network is reflrp.models.small_unet's
architecture written in PyTorch with the same parameter names, trained with BatchNorm in training mode, then
exported through reflrp.models.small_unet and saved with reflrp.save. The file records the seed, the final
training loss and the quality on held-out digits, measured with the exported reflrp model.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np
import torch
from torch import nn

import reflrp
from reflrp.digits import make_digits, stroke_labels
from reflrp.models import UNET_CONVS, small_unet

OUT = pathlib.Path(__file__).resolve().parent.parent / "reflrp" / "data" / "unet_digits.reflrp"


class TorchUNet(nn.Module):
    """reflrp.models.small_unet in PyTorch; state_dict names match reflrp.models.unet_parameter_shapes."""

    def __init__(self):
        super().__init__()
        for name, cin, cout in UNET_CONVS:
            setattr(self, name, nn.Conv2d(cin, cout, 3, bias=False))
            setattr(self, f"bn{name[-1]}", nn.BatchNorm2d(cout))
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.out = nn.Conv2d(4, 1, 1)

    def block(self, h, name):
        return torch.relu(getattr(self, f"bn{name[-1]}")(getattr(self, name)(h)))

    def forward(self, x):
        h = self.block(x, "conv1")
        skip = self.block(h, "conv2")
        h = self.block(self.block(nn.functional.max_pool2d(skip, 2), "conv3"), "conv4")
        h = torch.relu(self.up(h))
        h = torch.cat([h, skip[:, :, 4:-4, 4:-4]], dim=1)
        return self.out(self.block(self.block(h, "conv5"), "conv6"))


def quality(model, images, labels):
    """Pixel accuracy and foreground IoU of ``sigmoid(logit) > 0.5``, computed with the reflrp model."""
    predicted = model(images) > 0.5
    truth = labels > 0.5
    accuracy = float((predicted == truth).mean())
    iou = float((predicted & truth).sum() / max(1, (predicted | truth).sum()))
    return accuracy, iou


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--train", type=int, default=16000)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--out", type=pathlib.Path, default=OUT)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    images, _ = make_digits(args.train, seed=args.seed)
    test_images, _ = make_digits(2000, seed=args.seed + 1)
    x, y = torch.from_numpy(images).float(), torch.from_numpy(stroke_labels(images)).float()
    net = TorchUNet()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    loss_fn = nn.BCEWithLogitsLoss()
    start = time.time()
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(len(x))
        total = 0.0
        for k in range(0, len(x), 64):
            batch = order[k : k + 64]
            loss = loss_fn(net(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        schedule.step()
        print(f"epoch {epoch + 1}/{args.epochs}: training loss {total / len(x):.4f} ({time.time() - start:.0f} s)")
    final_loss = total / len(x)
    net.eval()
    state = {k: v.detach().double().numpy() for k, v in net.state_dict().items() if "num_batches" not in k}
    model = small_unet(state, batchnorm=True)
    accuracy, iou = quality(model, test_images, stroke_labels(test_images))
    with torch.no_grad():
        reference = torch.sigmoid(net.double()(torch.from_numpy(test_images[:64]))).numpy()
    agreement = float(np.abs(model(test_images[:64]) - reference).max())
    metadata = {
        "description": "small U-Net segmenting the strokes of generated digits (input > 0.5, center 12x12)",
        "trained_by": "scripts/train_unet.py",
        "seed": args.seed,
        "train_images": args.train,
        "epochs": args.epochs,
        "final_training_loss": round(final_loss, 5),
        "test_images": 2000,
        "test_pixel_accuracy": round(accuracy, 4),
        "test_foreground_iou": round(iou, 4),
        "max_abs_difference_to_pytorch": agreement,
    }
    reflrp.save(model, args.out, metadata=metadata)
    print(metadata)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
