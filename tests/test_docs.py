"""The documentation tells the truth: every ```python block in README.md and docs/*.md runs (in order, one
namespace per file), a ```text block marked as a block's output is what that block prints, every command line
shown parses with the real parser, and the parts made from the code (the CLI reference, the import tables) are
what the code makes now."""

import contextlib
import importlib.util
import io
import pathlib
import re
import shlex
import textwrap

import pytest

from reflrp import cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^(?P<marker><!-- expected output -->\n)?[ \t]*```(?P<lang>\w*)\n(?P<body>.*?)^[ \t]*```",
                   re.S | re.M)
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$")


def docs_tables():
    spec = importlib.util.spec_from_file_location("docs_tables", ROOT / "scripts" / "docs_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def same_output(expected, got):
    """Printed text equal word by word; numbers equal to the digits shown, and numbers at rounding level (below
    1e-12 in magnitude: closures) only need to stay at rounding level."""
    expected_words, got_words = expected.split(), got.split()
    if len(expected_words) != len(got_words):
        return False
    for want, have in zip(expected_words, got_words):
        a, b = want.strip("(),"), have.strip("(),")
        if NUMBER.match(a) and NUMBER.match(b):
            x, y = float(a), float(b)
            if max(abs(x), abs(y)) < 1e-12 or abs(x - y) <= 1e-5 * max(abs(x), abs(y)):
                continue
            return False
        if want != have:
            return False
    return True


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_code_blocks_run_and_print_what_the_docs_show(path):
    blocks = list(BLOCK.finditer(path.read_text()))
    assert any(b["lang"] == "python" for b in blocks) or path.name in {"index.md", "cli.md", "api.md",
                                                                      "determinism.md", "conventions.md",
                                                                      "decisions.md", "zoo.md"}
    namespace = {"__name__": f"docs_{path.stem}"}
    printed = None
    for block in blocks:
        if block["lang"] == "python":
            stdout = io.StringIO()
            with contextlib.redirect_stdout(stdout):
                exec(compile(textwrap.dedent(block["body"]), str(path), "exec"), namespace)
            printed = stdout.getvalue()
        elif block["marker"]:
            assert printed is not None, f"{path.name}: an expected output with no python block before it"
            assert same_output(textwrap.dedent(block["body"]), printed), \
                f"{path.name}: the block prints\n{printed}\nbut the docs show\n{block['body']}"


def command_lines(text):
    """Every ``reflrp ...`` command in the text and bash blocks (continuation lines joined, comments dropped,
    ``a && b`` split), outside the generated CLI reference (whose synopses are not commands)."""
    text = re.sub(r"<!-- generated: cli -->.*?<!-- end generated -->", "", text, flags=re.S)
    for block in BLOCK.finditer(text):
        if block["lang"] not in ("text", "bash"):
            continue
        for line in block["body"].replace("\\\n", " ").splitlines():
            line = line.split(" #")[0]
            for part in line.split("&&"):
                words = shlex.split(part.strip()) if part.strip() else []
                if words and words[0].split("/")[-1] == "reflrp":
                    yield words[1:]


def test_every_command_line_in_the_docs_parses():
    parser = cli.build_parser()
    parser.exit = lambda status=0, message=None: (_ for _ in ()).throw(AssertionError(message))
    found = 0
    for path in FILES:
        for words in command_lines(path.read_text()):
            if words != ["--version"]:
                parser.parse_args(words)
            found += 1
    assert found >= 10


def test_the_parts_made_from_the_code_are_current():
    tables = docs_tables()
    keys = []
    for path in FILES:
        text = path.read_text()
        keys += tables.keys(text)
        assert tables.generated(text) == text, f"{path.name} is out of date: run python scripts/docs_tables.py"
    assert sorted(keys) == sorted(tables.GENERATORS)


def test_formulas_become_mathml_and_every_rule_has_one():
    """docs' LaTeX (``$$`` lines, ``\\( \\)``) is converted at build time by scripts/mkdocs_formulas.py; code stays
    as it is, and the formulas section of rules.md names every rule."""
    import reflrp.rules

    spec = importlib.util.spec_from_file_location("formulas", ROOT / "scripts" / "mkdocs_formulas.py")
    formulas = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(formulas)
    text = "Here \\(a_i\\) and `\\(kept\\)`:\n\n$$\nR_i = \\frac{a_i}{z} R\n$$\n\n```python\nx = 1  # \\(kept\\)\n```\n"
    out = formulas.to_mathml(text)
    assert '<span class="formula"><math' in out and 'display="block"' in out and "<mfrac>" in out
    assert out.count("\\(kept\\)") == 2 and "$$" not in out
    rules_page = (ROOT / "docs" / "rules.md").read_text()
    section = rules_page.split("## The formulas")[1].split("\n## ")[0]
    assert formulas.to_mathml(section).count('display="block"') >= 10
    names = [name for name in reflrp.rules.__all__ if name != "Rule" and isinstance(getattr(reflrp.rules, name), type)
             and issubclass(getattr(reflrp.rules, name), reflrp.rules.Rule)]
    assert len(names) >= 13
    for name in names:
        assert f"**{name}**" in section, name
