"""Live check (``nox -s peers``): the peer harness (tests/peers.py) runs Zennit 0.5.1 itself on the fixture models
and finds no difference under profile="zennit", every composite, BatchNorm merged (with Zennit's merge defect) or
not; under reflrp's own profile it names the layer where Zennit departs."""

from __future__ import annotations

import pathlib
import sys

import torch

import reflrp
from reflrp.compat import Zennit

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests"))
from zennit_fixtures import CNN, HIGH, LOW, UNet, randomize  # noqa: E402

from peers import compare_with  # noqa: E402

COMPOSITES = [reflrp.composites.EpsilonPlus(), reflrp.composites.EpsilonAlpha2Beta1(),
              reflrp.composites.EpsilonPlusFlat(), reflrp.composites.EpsilonAlpha2Beta1Flat(),
              reflrp.composites.EpsilonGammaBox(LOW, HIGH)]


def main():
    torch.set_default_dtype(torch.float64)
    generator = torch.Generator().manual_seed(7)
    for name, module, shape, target in [("cnn", CNN(), (2, 3, 16, 16), 1),
                                        ("unet_upsample", UNet("upsample"), (1, 2, 16, 16), (0, 10, 4)),
                                        ("unet_transposed", UNet("transposed"), (1, 2, 16, 16), (1, 5, 9))]:
        module = randomize(module, generator)
        x = LOW + (HIGH - LOW) * torch.rand(shape, generator=generator)
        for composite in COMPOSITES:
            for merged in (False, True):
                profile = Zennit(merge_batchnorm=merged, merge_defect=merged)
                report = compare_with("zennit", module, x, target, composite, profile=profile,
                                      merge_batchnorm=merged)
                assert report.relevance.relative <= 1e-10 and report.departure is None, (name, composite, report)
        own = compare_with("zennit", module, x, target, reflrp.composites.EpsilonPlus())
        assert own.explained_by == "zennit" and own.departure is not None, own
        print(f"{name}: Zennit reproduced by profile='zennit' in every composite; under reflrp's own conventions it "
              f"departs at {own.departure.layers}")


if __name__ == "__main__":
    main()
