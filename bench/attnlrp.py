"""Transformers against LXT 2.1, side by side in one run: ViT-Tiny (torchvision's VisionTransformer, 224x224 in
16x16 patches, 12 layers, width 192, 3 heads; LXT's recipe for it, CP-LRP) and a 4-layer BERT (Hugging Face,
width 256, 4 heads, 128 tokens; LXT's AttnLRP), batch 1, float32 and float64, random weights.  reflrp explains the
model imported from the same module with profile "lxt" (the same numbers as LXT: checked here, on every row) and
with its own AttnLRP.  Runs in LXT's venv (``nox -s peers -- lxt`` builds it; ``nox -s bench`` runs this there)::

    .peers/venv-lxt/bin/python bench/attnlrp.py [--repeat 5] [--out bench/results/transformers.md]
"""

from __future__ import annotations

import argparse
import pathlib
import platform
import sys

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from timing import timed  # noqa: E402

import reflrp  # noqa: E402
from reflrp import composites, targets  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]


class Embedded(torch.nn.Module):
    """A Hugging Face model called on input embeddings, returning its logits."""

    def __init__(self, model):
        super().__init__()
        self.m = model

    def forward(self, embeddings):
        return self.m(inputs_embeds=embeddings).logits


def randomized(model):
    """torchvision's initialisation leaves the head and the class token at zero (every logit 0): those get
    N(0, 0.02) too."""
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any():
                parameter.normal_(0, 0.02)
    return model


def vit_tiny(dtype):
    from torchvision.models import vision_transformer

    torch.manual_seed(0)
    model = vision_transformer.VisionTransformer(image_size=224, patch_size=16, num_layers=12, num_heads=3,
                                                 hidden_dim=192, mlp_dim=768, num_classes=1000)
    return randomized(model).to(dtype).eval(), torch.randn(1, 3, 224, 224, dtype=dtype), "CP-LRP"


def bert4(dtype):
    from transformers import BertConfig
    from transformers.models.bert import modeling_bert

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=1024, num_labels=2, attn_implementation="sdpa")
    model = modeling_bert.BertForSequenceClassification(config).to(dtype).eval()
    x = model.get_input_embeddings()(torch.randint(0, 30522, (1, 128))).detach()
    return Embedded(model).eval(), x, "AttnLRP"


def lxt_explain(model, x, target):
    sample = x.clone().requires_grad_(True)
    model(sample)[0, target].backward()
    return (sample * sample.grad).detach()


def patch(name):
    """LXT's patch for the model (before its module is built again from the patched classes)."""
    from lxt.efficient import monkey_patch

    if name == "vit_tiny":
        from torchvision.models import vision_transformer
        monkey_patch(vision_transformer)
    else:
        from transformers.models.bert import modeling_bert
        monkey_patch(modeling_bert)


def measure(model, x, graph, preset, repeat, target=1):
    """``(reflrp lxt, LXT, reflrp own, reflrp forward, torch forward, agreement)`` for one model and dtype."""
    numpy_x = x.numpy()
    expected = lxt_explain(model, x, target).numpy()
    ours = reflrp.explain(graph, numpy_x, targets.Class(target), preset, profile="lxt").relevance
    agreement = np.abs(ours - expected).max() / np.abs(expected).max()
    with torch.no_grad():
        torch_forward = timed(lambda: model(x), repeat)
    lxt = timed(lambda: lxt_explain(model, x, target), repeat)
    forward = timed(lambda: graph(numpy_x), repeat)
    profile = timed(lambda: reflrp.explain(graph, numpy_x, targets.Class(target), preset, profile="lxt"), repeat)
    own = timed(lambda: reflrp.explain(graph, numpy_x, targets.Class(target), composites.AttnLRP()), repeat)
    return profile, lxt, own, forward, torch_forward, agreement


def run(repeat):
    rows = []
    for name, build in (("vit_tiny", vit_tiny), ("bert4", bert4)):
        imported = {}
        for dtype in (torch.float32, torch.float64):  # reflrp imports the unpatched modules
            model, x, preset = build(dtype)
            imported[dtype] = (reflrp.from_torch(model, x), model.state_dict(), x, preset)
        patch(name)
        for dtype, (graph, state, x, preset) in imported.items():
            model, _, _ = build(dtype)  # built again from LXT's classes (BERT), the same weights
            model.load_state_dict(state)
            for parameter in model.parameters():
                parameter.requires_grad_(False)
            rows.append((name, str(dtype).removeprefix("torch."), preset, *measure(model, x, graph, preset, repeat)))
            print(rows[-1], flush=True)
    return rows


def ms(t):
    return f"{t[0] * 1e3:.0f} ({t[1] * 1e3:.0f}-{t[2] * 1e3:.0f})"


def report(rows, repeat):
    from threadpoolctl import threadpool_info

    blas = next((f"{i['internal_api']} {i['version']} ({i.get('architecture')}, {i['num_threads']} threads)"
                 for i in threadpool_info() if i["user_api"] == "blas"), "unknown")
    import importlib.metadata

    lines = [f"# Transformers against LXT {importlib.metadata.version('lxt')}",
             "",
             f"{platform.machine()}, {torch.get_num_threads()} torch threads, Python {platform.python_version()}, "
             f"numpy {np.__version__}, torch {torch.__version__}, transformers "
             f"{importlib.metadata.version('transformers')}, BLAS {blas}; {repeat} repeats, batch 1.",
             "",
             "Times in ms: median (min-max). ratio = reflrp (profile lxt) / LXT; own = reflrp's AttnLRP (epsilon "
             "1e-6, the paper's rules); forward ratio = reflrp's forward / torch's; agreement = largest difference "
             "from LXT's relevance, relative to its largest magnitude.",
             "",
             "| model | dtype | LXT recipe | reflrp lxt ms | LXT ms | ratio | reflrp own ms | forward ms "
             "| torch forward ms | forward ratio | agreement |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, dtype, preset, profile, lxt, own, forward, torch_forward, agreement in rows:
        lines.append(f"| {name} | {dtype} | {preset} | {ms(profile)} | {ms(lxt)} | {profile[0] / lxt[0]:.2f} | "
                     f"{ms(own)} | {ms(forward)} | {ms(torch_forward)} | {forward[0] / torch_forward[0]:.2f} | "
                     f"{agreement:.1e} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "transformers.md"))
    arguments = parser.parse_args()
    text = report(run(arguments.repeat), arguments.repeat)
    pathlib.Path(arguments.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
