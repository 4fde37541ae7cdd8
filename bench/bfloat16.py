"""What LXT's relevance loses in float32 and bfloat16, measured against reflrp's float64 reference of the same
function: torchvision's ViT (CP-LRP) and Hugging Face's BERT (AttnLRP), the small models of
scripts/peers/lxt_fixtures.py.  For bfloat16 the reference is the model with its weights and inputs rounded to
bfloat16 and then computed in float64, so that the table shows what bfloat16 *arithmetic* loses, apart from
rounding the parameters.  Runs in LXT's venv::

    .peers/venv-lxt/bin/python bench/bfloat16.py [--out bench/results/bfloat16.md]
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts" / "peers"))
import lxt_fixtures as fixtures  # noqa: E402

import reflrp  # noqa: E402
from reflrp import targets  # noqa: E402


def rounded(model, build):
    """A copy of ``model`` whose parameters are rounded to bfloat16 (held in float64)."""
    copy = build()
    copy.load_state_dict({k: v.to(torch.bfloat16).to(torch.float64) for k, v in model.state_dict().items()})
    return fixtures.randomize_nothing(copy)


def lxt_run(model, x, target, dtype):
    model = model.to(dtype)
    sample = x.to(dtype).clone().requires_grad_(True)
    y = model(sample)[0, target]
    y.backward()
    model.to(torch.float64)
    return float(y), (sample * sample.grad).to(torch.float64).detach().numpy()[0]


def compare(ours, theirs, logit_ours, logit_theirs):
    error = np.abs(theirs - ours).max() / np.abs(ours).max()
    correlation = np.corrcoef(ours.ravel(), theirs.ravel())[0, 1]
    return error, correlation, abs(theirs.sum() - ours.sum()) / abs(ours.sum()), abs(logit_theirs - logit_ours)


def measure():
    rows = []
    # torchvision's ViT: the same classes before and after LXT's patch
    generator = torch.Generator().manual_seed(21)

    def build_vit():
        return fixtures.vision_transformer.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                                             hidden_dim=32, mlp_dim=64, num_classes=5).double()

    vit = fixtures.randomize(build_vit(), generator)
    x = torch.randn(1, 3, 32, 32, generator=generator, dtype=torch.float64)
    cases = [("vit", "CP-LRP", vit, rounded(vit, build_vit), x, 3, None)]
    # BERT: imported from Hugging Face's classes, run in LXT's own copy
    generator = torch.Generator().manual_seed(22)
    config = fixtures.BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=16, num_labels=3,
                                 attn_implementation="sdpa")
    bert = fixtures.randomize(fixtures.modeling_bert.BertForSequenceClassification(config).double(), generator)
    ids = torch.randint(0, 60, (1, 7), generator=generator)
    embeddings = bert.get_input_embeddings()(ids).detach()
    bert_rounded = rounded(bert, lambda: fixtures.modeling_bert.BertForSequenceClassification(config).double())
    cases.append(("bert", "AttnLRP", fixtures.Embedded(bert).eval(), fixtures.Embedded(bert_rounded).eval(),
                  embeddings, 1, config))
    graphs = {name: (reflrp.from_torch(model, x), reflrp.from_torch(model_rounded, x.to(torch.bfloat16).double()))
              for name, _, model, model_rounded, x, _, _ in cases}
    fixtures.monkey_patch(fixtures.vision_transformer)
    fixtures.monkey_patch(fixtures.modeling_bert)
    for name, preset, model, model_rounded, x, target, config in cases:
        if config is not None:  # LXT's BERT: the patched module's classes, the same weights
            lxt_model = fixtures.modeling_bert.BertForSequenceClassification(config).double()
            lxt_model.load_state_dict(model.m.state_dict())
            model = fixtures.Embedded(fixtures.randomize_nothing(lxt_model)).eval()
            lxt_rounded = fixtures.modeling_bert.BertForSequenceClassification(config).double()
            lxt_rounded.load_state_dict(model_rounded.m.state_dict())
            model_rounded = fixtures.Embedded(fixtures.randomize_nothing(lxt_rounded)).eval()
        graph, graph_rounded = graphs[name]
        reference = reflrp.explain(graph, x.numpy(), targets.Class(target), preset, profile="lxt")
        x_rounded = x.to(torch.bfloat16).double()
        reference_rounded = reflrp.explain(graph_rounded, x_rounded.numpy(), targets.Class(target), preset,
                                           profile="lxt")
        for dtype, lxt_model, ref in ((torch.float64, model, reference), (torch.float32, model, reference),
                                      (torch.bfloat16, model_rounded, reference_rounded)):
            logit, relevance = lxt_run(lxt_model, x_rounded if dtype == torch.bfloat16 else x, target, dtype)
            rows.append((name, preset, str(dtype).removeprefix("torch."),
                         *compare(ref.relevance[0], relevance, ref.target_value[0], logit), ref.target_value[0]))
            print(rows[-1], flush=True)
    return rows


def report(rows):
    import importlib.metadata

    lines = [f"# What float32 and bfloat16 lose: LXT {importlib.metadata.version('lxt')} against reflrp's float64 "
             "reference", "",
             "Each row: LXT's relevance computed in that dtype, against reflrp's float64 explanation of the same "
             "function under profile \"lxt\" (for bfloat16: the model's weights and input rounded to bfloat16, then "
             "computed in float64). error = largest difference relative to the largest magnitude; sum error = "
             "difference of the relevance sums relative to the reference's; logit error = absolute.", "",
             "| model | recipe | dtype | error | correlation | sum error | logit error | logit |",
             "|---|---|---|---|---|---|---|---|"]
    for name, preset, dtype, error, correlation, total, logit_error, logit in rows:
        lines.append(f"| {name} | {preset} | {dtype} | {error:.1e} | {correlation:.6f} | {total:.1e} | "
                     f"{logit_error:.1e} | {logit:.4f} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "bfloat16.md"))
    text = report(measure())
    pathlib.Path(parser.parse_args().out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
