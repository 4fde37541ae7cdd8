"""Safe under threads: importing reflrp changes no process-wide setting, concurrent callers get the bits of serial
calls, and how kernel tasks are split across threads never changes a bit."""

import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import reflrp
from reflrp import _jit, composites, rules, targets
from reflrp.digits import make_digits
from reflrp.models import DIGITS_UNET_FILE


def run_python(code, **env):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=600)


def test_a_thread_count_numba_refuses_is_named_at_import():
    result = run_python("import reflrp", NUMBA_NUM_THREADS="0")
    assert result.returncode != 0
    assert "ImportError: numba refused to start" in result.stderr and "NUMBA_NUM_THREADS='0'" in result.stderr


def test_import_and_explain_change_no_numba_setting():
    result = run_python(
        """
        import numba, numba.np.ufunc.parallel as parallel
        before = (numba.config.THREADING_LAYER, numba.config.NUMBA_NUM_THREADS)
        import numpy as np, reflrp
        model = reflrp.load(reflrp.models.DIGITS_UNET_FILE)
        reflrp.explain(model, np.random.default_rng(0).uniform(size=(2, 1, 28, 28)), (0, 5, 5), reflrp.rules.Epsilon())
        assert (numba.config.THREADING_LAYER, numba.config.NUMBA_NUM_THREADS) == before, before
        assert not parallel._is_initialized, "reflrp started numba's threading layer"
        print("ok")
        """
    )
    assert result.stdout.strip() == "ok", result.stderr


CONCURRENT = """
    import hashlib
    from concurrent.futures import ThreadPoolExecutor
    import numpy as np, reflrp
    from reflrp import composites, rules
    model = reflrp.load(reflrp.models.DIGITS_UNET_FILE)
    x = np.random.default_rng(0).uniform(size=(4, 1, 28, 28))
    jobs = [(rules.Epsilon(), (0, 5, 5)), (composites.EpsilonGammaBox(0.0, 1.0), (0, 6, 3)),
            (composites.EpsilonPlus(), (0, 2, 9)), (rules.AlphaBeta(), (0, 7, 7))] * 4
    def digest(job):
        return hashlib.sha256(reflrp.explain(model, x, job[1], job[0]).relevance.tobytes()).hexdigest()
    serial = [digest(job) for job in jobs]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(3):
            assert list(pool.map(digest, jobs)) == serial
    print("ok")
"""


@pytest.mark.slow
@pytest.mark.parametrize("layer", ["workqueue", "omp", "default"])
def test_eight_concurrent_callers_get_the_bits_of_serial_calls_under_every_numba_layer(layer):
    # numba's workqueue layer aborts the whole process when two threads enter parallel code: a subprocess
    # keeps such a crash from taking pytest down and reports it as a failure.
    env = {"NUMBA_NUM_THREADS": "2"} | ({} if layer == "default" else {"NUMBA_THREADING_LAYER": layer})
    result = run_python(CONCURRENT, **env)
    assert result.returncode == 0 and result.stdout.strip() == "ok", (result.returncode, result.stderr[-2000:])


def test_concurrent_callers_in_process(rng):
    model = reflrp.load(DIGITS_UNET_FILE)
    x, _ = make_digits(3, seed=1)
    cases = [(rules.Epsilon(), targets.Pixel((0, 4, 4))), (composites.EpsilonGammaBox(0.0, 1.0), 0),
             (rules.ZPlus(), targets.Pixels(0, [(1, 1), (6, 6)]))] * 3
    serial = [reflrp.explain(model, x, t, r).relevance for r, t in cases]
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(lambda case: reflrp.explain(model, x, case[1], case[0]).relevance, cases))
    for got, expected in zip(concurrent, serial):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("threads", [2, 3, 7])
def test_any_split_of_kernel_tasks_gives_the_same_bits(threads, monkeypatch, rng):
    model = reflrp.load(DIGITS_UNET_FILE)
    x = rng.uniform(size=(3, 1, 28, 28))
    cnn = reflrp.Sequential([
        reflrp.Conv2d(rng.normal(size=(5, 3, 3, 3)), rng.normal(size=5), padding=1), reflrp.ReLU(),
        reflrp.AvgPool2d(3, 2, 1), reflrp.Upsample(2, mode="bilinear"), reflrp.MaxPool2d(2),
        reflrp.AdaptiveAvgPool2d(2), reflrp.Flatten(), reflrp.Linear(rng.normal(size=(4, 20))),
    ])
    y = rng.normal(size=(2, 3, 9, 9))
    split_ties = composites.EpsilonPlus(layer_map=[(reflrp.MaxPool2d, rules.WinnerTakesAll("split"))])

    def both():
        return (reflrp.explain(model, x, (0, 3, 3), composites.EpsilonGammaBox(0.0, 1.0)).relevance,
                reflrp.explain(cnn, y, 1, split_ties).relevance)

    monkeypatch.setattr(_jit, "THREADS", 1)
    expected = both()
    monkeypatch.setattr(_jit, "THREADS", threads)
    monkeypatch.setattr(_jit, "MIN_WORK_PER_PART", 1)  # split even the smallest kernels
    for got, want in zip(both(), expected):
        np.testing.assert_array_equal(got, want)


@pytest.mark.slow
def test_a_forked_child_gets_fresh_kernel_threads():
    result = run_python(
        """
        import os, numpy as np, reflrp
        from reflrp import _jit
        _jit.MIN_WORK_PER_PART = 1
        model = reflrp.load(reflrp.models.DIGITS_UNET_FILE)
        x = np.random.default_rng(0).uniform(size=(2, 1, 28, 28))
        parent = reflrp.explain(model, x, (0, 5, 5), reflrp.rules.Epsilon()).relevance  # starts the pool
        pid = os.fork()
        if pid == 0:
            child = reflrp.explain(model, x, (0, 5, 5), reflrp.rules.Epsilon()).relevance
            os._exit(0 if np.array_equal(child, parent) else 3)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
        """,
        NUMBA_NUM_THREADS="2",
    )
    assert result.stdout.strip() == "0", result.stderr
