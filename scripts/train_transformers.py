"""Train the two small transformers of docs/transformers.md, write the shipped model files and draw the pictures.

    pip install -e ".[torch,viz]" && python scripts/train_transformers.py

- A vision transformer that reads generated digits (reflrp.digits): 4x4 patches of 28x28 images, a class token,
  a learned position embedding, two pre-norm blocks of nn.MultiheadAttention and a GELU MLP, 10 classes.
- A text encoder that reads generated movie reviews (reflrp.reviews): token and position embeddings, a class
  token, two blocks, 2 classes (negative, positive); a "not" flips the word after it, so attention must look
  back.

Both train on the CPU in about a minute each, are imported with reflrp.from_torch (the text model with its token
embedding as reflrp's Embedding layer in front, so that it reads token ids) and saved in float32 with reflrp.save.
Each file records the seed, the final training loss and the held-out accuracy measured with the imported model.
The pictures: docs/images/vit_digit.png; then ``python scripts/docs_tables.py`` renews the highlighted review in
docs/transformers.md.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np
import torch
from torch import nn

import reflrp
from reflrp import composites, reviews, text, viz
from reflrp.digits import make_digits
from reflrp.graph import INPUT, Node
from reflrp.reviews import VOCABULARY, make_reviews

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "reflrp" / "data"
IMAGES = ROOT / "docs" / "images"


class Block(nn.Module):
    def __init__(self, width, heads):
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


class Encoder(nn.Module):
    """A class token, a learned position embedding, two blocks, the class token's head."""

    def __init__(self, tokens, width, heads, classes):
        super().__init__()
        self.class_token = nn.Parameter(0.02 * torch.randn(1, 1, width))
        self.position = nn.Parameter(0.02 * torch.randn(1, tokens + 1, width))
        self.blocks = nn.Sequential(Block(width, heads), Block(width, heads))
        self.ln = nn.LayerNorm(width)
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1) + self.position
        return self.head(self.ln(self.blocks(x))[:, 0])


class ViT(nn.Module):
    def __init__(self, width=48, heads=3):
        super().__init__()
        self.patches = nn.Conv2d(1, width, 4, 4)
        self.encoder = Encoder(49, width, heads, 10)

    def forward(self, x):
        return self.encoder(self.patches(x).flatten(2).transpose(1, 2))


def train(model, inputs, labels, steps, seed, batch=64, rate=3e-3):
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, rate, total_steps=steps)
    model.train()
    loss = None
    for _ in range(steps):
        chosen = torch.randint(0, len(inputs), (batch,), generator=generator)
        loss = nn.functional.cross_entropy(model(inputs[chosen]), labels[chosen])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval(), float(loss)


def with_embedding(graph, table):
    """``graph`` (which reads embeddings) with an Embedding layer in front, so that it reads token ids."""
    nodes = [Node("embed", reflrp.Embedding(table), (INPUT,))]
    for node in graph.nodes:
        inputs = tuple("embed" if name == INPUT else name for name in node.inputs)
        nodes.append(Node(node.name, node.layer, inputs, called=node.called, within=node.within))
    return reflrp.Graph(nodes, output=graph.output)


def save(graph, name, held_out, seed, steps, loss):
    """Ship ``graph`` as reflrp/data/NAME.reflrp with its training record and its accuracy on ``held_out``
    (inputs, labels)."""
    held, truth = held_out
    accuracy = float((graph(held.astype(np.float32)).argmax(1) == truth).mean())
    reflrp.save(graph, DATA / f"{name}.reflrp", metadata={"seed": seed, "steps": steps,
                                                          "final_training_loss": round(loss, 4),
                                                          "held_out_accuracy": accuracy})
    print(f"{name}: loss {loss:.4f}, held-out accuracy {accuracy:.3f}")


def vision(steps, seed):
    torch.manual_seed(seed)
    images, classes = make_digits(6000, seed=seed)
    model, loss = train(ViT(), torch.tensor(images, dtype=torch.float32), torch.tensor(classes), steps, seed)
    graph = reflrp.from_torch(model, torch.tensor(images[:2], dtype=torch.float32)).astype(np.float32)
    save(graph, "vit_digits", make_digits(500, seed=seed + 1), seed, steps, loss)
    model64 = graph.astype(np.float64)
    image, label = make_digits(1, seed=7)
    panels = []
    for name, composite in (("AttnLRP", composites.AttnLRP()), ("CP-LRP", composites.CPLRP())):
        e = reflrp.explain(model64, image, int(label[0]), composite)
        panels.append(viz.Panel(f"{name}: digit {label[0]} (logit {e.target_value[0]:.2f})", e.relevance[0, 0],
                                image[0, 0]))
    viz.save_panels(IMAGES / "vit_digit.png", panels, columns=2, on_image=True)


def language(steps, seed):
    torch.manual_seed(seed)
    ids, labels = make_reviews(20000, seed=seed)
    width = 48
    embedding = nn.Embedding(len(VOCABULARY), width)
    encoder = Encoder(ids.shape[1], width, 3, 2)
    model = nn.Sequential(embedding, encoder)
    model, loss = train(model, torch.tensor(ids), torch.tensor(labels), steps, seed)
    example = embedding(torch.tensor(ids[:2])).detach()
    graph = with_embedding(reflrp.from_torch(encoder.eval(), example), embedding.weight.detach().numpy())
    graph = graph.astype(np.float32)
    save(graph, "reviews_encoder", make_reviews(1000, seed=seed + 1), seed, steps, loss)
    review = reviews.encode("the acting was not good but the story was superb")
    e = reflrp.explain(graph.astype(np.float64), review, 1, composites.AttnLRP())
    words = [VOCABULARY[int(i)] for i in review[0]]
    print(text.terminal(words, e.relevance[0]))  # docs/transformers.md shows it as HTML: scripts/docs_tables.py


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500, help="training steps of the vision model")
    parser.add_argument("--text-steps", type=int, default=5000, help="training steps of the text model")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    start = time.perf_counter()
    vision(arguments.steps, arguments.seed)
    language(arguments.text_steps, arguments.seed)
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
