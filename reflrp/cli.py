"""The ``reflrp`` command line.

Exit codes: 0 success, 1 bad input (model, input, target or rule), 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from reflrp import composites, io, rules, targets
from reflrp.errors import ReflrpError

RULES = {name.lower(): getattr(rules, name) for name in
         ("Epsilon", "ZPlus", "AlphaBeta", "Gamma", "ZBox", "Flat", "WSquare")}
COMPOSITES = {name.lower(): getattr(composites, name) for name in
              ("EpsilonPlus", "EpsilonAlpha2Beta1", "EpsilonPlusFlat", "EpsilonAlpha2Beta1Flat", "EpsilonGammaBox")}


def _value(text):
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return float(text)
    except ValueError:
        raise ReflrpError(f"{text!r} is not a number or true/false") from None


def parse_spec(spec, table, what):
    """``"name"`` or ``"name:key=value,key=value"`` -> an object from ``table``."""
    name, _, args = spec.partition(":")
    factory = table.get(name.strip().lower())
    if factory is None:
        raise ReflrpError(f"unknown {what} {name!r}; choose from {', '.join(sorted(table))}")
    kwargs = {}
    for item in filter(None, args.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ReflrpError(f"{what} argument {item!r} must look like key=value")
        kwargs[key.strip()] = _value(value.strip())
    try:
        return factory(**kwargs)
    except TypeError as error:
        raise ReflrpError(f"{what} {name}: {error}") from None


def parse_target(text):
    """``3`` (class), ``0,6,6`` (index), ``mask:FILE.npy``, ``region:CLASS:FILE.npy``, ``argmax:CLASS``,
    ``pixels:CLASS:R,C;R,C`` (one explanation per pixel), ``seed:FILE.npy``."""
    kind, _, rest = text.partition(":")
    if kind == "mask":
        return targets.Mask(_load_npy(rest, "target mask"))
    if kind == "seed":
        return targets.Seed(_load_npy(rest, "target seed"))
    if kind == "region":
        cls, _, path = rest.partition(":")
        return targets.Region(_int(cls, "region class"), _load_npy(path, "target region"))
    if kind == "argmax":
        return targets.ArgmaxRegion(_int(rest, "argmax class"))
    if kind == "pixels":
        cls, _, listing = rest.partition(":")
        pixels = []
        for item in filter(None, listing.split(";")):
            row, sep, col = item.partition(",")
            if not sep:
                raise ReflrpError(f"target pixel {item!r} must look like ROW,COL")
            pixels.append((_int(row, "pixel row"), _int(col, "pixel column")))
        return targets.Pixels(_int(cls, "pixels class"), pixels)
    parts = text.split(",")
    values = tuple(_int(p, "target") for p in parts)
    return values[0] if len(values) == 1 else targets.Index(values)


def _int(text, what):
    try:
        return int(text)
    except ValueError:
        raise ReflrpError(f"{what} {text!r} is not an integer") from None


def _load_npy(path, what):
    if not os.path.isfile(path):
        raise ReflrpError(f"{what}: file {path!r} does not exist")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise ReflrpError(f"{what}: {path!r} is not a readable .npy file: {error}") from None


def load_input(path, dtype):
    """A batch from ``.npy`` (used as given: (N, ...)) or one image from ``.png`` ((1, C, H, W) in [0, 1])."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npy":
        x = _load_npy(path, "INPUT")
    elif suffix == ".png":
        from reflrp.png import read_png

        if not os.path.isfile(path):
            raise ReflrpError(f"INPUT: file {path!r} does not exist")
        x = read_png(path)[None]
    else:
        raise ReflrpError(f"INPUT {path!r}: expected a .npy array or a .png image")
    if x.dtype.kind != "f":
        raise ReflrpError(f"INPUT {path!r}: must hold floats, got {x.dtype}")
    return x.astype(dtype) if dtype is not None else x


def _rules(args):
    if args.rule and args.composite:
        raise ReflrpError("give --rule or --composite, not both")
    if args.composite:
        return parse_spec(args.composite, COMPOSITES, "composite")
    return parse_spec(args.rule or "epsilon", RULES, "rule")


def _explain(args):
    from reflrp.explain import explain

    model = io.load_any(args.model)
    x = load_input(args.input, model.dtype)
    return model, x, explain(model, x, parse_target(args.target), _rules(args), seed=args.seed)


