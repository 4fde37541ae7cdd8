"""mkdocs hook: mathematics written as LaTeX in the Markdown becomes MathML when the site is built.

``$$ ... $$`` on lines of their own is a displayed formula, ``\\( ... \\)`` an inline one; fenced code blocks and
inline code are left alone.  The conversion (latex2mathml, pure Python, the ``docs`` extra) runs at build time, so
the pages need no script and no network to show the formulas: browsers render MathML themselves.
"""

from __future__ import annotations

import re

from latex2mathml.converter import convert

_FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.S | re.M)
_CODE = re.compile(r"`[^`\n]+`")
_DISPLAY = re.compile(r"^\s*\$\$\s*$\n(.*?)\n^\s*\$\$\s*$", re.S | re.M)
_INLINE = re.compile(r"\\\((.+?)\\\)")


def to_mathml(markdown):
    """``markdown`` with every displayed and inline formula converted to MathML (code untouched)."""
    kept = []

    def keep(match):
        kept.append(match.group(0))
        return f"\0{len(kept) - 1}\0"

    text = _FENCE.sub(keep, markdown)
    text = _DISPLAY.sub(lambda m: "\n" + convert(m.group(1).strip(), display="block") + "\n", text)
    text = _CODE.sub(keep, text)
    # in a span: a line that starts with a formula stays inside its paragraph
    text = _INLINE.sub(lambda m: f'<span class="formula">{convert(m.group(1).strip())}</span>', text)
    return re.sub(r"\0(\d+)\0", lambda m: kept[int(m.group(1))], text)


def on_page_markdown(markdown, **_):
    return to_mathml(markdown)
