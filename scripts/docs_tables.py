"""The parts of the documentation that are made from the code, so that they cannot drift: the command reference
in docs/cli.md (from the CLI's parser), the tables of supported constructs in docs/import.md (from the importers'
conversion tables), the table of every profile's settings in docs/profiles.md (from the profile values) and the
model zoo in docs/zoo.md (from tests/data/zoo.json, which scripts/peers/zoo.py writes).  Each
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


def _metavar(action):
    if action.metavar is not None:
        return action.metavar if isinstance(action.metavar, str) else " ".join(action.metavar)
    if action.choices:
        return "|".join(action.choices)
    return action.dest.upper()


def _synopsis(action):
    """How an argument is written in a usage line: ``MODEL``, ``--target TARGET``, ``[--ledger]``."""
    if not action.option_strings:
        return _metavar(action)
    flag = action.option_strings[-1]
    text = flag if action.nargs == 0 else f"{flag} {_metavar(action)}"
    return text if action.required else f"[{text}]"


def _cli():
    """The command reference in docs/cli.md, made from the CLI's parser itself."""
    import argparse

    from reflrp.cli import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {choice.dest: choice.help for choice in commands._choices_actions}
    lines = []
    for name, sub in commands.choices.items():
        arguments = [a for a in sub._actions if not isinstance(a, argparse._HelpAction)]
        lines += [f"### `reflrp {name}`", "", f"{helps[name][0].upper()}{helps[name][1:]}.", "", "```text",
                  " ".join(["reflrp", name, *(_synopsis(a) for a in arguments)]), "```", "",
                  "| argument | meaning |", "|---|---|"]
        for action in arguments:
            shown = ", ".join(f"`{o}`" for o in action.option_strings) or f"`{_metavar(action)}`"
            lines.append(f"| {shown} | {action.help.replace('|', '&#124;')} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


ZOO = ROOT / "tests" / "data" / "zoo.json"


def _number(value):
    return "0" if value == 0 else f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e")


def _refused(row, key):
    """A failed column in a few words: what was refused, or who failed."""
    if f"{key}_refused" in row:
        kinds = sorted({entry.split(":")[0] for entry in row[f"{key}_refused"]})
        return "refused: " + ", ".join(kinds[:4]) + (", ..." if len(kinds) > 4 else "")
    error = row.get(f"{key}_error", "")
    if "registration order" in error:
        return "Zennit merges other pairs"
    if error.startswith("Zennit: "):
        return "Zennit fails"
    if "has no default rule for" in error:
        return "no rule for " + error.split("has no default rule for ")[1].split(";")[0]
    if "back-propagates a " in error:  # a function Zennit passes by its gradient, which reflrp does not compute
        return "gradient of " + error.split("back-propagates a ")[1].split(" ")[0]
    if "export" in key:
        return "export fails"
    return "fails"


def _zoo():
    """The model zoo table of docs/zoo.md, from tests/data/zoo.json (scripts/peers/zoo.py)."""
    import json

    data = json.loads(ZOO.read_text())
    lines = ["| model | nodes (functions) | forward vs PyTorch | ledger closure | explain | ONNX forward | "
             "Zennit, BatchNorm Pass | Zennit, BatchNorm merged | Zennit, ResNet canonizer |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in data["models"]:
        if "torch_error" in row and "onnx_closure" in row:  # imported from its ONNX export only
            why = row["torch_error"].split(": ")[2] if row["torch_error"].count(": ") >= 2 else row["torch_error"]
            lines.append(f"| {row['model']} | from ONNX: {row['onnx_nodes']} (from_torch: {why}) | — | "
                         f"{_number(row['onnx_closure'])} | {row['onnx_explain_s']:.2f} s | "
                         f"{_number(row['onnx_forward'])} | — | — | — |")
            continue
        if "torch_error" in row:
            lines.append(f"| {row['model']} | fails: {row['torch_error']} | | | | | | | |")
            continue
        onnx = _number(row["onnx_forward"]) if "onnx_forward" in row else \
            _refused(row, "onnx_export") if "onnx_export_error" in row else _refused(row, "onnx")
        zennit = [_number(row[key]) + (f" (Zennit's own: {_number(row[key + '_self'])})"
                                       if key + "_self" in row else "") if key in row
                  else _refused(row, key) if f"{key}_error" in row else "—"
                  for key in ("zennit", "zennit_merged", "zennit_resnet")]
        lines.append(f"| {row['model']} | {row['nodes']} ({row['functions']}) | {_number(row['forward'])} | "
                     f"{_number(row['closure'])} | {row['explain_s']:.2f} s | {onnx} | {' | '.join(zennit)} |")
    versions = ", ".join(f"{k} {v}" for k, v in data["versions"].items())
    return "\n".join(lines) + f"\n\nMade with {versions}.\n"


def _reviews_tokens():
    """The highlighted review of docs/transformers.md, from the shipped text model."""
    import numpy as np

    import reflrp
    from reflrp import composites, reviews, text
    from reflrp.models import reviews_encoder

    ids = reviews.encode("the acting was not good but the story was superb")
    e = reflrp.explain(reviews_encoder().astype(np.float64), ids, 1, composites.AttnLRP())
    words = [reviews.VOCABULARY[int(i)] for i in ids[0]]
    return text.html(words, e.relevance[0], title="positive review: AttnLRP relevance per token")


GENERATORS = {"cli": _cli, "reviews-tokens": _reviews_tokens, "zoo": _zoo, "profiles": _profiles,
              "import-torch": _import_table("torch"),
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
