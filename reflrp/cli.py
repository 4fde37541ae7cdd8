"""The ``reflrp`` command line.

Exit codes: 0 success, 1 bad input (model, input, target, rule or output path), 2 usage error, 3 internal error
(a bug in reflrp: please report it).  Every failure is one line on stderr; every argument and output path is
checked before anything is computed or written, and the paths printed are the paths written.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from reflrp import __version__, io, targets, validate
from reflrp.arguments import COMPOSITES, MAX_INPUT_BYTES, RULES, parse_spec, parse_target, read_npy_file
from reflrp.conventions import names as profile_names
from reflrp.errors import ReflrpError
from reflrp.files import output_file, output_folder, written

EXIT_CODES = "Exit codes: 0 success, 1 bad input (model, input, target, rule or output path), 2 usage error, " \
             "3 internal error (a bug: please report it)."
MODEL_FILES = "model file: .reflrp (reflrp.save), .onnx, .keras or .h5"


def load_input(path, dtype):
    """A batch from ``.npy`` (used as given: (N, ...)) or one image from ``.png`` ((1, C, H, W) in [0, 1])."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npy":
        x = read_npy_file(path, "INPUT", "f")
    elif suffix == ".png":
        from reflrp.images import read_png

        x = read_png(io.existing_file(path, "INPUT"))[None]
    else:
        raise ReflrpError(f"INPUT {path!r}: expected a .npy array or a .png image")
    if dtype is None or x.dtype == dtype:
        return x
    with np.errstate(over="ignore", invalid="ignore"):
        cast = x.astype(dtype)
    if np.all(np.isfinite(x)) and not np.all(np.isfinite(cast)):
        raise ReflrpError(f"INPUT {path!r} holds values beyond the range of {dtype} (the model's dtype)")
    return cast


def model_input(path, model):
    """INPUT for ``model``: :func:`load_input` in the model's dtype, its shape checked against the model (a PNG's
    channels named in the error: greyscale images read as 1 channel, colour ones as 3)."""
    x = load_input(path, model.dtype)
    try:
        model.check_input(x)
    except ReflrpError as error:
        if not path.lower().endswith(".png"):
            raise
        kind = "a greyscale image (1 channel)" if x.shape[1] == 1 else f"a colour image ({x.shape[1]} channels)"
        raise ReflrpError(f"INPUT {path!r} reads as {kind}: {error}; save the PNG in the mode the model takes "
                          f"(8-bit greyscale for 1 channel, RGB for 3)") from None
    return x


def _picture_name(path):
    if not path.lower().endswith((".png", ".svg")):
        raise argparse.ArgumentTypeError(f"{path!r} must end in .png or .svg")
    return path


def _rules(args):
    if args.rule and args.composite:
        raise ReflrpError("give --rule or --composite, not both")
    if args.composite:
        return parse_spec(args.composite, COMPOSITES, "composite")
    return parse_spec(args.rule or "epsilon", RULES, "rule")


def _explain(args, png=False):
    """Everything checked (target, rules, model, input) before the explanation runs."""
    from reflrp.explain import explain

    target, chosen = parse_target(args.target), _rules(args)
    model = io.load_any(io.existing_file(args.model, "MODEL"))
    x = model_input(args.input, model)
    if png and x.ndim != 4:
        raise ReflrpError(f"--png needs image inputs (N, C, H, W); INPUT has shape {x.shape}")
    cone = {"auto": "auto", "on": True, "off": False}[args.cone]
    return x, explain(model, x, target, chosen, seed=args.seed, profile=args.profile, cone=cone)


