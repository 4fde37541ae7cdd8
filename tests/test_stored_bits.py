"""Relevance bits pinned by stored SHA-256 digests: refactors and speed work must not change a single bit.

The digests were computed before the layer-protocol refactor (the Gamma cases after Gamma was made the
published rule).  Every case hashes whole relevance arrays (and the
ledger's per-node columns), never sums.  A case whose numbers change *on purpose* (a rule fixed to match its
publication, a documented accumulation policy) gets a new digest in the same commit as the change, with the
reason in the commit message.

The cases compute everywhere (``cone=False``); the ``.../cone`` cases pin the receptive cone's own bits
(:mod:`reflrp.cone`: the same maps to rounding, computed with products of other shapes).

    python tests/test_stored_bits.py     # prints the digests of the current code
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import reflrp
from reflrp import composites, rules, targets
from reflrp.canonize import merge_batchnorm
from reflrp.digits import make_digits
from reflrp.models import DIGITS_UNET_FILE


def shipped_unet():
    return reflrp.load(DIGITS_UNET_FILE)


def pooling_cnn(dtype):
    """Every parameter-free linear layer, BatchNorm, groups, dilation, transposed conv and a dense head."""
    rng = np.random.default_rng(11)
    layers = [
        reflrp.Conv2d(rng.normal(size=(6, 2, 3, 3)) / 3, rng.normal(size=6), padding=1),
        reflrp.BatchNorm2d(rng.normal(size=6), rng.uniform(0.5, 2, 6), rng.normal(size=6), rng.normal(size=6)),
        reflrp.ReLU(),
        reflrp.AvgPool2d(3, 2, 1, count_include_pad=False),
        reflrp.Upsample(2, mode="bilinear"),
        reflrp.Conv2d(rng.normal(size=(8, 3, 3, 3)) / 3, None, padding=2, dilation=2, groups=2),
        reflrp.LeakyReLU(0.1),
        reflrp.ConvTranspose2d(rng.normal(size=(8, 4, 2, 2)) / 3, rng.normal(size=4), stride=2),
        reflrp.ReLU(),
        reflrp.MaxPool2d(3, 2, 1),
        reflrp.AdaptiveAvgPool2d(3),
        reflrp.Flatten(),
        reflrp.Linear(rng.normal(size=(5, 36)) / 6, rng.normal(size=5)),
    ]
    return reflrp.Sequential(layers).astype(dtype), rng.uniform(-1, 1, size=(3, 2, 10, 10)).astype(dtype)


def digest(e):
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(e.relevance).tobytes())
    for column in ("relevance_in", "relevance_out", "bias", "stabilizer", "dropped", "gradient"):
        h.update(np.ascontiguousarray(getattr(e.ledger, column)).tobytes())
    return h.hexdigest()[:32]


def cases():
    """``{case name: (model, x, target, rule, cone)}``."""
    unet = shipped_unet()
    folded = merge_batchnorm(unet)
    digits, _ = make_digits(3, seed=5)
    found = {}
    unet_rules = {
        "epsilon": rules.Epsilon(),
        "lrp0-zero-bias": rules.Epsilon(epsilon=0.0, zero_bias=True),
        "zplus": rules.ZPlus(),
        "alphabeta": rules.AlphaBeta(),
        "flat": rules.Flat(),
        "wsquare": rules.WSquare(),
        "epsilonplus": composites.EpsilonPlus(),
        "epsilonalpha2beta1flat": composites.EpsilonAlpha2Beta1Flat(),
        "split-ties": composites.EpsilonPlus(layer_map=[(reflrp.MaxPool2d, rules.WinnerTakesAll("split"))]),
        "gamma": rules.Gamma(),
        "epsilongammabox": composites.EpsilonGammaBox(0.0, 1.0),
    }
    for dtype in (np.float64, np.float32):
        for variant, model in (("unet", unet), ("unet-folded", folded)):
            for name, rule in unet_rules.items():
                key = f"{variant}/{np.dtype(dtype).name}/{name}"
                found[key] = (model.astype(dtype), digits.astype(dtype), targets.Pixel((0, 5, 6)), rule, False)
                found[key + "/cone"] = found[key][:-1] + (True,)
        key = f"unet/{np.dtype(dtype).name}/pixels"
        pixels = targets.Pixels(0, [(3, 3), (6, 5)])
        found[key] = (unet.astype(dtype), digits[:1].astype(dtype), pixels, rules.Epsilon(), False)
        found[key + "/cone"] = found[key][:-1] + (True,)
    cnn, x = pooling_cnn(np.float64)
    for name, rule in {
        "epsilon": rules.Epsilon(),
        "norm-gradient": composites.Composite(
            layer_map=[(reflrp.AvgPool2d, rules.Gradient()), (reflrp.Upsample, rules.Norm(0.01)),
                       (reflrp.Conv2d, rules.ZPlus()), (reflrp.ConvTranspose2d, rules.AlphaBeta(1.5, 0.5)),
                       (reflrp.Linear, rules.Epsilon(0.1)), (reflrp.BatchNorm2d, rules.Pass())]),
        "epsilonplusflat": composites.EpsilonPlusFlat(),
        "gamma": rules.Gamma(gamma=0.5, epsilon=0.01),
        "zbox-first": composites.Composite(
            first=rules.ZBox(-1.0, 1.0),
            layer_map=[(reflrp.Conv2d, rules.ZPlus()), (reflrp.ConvTranspose2d, rules.Epsilon()),
                       (reflrp.Linear, rules.Epsilon()), (reflrp.BatchNorm2d, rules.Epsilon())]),
    }.items():
        found[f"cnn/float64/{name}"] = (cnn, x, np.array([0, 3, 4]), rule, False)
    return found


EXPECTED = {
    "unet/float64/epsilon": "7734db25207027c44b0c4eb0a2cad839",
    "unet/float64/epsilon/cone": "468af1b509f5440f0cae35e97d2cb02d",
    "unet/float64/lrp0-zero-bias": "61533abdc83536795797f4c355bfa28f",
    "unet/float64/lrp0-zero-bias/cone": "c600f05aaa3768b7b5947b0d57743fc8",
    "unet/float64/zplus": "da215c213ad9af8acb07d5fdb0dbff34",
    "unet/float64/zplus/cone": "bc94bcf7ad1102c3e4405843da3f8d4c",
    "unet/float64/alphabeta": "3fba349ffc01f9c8e22019daeba704cc",
    "unet/float64/alphabeta/cone": "eb238c3506bfa9b2f811f199d6c1e721",
    "unet/float64/flat": "69121213f2501d1175c3f273637e7089",
    "unet/float64/flat/cone": "6579a84e37d91e7fb73123558558e0be",
    "unet/float64/wsquare": "e86545afde65104a1e73a844c371d1b3",
    "unet/float64/wsquare/cone": "13fb9e4526adecb34b22609b05e0d26c",
    "unet/float64/epsilonplus": "d5bef3ee3f1cc1cbdd8cf19eb77c27ea",
    "unet/float64/epsilonplus/cone": "bdd088a710cec76490b8ac38580c1400",
    "unet/float64/epsilonalpha2beta1flat": "434cce5fc61adc5fb06e0410ff56410f",
    "unet/float64/epsilonalpha2beta1flat/cone": "039229f669b07697fca64cd6220f7e26",
    "unet/float64/split-ties": "d5bef3ee3f1cc1cbdd8cf19eb77c27ea",
    "unet/float64/split-ties/cone": "bdd088a710cec76490b8ac38580c1400",
    "unet/float64/gamma": "f9d45b39cc7eed8aa016beeaf0a27b12",
    "unet/float64/gamma/cone": "57b8e19f44e42d0bba882e154ac70e56",
    "unet/float64/epsilongammabox": "f46e0ca87fb871fad2209c724ce66f3e",
    "unet/float64/epsilongammabox/cone": "7ef3f12019d5aef83e9f486e6ff994b1",
    "unet-folded/float64/epsilon": "a624de44d84f4348169ef3481c4320b0",
    "unet-folded/float64/epsilon/cone": "af9a7444126f4a02faf4de4a204c05c0",
    "unet-folded/float64/lrp0-zero-bias": "601d1c94a2d9a76b4c82b741915975ee",
    "unet-folded/float64/lrp0-zero-bias/cone": "ab1285b2b9ee723d4312977b949ba3e7",
    "unet-folded/float64/zplus": "6c84240dce9a3955a4424a6f258b1cce",
    "unet-folded/float64/zplus/cone": "b8d6514b9b7d0fe07cc836da3bb5abfd",
    "unet-folded/float64/alphabeta": "004577e4dcb9602e40f1d5905eadb9b0",
    "unet-folded/float64/alphabeta/cone": "178f4a0cab4752ffe526f93835dfe43e",
    "unet-folded/float64/flat": "d19c723e3c13c9bd0fa25c6faada215b",
    "unet-folded/float64/flat/cone": "8894a2c404b5235cc0b33c00eaa38b49",
    "unet-folded/float64/wsquare": "57a2ec0edc4bed8bc547049caf80d23c",
    "unet-folded/float64/wsquare/cone": "be0b34e78c9b0e199b9cd8bd6a8500c8",
    "unet-folded/float64/epsilonplus": "6c84240dce9a3955a4424a6f258b1cce",
    "unet-folded/float64/epsilonplus/cone": "b8d6514b9b7d0fe07cc836da3bb5abfd",
    "unet-folded/float64/epsilonalpha2beta1flat": "84ebb69b635e5538685d65727f485669",
    "unet-folded/float64/epsilonalpha2beta1flat/cone": "2df87252bb3d2d386c32e509d506d1d0",
    "unet-folded/float64/split-ties": "6c84240dce9a3955a4424a6f258b1cce",
    "unet-folded/float64/split-ties/cone": "b8d6514b9b7d0fe07cc836da3bb5abfd",
    "unet-folded/float64/gamma": "064f30530dddbbece1c771464ff4de81",
    "unet-folded/float64/gamma/cone": "c62b8eaa94944ffbea8a510f1ed6ed36",
    "unet-folded/float64/epsilongammabox": "57a1aab5dee53d29874055e20c8e1b46",
    "unet-folded/float64/epsilongammabox/cone": "4cfa35415248ec6cc9c2e687cfbfa614",
    "unet/float64/pixels": "deaa194c17e9e4a6f4c9f19dd4f103c9",
    "unet/float64/pixels/cone": "6ffbf96098915b93e5806a09cc937a44",
    "unet/float32/epsilon": "38c5acb5fb7368e1051b65d54a432362",
    "unet/float32/epsilon/cone": "3d948d75c8dd4cf42c3f5e4eb1b3b9b8",
    "unet/float32/lrp0-zero-bias": "40de5dabc364b0a53e99429dcfb291c0",
    "unet/float32/lrp0-zero-bias/cone": "de4c2ffc02c55a88fbce851dc3d61ca3",
    "unet/float32/zplus": "f67ff59ebf15f850dca5db793533890d",
    "unet/float32/zplus/cone": "6afb7cecbcc82ed405806bb7fd07d623",
    "unet/float32/alphabeta": "06ab90f0a7d3a3c1b1ddc9efd0c31213",
    "unet/float32/alphabeta/cone": "47798c4fc4bf7680125fc8d45db2e83a",
    "unet/float32/flat": "4ace1e65f68b1027bafa0d5c4779402e",
    "unet/float32/flat/cone": "4ace1e65f68b1027bafa0d5c4779402e",
    "unet/float32/wsquare": "f0d4c0806db0edfffe93f41d813ab4e9",
    "unet/float32/wsquare/cone": "a85a0e33adac82d3b96a1363110a5130",
    "unet/float32/epsilonplus": "b005245b72bc08426f4edd29ed6bdb17",
    "unet/float32/epsilonplus/cone": "c1fff7250e82df9d18c0a2dc7e65fcd5",
    "unet/float32/epsilonalpha2beta1flat": "216c849667ba18e0047f50c95b84f957",
    "unet/float32/epsilonalpha2beta1flat/cone": "11267bf7abef4d5936d27bf9cf200e5f",
    "unet/float32/split-ties": "b005245b72bc08426f4edd29ed6bdb17",
    "unet/float32/split-ties/cone": "c1fff7250e82df9d18c0a2dc7e65fcd5",
    "unet/float32/gamma": "230d5eef6b4165368fdbcfc207adfdf5",
    "unet/float32/gamma/cone": "454dc341a637f2245b8ae0f782913e4c",
    "unet/float32/epsilongammabox": "027d5e02b3903b36579d3cb4e881d9bd",
    "unet/float32/epsilongammabox/cone": "38a5000e48f7e6a7e520dc37a3557c1b",
    "unet-folded/float32/epsilon": "d30053cb45555251f43d4b220e4ea970",
    "unet-folded/float32/epsilon/cone": "79f22f85d4b4b5e5a69a98892bef300f",
    "unet-folded/float32/lrp0-zero-bias": "02763865de4e4deccf2343275ebfdc6b",
    "unet-folded/float32/lrp0-zero-bias/cone": "aec34a766fa4481c759a7af7e84cf0ae",
    "unet-folded/float32/zplus": "1b94a15030ba78be9dcd78c0e3e8e1cd",
    "unet-folded/float32/zplus/cone": "07c6f32339aac8a9570fe826fc0a0d40",
    "unet-folded/float32/alphabeta": "6df756990b57965c4b66d78d4b325827",
    "unet-folded/float32/alphabeta/cone": "e8f6843145eff09b480fe09df4aad651",
    "unet-folded/float32/flat": "945909e51342c8f89e48e651abc7cbe6",
    "unet-folded/float32/flat/cone": "d41dc87ba07b233419a515790d66129b",
    "unet-folded/float32/wsquare": "c3d52b7df4786fe978725e4ca54d77cf",
    "unet-folded/float32/wsquare/cone": "35a34e2021af6e93eac78a6265d01b63",
    "unet-folded/float32/epsilonplus": "1b94a15030ba78be9dcd78c0e3e8e1cd",
    "unet-folded/float32/epsilonplus/cone": "07c6f32339aac8a9570fe826fc0a0d40",
    "unet-folded/float32/epsilonalpha2beta1flat": "c30687cd494cf432ced0b5fa926d2c23",
    "unet-folded/float32/epsilonalpha2beta1flat/cone": "e866d22a565f226704c58a8dce216cce",
    "unet-folded/float32/split-ties": "1b94a15030ba78be9dcd78c0e3e8e1cd",
    "unet-folded/float32/split-ties/cone": "07c6f32339aac8a9570fe826fc0a0d40",
    "unet-folded/float32/gamma": "cd83404e13091826ef5323d80d1b68d0",
    "unet-folded/float32/gamma/cone": "d46f6997725cec1f2266b5472b221c3b",
    "unet-folded/float32/epsilongammabox": "acdbb49180095274176a8211986c5781",
    "unet-folded/float32/epsilongammabox/cone": "9b96e3c9a1de547a8c33141a989312ed",
    "unet/float32/pixels": "64f813f67d559d6f6a078fb3d64034cb",
    "unet/float32/pixels/cone": "2a3d75bd0d47a7a62c9c07c66eacbd30",
    "cnn/float64/epsilon": "21db4cb31fa5cd99f5b911cbc20aaa61",
    "cnn/float64/norm-gradient": "e01b923f6f60d361ebbfb852f3996b50",
    "cnn/float64/epsilonplusflat": "f71b381ca733e452b89aac346726a5e9",
    "cnn/float64/gamma": "ca13e7d742d60450e6212e7029e84fc5",
    "cnn/float64/zbox-first": "44d66a6aead95e66b89a644ab65c4bfa",
}


@pytest.fixture(scope="module")
def all_cases():
    return cases()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_stored_bits_are_unchanged(name, all_cases):
    model, x, target, rule, cone = all_cases[name]
    got = digest(reflrp.explain(model, x, target, rule, cone=cone))
    assert got == EXPECTED[name]


def test_stored_bits_cover_every_case(all_cases):
    assert sorted(all_cases) == sorted(EXPECTED)


if __name__ == "__main__":
    for key, (model, x, target, rule, cone) in cases().items():
        print(f'    "{key}": "{digest(reflrp.explain(model, x, target, rule, cone=cone))}",')
