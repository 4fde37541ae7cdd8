"""from_torch on transformers: nn.MultiheadAttention and F.scaled_dot_product_attention taken apart, class tokens and
position embeddings, what a Hugging Face model computes from constants (position ids, masks, rotary tables: folded
into constants), Hugging Face style RMSNorm modules, rotary embeddings, causal masks; each import equal to PyTorch
on its example and explained with a closed ledger.  (Hugging Face's own BERT, GPT-2 and Llama are imported in
scripts/peers/lxt_fixtures.py, and checked against LXT in tests/test_peers_lxt.py.)"""

import warnings

import numpy as np
import pytest

from extras import need

need("torch", "onnx")

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

import reflrp  # noqa: E402
from reflrp import composites, targets, text  # noqa: E402
from reflrp.errors import ReflrpError  # noqa: E402
from reflrp.importers.torch_attention import mask_kind  # noqa: E402


class Block(nn.Module):
    def __init__(self, width=16, heads=2):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, x):
        h = self.ln_1(x)
        h, _ = self.attention(h, h, h, need_weights=False)
        x = x + h
        return x + self.mlp(self.ln_2(x))


class ViT(nn.Module):
    """Patches, a class token, a learned position embedding, two blocks, the class token's head."""

    def __init__(self, width=16):
        super().__init__()
        self.patches = nn.Conv2d(3, width, 4, 4)
        self.class_token = nn.Parameter(torch.randn(1, 1, width))
        self.position = nn.Parameter(torch.randn(1, 17, width))
        self.blocks = nn.Sequential(Block(width), Block(width))
        self.ln = nn.LayerNorm(width)
        self.head = nn.Linear(width, 5)

    def forward(self, x):
        x = self.patches(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1) + self.position
        return self.head(self.ln(self.blocks(x))[:, 0])


class TinyRMSNorm(nn.Module):
    """Hugging Face's RMSNorm, as Llama's: computed in float32 whatever the model's dtype (``inside``)."""

    def __init__(self, width, eps=1e-6, inside=torch.float32):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.variance_epsilon, self.inside = eps, inside

    def forward(self, x):
        dtype = x.dtype
        x = x.to(self.inside)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * x.to(dtype)


def rotate_half(x):
    first, second = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-second, first), dim=-1)


class Decoder(nn.Module):
    """A Llama-like decoder on input embeddings: rotary tables and a causal mask made from buffers and shapes (as
    Hugging Face makes them), RMSNorm, a gated MLP, the last token's logits."""

    def __init__(self, width=16, heads=2, vocabulary=11, inside=torch.float32):
        super().__init__()
        self.heads, self.size = heads, width // heads
        self.register_buffer("inv_freq", 1.0 / 10000 ** (torch.arange(0, self.size, 2).float() / self.size),
                             persistent=False)
        self.norm_1, self.norm_2, self.norm = (TinyRMSNorm(width, inside=inside) for _ in range(3))
        self.q, self.k, self.v, self.o = (nn.Linear(width, width, bias=False) for _ in range(4))
        self.gate, self.up = nn.Linear(width, 32, bias=False), nn.Linear(width, 32, bias=False)
        self.down = nn.Linear(32, width, bias=False)
        self.act = nn.SiLU()
        self.lm_head = nn.Linear(width, vocabulary, bias=False)

    def forward(self, x):
        n, t, width = x.shape
        positions = torch.arange(t, device=x.device)[None, :].expand(n, -1)
        freqs = (self.inv_freq[None, :, None].float() @ positions[:, None, :].float()).transpose(1, 2)
        table = torch.cat((freqs, freqs), dim=-1)
        cos, sin = table.cos().to(x.dtype)[:, None], table.sin().to(x.dtype)[:, None]
        mask = torch.full((t, t), torch.finfo(x.dtype).min, dtype=x.dtype).triu(1)[None, None]
        h = self.norm_1(x)
        q, k, v = (p(h).view(n, t, self.heads, self.size).transpose(1, 2) for p in (self.q, self.k, self.v))
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, :, :, :t])
        x = x + self.o(a.transpose(1, 2).reshape(n, t, width).contiguous())
        h = self.norm_2(x)
        x = x + self.down(self.act(self.gate(h)) * self.up(h))
        return self.lm_head(self.norm(x))[:, -1, :]


