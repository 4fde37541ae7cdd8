"""The speed suite: reflrp against Zennit (when it imports) and against its own and torch's forward pass, on the
same models and weights, measured side by side in one run.  Benchmarks, never assertions.

    python bench/suite.py                     # everything (VGG-16 takes minutes)
    python bench/suite.py --quick             # seed U-Net, MLP and the 128x128 U-Net at batch 1
    python bench/suite.py --models unet128 --dtypes float32 --batches 1 16

For every model, dtype and batch size: the forward pass (reflrp, torch), and for Epsilon, EpsilonPlus and
EpsilonGammaBox the explanation (reflrp, Zennit), as medians with min-max over ``--repeat`` runs, reflrp's
forward GFLOP/s, the explanation's cost in forward passes, the Zennit ratio, and reflrp's peak memory
(tracemalloc: numpy's allocations).  BatchNorm is merged on both sides (reflrp.canonize.merge_batchnorm, Zennit's
SequentialMergeBatchNorm).  Then many targets at once: K pixels of the 128x128 U-Net in one batched pass against
K single explanations.  The table is printed and written as Markdown to ``--out`` with the machine it ran on.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc

import numpy as np
import torch
from threadpoolctl import threadpool_info

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import MODELS, build  # noqa: E402

import reflrp  # noqa: E402
from reflrp import canonize, composites, rules, targets  # noqa: E402

RULES = {
    "Epsilon": lambda: rules.Epsilon(),
    "EpsilonPlus": lambda: composites.EpsilonPlus(),
    "EpsilonGammaBox": lambda: composites.EpsilonGammaBox(0.0, 1.0),
}


def timed(fn, repeat):
    """``(median, min, max)`` seconds of ``fn()`` over ``repeat`` runs after one warm-up run."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), max(times)


def forward_flops(graph, sample_shape):
    """Multiply-adds times two of the layers with weights, for one sample."""
    shapes = graph.shapes(sample_shape)
    total = 0
    for node in graph.nodes:
        layer, out = node.layer, shapes[node.name]
        if isinstance(layer, reflrp.Linear):
            total += 2 * layer.weight.size
        elif isinstance(layer, reflrp.Conv2d):
            total += 2 * math.prod(out) * math.prod(layer.weight.shape[1:])
        elif isinstance(layer, reflrp.ConvTranspose2d):
            source = shapes[node.inputs[0]] if node.inputs[0] != "input" else sample_shape
            total += 2 * math.prod(source) * math.prod(layer.weight.shape[1:])
    return total


def peak_memory(fn):
    """Peak bytes numpy allocated during ``fn()`` (tracemalloc)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def zennit_explainer(module, name, rule_name, x, target):
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
    median, low, high = t
    return f"{1e3 * median:.0f} ({1e3 * low:.0f}-{1e3 * high:.0f})"


def run_case(name, dtype, batch, repeat, rows):
    torch_dtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    module = build(name, torch_dtype)
    shape, index = MODELS[name][1], MODELS[name][2]
    x = torch.rand((batch, *shape), generator=torch.Generator().manual_seed(1), dtype=torch_dtype)
    graph = canonize.merge_batchnorm(reflrp.from_torch(module, x))
    xs = x.numpy()
    flops = forward_flops(graph, shape) * batch
    ours_forward = timed(lambda: graph(xs), repeat)
    with torch.no_grad():
        torch_forward = timed(lambda: module(x), repeat)
    for rule_name, make in RULES.items():
        chosen = make()
        target = targets.Index(index)
        def ours_explain(target=target, chosen=chosen):
            return reflrp.explain(graph, xs, target, chosen)

        ours = timed(ours_explain, repeat)
        memory = peak_memory(ours_explain)
        zennit = zennit_explainer(module, name, rule_name, x, index)
        theirs = timed(zennit, repeat) if zennit is not None else None
        rows.append({
            "model": name, "dtype": dtype, "batch": batch, "rules": rule_name,
            "reflrp": fmt(ours), "zennit": fmt(theirs) if theirs else "-",
            "ratio": f"{ours[0] / theirs[0]:.2f}" if theirs else "-",
            "forward": fmt(ours_forward), "torch forward": fmt(torch_forward),
            "forward ratio": f"{ours_forward[0] / torch_forward[0]:.2f}",
            "GFLOP/s": f"{flops / ours_forward[0] / 1e9:.0f}",
            "LRP / forward": f"{ours[0] / ours_forward[0]:.1f}",
            "peak MB": f"{memory / 2**20:.0f}",
        })
        print(" | ".join(str(v) for v in rows[-1].values()), flush=True)


def many_targets(repeat, k=64):
    """K output pixels of the 128x128 U-Net (float32, EpsilonPlus): one batched pass against K single ones."""
    module = build("unet128", torch.float32)
    x = torch.rand((1, 3, 128, 128), generator=torch.Generator().manual_seed(1))
    graph = canonize.merge_batchnorm(reflrp.from_torch(module, x))
    xs = x.numpy()
    pixels = [(8 * (j // 8) + 4, 8 * (j % 8) + 4) for j in range(k)]
    chosen = composites.EpsilonPlus()
    single = timed(lambda: reflrp.explain(graph, xs, targets.Index((1, *pixels[0])), chosen), repeat)
    batched = timed(lambda: reflrp.explain(graph, xs, targets.Pixels(1, pixels), chosen), max(1, repeat // 2))
    return (f"{k} pixels of the 128x128 U-Net (float32, EpsilonPlus): one pass {fmt(batched)} ms, one pixel "
            f"{fmt(single)} ms; batched / {k} singles = {batched[0] / (k * single[0]):.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="seed U-Net, MLP and the 128x128 U-Net at batch 1")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                      "suite.md"))
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.batches = ["seed_unet", "mlp", "unet128"], [1]
    rows = []
    print(machine())
    for name in args.models:
        for dtype in args.dtypes:
            for batch in args.batches:
                run_case(name, dtype, batch, args.repeat, rows)
    targets_line = many_targets(args.repeat) if "unet128" in args.models else ""
    if targets_line:
        print(targets_line)
    head = list(rows[0])
    lines = [f"# reflrp speed suite, {datetime.date.today()}", "", machine(), "",
             "Times in ms: median (min-max). ratio = reflrp / Zennit; forward ratio = reflrp / torch.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(row[h]) for h in head) + " |" for row in rows]
    if targets_line:
        lines += ["", targets_line]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
