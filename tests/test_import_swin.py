"""from_torch on Swin Transformers: torchvision's ShiftedWindowAttention and PatchMerging taken apart (windows as an
axis of the sample, shifted windows as Roll, the relative position bias and the shift mask as constants added to
the scores), torch.roll.  CI has no torchvision: the two classes below stand in for torchvision's (the same names,
attributes and computation, written here with the windows folded into the batch axis as torchvision does, and
PatchMerging's sub-grids taken by strided slices); torchvision's own swin_t is imported in the model zoo
(scripts/peers/zoo.py, docs/zoo.md)."""

import numpy as np
import pytest

from extras import need

need("torch")

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

import reflrp  # noqa: E402
from reflrp import composites, targets  # noqa: E402
from reflrp.errors import ReflrpError  # noqa: E402


def region_labels(size, window, shift):
    """Along one axis of the padded map: which of the regions a cyclic shift by ``shift`` brings together."""
    index = torch.arange(size)
    if shift == 0:
        return torch.zeros(size)
    return (index >= size - window).double() + (index >= size - shift).double()


class ShiftedWindowAttention(nn.Module):
    """Stands in for torchvision's ``ShiftedWindowAttention`` (V1)."""

    def __init__(self, dim, window_size, shift_size, num_heads):
        super().__init__()
        self.window_size, self.shift_size, self.num_heads = list(window_size), list(shift_size), num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        wh, ww = window_size
        self.relative_position_bias_table = nn.Parameter(torch.randn((2 * wh - 1) * (2 * ww - 1), num_heads))
        rows, columns = torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")
        rows, columns = rows.flatten(), columns.flatten()
        index = (rows[:, None] - rows[None, :] + wh - 1) * (2 * ww - 1) + (columns[:, None] - columns[None, :] + ww - 1)
        self.register_buffer("relative_position_index", index.flatten())

    def get_relative_position_bias(self):
        tokens = self.window_size[0] * self.window_size[1]
        table = self.relative_position_bias_table[self.relative_position_index]
        return table.view(tokens, tokens, -1).permute(2, 0, 1).unsqueeze(0)

    def forward(self, x):
        n, h, w, c = x.shape
        (wh, ww), heads = self.window_size, self.num_heads
        x = F.pad(x, (0, 0, 0, (-w) % ww, 0, (-h) % wh))
        hp, wp = x.shape[1:3]
        shift = [0 if window >= size else s for window, size, s in zip(self.window_size, (hp, wp), self.shift_size)]
        if any(shift):
            x = torch.roll(x, (-shift[0], -shift[1]), (1, 2))
        tokens = wh * ww

        def windows(t):  # (n, hp, wp, ...) -> (n * windows, tokens, ...)
            t = t.reshape(t.shape[0], hp // wh, wh, wp // ww, ww, *t.shape[3:]).transpose(2, 3)
            return t.reshape(-1, tokens, *t.shape[5:])

        folded = windows(x)
        q, k, v = self.qkv(folded).reshape(len(folded), tokens, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        scores = (q * (c // heads) ** -0.5) @ k.transpose(-2, -1) + self.get_relative_position_bias()
        if any(shift):
            labels = 3 * region_labels(hp, wh, shift[0])[:, None] + region_labels(wp, ww, shift[1])[None, :]
            labels = windows(labels[None, :, :, None])[..., 0]  # (windows, tokens)
            mask = -100.0 * (labels[:, :, None] != labels[:, None, :]).double()
            scores = (scores.view(n, -1, heads, tokens, tokens) + mask[None, :, None]).view(-1, heads, tokens, tokens)
        out = self.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(len(folded), tokens, c))
        out = out.reshape(n, hp // wh, wp // ww, wh, ww, c).transpose(2, 3).reshape(n, hp, wp, c)
        if any(shift):
            out = torch.roll(out, tuple(shift), (1, 2))
        return out[:, :h, :w]


class PatchMerging(nn.Module):
    """Stands in for torchvision's ``PatchMerging``."""

    def __init__(self, dim):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x):
        x = F.pad(x, (0, 0, 0, x.shape[2] % 2, 0, x.shape[1] % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


class SwinBlock(nn.Module):
    def __init__(self, dim, heads, shift, window=4):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = ShiftedWindowAttention(dim, (window, window), shift, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class SwinStyle(nn.Module):
    """Patches of 2x2 (a 10x10 map: windows of 4 need padding), a plain and a shifted block, a merge, a shifted
    block on 5x5, a merge of an odd map, a block whose window covers the map (no shift left), the head."""

    def __init__(self):
        super().__init__()
        self.patches = nn.Conv2d(3, 8, 2, 2)
        self.norm0 = nn.LayerNorm(8)
        self.stage1 = nn.Sequential(SwinBlock(8, 2, (0, 0)), SwinBlock(8, 2, (2, 2)))
        self.merge1 = PatchMerging(8)
        self.stage2 = nn.Sequential(SwinBlock(16, 4, (2, 2)))
        self.merge2 = PatchMerging(16)
        self.stage3 = nn.Sequential(SwinBlock(32, 4, (2, 2)))
        self.norm = nn.LayerNorm(32)
        self.head = nn.Linear(32, 5)

    def forward(self, x):
        x = self.norm0(self.patches(x).permute(0, 2, 3, 1))
        x = self.stage3(self.merge2(self.stage2(self.merge1(self.stage1(x)))))
        return self.head(self.norm(x).mean((1, 2)))


def build():
    torch.manual_seed(5)
    module = SwinStyle().double().eval()
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(0.4 * torch.randn(parameter.shape, dtype=parameter.dtype))
    return module, torch.randn(3, 3, 20, 20, dtype=torch.float64)


@pytest.mark.parametrize("composite", [composites.AttnLRP(), composites.CPLRP()], ids=repr)
def test_a_swin_transformer_imports_reproduces_pytorch_and_explains(composite):
    module, x = build()
    graph = reflrp.from_torch(module, x)
    with torch.no_grad():
        expected = module(x).numpy()
    np.testing.assert_allclose(graph(x.numpy()), expected, rtol=0, atol=1e-12 * np.abs(expected).max())
    e = reflrp.explain(graph, x.numpy(), targets.Class(2), composite)
    assert e.relevance.shape == tuple(x.shape)
    assert np.abs(e.ledger.closure(relative=True)).max() <= 1e-12
    assert np.abs(e.ledger.node_closure(relative=True)).max() <= 1e-12


def test_window_attention_is_taken_apart_with_its_shift_padding_and_constants():
    module, x = build()
    graph = reflrp.from_torch(module, x)
    layers = {n.name: n.layer for n in graph.nodes}
    kinds = {name: type(layer).__name__ for name, layer in layers.items()}
    plain, shifted, covering = "stage1.0.attn", "stage1.1.attn", "stage3.0.attn"
    assert kinds[f"{plain}.pad"] == "Pad" and f"{plain}.shift" not in kinds and f"{plain}.shift_mask" not in kinds
    assert kinds[f"{shifted}.shift"] == kinds[f"{shifted}.unshift"] == "Roll"
    assert kinds[f"{shifted}.position_bias"] == kinds[f"{shifted}.shift_mask"] == "Scale"
    assert kinds[f"{shifted}.context"] == "MatMul" and layers[f"{shifted}.context"].gate == 0
    assert kinds[shifted] == "Narrow"  # the padding cropped last, under the module's name
    assert f"{covering}.shift" not in kinds  # a window as large as the (padded) map: no shift
    assert kinds["merge2"] == "Linear" and kinds["merge2.pad"] == "Pad" and kinds["merge2.norm"] == "Scale"


def test_a_batch_explains_each_sample_as_alone():
    module, x = build()
    graph = reflrp.from_torch(module, x)
    together = reflrp.explain(graph, x.numpy(), targets.Class(1), composites.AttnLRP()).relevance
    alone = reflrp.explain(graph, x.numpy()[1:2], targets.Class(1), composites.AttnLRP()).relevance
    np.testing.assert_array_equal(together[1:2], alone)


class Rolled(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.dims = dims
        self.conv = nn.Conv2d(2, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(torch.roll(x, (1, -2), self.dims) if self.dims else x.roll(3))


def test_torch_roll_imports_and_refuses_a_roll_without_axes():
    x = torch.randn(2, 2, 5, 6, dtype=torch.float64)
    module = Rolled((2, -1)).double().eval()
    graph = reflrp.from_torch(module, x)
    assert type(graph.nodes[0].layer).__name__ == "Roll" and graph.nodes[0].layer.dims == (2, 3)
    with torch.no_grad():
        np.testing.assert_allclose(graph(x.numpy()), module(x).numpy(), rtol=0, atol=1e-13)
    with pytest.raises(ReflrpError, match="roll"):
        reflrp.from_torch(Rolled(None).double().eval(), x)
    with pytest.raises(ReflrpError, match="batch"):
        reflrp.from_torch(Rolled((0, 2)).double().eval(), x)


class ShiftedWindowAttentionV2(nn.Module):
    """Stands in for torchvision's Swin V2 attention: refused by name."""

    def forward(self, x):
        return x


def test_swin_v2_blocks_are_refused_by_name():
    module = nn.Sequential(nn.Linear(4, 4), ShiftedWindowAttentionV2()).double().eval()
    with pytest.raises(ReflrpError, match="Swin V2"):
        reflrp.from_torch(module, torch.randn(1, 2, 2, 4, dtype=torch.float64))


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_a_swin_transformer_imports_from_onnx_its_windows_folded_into_the_batch(exporter, tmp_path):
    """Exported, the windows are folded into the batch axis and the patch merging takes strided slices: kept as
    views of batch-first tensors (reflrp.importers.onnx_views), the attention on the windows' axis."""
    pytest.importorskip("onnx", reason="needs onnx, from the test extra")
    import warnings

    module, x = build()
    torchscript = exporter == "torchscript"
    path = str(tmp_path / "swin.onnx")
    with warnings.catch_warnings():  # the exporters' notes
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x[:1] if torchscript else x,), path, input_names=["x"],
                          **({"dynamo": False, "opset_version": 17} if torchscript else {"dynamo": True,
                                                                                         "verbose": False}))
    graph = reflrp.from_onnx(path)
    for layer_norm in (m for m in module.modules() if isinstance(m, nn.LayerNorm)):
        layer_norm.eps = float(np.float32(layer_norm.eps))  # as the file holds it (a float32 attribute)
    with torch.no_grad():
        expected = module(x).numpy()
    # both exporters keep the attention's scale (c // heads) ** -0.5, a Python float, as float32 (0.35355338454 for
    # 8 ** -0.5 in the last stage): 2e-8 apart in the output, 1e-5 in the relevance (the softmax amplifies it)
    tolerance = (1e-7, 1e-4)
    np.testing.assert_allclose(graph(x.numpy()), expected, rtol=0, atol=tolerance[0] * np.abs(expected).max())
    assert sum(isinstance(n.layer, reflrp.Softmax) for n in graph.nodes) == 4
    rules = composites.AttnLRP(epsilon=0.0)
    got = reflrp.explain(graph, x.numpy(), targets.Class(2), rules)
    want = reflrp.explain(reflrp.from_torch(module, x), x.numpy(), targets.Class(2), rules)
    np.testing.assert_allclose(got.relevance, want.relevance, rtol=0, atol=tolerance[1] * np.abs(want.relevance).max())
    assert np.abs(got.ledger.closure(relative=True)).max() <= 1e-12
