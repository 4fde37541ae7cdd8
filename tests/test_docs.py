"""Every ```python block in README.md and docs/*.md runs, in order, one namespace per file."""

import pathlib
import re
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_code_blocks_run(path, capsys):
    blocks = re.findall(r"^[ \t]*```python\n(.*?)^[ \t]*```", path.read_text(), flags=re.S | re.M)
    assert blocks or path.name in {"index.md", "cli.md", "api.md", "determinism.md", "conventions.md"}
    namespace = {"__name__": f"docs_{path.stem}"}
    for block in blocks:
        exec(compile(textwrap.dedent(block), str(path), "exec"), namespace)


def test_the_import_tables_are_generated_from_the_code():
    from reflrp.importers import supported_markdown

    text = (ROOT / "docs" / "import.md").read_text()
    for framework in ("torch", "onnx", "keras"):
        assert supported_markdown(framework) in text, f"regenerate the {framework} table in docs/import.md"
