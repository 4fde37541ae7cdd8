"""Relevance per token: the Span target of language models, highlighted text in the terminal and as HTML."""

import numpy as np
import pytest

import reflrp
from reflrp import targets, text
from reflrp.errors import ReflrpError


def test_span_sums_the_logits_of_its_tokens():
    output = np.arange(2 * 5 * 7, dtype=np.float64).reshape(2, 5, 7)
    span = targets.Span(start=1, token_ids=[3, 0, 6])
    span.check(output.shape[1:], 2)
    samples, weights = span.select(output)
    np.testing.assert_array_equal(samples, [0, 1])
    np.testing.assert_array_equal((weights * output).sum((1, 2)), output[:, 1, 3] + output[:, 2, 0] + output[:, 3, 6])
    assert targets.Span(4, 2).token_ids == (2,)
    with pytest.raises(ReflrpError, match="ends after the output's 5 positions"):
        targets.Span(3, [1, 2, 3]).check((5, 7), 2)
    with pytest.raises(ReflrpError, match="token id 9 is outside the vocabulary of 7"):
        targets.Span(0, [9]).check((5, 7), 2)
    with pytest.raises(ReflrpError, match=r"needs a \(positions, vocabulary\) output"):
        targets.Span(0, [1]).check((7,), 2)


def test_a_span_explains_a_language_model_and_its_relevance_sums_to_the_span_under_lrp_0(rng):
    tokens, width, vocabulary = 4, 6, 9
    model = reflrp.Sequential([("fc1", reflrp.Linear(rng.normal(size=(8, width)))), ("act", reflrp.ReLU()),
                               ("fc2", reflrp.Linear(rng.normal(size=(vocabulary, 8))))])
    x = rng.normal(size=(2, tokens, width))
    e = reflrp.explain(model, x, targets.Span(1, [2, 5]), reflrp.rules.Epsilon(epsilon=0.0))
    logits = model(x)
    np.testing.assert_allclose(e.target_value, logits[:, 1, 2] + logits[:, 2, 5], rtol=1e-13)
    np.testing.assert_allclose(text.per_token(e.relevance).sum(1), e.target_value, rtol=1e-10)
    assert np.all(text.per_token(e.relevance)[:, [0, 3]] == 0)  # a token is explained by its own position only


def test_tokens_are_coloured_by_their_relevance():
    tokens = ["the", "cat", "<sat>"]
    relevance = np.array([0.0, 2.0, -2.0])
    shown = text.terminal(tokens, relevance, limit=2.0)
    assert "\x1b[38;2;0;0;0m\x1b[48;2;255;255;255mthe" in shown  # white at 0, black text
    assert "\x1b[38;2;255;255;255m\x1b[48;2;178;5;38mcat" in shown  # full red, white text
    assert "\x1b[48;2;5;48;148m<sat>" in shown  # full blue
    fragment = text.html(tokens, relevance, limit=2.0, title="a & b")
    assert "&lt;sat&gt;" in fragment and "a &amp; b" in fragment and 'title="+2"' in fragment
    assert "background:rgb(178,5,38);color:rgb(255,255,255)" in fragment


def test_token_maps_are_checked_and_saved_whole(tmp_path):
    with pytest.raises(ReflrpError, match="2 tokens but 3 relevance values"):
        text.html(["a", "b"], np.zeros(3))
    with pytest.raises(ReflrpError, match="one value per token"):
        text.terminal(["a"], np.zeros((1, 4)))
    with pytest.raises(ReflrpError, match="NaN or Inf"):
        text.html(["a"], np.array([np.nan]))
    path = tmp_path / "tokens.html"
    text.save_html(path, ["a", "b"], np.array([1.0, -1.0]), title="t")
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<span") == 2
    assert [p.name for p in tmp_path.iterdir()] == ["tokens.html"]


def test_an_embedding_looks_up_token_ids_and_each_token_gets_the_sum_over_its_vector(rng):
    table = rng.normal(size=(9, 4))
    model = reflrp.Sequential([("embed", reflrp.Embedding(table)), ("fc", reflrp.Linear(rng.normal(size=(3, 4)))),
                               ("flat", reflrp.Flatten()), ("head", reflrp.Linear(rng.normal(size=(2, 15))))])
    ids = np.array([[1.0, 8.0, 0.0, 4.0, 4.0]])
    np.testing.assert_array_equal(model.trace(ids)["embed"], table[[[1, 8, 0, 4, 4]]])
    e = reflrp.explain(model, ids, 1, reflrp.rules.Epsilon(epsilon=0.0), keep=["embed"])
    assert e.relevance.shape == (1, 5)
    np.testing.assert_allclose(e.relevance, e.relevances["embed"].sum(-1), rtol=1e-14)
    np.testing.assert_allclose(e.relevance.sum(), e.target_value[0], rtol=1e-12)
    for bad in (np.array([[1.5, 0, 0, 0, 0]]), np.array([[9.0, 0, 0, 0, 0]]), np.array([[-1.0, 0, 0, 0, 0]])):
        with pytest.raises(ReflrpError, match="not a token id in \\[0, 9\\)"):
            reflrp.explain(model, bad, 1, reflrp.rules.Epsilon())
    with pytest.raises(ReflrpError, match="an embedding has nothing to divide by"):
        reflrp.rules.Pass(epsilon=1e-3).check(model["embed"].layer, [(5,)], (5, 4))

