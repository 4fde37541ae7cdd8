"""The parts of the documentation that are made from the code, so that they cannot drift: the command reference
in docs/cli.md (from the CLI's parser), the tables of supported constructs in docs/import.md (from the importers'
conversion tables) and the table of every profile's settings in docs/profiles.md (from the profile values).  Each
sits between ``<!-- generated: KEY -->`` and ``<!-- end generated -->``, with a blank line on either side of it (so
that markdown reads it as markdown, not as part of the comment).

    python scripts/docs_tables.py      # rewrite them from the code

tests/test_docs.py checks that every generated part is what this script would write.
"""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!-- generated: (?P<key>[\w-]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


def _import_table(framework):
    def make():
        from reflrp.importers import supported_markdown

        return supported_markdown(framework) + "\n"
    return make


def _profiles():
    from reflrp.compat import profiles_markdown

    return profiles_markdown()


def _cli():
    from reflrp.cli import reference_markdown

    return reference_markdown()


GENERATORS = {"cli": _cli, "profiles": _profiles, "import-torch": _import_table("torch"),
              "import-onnx": _import_table("onnx"),
              "import-keras": _import_table("keras")}


def generated(text):
    """``text`` with every generated part made anew; raises KeyError for an unknown key."""
    return BLOCK.sub(lambda m: m.group(1) + "\n" + GENERATORS[m.group("key")]() + "\n" + m.group(4), text)


def keys(text):
    return [m.group("key") for m in BLOCK.finditer(text)]


def main():
    for path in sorted((ROOT / "docs").glob("*.md")):
        text = path.read_text()
        new = generated(text)
        if new != text:
            path.write_text(new)
            print(f"rewrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
