"""The speed suite: reflrp against Zennit (when it imports) and against its own and torch's forward pass, on the
same models and weights, measured side by side in one run.  Benchmarks, never assertions.

    python bench/suite.py                     # everything (VGG-16 at batch 16 takes many minutes)
    python bench/suite.py --quick             # seed U-Net and MLP at batch 1, one repeat: a smoke run
    python bench/suite.py --models unet128 --dtypes float32 --batches 1 16
    python bench/suite.py --baseline 8e0a9e4  # reflrp at that commit timed in the same run: "before" columns

For every model, dtype and batch size: the forward pass (reflrp, torch), and for Epsilon, EpsilonPlus and
EpsilonGammaBox the explanation (reflrp, Zennit), as medians with min-max over ``--repeat`` runs, reflrp's
forward GFLOP/s, the explanation's cost in forward passes, the Zennit ratio, and the peak memory each
explanation added to the process (resident set, sampled every millisecond: numpy's and torch's allocations
alike).  BatchNorm is merged on both sides (reflrp.canonize.merge_batchnorm, Zennit's
SequentialMergeBatchNorm).  Then many targets at once (K pixels of the 128x128 U-Net in one call against K
single explanations) and memory at 3x512x512.  The table is printed and written as Markdown to ``--out`` with
the machine it ran on.  Zennit needs torch 2.14.1 + torchvision 0.29.1 (``nox -s peers -- zennit`` builds that
venv; ``nox -s bench`` uses it when it exists).
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import functools
import inspect
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import torch
from threadpoolctl import threadpool_info

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import MODELS, MODERN, available, build, imported  # noqa: E402
from timing import timed  # noqa: E402

import reflrp  # noqa: E402
from reflrp import canonize, composites, rules, targets  # noqa: E402

RULES = {
    "Epsilon": lambda: rules.Epsilon(),
    "EpsilonPlus": lambda: composites.EpsilonPlus(),
    "EpsilonGammaBox": lambda: composites.EpsilonGammaBox(0.0, 1.0),
}


def forward_flops(graph, sample_shape):
    """Multiply-adds times two of the layers with weights, for one sample."""
    shapes = graph.shapes(sample_shape)
    total = 0
    for node in graph.nodes:
        layer, out = node.layer, shapes[node.name]
        if isinstance(layer, reflrp.Linear):
            total += 2 * layer.weight.size
        elif isinstance(layer, (reflrp.Conv1d, reflrp.Conv2d, reflrp.Conv3d)):
            total += 2 * math.prod(out) * math.prod(layer.weight.shape[1:])
        elif isinstance(layer, (reflrp.ConvTranspose2d, reflrp.ConvTranspose3d)):
            source = shapes[node.inputs[0]] if node.inputs[0] != "input" else sample_shape
            total += 2 * math.prod(source) * math.prod(layer.weight.shape[1:])
    return total


def _resident():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _release_free_memory():
    """Hand memory that malloc keeps after ``free`` back to the system (glibc), so that the resident set's growth
    during a call is what the call itself holds at its peak."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_memory(fn):
    """Peak bytes the process's resident set grew by during ``fn()``, sampled every millisecond (Linux), after
    returning malloc's free memory to the system."""
    if not os.path.exists("/proc/self/statm"):
        return float("nan")
    _release_free_memory()
    base, peak, done = _resident(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _resident())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        fn()
    finally:
        done.set()
        sampler.join()
    return max(0, max(peak[0], _resident()) - base)


def zennit_explainer(module, rule_name, x, target):
    """A function running Zennit's version of ``rule_name`` on ``module`` (BatchNorm merged), or None."""
    try:
        from zennit.canonizers import SequentialMergeBatchNorm
        from zennit.composites import EpsilonGammaBox, EpsilonPlus, LayerMapComposite, layer_map_base
        from zennit.rules import Epsilon
        from zennit.types import Convolution
    except Exception:  # Zennit absent, or its torchvision does not load beside this torch
        return None
    canonizers = [SequentialMergeBatchNorm()]
    if rule_name == "Epsilon":
        composite = LayerMapComposite(layer_map_base() + [(Convolution, Epsilon()), (torch.nn.Linear, Epsilon())],
                                      canonizers=canonizers)
    elif rule_name == "EpsilonPlus":
        composite = EpsilonPlus(canonizers=canonizers)
    else:
        composite = EpsilonGammaBox(low=torch.zeros_like(x), high=torch.ones_like(x), canonizers=canonizers)
    with torch.no_grad():
        grad = torch.zeros_like(module(x))
    grad[(slice(None), *target)] = 1.0

    def run():
        inputs = x.clone().requires_grad_(True)
        with composite.context(module) as modified:
            out = modified(inputs)
            torch.autograd.grad(out, inputs, grad_outputs=grad)

    return run