def cmd_explain(args):
    out = output_file(args.out, ".npy", "--out") if args.out is not None else None
    png = output_file(args.png, ".png", "--png") if args.png is not None else None
    if png:
        from reflrp.viz import require_matplotlib

        require_matplotlib()
    x, e = _explain(args, png=png is not None)
    ledger = e.ledger
    chosen = np.argmax(e.output, axis=1) if isinstance(e.target, targets.Predicted) else None
    for m in range(len(e.sample)):
        which = f"sample {e.sample[m]}" + ("" if chosen is None else f", class {chosen[e.sample[m]]}")
        print(f"explanation {m} ({which}): target {ledger.target_value[m]:+.6g}, input relevance "
              f"{ledger.input_relevance[m]:+.6g}, absorbed {ledger.total('absorbed')[m]:+.6g}, closure "
              f"{ledger.closure()[m]:.1e}")
    if args.ledger:
        print(ledger)
    if out:
        with written(out) as partial:
            np.save(partial, e.relevance)
        print(f"wrote relevance {e.relevance.shape} to {out}")
    if png:
        from reflrp.viz import save_panels

        panels, columns = heatmap_panels(x, e)
        save_panels(png, panels, columns=columns, title=f"target {args.target}, {_named(args)} (red +, blue -)")
        _wrote(png, len(e.sample))
    return 0


def _named(args):
    return args.composite or args.rule or "epsilon"


def _wrote(path, explanations):
    drawn = min(explanations, PNG_EXPLANATIONS)
    print(f"wrote {path}" + (f" (the first {drawn} of {explanations} explanations)" if drawn < explanations else ""))


#: At most this many explanations are drawn by ``explain --png``.
PNG_EXPLANATIONS = 8


def heatmap_panels(x, e):
    """The panels of ``explain --png`` and their number per row: a row per sample, its input (channels averaged)
    and the maps of its explanations (channels summed), for the first :data:`PNG_EXPLANATIONS` explanations, each
    titled with what it shows (a pixel target's panels with their pixel)."""
    from reflrp.targets import Pixels
    from reflrp.viz import Panel

    pixels = e.target.pixels if isinstance(e.target, Pixels) else None
    panels, shown = [], None
    for m in range(min(len(e.sample), PNG_EXPLANATIONS)):
        n = int(e.sample[m])
        image = x[n].mean(axis=0)
        if n != shown:
            panels.append(Panel(f"input, sample {n}" if len(x) > 1 else "input", None, image))
            shown = n
        what = f"pixel {pixels[m % len(pixels)]}" if pixels else f"explanation {m}"
        panels.append(Panel(f"{what} (sample {n})" if len(x) > 1 else what, e.relevance[m].sum(axis=0), image))
    per_sample = len(e.sample) // len(x)
    return panels, 1 + min(per_sample, PNG_EXPLANATIONS)


def _picture_checked(path):
    """``--picture``'s path checked, and matplotlib found, before anything runs (None: no picture asked for)."""
    if path is None:
        return None
    from reflrp.viz import require_matplotlib

    require_matplotlib()
    return output_file(path, os.path.splitext(path)[1].lower(), "--picture")


def cmd_ledger(args):
    picture = _picture_checked(args.picture)
    _, e = _explain(args)
    for m in range(len(e.sample)):
        print(e.ledger.table(m))
        print()
    if picture:
        from reflrp.waterfall import save_waterfall

        save_waterfall(picture, e.ledger, range(min(len(e.sample), PNG_EXPLANATIONS)),
                       title=f"target {args.target}, {_named(args)}")
        _wrote(picture, len(e.sample))
    return 0


def _other(path, what="OTHER"):
    """Another implementation's relevance: its input relevance (.npy) or relevance per node (.npz)."""
    if path.endswith(".npz"):
        return io.read_npz(path, what, MAX_INPUT_BYTES)
    if path.endswith(".npy"):
        return read_npy_file(path, what, "fiu")
    raise ReflrpError(f"{what} {path!r}: expected the input relevance as .npy or relevance per node as .npz (keys: "
                      f"node names, 'input')")


def cmd_compare(args):
    from reflrp.compat import compare

    other = _other(args.other)
    picture = _picture_checked(args.picture)
    target, chosen = parse_target(args.target), _rules(args)
    model = io.load_any(io.existing_file(args.model, "MODEL"))
    x = model_input(args.input, model)
    comparison = compare(model, x, target, chosen, other, profile=args.profile, seed=args.seed,
                         tolerance=args.tolerance)
    print(comparison)
    if picture:
        from reflrp.compat.views import save_comparison

        save_comparison(picture, comparison, title=f"target {args.target}, {_named(args)}")
        print(f"wrote {picture} (explanation 0)")
    return 0


