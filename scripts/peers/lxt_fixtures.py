"""Write tests/data/peers/lxt/: LXT 2.1's relevance (its efficient mode) on transformers, final and per layer, in
float64.

LXT needs torchvision and transformers 4.52.4, which do not load beside this project's CPU torch 2.13.0; run this in
its own venv (``nox -s peers`` does)::

    python3 -m venv /tmp/lxt-venv
    /tmp/lxt-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 lxt==2.1.0 transformers==4.52.4 onnx onnxscript -e .
    /tmp/lxt-venv/bin/python scripts/peers/lxt_fixtures.py [OUT_DIR]

Models, float64, random weights, built from configurations (nothing downloaded):

- ``vit``: torchvision's ``VisionTransformer`` (2 layers, 2 heads, width 32, 8x8 patches of 32x32 images), LXT's
  recipe for it: CP-LRP (query and key detached);
- ``bert``: a Hugging Face ``BertForSequenceClassification`` (2 layers, 2 heads, width 32, SDPA attention), LXT's
  AttnLRP (its own copy of ``modeling_bert``), explained from the input embeddings;
- ``llama``: a Hugging Face ``LlamaForCausalLM`` (2 layers, 2 heads, width 32, SDPA attention), LXT's AttnLRP on
  the last token's logit, from the input embeddings.  LXT's RMSNorm computes in float32 even in a float64 model; here
  its patch is replaced by the same computation in float64 (``rms_norm_float64``: LXT's formula, the deviation
  detached), so that the fixture holds LXT's rules at float64's precision;
- ``llama_cp``: the same Llama under LXT's CP-LRP (query, key and the MLP's gate detached);
- ``gpt2``: a Hugging Face ``GPT2LMHeadModel`` (2 layers, 2 heads, width 32, SDPA attention), LXT's AttnLRP on the
  last token's logit, from the input embeddings.

For every model the folder gets ``MODEL.reflrp`` (the torch model imported by :func:`reflrp.from_torch` before LXT
patches it), for the Hugging Face models ``MODEL.onnx`` (the same model exported by PyTorch's dynamo exporter before
LXT patches it: tests/test_peers_lxt.py imports it with :func:`reflrp.from_onnx`), and ``MODEL.npz``: the input, the
explained class, and for every case the input relevance ``x * x.grad`` and the relevance ``output * output.grad`` at
each listed module's output (``CASE/MODULE``), with the seed of LXT's recipe (``y.backward()`` on the logit:
relevance = the logit's value); plus the library versions.
tests/test_peers_lxt.py explains the same models with ``profile="lxt"``.

LXT patches ``torch.nn.LayerNorm``, ``nn.GELU`` and ``nn.MultiheadAttention`` for the whole process, and the
Hugging Face modules it knows: each model is made in a process of its own, imported into reflrp before the patch.
"""

from __future__ import annotations

import importlib.metadata
import json
import pathlib
import subprocess
import sys
import warnings
from functools import partial

import numpy as np
import torch
from lxt.efficient import monkey_patch
from lxt.efficient.models import llama as lxt_llama
from lxt.efficient.patches import patch_method
from lxt.efficient.rules import stop_gradient
from torchvision.models import vision_transformer
from transformers import BertConfig, GPT2Config, LlamaConfig
from transformers.models.bert import modeling_bert
from transformers.models.gpt2 import modeling_gpt2
from transformers.models.llama import modeling_llama

import reflrp

ROOT = pathlib.Path(__file__).resolve().parents[2]


def randomize(model, generator):
    """Weights, biases and embeddings ~ N(0, 0.3), normalisations' weights ~ U(0.5, 1.5): large enough that every
    part of the model matters; eval mode, no gradients for the parameters."""
    with torch.no_grad():
        for module in model.modules():
            norm = isinstance(module, torch.nn.LayerNorm) or type(module).__name__.endswith("RMSNorm")
            for name, parameter in module.named_parameters(recurse=False):
                if norm and name == "weight":
                    parameter.copy_(0.5 + torch.rand(parameter.shape, generator=generator, dtype=parameter.dtype))
                else:
                    parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval()


class Embedded(torch.nn.Module):
    """A Hugging Face model called on input embeddings, returning the logits to explain (the last token's for a
    causal language model)."""

    def __init__(self, model, last=False):
        super().__init__()
        self.m, self.last = model, last

    def forward(self, embeddings):
        if self.last:
            return self.m(inputs_embeds=embeddings, use_cache=False).logits[:, -1]
        return self.m(inputs_embeds=embeddings).logits