class Encoder(nn.Module):
    """A BERT-like encoder on input embeddings: position and token type embeddings looked up from buffers, an
    attention mask that hides nothing, the first token's pooled output."""

    def __init__(self, width=16, heads=2):
        super().__init__()
        self.register_buffer("position_ids", torch.arange(12)[None], persistent=False)
        self.register_buffer("token_type_ids", torch.zeros(1, 12, dtype=torch.long), persistent=False)
        self.positions, self.types = nn.Embedding(12, width), nn.Embedding(2, width)
        self.ln = nn.LayerNorm(width)
        self.q, self.k, self.v = (nn.Linear(width, width) for _ in range(3))
        self.heads, self.size = heads, width // heads
        self.pooler, self.classifier = nn.Linear(width, width), nn.Linear(width, 3)

    def forward(self, x):
        n, t, width = x.shape
        types = self.token_type_ids[:, :t].expand(n, t)
        x = self.ln(x + self.types(types) + self.positions(self.position_ids[:, :t]))
        mask = (1.0 - torch.ones((n, 1, 1, t), dtype=x.dtype)) * torch.finfo(x.dtype).min
        q, k, v = (p(x).view(n, t, self.heads, self.size).permute(0, 2, 1, 3) for p in (self.q, self.k, self.v))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + a.permute(0, 2, 1, 3).reshape(n, t, width)
        return self.classifier(torch.tanh(self.pooler(x[:, 0])))


