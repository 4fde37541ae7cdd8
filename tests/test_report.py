"""The HTML report: self-contained, from the API and the command line, and rendered in a real browser (headless
Chromium from the system's packages) without console errors, with every picture drawn."""

import re
import shutil
import subprocess

import numpy as np
import pytest

from extras import need

need("matplotlib")
need("PIL")

from PIL import Image

import reflrp
from reflrp import cli, composites, rules
from reflrp.digits import make_digits
from reflrp.errors import ReflrpError
from reflrp.models import DIGITS_UNET_FILE as MODEL_FILE
from reflrp.report import html_report, save_html

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def case():
    x, _ = make_digits(2, seed=5)
    model = reflrp.load(MODEL_FILE)
    target = reflrp.targets.Pixels(0, [(6, 6), (4, 9)])
    e = reflrp.explain(model, x, target, rules.Epsilon())
    other = reflrp.explain(model, x, target, composites.Composite(
        layer_map=[(reflrp.ConvTranspose2d, rules.ZPlus())], affine=rules.Epsilon()), keep=True)
    comparison = reflrp.compare(model, x, target, rules.Epsilon(), dict(other.relevances, input=other.relevance),
                                try_profiles=False)
    return e, comparison


def test_the_report_holds_everything_inside_one_file(case):
    e, comparison = case
    text = html_report(e, comparison=comparison, title="two pixels <of> two digits")
    assert text.startswith("<!doctype html>") and "two pixels &lt;of&gt; two digits" in text
    assert text.count("<img ") == 1 and text.count("<svg") == 2
    for heading in ("Relevance", "Where the relevance went", "Ledger of explanation 0",
                    "Against the other implementation"):
        assert f"<h2>{heading}</h2>" in text
    # nothing is fetched from elsewhere: no src or href outside the file (SVG's namespaces are names, not fetches)
    assert not re.findall(r'(?:src|href)="(?!data:|#)', text)
    assert "departs at &#x27;up&#x27;" in text  # the comparison's report, escaped
    for node in e.ledger.nodes:
        assert f"<td>{node}</td>" in text
    plain = html_report(e)
    assert "Against the other implementation" not in plain and plain.count("<svg") == 1


def test_a_report_file_appears_only_when_complete_and_bad_paths_are_refused(case, tmp_path):
    e, _ = case
    save_html(tmp_path / "report.html", e)
    assert (tmp_path / "report.html").read_text().rstrip().endswith("</html>")
    with pytest.raises(ReflrpError, match="must end in .html"):
        save_html(tmp_path / "report.pdf", e)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def _browser():
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium here: install it from the system's packages (apt-get install chromium); .ci/run does")


def _render(browser, page, *options):
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                           "--v=0", *options, page.as_uri()], capture_output=True, text=True, timeout=120)


def test_the_report_renders_in_a_browser_with_every_picture_and_no_console_message(case, tmp_path):
    browser = _browser()
    e, comparison = case
    page = tmp_path / "report.html"
    save_html(page, e, comparison=comparison)
    dom = _render(browser, page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout).group(0)
    # the page's own check, run after loading: every <img> decoded, every <svg> in the document
    assert 'data-images="1"' in body and 'data-svgs="2"' in body, body
    assert "CONSOLE" not in dom.stderr, [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    shot = tmp_path / "shot.png"
    screenshot = _render(browser, page, f"--screenshot={shot}", "--window-size=1200,2000")
    assert screenshot.returncode == 0 and shot.exists(), screenshot.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    # not an empty page: the heatmaps' reds and blues and the waterfall's bars are on it
    assert (pixels.std(axis=2) > 40).mean() > 0.002


def test_a_broken_page_fails_the_browser_check(tmp_path):
    """The check can fail: a page with a missing picture and a script error is caught."""
    browser = _browser()
    page = tmp_path / "broken.html"
    page.write_text('<!doctype html><html><body><img src="missing.png"><script>undefined_name();</script>'
                    '<script>window.addEventListener("load", () => { document.body.dataset.images = '
                    '[...document.images].filter((i) => i.complete && i.naturalWidth > 0).length; });</script>'
                    "</body></html>")
    dom = _render(browser, page, "--dump-dom")
    assert 'data-images="0"' in dom.stdout
    assert "CONSOLE" in dom.stderr and "undefined_name" in dom.stderr


def test_the_report_command(tmp_path, capsys):
    x, _ = make_digits(2, seed=5)
    np.save(tmp_path / "x.npy", x)
    other = reflrp.explain(reflrp.load(MODEL_FILE), x, (0, 6, 6), rules.ZPlus())
    np.save(tmp_path / "other.npy", other.relevance)
    page = tmp_path / "report.html"
    code = cli.main(["report", str(MODEL_FILE), str(tmp_path / "x.npy"), "--target", "0,6,6", "--rule", "epsilon",
                     "--other", str(tmp_path / "other.npy"), "--html", str(page)])
    assert code == 0 and f"wrote {page}" in capsys.readouterr().out
    text = page.read_text()
    assert "Against the other implementation" in text and "unet_digits.reflrp: target 0,6,6, epsilon" in text
    assert cli.main(["report", str(MODEL_FILE), str(tmp_path / "x.npy"), "--target", "0,6,6", "--html",
                     str(tmp_path / "report.txt")]) == 1
    assert "must end in .html" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.npy", "report.html", "x.npy"]
