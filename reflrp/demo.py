"""``reflrp demo``: the reported case out of the box.

A small U-Net trained to segment the strokes of generated digits (shipped as ``reflrp/data/unet_digits.reflrp``,
trained by ``scripts/train_unet.py``) is explained at one foreground pixel with several rules, with BatchNorm kept
and folded.  Each ledger is printed; heatmaps go to PNG files when matplotlib is installed.
"""

from __future__ import annotations

import os
import pathlib
import time

import numpy as np

from reflrp import _cache, io
from reflrp.canonize import merge_batchnorm
from reflrp.composites import EpsilonGammaBox
from reflrp.digits import make_digits
from reflrp.explain import explain
from reflrp.files import written
from reflrp.models import DIGITS_UNET_FILE
from reflrp.rules import Epsilon
from reflrp.targets import Pixel

OFFSET = 8  # output pixel (r, c) sits over input pixel (r + 8, c + 8)
OUTPUT_SIZE = 12  # the U-Net's output map is 12 x 12


def compiled_kernels():
    """reflrp's compiled kernels (numba dispatchers; none with ``NUMBA_DISABLE_JIT=1``)."""
    from numba.core.dispatcher import Dispatcher

    from reflrp.kernels import conv, dense, pool, resample

    return [value for module in (conv, dense, pool, resample) for value in vars(module).values()
            if isinstance(value, Dispatcher)]


def foreground_pixel(prediction):
    """The predicted foreground pixel nearest the centre of the 12x12 output (row-major first on ties)."""
    rows, cols = np.nonzero(prediction > 0.5)
    if rows.size == 0:
        return 6, 6
    distance = (rows - 5.5) ** 2 + (cols - 5.5) ** 2
    k = int(np.argmin(distance))
    return int(rows[k]), int(cols[k])


def run(out_dir="reflrp-demo", seed=3, pixel=None, write=print):
    """Run the demo; return ``{(variant, rule): Explanation}``."""
    model, meta = io.read(DIGITS_UNET_FILE)
    write("reflrp demo: explaining a U-Net that segments digit strokes")
    write(f"  model: {DIGITS_UNET_FILE.name} - {meta.get('description', '')}")
    write(f"  trained by {meta.get('trained_by')} (seed {meta.get('seed')}, final loss "
          f"{meta.get('final_training_loss')}); on {meta.get('test_images')} held-out digits: pixel accuracy "
          f"{meta.get('test_pixel_accuracy')}, foreground IoU {meta.get('test_foreground_iou')}")
    images, classes = make_digits(1, seed=seed)
    x = images
    kernels = compiled_kernels()
    if not any(_cache.on_disk(kernel) for kernel in kernels):  # reflrp's first use with this cache
        write("  compiling numba kernels on first use (cached on disk afterwards)...")
    start = time.perf_counter()
    prediction = model(x)[0, 0]
    row, col = pixel if pixel is not None else foreground_pixel(prediction)
    target = Pixel((0, row, col))
    first = explain(model, x, target, Epsilon())  # the first explanation compiles the backward kernels too
    compiled = sum(_cache.compiled_here(kernel) for kernel in kernels)
    how = "kernels compiled now and cached on disk" if compiled else "kernels loaded from the disk cache"
    write(f"  ... ready in {time.perf_counter() - start:.1f} s ({how})")
    write(f"  input: a generated '{classes[0]}' (seed {seed}); target: output pixel ({row}, {col}) = input pixel "
          f"({row + OFFSET}, {col + OFFSET}), predicted foreground probability {prediction[row, col]:.3f}")
    write("")
    variants = {"BN kept (affine layers)": model, "BN folded (merge_batchnorm)": merge_batchnorm(model)}
    rule_set = {
        "Epsilon": Epsilon(),
        "Epsilon zero-bias": Epsilon(zero_bias=True),
        "EpsilonGammaBox": EpsilonGammaBox(0.0, 1.0),
    }
    results = {}
    for variant, m in variants.items():
        for name, rule in rule_set.items():
            e = first if (m is model and rule == Epsilon()) else explain(m, x, target, rule)
            results[variant, name] = e
            write(f"=== {name}, {variant} ===")
            write(e.ledger.table(0))
            write("")
    write("Summary: where the logit's relevance went")
    header = f"{'rule':19s} {'BatchNorm':28s} {'target':>9s} {'input':>9s} {'biases':>9s} {'stabilizer':>11s} " \
             f"{'closure':>9s}"
    write(header)
    for (variant, name), e in results.items():
        ledger = e.ledger
        write(f"{name:19s} {variant:28s} {ledger.target_value[0]:9.4f} {ledger.input_relevance[0]:9.4f} "
              f"{ledger.total('bias')[0]:9.4f} {ledger.total('stabilizer')[0]:11.2e} {ledger.closure()[0]:9.1e}")
    write("")
    _write_files(out_dir, x, prediction, (row, col), results, write)
    return results


def _write_files(out_dir, x, prediction, pixel, results, write):
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with written(out / "relevance.npz") as partial:
        np.savez(partial, input=x, **{f"{v} | {r}": e.relevance[0, 0] for (v, r), e in results.items()})
    marker = (pixel[0] + OFFSET, pixel[1] + OFFSET)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        write(f"Relevance arrays: {out / 'relevance.npz'}. Heatmap PNGs need matplotlib: "
              f'pip install "reflrp[viz]" (from a checkout: pip install ".[viz]") and run the demo again.')
        return
    from reflrp.viz import Panel, save_heatmaps, save_panels

    full = np.zeros((28, 28))
    full[OFFSET : OFFSET + 12, OFFSET : OFFSET + 12] = prediction
    save_panels(out / "input.png", [Panel("input digit", None, x[0, 0]),
                                    Panel("predicted stroke probability\n(the U-Net's 12x12 output, centred)", None,
                                          full)],
                marker=marker, title="green square: the analysed pixel")
    for variant in dict.fromkeys(v for v, _ in results):
        maps = {r: e.relevance[0, 0] for (v, r), e in results.items() if v == variant}
        slug = "bn_folded" if "folded" in variant else "bn_kept"
        save_heatmaps(out / f"relevance_{slug}.png", maps, image=x[0, 0], marker=marker, columns=4,
                      title=f"relevance for output pixel {pixel}, {variant} (red +, blue -)")
        save_heatmaps(out / f"overlay_{slug}.png", maps, image=x[0, 0], marker=marker, columns=4, on_image=True,
                      title=f"relevance over the input, {variant}")
    names = sorted(p.name for p in out.glob("*.png"))
    write(f"Wrote {', '.join(names)} and relevance.npz to {os.path.abspath(out)}")
