"""The benchmarks run (smoke runs with one repeat): nothing is timed here, but benchmarks must not rot (torch comes
with the test extra).  The speed suite's table holds one row per model and rule with every column filled."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_speed_suite_quick_run_writes_its_table(tmp_path):
    out = tmp_path / "suite.md"
    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "suite.py"), "--quick", "--out", str(out)],
                   check=True, capture_output=True, text=True, timeout=600)
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and "---" not in line]
    header, body = rows[0], rows[1:]
    assert "reflrp ms" in header and "Zennit ms" in header and "peak MB" in header
    cases = {tuple(cell.strip() for cell in row.split("|")[1:5]) for row in body}
    for model in ("seed_unet", "mlp"):
        for dtype in ("float32", "float64"):
            for rules in ("Epsilon", "EpsilonPlus", "EpsilonGammaBox"):
                assert (model, dtype, "1", rules) in cases
    assert all(cell.strip() for row in body for cell in row.split("|")[1:-1])


@pytest.mark.slow
@pytest.mark.parametrize("script, arguments", [("run.py", ["--repeat", "1"]),
                                               ("threads.py", ["--repeat", "1", "--no-concurrent"]),
                                               ("blas_share.py", ["--models", "seed_unet", "--repeat", "1"]),
                                               ("floor.py", ["--models", "seed_unet", "--repeat", "1", "--out",
                                                             os.devnull]),
                                               ("container.py", ["--model", "small", "--repeat", "1"])])
def test_kernel_benchmarks_run(script, arguments):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "bench", script), *arguments], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "failed" not in done.stdout, done.stdout[-2000:]