def cmd_report(args):
    from reflrp.compat import compare
    from reflrp.report import save_html
    from reflrp.viz import require_matplotlib

    path = output_file(args.html, ".html", "--html")
    require_matplotlib()
    other = None if args.other is None else _other(args.other, "--other")
    x, e = _explain(args)
    comparison = None if other is None else compare(io.load_any(args.model), x, parse_target(args.target),
                                                    _rules(args), other, profile=args.profile, seed=args.seed)
    save_html(path, e, comparison=comparison, title=f"{os.path.basename(args.model)}: target {args.target}, "
                                                    f"{_named(args)}")
    print(f"wrote {path}")
    return 0


def cmd_info(args):
    model, meta = io.read_any(io.existing_file(args.model, "MODEL"))
    print(model)
    for key, value in meta.items():
        print(f"{key}: {value}")
    return 0


def open_dataset(path):
    """A dataset's inputs without reading them all: a memory-mapped ``.npy`` (header checked first) or a Zarr
    array."""
    if path.rstrip("/").endswith(".zarr"):
        from reflrp.importers.common import require

        zarr = require("zarr", "dataset", "reading Zarr inputs")
        if not os.path.isdir(path):
            raise ReflrpError(f"INPUTS {path!r} does not exist (a Zarr store is a folder)")
        try:
            array = zarr.open_array(path, mode="r")
        except Exception as error:
            raise ReflrpError(f"INPUTS {path!r} is not a Zarr array: {type(error).__name__}: {error}") from None
        if array.dtype.kind != "f":
            raise ReflrpError(f"INPUTS {path!r} must hold floats, got {array.dtype}")
        return array
    where = io.existing_file(path, "INPUTS")
    if not where.endswith(".npy"):
        raise ReflrpError(f"INPUTS {path!r}: expected a .npy array or a .zarr store")
    with open(where, "rb") as handle:
        shape, fortran, dtype = io.npy_header(handle, os.path.getsize(where), f"INPUTS {where!r}", "f", 1 << 62)
        offset = handle.tell()
    return np.memmap(where, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def cmd_explain_dataset(args):
    from reflrp.dataset import explain_dataset

    out = args.out
    if not (out.endswith(".npy") or out.rstrip("/").endswith(".zarr")):
        raise ReflrpError(f"--out {out!r} must end in .npy or .zarr")
    folder = os.path.dirname(os.path.abspath(out.rstrip("/")))
    if not os.path.isdir(folder):
        raise ReflrpError(f"--out {out!r}: folder {folder!r} does not exist")
    target, chosen = parse_target(args.target), _rules(args)
    model = io.load_any(io.existing_file(args.model, "MODEL"))
    inputs = open_dataset(args.input)
    if model.dtype is not None and inputs.dtype != model.dtype:
        raise ReflrpError(f"INPUTS are {inputs.dtype} but the model is {model.dtype}; convert one of them")
    validate.integer(args.batch_size, "--batch-size", minimum=1, maximum=None)
    result = explain_dataset(model, inputs, target, chosen, batch_size=args.batch_size, out=out,
                             progress=not args.no_progress, seed=args.seed, profile=args.profile)
    closure = np.abs(np.asarray(result.total("closure")[:]))
    where = f"{out} and the ledger totals to {out[: -len('.npy')]}.totals.npy" if out.endswith(".npy") else \
        f"{out} (arrays relevance, totals and done)"
    print(f"explained {inputs.shape[0]} samples; largest |closure| {closure.max():.1e}; wrote relevance "
          f"{tuple(inputs.shape)} to {where}")
    return 0


def cmd_import_check(args):
    """Convert a model file and print what it became, or every construct that cannot be imported."""
    from reflrp.importers import ImportAuditError

    where = io.existing_file(args.model, "MODEL")
    try:
        read = io.read_any(where)
    except ImportAuditError as error:
        print(str(error))
        raise ReflrpError(f"{where} cannot be imported: {len(error.findings)} unsupported construct(s), listed "
                          f"above") from None
    model, metadata = read
    print(model)
    print(f"imports: {len(model)} node{'s' if len(model) != 1 else ''}, dtype {model.dtype}")
    if "note" in metadata:
        print(f"note: {metadata['note']}")
    return 0


def cmd_demo(args):
    from reflrp.demo import OUTPUT_SIZE, run

    output_folder(args.out, "--out")
    validate.integer(args.seed, "--seed", minimum=0, maximum=2**63 - 1)
    if args.pixel and not all(0 <= v < OUTPUT_SIZE for v in args.pixel):
        raise ReflrpError(f"--pixel {args.pixel[0]} {args.pixel[1]} is outside the {OUTPUT_SIZE}x{OUTPUT_SIZE} output")
    run(out_dir=args.out, seed=args.seed, pixel=tuple(args.pixel) if args.pixel else None)
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    parser = _Parser(
        prog="reflrp",
        description="Exact, deterministic Layer-wise Relevance Propagation with a relevance ledger.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"reflrp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="explain the shipped digit-segmentation U-Net; print ledgers, write PNGs")
    demo.add_argument("--out", default="reflrp-demo", metavar="DIR", help="folder for the PNGs (default: reflrp-demo)")
    demo.add_argument("--seed", type=int, default=3, metavar="N", help="which generated digit, >= 0 (default: 3)")
    demo.add_argument("--pixel", type=int, nargs=2, metavar=("ROW", "COL"),
                      help="output pixel to explain (default: the foreground pixel nearest the centre)")
    demo.set_defaults(run=cmd_demo)

    def common(p, inputs=".npy batch (N, ...) or .png image", other=False):
        p.add_argument("model", metavar="MODEL", help=MODEL_FILES)
        p.add_argument("input", metavar="INPUT", help=inputs)
        if other:
            p.add_argument("other", metavar="OTHER", help="the other implementation's input relevance (.npy), or its "
                                                          "relevance per node (.npz keyed by node name; 'input': the "
                                                          "input relevance)")
        p.add_argument("--target", required=True, metavar="TARGET",
                       help="class (3), predicted, index into one sample's output (0,6,6), mask:FILE.npy, "
                            "region:CLASS:FILE.npy, argmax:CLASS, pixels:CLASS:R,C;R,C (one map per pixel) or "
                            "seed:FILE.npy (docs/conventions.md, 'Targets')")
        p.add_argument("--rule", metavar="RULE",
                       help=f"one rule for the whole network: {', '.join(RULES)} (arguments as "
                            f"epsilon:epsilon=0.01,zero_bias=true; docs/composites.md); default epsilon")
        p.add_argument("--composite", metavar="COMPOSITE",
                       help=f"{', '.join(COMPOSITES)} (e.g. epsilongammabox:low=0,high=1)")
        p.add_argument("--seed", choices=("value", "unit"),
                       help="start from the selected output's value or from 1 (default: the profile's; reflrp: value)")
        p.add_argument("--profile", choices=sorted(profile_names()), default="reflrp",
                       help="whose conventions to follow (default reflrp; see docs/profiles.md)")
        p.add_argument("--cone", choices=("auto", "on", "off"), default="auto",
                       help="compute a pixel's or a region's explanation on its receptive cone: when it pays "
                            "(default), always, never (docs/segmentation.md)")

    explain_cmd = sub.add_parser("explain", help="explain a model's output for an input")
    common(explain_cmd)
    explain_cmd.add_argument("--out", metavar="FILE.npy",
                             help="write the relevance to this .npy file (.npy is appended if missing)")
    explain_cmd.add_argument("--png", metavar="FILE.png",
                             help="write heatmaps to this .png file: each sample's input beside its explanations' "
                                  f"maps, at most {PNG_EXPLANATIONS} (needs matplotlib)")
    explain_cmd.add_argument("--ledger", action="store_true", help="also print the ledger table")
    explain_cmd.set_defaults(run=cmd_explain)

    ledger_cmd = sub.add_parser("ledger", help="print where the relevance went, layer by layer")
    common(ledger_cmd)
    ledger_cmd.add_argument("--picture", metavar="FILE", type=_picture_name,
                            help="also draw each explanation's ledger as a waterfall to this .png or .svg file "
                                 f"(at most {PNG_EXPLANATIONS}; needs matplotlib)")
    ledger_cmd.set_defaults(run=cmd_ledger)

    compare_cmd = sub.add_parser("compare", help="compare another implementation's relevance with reflrp's: where "
                                                 "it departs, and which profile explains it")
    common(compare_cmd, other=True)
    compare_cmd.add_argument("--tolerance", type=float, default=1e-6, metavar="X",
                             help="relative difference below which maps agree (default 1e-6)")
    compare_cmd.add_argument("--picture", metavar="FILE", type=_picture_name,
                             help="also draw the two maps, their difference and the per-layer divergence (the first "
                                  "explanation) to this .png or .svg file (needs matplotlib)")
    compare_cmd.set_defaults(run=cmd_compare)

    report_cmd = sub.add_parser("report", help="write one self-contained HTML report: heatmaps, the ledger as a table "
                                               "and a waterfall, and with --other the comparison")
    common(report_cmd)
    report_cmd.add_argument("--html", required=True, metavar="FILE.html", help="the report to write (needs matplotlib)")
    report_cmd.add_argument("--other", metavar="OTHER", help="another implementation's relevance to compare (.npy, or "
                                                             ".npz per node as for compare)")
    report_cmd.set_defaults(run=cmd_report)

    info = sub.add_parser("info", help="print a model file's graph and metadata")
    info.add_argument("model", metavar="MODEL", help=MODEL_FILES)
    info.set_defaults(run=cmd_info)

    dataset = sub.add_parser("explain-dataset", help="explain every sample of a .npy or Zarr dataset, batch by "
                                                     "batch, into .npy or a resumable Zarr store")
    common(dataset, inputs="the dataset (N, ...): a .npy file (memory-mapped, not loaded) or a .zarr array")
    dataset.add_argument("--out", required=True, metavar="FILE",
                         help="relevance.zarr (resumable: run again to finish) or relevance.npy; nothing is left at "
                              "FILE when a run fails")
    dataset.add_argument("--batch-size", type=int, default=32, metavar="N", help="samples per batch (default 32)")
    dataset.add_argument("--no-progress", action="store_true", help="no progress bar")
    dataset.set_defaults(run=cmd_explain_dataset)

    check = sub.add_parser("import-check", help="convert an .onnx, .keras or .h5 file; print the graph, or every "
                                                "unsupported construct by name")
    check.add_argument("model", metavar="MODEL", help=MODEL_FILES)
    check.set_defaults(run=cmd_import_check)
    return parser


def _fail(code, text, error=None):
    """One line on stderr, whatever the message holds, with the error's notes (what became of an output file)."""
    notes = getattr(error, "__notes__", [])
    print(" ".join("; ".join([str(text), *notes]).split()), file=sys.stderr)
    return code


def main(argv=None):
    args = build_parser().parse_args(argv)
    if sys.stdout is None:  # started with stdout closed: every command's answer would vanish
        return _fail(1, "reflrp: error: standard output is closed")
    try:
        return args.run(args)
    except ReflrpError as error:
        return _fail(1, f"reflrp: error: {error}", error)
    except BrokenPipeError:  # output piped into a command that stopped reading (e.g. head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as error:
        return _fail(130, "reflrp: interrupted", error)
    except MemoryError as error:
        return _fail(1, "reflrp: error: out of memory", error)
    except OSError as error:  # the disk filled up, a file vanished while being written, ...
        return _fail(1, f"reflrp: error: {error.strerror or error}: {error.filename or ''}", error)
    except Exception as error:  # a bug in reflrp: say so in one line rather than a traceback
        return _fail(3, f"reflrp: internal error ({type(error).__name__}: {error}); please report it with the "
                        f"command that caused it", error)


if __name__ == "__main__":
    sys.exit(main())
