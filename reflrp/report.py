"""One self-contained HTML report of an explanation: heatmaps, the ledger as a table and as a waterfall, and,
given another implementation's maps, the comparison with its pictures.

Everything is inside the one file (pictures as inline SVG or base64 PNG, no scripts or styles from elsewhere), so
it opens without network access.  A short script in the page counts, once the page has loaded, the pictures that
rendered (``data-images`` and ``data-svgs`` on ``<body>``); the test-suite opens reports in headless Chromium and
reads them.  Pictures need matplotlib (the ``viz`` extra).
"""

from __future__ import annotations

import base64
import html
import os
import pathlib
import tempfile

from reflrp.compat.views import plane, save_comparison
from reflrp.errors import ReflrpError
from reflrp.files import written
from reflrp.ledger import COLUMNS
from reflrp.viz import require_matplotlib, save_heatmaps
from reflrp.waterfall import save_waterfall

#: At most this many explanations get heatmaps and waterfalls (all of them are in the summary).
EXPLANATIONS = 8

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.8em; } td, th { padding: 2px 8px; text-align: right; }
td:nth-child(-n+3), th:nth-child(-n+3) { text-align: left; } tr:nth-child(even) { background: #f4f4f4; }
pre { background: #f4f4f4; padding: 0.8em; white-space: pre-wrap; font-size: 0.8em; }
img, svg { max-width: 100%; height: auto; }
"""

_CHECK = """
window.addEventListener("load", () => {
  const images = [...document.images].filter((image) => image.complete && image.naturalWidth > 0);
  document.body.dataset.images = images.length;
  document.body.dataset.svgs = document.querySelectorAll("svg").length;
});
"""


def html_report(explanation, *, comparison=None, title=None, top=25):
    """The report of ``explanation`` (a :class:`reflrp.Explanation`) as one HTML document (a str).

    Parameters
    ----------
    explanation : Explanation
    comparison : Comparison, optional
        From :func:`reflrp.compare` on the same model, input, target and rules: its text and pictures are added.
    title : str, optional
    top : int
        Nodes drawn by name in each waterfall (:func:`reflrp.waterfall.steps`).
    """
    require_matplotlib()
    e, ledger = explanation, explanation.ledger
    shown = range(min(len(e.sample), EXPLANATIONS))
    title = title or f"reflrp: {len(ledger.nodes)} nodes, profile {ledger.profile}"
    parts = [f"<h1>{_text(title)}</h1>", _summary(e)]
    with tempfile.TemporaryDirectory() as folder:
        folder = pathlib.Path(folder)
        maps = {f"explanation {m} (sample {e.sample[m]})": plane(e.relevance[m]) for m in shown}
        save_heatmaps(folder / "maps.png", maps, columns=4, title="relevance (red +, blue -)")
        parts += ["<h2>Relevance</h2>", _png(folder / "maps.png", "relevance heatmaps")]
        save_waterfall(folder / "ledger.svg", ledger, shown, top=top)
        parts += ["<h2>Where the relevance went</h2>",
                  "<p>From the target value (left) to the input relevance (right): each bar is what one node's bias, "
                  "stabilizer, dropped units or gradient step absorbed (down) or injected (up).</p>",
                  _svg(folder / "ledger.svg")]
        parts += ["<h2>Ledger of explanation 0</h2>", _ledger_table(ledger)]
        if comparison is not None:
            save_comparison(folder / "compare.svg", comparison)
            parts += ["<h2>Against the other implementation</h2>", f"<pre>{_text(str(comparison))}</pre>",
                      _svg(folder / "compare.svg")]
    body = "\n".join(parts)
    return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{_text(title)}</title>\n'
            f"<style>{_STYLE}</style>\n</head>\n<body>\n{body}\n<script>{_CHECK}</script>\n</body>\n</html>\n")


def save_html(path, explanation, *, comparison=None, title=None, top=25):
    """Write :func:`html_report` to ``path`` (``.html`` or ``.htm``); the file appears only when complete."""
    path = os.fspath(path)
    if not path.lower().endswith((".html", ".htm")):
        raise ReflrpError(f"save_html: {path!r} must end in .html")
    text = html_report(explanation, comparison=comparison, title=title, top=top)
    with written(path) as partial, open(partial, "w", encoding="utf-8") as handle:
        handle.write(text)


def _text(value):
    return html.escape(str(value))


def _summary(e):
    ledger = e.ledger
    rows = ["<tr><th>explanation</th><th>sample</th><th>target value</th><th>input relevance</th>"
            "<th>absorbed</th><th>closure</th></tr>"]
    for m in range(len(e.sample)):
        rows.append(f"<tr><td>{m}</td><td>{e.sample[m]}</td><td>{ledger.target_value[m]:+.6g}</td>"
                    f"<td>{ledger.input_relevance[m]:+.6g}</td><td>{ledger.total('absorbed')[m]:+.6g}</td>"
                    f"<td>{ledger.closure()[m]:+.1e}</td></tr>")
    rules = sorted(set(ledger.rules))
    return (f"<p>Rules: {_text(', '.join(rules))}. Input of shape {_text(tuple(e.relevance.shape[1:]))}.</p>\n"
            f"<table>{''.join(rows)}</table>")


def _ledger_table(ledger):
    head = ("node", "layer", "rule", "in", "out", *COLUMNS)
    rows = ["<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for k in reversed(range(len(ledger.nodes))):
        values = [ledger.relevance_in[k, 0], ledger.relevance_out[k, 0], *(getattr(ledger, c)[k, 0] for c in COLUMNS)]
        cells = [_text(ledger.nodes[k]), _text(ledger.layers[k]), _text(ledger.rules[k])]
        cells += ["0" if v == 0 else f"{v:+.6g}" for v in values]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table>{''.join(rows)}</table>"


def _png(path, alt):
    data = base64.b64encode(pathlib.Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{_text(alt)}" src="data:image/png;base64,{data}">'


def _svg(path):
    text = pathlib.Path(path).read_text(encoding="utf-8")
    return text[text.index("<svg"):]  # without the XML declaration and doctype


__all__ = ["EXPLANATIONS", "html_report", "save_html"]