class Causal(nn.Module):
    def __init__(self, width=16, heads=2):
        super().__init__()
        self.qkv, self.o, self.heads, self.head = nn.Linear(width, 3 * width), nn.Linear(width, width), heads, \
            nn.Linear(width, 7)

    def forward(self, x):
        n, t, d = x.shape
        q, k, v = (y.reshape(n, t, self.heads, d // self.heads).transpose(1, 2) for y in self.qkv(x).chunk(3, -1))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.head(x + self.o(y.transpose(1, 2).reshape(n, t, d)))[:, -1]


class TimmStyle(nn.Module):
    """timm's attention: one qkv projection reshaped, permuted with the batch moved, and unbound; the forward takes
    an optional mask, fixed at its default (None) when imported."""

    def __init__(self, width=16, heads=2):
        super().__init__()
        self.qkv, self.proj, self.heads, self.head = nn.Linear(width, 3 * width), nn.Linear(width, width), heads, \
            nn.Linear(width, 4)

    def forward(self, x, attn_mask=None):
        n, t, width = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.head(x + self.proj(y.transpose(1, 2).reshape(n, t, width))).mean(dim=1)


def repeat_kv(h, repeats):
    """Hugging Face's repeat_kv: each key/value head serves ``repeats`` query heads."""
    n, heads, t, size = h.shape
    return h[:, :, None, :, :].expand(n, heads, repeats, t, size).reshape(n, heads * repeats, t, size)


class Grouped(nn.Module):
    """Grouped-query attention: 4 query heads share 2 key/value heads, causal."""

    def __init__(self, width=16, heads=4, kv_heads=2):
        super().__init__()
        self.size, self.heads, self.kv_heads = width // heads, heads, kv_heads
        self.q, self.o = nn.Linear(width, width), nn.Linear(width, width)
        self.k, self.v = nn.Linear(width, kv_heads * self.size), nn.Linear(width, kv_heads * self.size)
        self.head = nn.Linear(width, 5)

    def forward(self, x):
        n, t, width = x.shape
        q = self.q(x).view(n, t, self.heads, self.size).transpose(1, 2)
        k, v = (p(x).view(n, t, self.kv_heads, self.size).transpose(1, 2) for p in (self.k, self.v))
        repeats = self.heads // self.kv_heads
        y = F.scaled_dot_product_attention(q, repeat_kv(k, repeats), repeat_kv(v, repeats), is_causal=True)
        return self.head(x + self.o(y.transpose(1, 2).reshape(n, t, width)))[:, -1]


class Conv1D(nn.Module):
    """Hugging Face's GPT-2 dense layer (weight (in, out)); its forward folds the batch into the tokens, so the
    importer converts it whole (a Linear), as it does the class of that name from the transformers package."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf, self.weight, self.bias = nf, nn.Parameter(torch.randn(nx, nf)), nn.Parameter(torch.randn(nf))

    def forward(self, x):
        size = x.size()[:-1] + (self.nf,)
        return torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight).view(size)


Conv1D.__module__ = "transformers.pytorch_utils"


class GPT2Style(nn.Module):
    def __init__(self, width=16):
        super().__init__()
        self.c_fc, self.c_proj, self.head = Conv1D(2 * width, width), Conv1D(width, 2 * width), nn.Linear(width, 3)

    def forward(self, x):
        return self.head(x + self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))[:, 0]


MODELS = {
    "vit": (ViT, (3, 16, 16)),
    "decoder": (Decoder, (6, 16)),
    "encoder": (Encoder, (5, 16)),
    "causal": (Causal, (6, 16)),
    "timm": (TimmStyle, (5, 16)),
    "grouped": (Grouped, (6, 16)),
    "gpt2": (GPT2Style, (4, 16)),
}


def build(name, **options):
    torch.manual_seed(4)
    make, shape = MODELS[name]
    module = make(**options).double().eval()
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(0.4 * torch.randn(parameter.shape, dtype=parameter.dtype))
    return module, torch.randn(3, *shape, dtype=torch.float64)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("composite", [composites.AttnLRP(), composites.CPLRP()], ids=repr)
def test_a_transformer_imports_reproduces_pytorch_and_explains(name, composite):
    module, x = build(name)
    graph = reflrp.from_torch(module, x)
    with torch.no_grad():
        expected = module(x).numpy()
    tolerance = 1e-6 if name == "decoder" else 1e-12  # its RMSNorm computes in float32, as Hugging Face's does
    np.testing.assert_allclose(graph(x.numpy()), expected, rtol=0, atol=tolerance * np.abs(expected).max())
    e = reflrp.explain(graph, x.numpy(), targets.Class(1), composite)
    assert e.relevance.shape == tuple(x.shape)
    assert np.abs(e.ledger.closure(relative=True)).max() <= 1e-12
    assert np.abs(e.ledger.node_closure(relative=True)).max() <= 1e-12


def test_attention_is_taken_apart_into_products_a_scale_and_a_softmax():
    module, x = build("vit")
    graph = reflrp.from_torch(module, x)
    attention = [n for n in graph.nodes if n.name.startswith("blocks.0.attention")]
    kinds = [type(n.layer).__name__ for n in attention]
    assert kinds.count("MatMul") == 2 and kinds.count("Softmax") == 1 and kinds.count("Linear") == 4
    context = next(n for n in attention if n.name == "blocks.0.attention.context")
    assert context.layer.gate == 0  # the probabilities: CP-LRP holds them
    assert [type(n.layer).__name__ for n in graph.nodes[:5]] == ["Conv2d", "Flatten", "Permute", "ConstantConcat",
                                                                  "Scale"]


def test_a_causal_mask_made_from_constants_becomes_a_causal_softmax():
    module, x = build("decoder")
    graph = reflrp.from_torch(module, x)
    softmaxes = [n.layer for n in graph.nodes if isinstance(n.layer, reflrp.Softmax)]
    assert softmaxes and all(s.causal for s in softmaxes)
    (product,) = [n for n in graph.nodes if isinstance(n.layer, reflrp.Multiply)]
    assert product.layer.gate == 0  # a gated linear unit: silu(gate(h)) gates up(h)
    norms = [n for n in graph.nodes if isinstance(n.layer, reflrp.RMSNorm)]
    assert [n.name for n in norms] == ["norm_1.normalize", "norm_2.normalize", "norm.normalize"]
    first = reflrp.explain(graph, x.numpy()[:1], targets.Class(0), composites.AttnLRP()).relevance
    assert np.all(first[0, :-1].any(axis=-1))  # the last token attends to every token before it


def test_what_is_computed_from_constants_is_folded_and_what_differs_per_sample_is_refused():
    module, x = build("encoder")
    graph = reflrp.from_torch(module, x)
    assert not any(isinstance(n.layer, reflrp.Softmax) and n.layer.causal for n in graph.nodes)
    adds = [n for n in graph.nodes if isinstance(n.layer, reflrp.Scale) and n.layer.bias is not None]
    assert len(adds) >= 2  # the token type and position embeddings: biases the ledger accounts for

    class PerSample(nn.Module):
        def forward(self, x):
            return x + torch.arange(x.shape[0], dtype=x.dtype)[:, None]

    with pytest.raises(ReflrpError, match="a constant that differs between the samples of the batch"):
        reflrp.from_torch(PerSample().eval(), torch.randn(3, 4, dtype=torch.float64))


def test_attention_masks_are_read_or_refused():
    causal = np.triu(np.full((4, 4), -3e38), 1)[None, None]
    assert mask_kind(causal) == "causal"
    assert mask_kind(np.zeros((1, 1, 3, 4))) == "none"
    assert mask_kind(~np.triu(np.ones((3, 5), bool), 3)) == "causal"  # queries after a prefix of keys
    padding = np.zeros((1, 1, 4, 4))
    padding[..., -1] = -3e38
    assert mask_kind(padding) is None

    class Padded(nn.Module):
        def forward(self, x):
            keys = torch.arange(x.shape[2])
            mask = ((keys == x.shape[2] - 1).to(x.dtype) * -1e300)[None, None, None]
            return F.scaled_dot_product_attention(x, x, x, attn_mask=mask)

    with pytest.raises(ReflrpError, match="a padding mask is not"):
        reflrp.from_torch(Padded().eval(), torch.randn(2, 2, 4, 8, dtype=torch.float64))


def test_multihead_attention_refuses_what_it_cannot_take_apart():
    class Cross(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = nn.MultiheadAttention(8, 2)

        def forward(self, x):
            return self.attention(x, x, x, need_weights=False)[0]

    with pytest.raises(ReflrpError, match="batch_first=False: the batch must be the first axis"):
        reflrp.from_torch(Cross().eval(), torch.randn(2, 3, 8))

    class Weights(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x):
            return self.attention(x, x, x)[1]

    with pytest.raises(ReflrpError, match="the attention weights of nn.MultiheadAttention are not converted"):
        reflrp.from_torch(Weights().eval(), torch.randn(2, 3, 8))


def export(module, x, path, **options):
    with warnings.catch_warnings():  # the exporters' deprecation and tracer notes
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), str(path), input_names=["x"], **options)
    return str(path)


@pytest.mark.parametrize("name, exporter", [("causal", "torchscript"), ("timm", "torchscript"), ("causal", "dynamo"),
                                           ("timm", "dynamo"), ("gpt2", "dynamo")])
def test_attention_written_with_sdpa_imports_from_onnx_and_explains_as_from_torch(name, exporter, tmp_path):
    """The TorchScript exporter's SDPA; timm's qkv permutation that moves the batch axis becomes Transpose, Split
    and Squeeze, taken apart as from_torch takes the unbind apart; the dynamo exporter folds the heads into the
    batch axis to transpose the keys, (N * heads, T, E), and unfolds them again; it writes GPT-2's dense layers on
    ``x.view(-1, E)`` (the tokens folded into the batch axis) and timm's unbind as Slice and Squeeze."""
    module, x = build(name)
    torchscript = exporter == "torchscript"
    options = {"dynamo": False, "opset_version": 17} if torchscript else {"dynamo": True, "verbose": False}
    graph = reflrp.from_onnx(export(module, x[:1] if torchscript else x, tmp_path / f"{name}.onnx", **options))
    with torch.no_grad():
        expected = module(x).numpy()
    np.testing.assert_allclose(graph(x.numpy()), expected, rtol=0, atol=1e-12 * np.abs(expected).max())
    softmax = [n.layer for n in graph.nodes if isinstance(n.layer, reflrp.Softmax)]
    assert [layer.causal for layer in softmax] == {"causal": [True], "timm": [False], "gpt2": []}[name]
    rules = composites.AttnLRP(epsilon=0.0)  # where the exporter scales q and k apart, epsilon 0 reads the same
    target = targets.Class(1 if name == "timm" else 2)
    got = reflrp.explain(graph, x.numpy(), target, rules)
    want = reflrp.explain(reflrp.from_torch(module, x), x.numpy(), target, rules)
    np.testing.assert_allclose(got.relevance, want.relevance, rtol=0, atol=1e-10 * np.abs(want.relevance).max())
    assert np.abs(got.ledger.closure(relative=True)).max() <= 1e-12


@pytest.mark.parametrize("inside", [torch.float32, torch.float64], ids=["float32 RMSNorm", "float64 RMSNorm"])
def test_a_llama_like_decoder_imports_from_the_dynamo_exporter(inside, tmp_path):
    """The dynamo exporter writes RMSNorm as Cast, Pow, ReduceMean, Add, Sqrt, Reciprocal, Mul and Cast, the rotary
    embedding with Slice, Neg, Concat and constant tables with a batch axis: one RMSNorm (computed in the model's
    dtype), Narrow, Scale by -1, Concat, Scale."""
    import onnxruntime

    module, x = build("decoder", inside=inside)
    path = export(module, x, tmp_path / "decoder.onnx", dynamo=True, verbose=False)
    graph = reflrp.from_onnx(path)
    norms = [n for n in graph.nodes if isinstance(n.layer, reflrp.RMSNorm)]
    assert len(norms) == 3 and all(n.layer.eps == np.float32(1e-6) and n.layer.normalized_shape == (16,) for n in norms)
    assert [n.layer.causal for n in graph.nodes if isinstance(n.layer, reflrp.Softmax)] == [True]
    (gated,) = [n.layer for n in graph.nodes if isinstance(n.layer, reflrp.Multiply)]
    assert gated.gate == 0
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    theirs = session.run(None, {"x": x.numpy()})[0]
    # onnxruntime computes a float32 RMSNorm in float32 as the file says; reflrp computes it in float64
    tolerance = 1e-6 if inside == torch.float32 else 1e-12
    np.testing.assert_allclose(graph(x.numpy()), theirs, rtol=0, atol=tolerance * np.abs(theirs).max())
    rules = composites.AttnLRP(epsilon=0.0)
    got = reflrp.explain(graph, x.numpy(), targets.Class(2), rules)
    assert np.abs(got.ledger.closure(relative=True)).max() <= 1e-12
    # the exporter folds the rotary tables that PyTorch computes in float32 in its own way: 5e-8 apart
    want = reflrp.explain(reflrp.from_torch(module, x), x.numpy(), targets.Class(2), rules)
    np.testing.assert_allclose(got.relevance, want.relevance, rtol=0, atol=1e-6 * np.abs(want.relevance).max())


def test_a_language_model_exported_from_token_ids_looks_them_up_in_an_embedding(tmp_path):
    torch.manual_seed(5)
    body, _ = build("decoder", inside=torch.float64)
    model = nn.Sequential(nn.Embedding(11, 16).double(), body).eval()
    ids = torch.tensor([[3, 1, 4, 1, 5, 9], [2, 6, 5, 3, 5, 8]])
    graph = reflrp.from_onnx(export(model, ids, tmp_path / "ids.onnx", dynamo=True, verbose=False))
    assert isinstance(graph.nodes[0].layer, reflrp.Embedding) and graph.dtype == np.float64
    floats = ids.numpy().astype(np.float64)
    with torch.no_grad():
        expected = model(ids).numpy()
    np.testing.assert_allclose(graph(floats), expected, rtol=0, atol=1e-6 * np.abs(expected).max())  # rotary tables
    e = reflrp.explain(graph, floats, targets.Class(3), composites.AttnLRP())
    assert e.relevance.shape == (2, 6) and np.abs(e.ledger.closure(relative=True)).max() <= 1e-12

    class Counted(nn.Module):  # the ids read as numbers: refused
        def forward(self, ids):
            return ids.to(torch.float64).sum(1, keepdim=True)

    with pytest.raises(ReflrpError, match="the model input is token ids"):
        reflrp.from_onnx(export(Counted().eval(), ids, tmp_path / "counted.onnx", dynamo=True, verbose=False))


def test_onnx_casts_and_rms_norm_patterns_that_do_not_fit_are_refused_by_name(tmp_path):
    class Half(nn.Module):
        def forward(self, x):
            return (x.to(torch.float32) * 2).to(x.dtype)

    class Columns(nn.Module):  # an RMSNorm over the tokens, not the features
        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-5)

    x = torch.randn(2, 3, 4, dtype=torch.float64)
    with pytest.raises(ReflrpError, match=r"(?s)Cast.*a change of dtype inside the model \(to float32\)"):
        reflrp.from_onnx(export(Half().eval(), x, tmp_path / "half.onnx", dynamo=True, verbose=False))
    with pytest.raises(ReflrpError, match="an RMSNorm pattern over axis 1 is not supported: only over the last axis"):
        reflrp.from_onnx(export(Columns().eval(), x, tmp_path / "columns.onnx", dynamo=True, verbose=False))


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_multihead_attention_from_onnx_moves_and_folds_the_batch_axis_and_imports(exporter, tmp_path):
    """nn.MultiheadAttention's export computes sequence first, (T, N, E), splits q, k and v off a leading axis and
    folds the heads into the batch, (T, N * heads, d): kept as views of batch-first tensors until the batch is first
    again (reflrp.importers.onnx_views), the dense layers on the views' last axis."""
    module, x = build("vit")
    torchscript = exporter == "torchscript"
    options = {"dynamo": False, "opset_version": 17} if torchscript else {"dynamo": True, "verbose": False}
    graph = reflrp.from_onnx(export(module, x[:1] if torchscript else x, tmp_path / "vit.onnx", **options))
    with torch.no_grad():
        expected = module(x).numpy()
    np.testing.assert_allclose(graph(x.numpy()), expected, rtol=0, atol=1e-12 * np.abs(expected).max())
    products = [n.layer for n in graph.nodes if isinstance(n.layer, reflrp.MatMul)]
    assert [p.gate for p in products] == [None, 0, None, 0]
    for rules in (composites.AttnLRP(epsilon=0.0), composites.CPLRP(epsilon=0.0)):
        got = reflrp.explain(graph, x.numpy(), targets.Class(1), rules)
        want = reflrp.explain(reflrp.from_torch(module, x), x.numpy(), targets.Class(1), rules)
        np.testing.assert_allclose(got.relevance, want.relevance, rtol=0, atol=1e-10 * np.abs(want.relevance).max())
        assert np.abs(got.ledger.closure(relative=True)).max() <= 1e-12


def test_a_language_model_imports_from_token_ids_and_each_token_gets_its_embeddings_relevance():
    torch.manual_seed(5)
    body, embeddings_example = build("decoder")
    embedding = nn.Embedding(11, 16).double()
    model = nn.Sequential(embedding, body).eval()
    ids = torch.tensor([[3, 1, 4, 1, 5, 9], [2, 6, 5, 3, 5, 8]])
    graph = reflrp.from_torch(model, ids)
    assert isinstance(graph.nodes[0].layer, reflrp.Embedding)
    floats = ids.numpy().astype(np.float64)
    np.testing.assert_allclose(graph(floats), model(ids).detach().numpy(), rtol=0, atol=1e-6)  # float32 RMSNorm
    e = reflrp.explain(graph, floats, targets.Class(3), composites.AttnLRP())
    from_embeddings = reflrp.from_torch(body, embedding(ids).detach())
    expected = reflrp.explain(from_embeddings, embedding(ids).detach().numpy(), targets.Class(3), composites.AttnLRP())
    assert e.relevance.shape == (2, 6)
    np.testing.assert_allclose(e.relevance, text.per_token(expected.relevance), rtol=1e-10, atol=1e-13)
    with pytest.raises(ReflrpError, match="not a token id"):
        reflrp.explain(graph, floats + 0.5, targets.Class(3), composites.AttnLRP())