def machine():
    blas = [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, {i.get('num_threads')} threads)"
            for i in threadpool_info() if i.get("user_api") == "blas"]
    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy "
            f"{np.__version__}, torch {torch.__version__}, BLAS {', '.join(blas) or '?'}, "
            f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '-')}")


def fmt(t):
    """``median (min-max)`` in ms, with the precision a small time needs."""
    median, low, high = (1e3 * v for v in t)
    digits = 0 if median >= 100 else 1 if median >= 10 else 2
    return f"{median:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def ratio(mine, theirs):
    return f"{mine[0] / theirs[0]:.2f}" if theirs else "-"


#: The table's explanations run on the whole model, as Zennit's do, also for its pixel targets (reflrp before the
#: receptive cone had no ``cone`` argument: the suite may time such a revision with --baseline).
WHOLE = {"cone": False} if "cone" in inspect.signature(reflrp.explain).parameters else {}


def run_case(name, dtype, batch, repeat, rows, with_zennit=True, chosen=tuple(RULES)):
    module, x, graph, index = imported(name, dtype, batch)
    xs = x.numpy()
    flops = forward_flops(graph, MODELS[name][1]) * batch
    ours_forward = timed(lambda: graph(xs), repeat)
    with torch.no_grad():
        torch_forward = timed(lambda: module(x), repeat)
    target = targets.Index(index)
    for rule_name, make in RULES.items():
        if rule_name not in chosen:
            continue
        ours_explain = functools.partial(reflrp.explain, graph, xs, target, make(), **WHOLE)

        ours = timed(ours_explain, repeat)
        memory = peak_memory(ours_explain)
        zennit = zennit_explainer(module, rule_name, x, index) if with_zennit else None
        theirs = timed(zennit, repeat) if zennit is not None else None
        zennit_memory = peak_memory(zennit) if zennit is not None else None
        rows.append({
            "model": name, "dtype": dtype, "batch": batch, "rules": rule_name,
            "reflrp ms": fmt(ours), "Zennit ms": fmt(theirs) if theirs else "-", "ratio": ratio(ours, theirs),
            "forward ms": fmt(ours_forward), "torch forward ms": fmt(torch_forward),
            "forward ratio": ratio(ours_forward, torch_forward),
            "GFLOP/s": f"{flops / ours_forward[0] / 1e9:.0f}",
            "LRP / forward": f"{ours[0] / ours_forward[0]:.1f}",
            "peak MB": f"{memory / 2**20:.0f}" + (f" / {zennit_memory / 2**20:.0f}" if zennit is not None else ""),
            "_reflrp": ours[0], "_zennit": theirs[0] if theirs else None,
        })
        print(" | ".join(str(v) for k, v in rows[-1].items() if not k.startswith("_")), flush=True)