def export(module, x, path):
    """``module`` on ``x`` exported by PyTorch's dynamo exporter to ``path`` (when given), before LXT patches it."""
    if path is not None:
        with warnings.catch_warnings():  # the exporter's notes
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (x,), str(path), input_names=["x"], dynamo=True, verbose=False,
                              external_data=False)


def vit(onnx=None):
    """torchvision's ViT, imported; then LXT's CP-LRP patch."""
    generator = torch.Generator().manual_seed(21)
    model = vision_transformer.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                                 hidden_dim=32, mlp_dim=64, num_classes=5)
    model = randomize(model.double(), generator)
    x = torch.randn(2, 3, 32, 32, generator=generator, dtype=torch.float64)
    modules = ["conv_proj", "encoder.ln", "heads.head"]
    for k in range(2):
        block = f"encoder.layers.encoder_layer_{k}"
        modules += [f"{block}.ln_1", f"{block}.self_attention", f"{block}.ln_2", f"{block}.mlp.0", f"{block}.mlp.1",
                    f"{block}.mlp.3"]
    graph = reflrp.from_torch(model, x)
    monkey_patch(vision_transformer)  # LXT's default for torchvision's ViT: CP-LRP
    return graph, model, x, 3, modules, {"cp-lrp": "CP-LRP"}


def bert(onnx=None):
    """Hugging Face's BERT, imported; then LXT's own BERT (AttnLRP) with the same weights."""
    generator = torch.Generator().manual_seed(22)
    config = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=16, num_labels=3, attn_implementation="sdpa")
    original = randomize(modeling_bert.BertForSequenceClassification(config).double(), generator)
    ids = torch.randint(0, 60, (2, 7), generator=generator)
    x = original.get_input_embeddings()(ids).detach()
    graph = reflrp.from_torch(Embedded(original).eval(), x)
    export(Embedded(original).eval(), x, onnx)
    monkey_patch(modeling_bert)  # replaces the module's classes with LXT's: build the model again from them
    model = modeling_bert.BertForSequenceClassification(config).double()
    model.load_state_dict(original.state_dict())
    model = randomize_nothing(model)
    modules = ["m.bert.embeddings.LayerNorm", "m.bert.pooler.dense", "m.classifier"]
    for k in range(2):
        layer = f"m.bert.encoder.layer.{k}"
        modules += [f"{layer}.attention.self.query", f"{layer}.attention.self.key", f"{layer}.attention.self.value",
                    f"{layer}.attention.output.dense", f"{layer}.attention.output.LayerNorm",
                    f"{layer}.intermediate.dense", f"{layer}.output.dense", f"{layer}.output.LayerNorm"]
    return graph, Embedded(model).eval(), x, 1, modules, {"attnlrp": "AttnLRP"}


def rms_norm_float64(self, hidden_states):
    """LXT's ``rms_norm_forward`` (the deviation detached: the identity rule) without its cast to float32."""
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * stop_gradient(torch.rsqrt(variance + self.variance_epsilon)))


def llama(cp=False, onnx=None):
    """Hugging Face's Llama, imported; then LXT's AttnLRP patch (``cp``: its CP-LRP patch), its RMSNorm in
    float64."""
    generator = torch.Generator().manual_seed(23)
    config = LlamaConfig(vocab_size=60, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32,
                         attn_implementation="sdpa")
    model = randomize(modeling_llama.LlamaForCausalLM(config).double(), generator)
    ids = torch.randint(0, 60, (2, 7), generator=generator)
    x = model.get_input_embeddings()(ids).detach()
    wrapped = Embedded(model, last=True).eval()
    graph = reflrp.from_torch(wrapped, x)
    export(wrapped, x, onnx)
    patches = dict(lxt_llama.cp_LRP if cp else lxt_llama.attnLRP)
    patches[modeling_llama.LlamaRMSNorm] = partial(patch_method, rms_norm_float64)
    monkey_patch(modeling_llama, patches)
    modules = ["m.model.norm", "m.lm_head"]
    for k in range(2):
        layer = f"m.model.layers.{k}"
        modules += [f"{layer}.input_layernorm", f"{layer}.self_attn.q_proj", f"{layer}.self_attn.k_proj",
                    f"{layer}.self_attn.v_proj", f"{layer}.self_attn.o_proj", f"{layer}.post_attention_layernorm",
                    f"{layer}.mlp.gate_proj", f"{layer}.mlp.up_proj", f"{layer}.mlp.down_proj"]
    return graph, wrapped, x, 5, modules, {"cp-lrp": "CP-LRP"} if cp else {"attnlrp": "AttnLRP"}


