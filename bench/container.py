"""The model container, measured: reflrp's ``.reflrp`` (a zip of ``.npy`` arrays and a JSON graph) against the
safetensors layout (an 8-byte length, a JSON header, the raw arrays) read with numpy alone (a memory map), and
with the ``safetensors`` package when it is installed.  docs/decisions.md states what was decided from this.

    python bench/container.py [--model vgg16|small] [--repeat 3]

Each load runs in a fresh process started from this small one (a child forked from a process holding the model
would inherit its peak memory); "peak MB" is that process's maximum resident size, reflrp and numpy imported.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def vgg16(small=False):
    """VGG-16's layers with random float32 weights (138.4 M parameters; ``small``: a few thousand)."""
    import reflrp

    rng = np.random.default_rng(0)
    widths = [8, "M", 8] if small else [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512,
                                        512, "M"]
    layers, channels = [], 3
    for width in widths:
        if width == "M":
            layers.append(reflrp.MaxPool2d(2))
            continue
        weight = rng.standard_normal((width, channels, 3, 3), dtype=np.float32)
        layers += [reflrp.Conv2d(weight, rng.standard_normal(width, dtype=np.float32), padding=1), reflrp.ReLU()]
        channels = width
    dense = [(8 * 16 * 16, 10)] if small else [(25088, 4096), (4096, 4096), (4096, 1000)]
    layers.append(reflrp.Flatten())
    for fan_in, fan_out in dense:
        layers += [reflrp.Linear(rng.standard_normal((fan_out, fan_in), dtype=np.float32),
                                 rng.standard_normal(fan_out, dtype=np.float32))]
    return reflrp.Sequential(layers)


def write_safetensors(path, arrays):
    """The safetensors layout with numpy: little-endian header length, JSON header, the arrays' bytes."""
    header, offset = {}, 0
    for name, array in arrays.items():
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    encoded = json.dumps(header).encode()
    with open(path, "wb") as handle:
        handle.write(len(encoded).to_bytes(8, "little"))
        handle.write(encoded)
        for array in arrays.values():
            handle.write(np.ascontiguousarray(array).tobytes())


def _memmaps(path):
    with open(path, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(length))
    return [np.memmap(path, dtype=np.float32, mode="r", offset=8 + length + spec["data_offsets"][0],
                      shape=tuple(spec["shape"])) for name, spec in header.items() if name != "__metadata__"]


def load(kind, path):
    """One load in this process: ``{"seconds", "peak_mb"}``."""
    import reflrp

    start = time.perf_counter()
    if kind == "reflrp":
        model = reflrp.load(path)
        arrays = [a for node in model.nodes for a in node.layer.parameters().values()]
    elif kind == "memmap":  # zero-copy until touched
        arrays = _memmaps(path)
    elif kind == "memmap, copied as layers copy":  # what reflrp's layers do with parameters today: a checked copy
        arrays = [np.array(a) for a in _memmaps(path)]
    else:
        from safetensors.numpy import load_file

        arrays = list(load_file(path).values())
    checksum = sum(float(a.ravel()[-1]) for a in arrays)  # touch every array
    return {"seconds": time.perf_counter() - start, "checksum": checksum,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def make(model_name, folder):
    """Build the model and write both files (in a child process: see the module docstring)."""
    import reflrp

    model = vgg16(small=model_name == "small")
    arrays = {f"n{k}.{name}": a for k, node in enumerate(model.nodes) for name, a in node.layer.parameters().items()}
    start = time.perf_counter()
    reflrp.save(model, os.path.join(folder, "m.reflrp"))
    save_reflrp = time.perf_counter() - start
    start = time.perf_counter()
    write_safetensors(os.path.join(folder, "m.safetensors"), arrays)
    save_layout = time.perf_counter() - start
    return {"parameters": sum(a.size for a in arrays.values()), "bytes": sum(a.nbytes for a in arrays.values()),
            "save_reflrp": save_reflrp, "save_layout": save_layout,
            "file_reflrp": os.path.getsize(os.path.join(folder, "m.reflrp"))}


def _child(*arguments):
    done = subprocess.run([sys.executable, __file__, *arguments], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main():
    if len(sys.argv) == 4 and sys.argv[1] in ("--child", "--make"):
        print(json.dumps(load(*sys.argv[2:]) if sys.argv[1] == "--child" else make(*sys.argv[2:])))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", choices=("vgg16", "small"), default="vgg16")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    kinds = ["reflrp", "memmap", "memmap, copied as layers copy"]
    try:
        import safetensors.numpy  # noqa: F401

        kinds.append("safetensors package")
    except ImportError:
        pass
    with tempfile.TemporaryDirectory() as folder:
        made = _child("--make", args.model, folder)
        print(f"{args.model}: {made['parameters'] / 1e6:.1f} M parameters, {made['bytes'] / 1e6:.0f} MB; save: .reflrp "
              f"{made['save_reflrp']:.2f} s ({made['file_reflrp'] / 1e6:.0f} MB), safetensors layout "
              f"{made['save_layout']:.2f} s")
        print("| load | median s | peak MB |\n|---|---|---|")
        for kind in kinds:
            path = os.path.join(folder, "m.reflrp" if kind == "reflrp" else "m.safetensors")
            runs = [_child("--child", kind, path) for _ in range(args.repeat)]
            print(f"| {kind} | {statistics.median(r['seconds'] for r in runs):.3f} | "
                  f"{statistics.median(r['peak_mb'] for r in runs):.0f} |")


if __name__ == "__main__":
    main()
