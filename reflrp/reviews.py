"""Generated movie reviews for the text examples (docs/transformers.md): ten words each from a small vocabulary,
labelled positive (1) or negative (0) by their sentiment words, where a "not" flips the word after it.

Made in code with a seeded generator, so the examples need no download.
"""

from __future__ import annotations

import numpy as np

from reflrp import validate
from reflrp.errors import ReflrpError

NEUTRAL = ("the", "movie", "film", "plot", "story", "acting", "was", "and", "but", "it", "a", "very", ".")
POSITIVE = ("good", "great", "superb", "lovely", "fun")
NEGATIVE = ("bad", "awful", "dull", "boring", "poor")
#: Every word, in id order.
VOCABULARY = NEUTRAL + POSITIVE + NEGATIVE + ("not",)
LENGTH = 10
_IDS = {word: k for k, word in enumerate(VOCABULARY)}


def _review(rng):
    words, score = [], 0
    while len(words) < LENGTH:
        draw = rng.random()
        if draw < 0.12 and len(words) < LENGTH - 1:
            positive = rng.random() < 0.5
            words += ["not", str(rng.choice(POSITIVE if positive else NEGATIVE))]
            score -= 1 if positive else -1
        elif draw < 0.4:
            positive = rng.random() < 0.5
            words.append(str(rng.choice(POSITIVE if positive else NEGATIVE)))
            score += 1 if positive else -1
        else:
            words.append(str(rng.choice(NEUTRAL)))
    return words, score


def make_reviews(n, seed=0):
    """``n`` reviews of :data:`LENGTH` words and their labels (ties of sentiment are drawn again).

    Returns
    -------
    ids : ndarray of int64, shape (n, LENGTH)
        Word ids into :data:`VOCABULARY`.
    labels : ndarray of int64, shape (n,)
        1 positive, 0 negative.
    """
    n = validate.integer(n, "make_reviews: n", minimum=0, maximum=None)
    seed = validate.integer(seed, "make_reviews: seed", minimum=0, maximum=None)
    rng = np.random.default_rng(seed)
    ids, labels = np.empty((n, LENGTH), dtype=np.int64), np.empty(n, dtype=np.int64)
    for k in range(n):
        words, score = _review(rng)
        while score == 0:
            words, score = _review(rng)
        ids[k] = [_IDS[w] for w in words]
        labels[k] = int(score > 0)
    return ids, labels


def encode(sentence):
    """A sentence of at most :data:`LENGTH` words of :data:`VOCABULARY` as a (1, LENGTH) float64 batch of ids (an
    Embedding layer's input), padded with "."."""
    words = sentence.split() if isinstance(sentence, str) else None
    if words is None:
        raise ReflrpError(f"encode: sentence must be a string, got {type(sentence).__name__}")
    unknown = [w for w in words if w not in _IDS]
    if unknown:
        raise ReflrpError(f"encode: {unknown[0]!r} is not in the vocabulary ({', '.join(VOCABULARY)})")
    if len(words) > LENGTH:
        raise ReflrpError(f"encode: {len(words)} words, at most {LENGTH}")
    words += ["."] * (LENGTH - len(words))
    return np.array([[_IDS[w] for w in words]], dtype=np.float64)


__all__ = ["LENGTH", "NEGATIVE", "NEUTRAL", "POSITIVE", "VOCABULARY", "encode", "make_reviews"]