def cmd_explain(args):
    model, x, e = _explain(args)
    ledger = e.ledger
    for m in range(len(e.sample)):
        print(f"explanation {m} (sample {e.sample[m]}): target {ledger.target_value[m]:+.6g}, input relevance "
              f"{ledger.input_relevance[m]:+.6g}, absorbed {ledger.absorbed[:, m].sum():+.6g}, closure "
              f"{ledger.closure()[m]:.1e}")
    if args.ledger:
        print(ledger)
    if args.out:
        np.save(args.out, e.relevance)
        print(f"wrote relevance {e.relevance.shape} to {args.out}")
    if args.png:
        from reflrp.viz import save_heatmaps

        if e.relevance.ndim != 4:
            raise ReflrpError("--png needs image inputs (N, C, H, W)")
        image = x[e.sample[0]].mean(axis=0)
        maps = {f"explanation {m}": e.relevance[m].sum(axis=0) for m in range(min(len(e.sample), 8))}
        save_heatmaps(args.png, maps, image=image)
        print(f"wrote {args.png}")
    return 0


def cmd_ledger(args):
    _, _, e = _explain(args)
    for m in range(len(e.sample)):
        print(e.ledger.table(m))
        print()
    return 0


def cmd_info(args):
    model, meta = io.read_any(args.model)
    print(model)
    for key, value in meta.items():
        print(f"{key}: {value}")
    return 0


def cmd_demo(args):
    from reflrp.demo import run

    run(out_dir=args.out, seed=args.seed, pixel=tuple(args.pixel) if args.pixel else None)
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="reflrp",
        description="Exact, deterministic Layer-wise Relevance Propagation with a relevance ledger.",
        epilog="Exit codes: 0 success, 1 bad input (model, input, target or rule), 2 usage error.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="explain the shipped digit-segmentation U-Net; print ledgers, write PNGs")
    demo.add_argument("--out", default="reflrp-demo", help="folder for the PNGs (default: reflrp-demo)")
    demo.add_argument("--seed", type=int, default=3, help="which generated digit (default: 3)")
    demo.add_argument("--pixel", type=int, nargs=2, metavar=("ROW", "COL"),
                      help="output pixel to explain (default: the foreground pixel nearest the centre)")
    demo.set_defaults(run=cmd_demo)

    def common(p):
        p.add_argument("model", metavar="MODEL", help="model file (.reflrp, see reflrp.save)")
        p.add_argument("input", metavar="INPUT", help=".npy batch (N, ...) or .png image")
        p.add_argument("--target", required=True,
                       help="class (3), index into one sample's output (0,6,6), mask:FILE.npy, "
                            "region:CLASS:FILE.npy, argmax:CLASS, pixels:CLASS:R,C;R,C (one map per pixel) or "
                            "seed:FILE.npy")
        p.add_argument("--rule", help=f"one rule for every layer with weights: {', '.join(RULES)} "
                                      "(arguments as epsilon:epsilon=0.01,zero_bias=true); default epsilon")
        p.add_argument("--composite", help=f"{', '.join(COMPOSITES)} (e.g. epsilongammabox:low=0,high=1)")
        p.add_argument("--seed", choices=("value", "unit"), default="value",
                       help="start from the selected output's value (default) or from 1")

    explain_cmd = sub.add_parser("explain", help="explain a model's output for an input")
    common(explain_cmd)
    explain_cmd.add_argument("--out", help="write the relevance to this .npy file")
    explain_cmd.add_argument("--png", help="write heatmaps to this .png file (needs matplotlib)")
    explain_cmd.add_argument("--ledger", action="store_true", help="also print the ledger table")
    explain_cmd.set_defaults(run=cmd_explain)

    ledger_cmd = sub.add_parser("ledger", help="print where the relevance went, layer by layer")
    common(ledger_cmd)
    ledger_cmd.set_defaults(run=cmd_ledger)

    info = sub.add_parser("info", help="print a model file's graph and metadata")
    info.add_argument("model", metavar="MODEL")
    info.set_defaults(run=cmd_info)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ReflrpError as error:
        print(f"reflrp: error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into a command that stopped reading (e.g. head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