def many_targets(repeat, k=64):
    """K output pixels of the 128x128 U-Net (float32, EpsilonPlus): one call explaining all K against K single
    explanations (the single one timed, times K)."""
    module = build("unet128", torch.float32)
    x = torch.rand((1, 3, 128, 128), generator=torch.Generator().manual_seed(1))
    graph = canonize.merge_batchnorm(reflrp.from_torch(module, x))
    xs = x.numpy()
    pixels = [(16 * (j // 8) + 8, 16 * (j % 8) + 8) for j in range(k)]
    chosen = composites.EpsilonPlus()
    single = timed(lambda: reflrp.explain(graph, xs, targets.Index((1, *pixels[0])), chosen, **WHOLE), repeat)
    batched = timed(lambda: reflrp.explain(graph, xs, targets.Pixels(1, pixels), chosen, **WHOLE), 1, warm=False)
    line = (f"{k} pixels of the 128x128 U-Net (float32, EpsilonPlus) in one call, on the whole model: "
            f"{batched[0]:.1f} s; one pixel {fmt(single)} ms; the call costs {batched[0] / (k * single[0]):.2f} x {k} "
            f"single explanations")
    if WHOLE:  # on their receptive cones: each pixel on its own
        batched = timed(lambda: reflrp.explain(graph, xs, targets.Pixels(1, pixels), chosen, cone=True), 1,
                        warm=False)
        line += (f"; on their cones {batched[0]:.1f} s, {batched[0] / (k * single[0]):.2f} x {k} single "
                 f"explanations on the whole model")
    return line


def one_pixel(repeat, with_zennit=True):
    """One output pixel of the U-Net at 3x256x256 (float32, EpsilonPlus, batch 1), its centre and a corner: on its
    receptive cone, on the whole model, and Zennit's, side by side: one line each."""
    return one_output("unet128", (3, 256, 256), ((128, 128), (8, 8)), "pixel", "U-Net", repeat, with_zennit)


def one_output(name, shape, positions, what, title, repeat, with_zennit=True):
    """Output positions of class 1 of model ``name`` for an input of per-sample ``shape`` (float32, EpsilonPlus,
    batch 1), one at a time: on the receptive cone, on the whole model, and Zennit's; one line each."""
    if not WHOLE:
        return [f"one {what} on its receptive cone: this reflrp has no cone"]
    module = build(name, torch.float32)
    x = torch.rand((1, *shape), generator=torch.Generator().manual_seed(1))
    graph = canonize.merge_batchnorm(reflrp.from_torch(module, x))
    size = "x".join(map(str, shape))
    lines = []
    for position in positions:
        explain = functools.partial(reflrp.explain, graph, x.numpy(), targets.Index((1, *position)),
                                    composites.EpsilonPlus())
        cone = timed(lambda: explain(cone=True), repeat)  # noqa: B023 (timed calls it at once)
        whole = timed(lambda: explain(cone=False), repeat)  # noqa: B023
        line = (f"one {what} {position} of the {title} at {size} (float32, EpsilonPlus, batch 1): on its cone "
                f"{fmt(cone)} ms, on the whole model {fmt(whole)} ms ({cone[0] / whole[0]:.2f}x)")
        zennit = zennit_explainer(module, "EpsilonPlus", x, (1, *position)) if with_zennit else None
        if zennit is not None:
            theirs = timed(zennit, repeat)
            line += f"; Zennit {fmt(theirs)} ms: the cone {cone[0] / theirs[0]:.2f}x Zennit"
        lines.append(line)
    return lines


def large_unet(with_zennit=True):
    """Memory and time of one explanation of the U-Net at 3x512x512 (float32, EpsilonPlus), and Zennit's."""
    module = build("unet128", torch.float32)
    x = torch.rand((1, 3, 512, 512), generator=torch.Generator().manual_seed(1))
    graph = canonize.merge_batchnorm(reflrp.from_torch(module, x))
    xs = x.numpy()
    target = targets.Index((1, 256, 256))
    reflrp.explain(graph, xs[:, :, :64, :64], targets.Index((1, 32, 32)), composites.EpsilonPlus())  # compiled
    start = time.perf_counter()
    memory = peak_memory(lambda: reflrp.explain(graph, xs, target, composites.EpsilonPlus(), **WHOLE))
    seconds = time.perf_counter() - start
    line = (f"U-Net at 3x512x512 (float32, EpsilonPlus, batch 1, one pixel on the whole model): reflrp "
            f"{seconds:.2f} s, peak +{memory / 2**20:.0f} MB")
    zennit = zennit_explainer(module, "EpsilonPlus", x, (1, 256, 256)) if with_zennit else None
    if zennit is not None:
        start = time.perf_counter()
        memory = peak_memory(zennit)
        line += f"; Zennit {time.perf_counter() - start:.2f} s, peak +{memory / 2**20:.0f} MB"
    return line


def measure_baseline(revision, args):
    """Run this suite (without Zennit) on reflrp at git ``revision``, from a temporary worktree, in a subprocess;
    returns its rows and extra lines."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as scratch:
        tree = os.path.join(scratch, "baseline")
        made = subprocess.run(["git", "-C", root, "worktree", "add", "--detach", tree, revision], capture_output=True,
                              text=True)
        if made.returncode:
            raise SystemExit(f"--baseline {revision}: git worktree add failed: {made.stderr.strip()}")
        try:
            report = os.path.join(scratch, "baseline.json")
            command = [sys.executable, os.path.abspath(__file__), "--models", *args.models, "--dtypes", *args.dtypes,
                       "--batches", *map(str, args.batches), "--repeat", str(args.repeat), "--no-zennit",
                       "--rules", *args.rules,
                       "--extras" if args.extras else "--no-extras", "--json", report,
                       "--out", os.path.join(scratch, "baseline.md")]
            print(f"baseline: reflrp at {revision}", flush=True)
            subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": tree})
            with open(report) as handle:
                found = json.load(handle)
        finally:
            subprocess.run(["git", "-C", root, "worktree", "remove", "--force", tree], capture_output=True)
    if not os.path.realpath(found["reflrp"]).startswith(os.path.realpath(tree)):
        raise SystemExit(f"--baseline: the baseline run imported reflrp from {found['reflrp']}, not from the worktree")
    return found["rows"], found["extras"]


def with_baseline(rows, baseline):
    """``rows`` with the baseline's reflrp time, its ratio to this run's Zennit, and the speed-up."""
    before = {(r["model"], r["dtype"], r["batch"], r["rules"]): r["_reflrp"] for r in baseline}
    merged = []
    for row in rows:
        old = before.get((row["model"], row["dtype"], row["batch"], row["rules"]))
        row = dict(row)
        extra = {"before ms": f"{1e3 * old:.{0 if old >= 0.1 else 2}f}" if old else "-",
                 "before ratio": f"{old / row['_zennit']:.2f}" if old and row["_zennit"] else "-",
                 "speed-up": f"{old / row['_reflrp']:.2f}" if old else "-"}
        keys = list(row)
        at = keys.index("ratio") + 1
        merged.append({k: (row | extra)[k] for k in keys[:at] + list(extra) + keys[at:]})
    return merged


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    parser.add_argument("--extras", action=argparse.BooleanOptionalAction, default=True,
                        help="many targets at once and the 512x512 U-Net (default: on)")
    parser.add_argument("--quick", action="store_true", help="seed U-Net and MLP at batch 1, one repeat, no extras")
    parser.add_argument("--zennit", action=argparse.BooleanOptionalAction, default=True,
                        help="time Zennit beside reflrp when it imports (default: on)")
    parser.add_argument("--baseline", metavar="REVISION",
                        help="also time reflrp at this git revision (a temporary worktree, in a subprocess)")
    parser.add_argument("--json", help="also write the raw rows here (what --baseline reads)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                      "suite.md"))
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.batches, args.repeat, args.extras = ["seed_unet", "mlp"], [1], 1, False
    baseline, baseline_extras = measure_baseline(args.baseline, args) if args.baseline else ([], [])
    rows = []
    print(machine())
    print(f"reflrp {reflrp.__version__} from {os.path.dirname(reflrp.__file__)}")
    for name in args.models:
        if name in MODERN and not available(name):
            print(f"{name}: skipped (needs torchvision and segmentation-models-pytorch: the peers venv)")
            continue
        for dtype in args.dtypes:
            for batch in args.batches:
                run_case(name, dtype, batch, args.repeat, rows, args.zennit, args.rules)
    extras = [*one_pixel(args.repeat, args.zennit), many_targets(args.repeat), large_unet(args.zennit)] \
        if args.extras else []
    for line in extras:
        print(line)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"reflrp": reflrp.__file__, "rows": rows, "extras": extras}, handle)
    if args.baseline:
        rows = with_baseline(rows, baseline)
        extras += [f"before ({args.baseline}): {line}" for line in baseline_extras]
    head = [k for k in rows[0] if not k.startswith("_")]
    write_table(args.out, "reflrp speed suite",
                "Times in ms: median (min-max) of the repeats. ratio = reflrp / Zennit; forward ratio = reflrp / "
                "torch; peak MB = what the explanation added to the resident set, reflrp / Zennit."
                + (f" before = reflrp at {args.baseline} (median), before ratio = before / Zennit of this run, "
                   f"speed-up = before / reflrp." if args.baseline else ""),
                head, [[row[h] for h in head] for row in rows], extras)


def write_table(path, title, note, head, rows, extras=()):
    """A results file: ``# title, date``, the machine, ``note``, the table (``head`` and ``rows`` of cells), then
    ``extras`` as a list."""
    lines = [f"# {title}, {datetime.date.today()}", "", machine(), "", note, "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    lines += [""] + [f"- {line}" for line in extras] if extras else []
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