def gpt2(onnx=None):
    """Hugging Face's GPT-2 (its Conv1D dense layers, the tanh GELU), imported; then LXT's AttnLRP patch."""
    generator = torch.Generator().manual_seed(24)
    config = GPT2Config(vocab_size=60, n_positions=16, n_embd=32, n_layer=2, n_head=2, attn_implementation="sdpa")
    model = randomize(modeling_gpt2.GPT2LMHeadModel(config).double(), generator)
    ids = torch.randint(0, 60, (2, 7), generator=generator)
    x = model.get_input_embeddings()(ids).detach()
    wrapped = Embedded(model, last=True).eval()
    graph = reflrp.from_torch(wrapped, x)
    export(wrapped, x, onnx)
    monkey_patch(modeling_gpt2)
    modules = ["m.transformer.ln_f", "m.lm_head"]
    for k in range(2):
        layer = f"m.transformer.h.{k}"
        modules += [f"{layer}.ln_1", f"{layer}.attn.c_attn", f"{layer}.attn.c_proj", f"{layer}.ln_2",
                    f"{layer}.mlp.c_fc", f"{layer}.mlp.c_proj"]  # mlp.act runs inside an LXT Function
    return graph, wrapped, x, 5, modules, {"attnlrp": "AttnLRP"}


def randomize_nothing(model):
    """Eval mode and no gradients for the parameters (the weights are already set)."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval()


def lxt_relevance(model, x, target, modules):
    """LXT's recipe: relevance = x * x.grad after ``y.backward()`` on the target logit, one sample at a time; the
    relevance at each module's output is ``output * output.grad`` (gradients kept by forward hooks)."""
    outputs = {}

    def keeper(name):
        def hook(module, inputs, output):
            tensor = output[0] if isinstance(output, tuple) else output
            tensor.retain_grad()
            outputs[name] = tensor
        return hook

    handles = [model.get_submodule(name).register_forward_hook(keeper(name)) for name in modules]
    try:
        relevance, per_layer, logits = [], {name: [] for name in modules}, []
        for k in range(len(x)):
            sample = x[k:k + 1].clone().requires_grad_(True)
            y = model(sample)[0, target]
            y.backward()
            logits.append(float(y.detach()))
            relevance.append((sample * sample.grad)[0].detach().numpy())
            for name in modules:
                tensor = outputs[name]
                grad = torch.zeros_like(tensor) if tensor.grad is None else tensor.grad  # detached (CP-LRP): none
                per_layer[name].append((tensor * grad)[0].detach().numpy())
    finally:
        for handle in handles:
            handle.remove()
    return np.stack(relevance), {name: np.stack(v) for name, v in per_layer.items()}, logits


MODELS = {"vit": vit, "bert": bert, "llama": llama, "llama_cp": partial(llama, cp=True), "gpt2": gpt2}
#: the models exported to ONNX too (torchvision's ViT: nn.MultiheadAttention's export is refused by from_onnx;
#: llama_cp: the same model as llama)
EXPORTED = ("bert", "llama", "gpt2")


def make(name, out, versions):
    """One model's files (in a process of its own: LXT's patches last for the whole process)."""
    graph, model, x, target, modules, cases = MODELS[name](onnx=out / f"{name}.onnx" if name in EXPORTED else None)
    reflrp.save(graph, out / f"{name}.reflrp")
    arrays = {"x": x.numpy(), "target": np.array(target)}
    for case in cases:  # one case per model: LXT's recipe for it
        relevance, per_layer, logits = lxt_relevance(model, x, target, modules)
        arrays[case] = relevance
        arrays.update({f"{case}/{module}": value for module, value in per_layer.items()})
        print(f"{name} {case}: logits {logits}, relevance sums {relevance.reshape(len(x), -1).sum(1)}")
    np.savez(out / f"{name}.npz", versions=json.dumps(versions), modules=json.dumps(modules),
             cases=json.dumps(cases), **arrays)


def main(out, only=None):
    out.mkdir(parents=True, exist_ok=True)
    if only is None:  # each model in a fresh process
        for name in MODELS:
            subprocess.run([sys.executable, __file__, str(out), name], check=True)
        return
    versions = {name: importlib.metadata.version(name) for name in ("lxt", "torch", "torchvision", "transformers")}
    make(only, out, versions)


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests" / "data" / "peers" / "lxt",
         sys.argv[2] if len(sys.argv) > 2 else None)
