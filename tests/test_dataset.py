"""explain_dataset: bit-identical relevance and ledger totals in memory, to .npy and Zarr, from iterables, with dask's
threaded and process schedulers and on a 2-worker dask.distributed cluster that loses a worker mid-run; resumable
Zarr runs; per-sample targets; bounded memory; the CLI."""

import gc
import os
import subprocess
import sys
import textwrap
import tracemalloc
from dataclasses import replace

from extras import need

need("dask", "zarr", "distributed")

import dask
import dask.array as da
import numpy as np
import pytest
import zarr

import reflrp
from reflrp import cli, composites, dataset, runs, targets
from reflrp.digits import make_digits
from reflrp.errors import ReflrpError
from reflrp.explain import explained_node
from reflrp.models import DIGITS_UNET_FILE

RULES = composites.EpsilonGammaBox(0.0, 1.0)
TARGET = targets.Index((0, 6, 6))


@pytest.fixture(scope="module")
def unet():
    return reflrp.load(DIGITS_UNET_FILE)


@pytest.fixture(scope="module")
def digits():
    return make_digits(512, seed=11)[0]


@pytest.fixture(scope="module")
def reference(unet, digits):
    """One explain call per sample: what every path must reproduce bit for bit."""
    method = runs.Method.of(RULES, None, "reflrp")
    relevance, totals = zip(*(dataset.explain_batch(unet, digits[k:k + 1], TARGET, method) for k in range(512)))
    return np.concatenate(relevance), np.concatenate(totals)


def same(result, reference):
    relevance, totals = (np.asarray(v[:]) if hasattr(v, "shape") and not isinstance(v, np.ndarray) else v
                         for v in (result.relevance, result.totals))
    np.testing.assert_array_equal(np.asarray(relevance), reference[0])
    np.testing.assert_array_equal(np.asarray(totals), reference[1])


def test_memory_npy_zarr_and_iterables_give_the_same_bits(unet, digits, reference, tmp_path, capsys):
    same(reflrp.explain_dataset(unet, digits, TARGET, RULES, batch_size=37, progress=False), reference)
    npy = reflrp.explain_dataset(unet, digits, TARGET, RULES, batch_size=64, out=tmp_path / "r.npy")
    same(npy, reference)
    np.testing.assert_array_equal(np.load(tmp_path / "r.totals.npy"), reference[1])
    assert "explaining: 100%" in capsys.readouterr().err  # the progress bar
    same(reflrp.explain_dataset(unet, digits, TARGET, RULES, batch_size=32, out=tmp_path / "r.zarr",
                                progress=False), reference)
    stored = zarr.open_group(tmp_path / "r.zarr", mode="r")
    assert stored["done"][:].all() and list(stored.attrs["totals"]) == list(dataset.TOTALS)
    batches = (digits[k:k + 50] for k in range(0, 512, 50))
    same(reflrp.explain_dataset(unet, batches, TARGET, RULES, progress=False), reference)
    closure = reflrp.explain_dataset(unet, digits[:64], TARGET, RULES, progress=False).total("closure")
    assert np.abs(closure).max() <= 1e-12 * np.abs(reference[1][:64, 0]).max()


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_dask_arrays_give_the_same_bits_whatever_the_chunking(unet, digits, reference, scheduler):
    lazy = reflrp.explain_dataset(unet, da.from_array(digits, chunks=45), TARGET, RULES)
    assert isinstance(lazy.relevance, da.Array)
    with dask.config.set(scheduler=scheduler):
        relevance, totals = dask.compute(lazy.relevance, lazy.totals)
    np.testing.assert_array_equal(relevance, reference[0])
    np.testing.assert_array_equal(totals, reference[1])


def test_a_dask_array_is_written_to_zarr_and_resumed(unet, digits, reference, tmp_path):
    out = tmp_path / "d.zarr"
    with dask.config.set(scheduler="threads"):
        same(reflrp.explain_dataset(unet, da.from_array(digits, chunks=64), TARGET, RULES, out=out, progress=False),
             reference)
        group = zarr.open_group(out, mode="a")
        group["done"][3] = False  # as if the run had been interrupted before chunk 3 was stored
        group["relevance"][192:256] = 0
        same(reflrp.explain_dataset(unet, da.from_array(digits, chunks=64), TARGET, RULES, out=out,
                                    progress=False), reference)


def test_an_interrupted_zarr_run_resumes_with_only_what_is_missing(unet, digits, reference, tmp_path, monkeypatch):
    out = tmp_path / "r.zarr"
    calls = []
    original = dataset.explain_batch

    def interrupted(*args, **kwargs):
        if len(calls) == 5:
            raise KeyboardInterrupt  # the user pressed Ctrl-C in the middle of the run
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(dataset, "explain_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        reflrp.explain_dataset(unet, digits, TARGET, RULES, batch_size=32, out=out, progress=False)
    monkeypatch.setattr(dataset, "explain_batch", lambda *a, **k: (calls.append(1), original(*a, **k))[1])
    calls.clear()
    same(reflrp.explain_dataset(unet, digits, TARGET, RULES, batch_size=32, out=out, progress=False), reference)
    assert len(calls) == 512 // 32 - 5  # the 5 stored batches were not computed again
    with pytest.raises(ReflrpError, match="holds a run with another model, dataset, target, rules or batch size"):
        reflrp.explain_dataset(unet, digits, TARGET, RULES, batch_size=16, out=out, progress=False)
    changed = digits.copy()
    changed[40] = 0
    with pytest.raises(ReflrpError, match="batch 1's inputs differ from those of the stored run"):
        reflrp.explain_dataset(unet, changed, TARGET, RULES, batch_size=32, out=out, progress=False)


def test_maps_are_not_held_in_memory_when_writing_to_zarr(unet, tmp_path, monkeypatch):
    reflrp.explain_dataset(unet, make_digits(64, seed=3)[0], TARGET, RULES, out=tmp_path / "warm.zarr", progress=False)
    images = np.repeat(make_digits(8, seed=3)[0], 512, axis=0)  # 4096 inputs: 25.7 MB of relevance in all
    held, write = [], runs._Zarr.write

    def measured(self, *args):
        write(self, *args)
        # what reflrp still holds between batches (other tests' threads may be allocating meanwhile)
        ours = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, f"{reflrp.__path__[0]}/*")])
        held.append(sum(trace.size for trace in ours.traces))

    monkeypatch.setattr(runs._Zarr, "write", measured)
    tracemalloc.start()
    reflrp.explain_dataset(unet, images, TARGET, RULES, batch_size=32, out=tmp_path / "big.zarr", progress=False)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(held) == 128 and max(held) < 4 << 20 and after < 1 << 20, (max(held), after)


def test_per_sample_targets(unet, digits):
    classifier = reflrp.Sequential([reflrp.Flatten(), reflrp.Linear(np.random.default_rng(0).normal(size=(3, 784)))])
    x = digits[:40]
    ks = np.arange(40) % 3
    got = reflrp.explain_dataset(classifier, x, ks, reflrp.rules.Epsilon(), batch_size=7, progress=False)
    np.testing.assert_array_equal(got.relevance, reflrp.explain(classifier, x, ks, reflrp.rules.Epsilon()).relevance)
    predicted = reflrp.explain_dataset(classifier, x, "predicted", reflrp.rules.Epsilon(), batch_size=9,
                                       progress=False)
    expected = reflrp.explain(classifier, x, np.argmax(classifier(x), axis=1), reflrp.rules.Epsilon())
    np.testing.assert_array_equal(predicted.relevance, expected.relevance)
    masks = np.zeros((40, 12, 12), bool)
    masks[np.arange(40), np.arange(40) % 12, 3] = True
    regions = reflrp.explain_dataset(unet, x, targets.Region(0, masks), RULES, batch_size=16, progress=False)
    np.testing.assert_array_equal(regions.relevance, reflrp.explain(unet, x, targets.Region(0, masks), RULES).relevance)


def test_bad_arguments_are_refused_before_anything_runs(unet, digits, tmp_path, monkeypatch):
    cases = [
        (lambda: reflrp.explain_dataset(unet, digits, TARGET, RULES, out=tmp_path / "r.txt"), "must end in .npy or"),
        (lambda: reflrp.explain_dataset(unet, iter([digits[:4]]), TARGET, RULES, out=tmp_path / "r.zarr"),
         "an iterable of batches cannot be written to Zarr"),
        (lambda: reflrp.explain_dataset(unet, 5, TARGET, RULES), "inputs must be an array"),
        (lambda: reflrp.explain_dataset(unet, digits, targets.Pixels(0, [(1, 1)]), RULES), "one map per sample"),
        (lambda: reflrp.explain_dataset(unet, digits, "best", RULES), "the only named target is 'predicted'"),
        (lambda: reflrp.explain_dataset(unet, digits, TARGET, RULES, batch_size=0), "batch_size must be >= 1"),
        (lambda: reflrp.explain_dataset(unet, digits, TARGET, RULES, out=tmp_path / "no" / "r.zarr"),
         "does not exist"),
    ]
    for call, message in cases:
        with pytest.raises(ReflrpError, match=message):
            call()


class Lying:
    """An array-like whose shape promises more samples than it holds."""

    shape, dtype = (12, 1, 28, 28), np.dtype(np.float64)

    def __init__(self, data):
        self.data = data

    def __getitem__(self, index):
        return self.data[index]


def test_inputs_that_cannot_be_explained_are_refused_before_anything_runs(unet, digits, tmp_path):
    x = digits[:10]
    empty = np.zeros((0, *x.shape[1:]))
    cases = [
        (lambda: reflrp.explain_dataset(unet, empty, TARGET, RULES, progress=False), "inputs hold no samples"),
        (lambda: reflrp.explain_dataset(unet, da.from_array(empty), TARGET, RULES, progress=False),
         "inputs hold no samples"),
        (lambda: reflrp.explain_dataset(unet, x.ravel(), TARGET, RULES, progress=False),
         r"must be a batch \(N, ...\) with integer sizes, got shape \(7840,\)"),
        (lambda: reflrp.explain_dataset(unet, x.astype(object), TARGET, RULES, out=tmp_path / "o.npy",
                                        progress=False), "must be float32 or float64"),
        # per-sample targets of the wrong length, or out of range anywhere, before the first batch
        (lambda: reflrp.explain_dataset(unet, x, targets.Region(0, np.ones((12, 28, 28), bool)), RULES,
                                        progress=False), "target region has shape \\(12, 28, 28\\)"),
        (lambda: reflrp.explain_dataset(unet, x, targets.Mask(np.ones((9, 2, 28, 28), bool)), RULES,
                                        progress=False), "target mask has shape"),
        (lambda: reflrp.explain_dataset(unet, da.from_array(x, chunks=5), targets.Predicted(), RULES,
                                        progress=False), "for segmentation use ArgmaxRegion"),
        (lambda: reflrp.explain_dataset(unet, Lying(x), TARGET, RULES, progress=False, batch_size=8),
         r"inputs\[8:12\] is float64 \(2, 1, 28, 28\).*does not hold what its shape and dtype describe"),
        (lambda: reflrp.explain_dataset(unet, [x[:3], x[:3, :, :16]], TARGET, RULES, progress=False),
         "batch 1 of the inputs has samples of shape \\(1, 16, 28\\)"),
        (lambda: reflrp.explain_dataset(unet, [[[1.0], [1.0, 2.0]]], TARGET, RULES, progress=False),
         "batch 0 of the inputs is not a rectangular array"),
        (lambda: reflrp.explain_dataset(unet, np.broadcast_to(x[:1], (10**9, *x.shape[1:])), TARGET, RULES,
                                        progress=False), "write them to a file instead"),
        (lambda: reflrp.explain_dataset(unet, x, TARGET, RULES, out=tmp_path, progress=False),
         "must end in .npy or .zarr"),
    ]
    (tmp_path / "dir.npy").mkdir()
    cases.append((lambda: reflrp.explain_dataset(unet, x, TARGET, RULES, out=tmp_path / "dir.npy", progress=False),
                  "is a folder"))
    for call, message in cases:
        with pytest.raises(ReflrpError, match=message):
            call()


def test_the_inputs_file_is_never_overwritten(unet, digits, tmp_path):
    np.save(tmp_path / "in.npy", digits[:4])
    x = np.load(tmp_path / "in.npy", mmap_mode="r")
    with pytest.raises(ReflrpError, match="is the file the inputs are read from"):
        reflrp.explain_dataset(unet, x, TARGET, RULES, out=tmp_path / "in.npy", progress=False)
    np.save(tmp_path / "run.totals.npy", digits[:4])
    x = np.load(tmp_path / "run.totals.npy", mmap_mode="r")
    with pytest.raises(ReflrpError, match="run.totals.npy' is the file the inputs are read from"):
        reflrp.explain_dataset(unet, x, TARGET, RULES, out=tmp_path / "run.npy", progress=False)
    np.testing.assert_array_equal(np.load(tmp_path / "in.npy"), digits[:4])


def test_a_changed_zarr_store_is_refused(unet, digits, tmp_path):
    x = digits[:8]
    path = tmp_path / "run.zarr"
    reflrp.explain_dataset(unet, x, TARGET, RULES, out=path, batch_size=4, progress=False)
    group = zarr.open_group(path, mode="a")
    del group["done"]
    with pytest.raises(ReflrpError, match="the stored run's 'done' is missing"):
        reflrp.explain_dataset(unet, x, TARGET, RULES, out=path, batch_size=4, progress=False)
    group.create_array("done", shape=(3,), dtype="bool")
    with pytest.raises(ReflrpError, match="the stored run's 'done' is missing or not bool \\(2,\\)"):
        reflrp.explain_dataset(unet, x, TARGET, RULES, out=path, batch_size=4, progress=False)
    (tmp_path / "notes.zarr").mkdir()
    (tmp_path / "notes.zarr" / "readme.txt").write_text("mine")
    with pytest.raises(ReflrpError, match="is a folder that is not a Zarr store"):
        reflrp.explain_dataset(unet, x, TARGET, RULES, out=tmp_path / "notes.zarr", progress=False)


def test_dask_results_of_different_runs_have_different_names(unet, digits):
    x = da.from_array(digits[:8], chunks=4)
    last = unet[explained_node(unet)]  # the same model but for the logits' bias
    other = reflrp.Graph([n if n is not last else reflrp.Node(n.name, replace(n.layer, bias=n.layer.bias + 1),
                                                              n.inputs) for n in unet.nodes], output=unet.output)
    a = reflrp.explain_dataset(unet, x, TARGET, RULES, progress=False)
    b = reflrp.explain_dataset(other, x, TARGET, RULES, progress=False)
    assert a.relevance.name != b.relevance.name
    ra, rb = dask.compute(a.relevance, b.relevance, scheduler="sync")
    assert not np.array_equal(ra, rb)


def test_the_cli_explains_a_dataset(digits, reference, tmp_path, capsys):
    np.save(tmp_path / "x.npy", digits)
    args = ["explain-dataset", str(DIGITS_UNET_FILE), str(tmp_path / "x.npy"), "--target", "0,6,6", "--composite",
            "epsilongammabox:low=0,high=1", "--out", str(tmp_path / "r.zarr"), "--batch-size", "50"]
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    assert "explaining: 100%" in captured.err and "512 samples" in captured.out
    np.testing.assert_array_equal(zarr.open_group(tmp_path / "r.zarr", mode="r")["relevance"][:], reference[0])
    zarr.save_array(tmp_path / "x.zarr", digits)
    args[2], args[8] = str(tmp_path / "x.zarr"), str(tmp_path / "r2.zarr")
    assert cli.main(args + ["--no-progress"]) == 0
    np.testing.assert_array_equal(zarr.open_group(tmp_path / "r2.zarr", mode="r")["relevance"][:], reference[0])


CLUSTER = textwrap.dedent(
    """
    import hashlib, os, sys
    import numpy as np, dask.array as da
    from distributed import Client, LocalCluster
    from distributed.diagnostics.plugin import WorkerPlugin
    import reflrp
    from reflrp import composites, dataset, targets
    from reflrp.digits import make_digits

    class KillOnce(WorkerPlugin):
        # A worker dies on the spot as it starts its third chunk (once): a worker lost in the middle of the run.
        def __init__(self, marker):
            self.marker = marker
            self.started = 0

        def transition(self, key, start, finish, **kwargs):
            if finish == "executing" and "reflrp-store-" in str(key):
                self.started += 1
                if self.started == 3 and not os.path.exists(self.marker):
                    open(self.marker, "w").close()
                    os._exit(1)

    if __name__ == "__main__":
        marker = sys.argv[1]
        model = reflrp.load(reflrp.models.DIGITS_UNET_FILE)
        x = make_digits(512, seed=11)[0]
        rules, target = composites.EpsilonGammaBox(0.0, 1.0), targets.Index((0, 6, 6))
        expected = reflrp.explain_dataset(model, x, target, rules, batch_size=32, progress=False)
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \\
                Client(cluster) as client:
            client.register_plugin(KillOnce(marker))
            out = os.path.join(os.path.dirname(marker), "cluster.zarr")
            got = reflrp.explain_dataset(model, da.from_array(x, chunks=32), target, rules, out=out, progress=False)
            relevance, totals = np.asarray(got.relevance[:]), np.asarray(got.totals[:])
        assert os.path.exists(marker), "no worker was killed"
        assert np.array_equal(relevance, expected.relevance) and np.array_equal(totals, expected.totals)
        print("ok")
    """
)


@pytest.mark.slow
def test_a_two_worker_cluster_that_loses_a_worker_mid_run_gives_the_same_bits(tmp_path):
    script = tmp_path / "cluster.py"
    script.write_text(CLUSTER)
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "killed")], capture_output=True, text=True,
                            timeout=600, cwd=tmp_path, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.stdout.strip().endswith("ok"), result.stdout[-2000:] + result.stderr[-4000:]


def test_a_plain_iterable_of_batches_gets_a_progress_bar_without_a_total(unet, digits, reference, capsys):
    batches = (digits[k:k + 100] for k in range(0, 512, 100))  # no len(): the total is unknown
    same(reflrp.explain_dataset(unet, batches, TARGET, RULES), reference)
    err = capsys.readouterr().err
    assert "512sample" in err.replace(" ", "") and "sample/s" in err


def test_the_progress_bar_needs_no_extra():
    from importlib.metadata import requires

    assert any(r.split(";")[0].strip().startswith("tqdm") for r in requires("reflrp") if "extra ==" not in r)


def test_predicted_is_one_vocabulary_for_explain_and_explain_dataset(rng):
    model = reflrp.Sequential([reflrp.Linear(rng.normal(size=(3, 4)), rng.normal(size=3))])
    x = rng.normal(size=(5, 4))
    ks = np.argmax(model(x), axis=1)
    by_name = reflrp.explain(model, x, "predicted", reflrp.rules.Epsilon())
    np.testing.assert_array_equal(by_name.relevance, reflrp.explain(model, x, ks, reflrp.rules.Epsilon()).relevance)
    got = reflrp.explain_dataset(model, x, "predicted", reflrp.rules.Epsilon(), batch_size=2, progress=False)
    np.testing.assert_array_equal(got.relevance, by_name.relevance)
    with pytest.raises(ReflrpError, match="the only named target is 'predicted'"):
        reflrp.explain(model, x, "best", reflrp.rules.Epsilon())


def failing_at_batch(monkeypatch, k, error):
    """explain_batch raises ``error`` on batch ``k`` (0-based), after the batches before it were written."""
    original, calls = dataset.explain_batch, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == k + 1:
            raise error
        return original(*args, **kwargs)

    monkeypatch.setattr(dataset, "explain_batch", failing)


@pytest.mark.parametrize("error", [KeyboardInterrupt(), ReflrpError("bad batch")])
def test_a_failed_npy_run_leaves_nothing_that_looks_like_a_result(unet, digits, tmp_path, monkeypatch, error):
    failing_at_batch(monkeypatch, 2, error)
    with pytest.raises(type(error)) as raised:
        reflrp.explain_dataset(unet, digits[:64], TARGET, RULES, batch_size=16, out=tmp_path / "r.npy",
                               progress=False)
    assert list(tmp_path.iterdir()) == []  # no r.npy, no r.totals.npy, no partial file
    assert f"out '{tmp_path / 'r.npy'}' was not written" in raised.value.__notes__[0]
    monkeypatch.undo()
    same(reflrp.explain_dataset(unet, digits[:64], TARGET, RULES, out=tmp_path / "r.npy", progress=False),
         tuple(r[:64] for r in reflrp_reference(unet, digits[:64])))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.npy", "r.totals.npy"]


def reflrp_reference(unet, x):
    method = runs.Method.of(RULES, None, "reflrp")
    return dataset.explain_batch(unet, x, TARGET, method)


def test_a_failed_zarr_run_is_marked_incomplete_and_says_how_far_it_got(unet, digits, tmp_path, monkeypatch):
    failing_at_batch(monkeypatch, 2, ReflrpError("bad batch"))
    out = tmp_path / "r.zarr"
    with pytest.raises(ReflrpError) as raised:
        reflrp.explain_dataset(unet, digits[:64], TARGET, RULES, batch_size=16, out=out, progress=False)
    assert "keeps the 2 of 4 batches finished before this and is marked incomplete" in raised.value.__notes__[0]
    assert zarr.open_group(out, mode="r").attrs["complete"] is False
    monkeypatch.undo()
    reflrp.explain_dataset(unet, digits[:64], TARGET, RULES, batch_size=16, out=out, progress=False)
    assert zarr.open_group(out, mode="r").attrs["complete"] is True


def test_the_cli_says_what_became_of_out_when_a_dataset_run_fails(unet, digits, tmp_path):
    """Bad input halfway (a NaN in the third batch), through the real entry point: exit 1, one line that says the
    file was not written, and nothing left in the folder but the inputs."""
    x = digits[:12].copy()
    x[9, 0, 3, 3] = np.nan
    np.save(tmp_path / "x.npy", x)
    result = subprocess.run([sys.executable, "-m", "reflrp", "explain-dataset", str(DIGITS_UNET_FILE),
                             str(tmp_path / "x.npy"), "--target", "0,6,6", "--out", str(tmp_path / "r.npy"),
                             "--batch-size", "4", "--no-progress"], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "NaN" in result.stderr, result.stderr
    assert f"out '{tmp_path / 'r.npy'}' was not written (the partial files were removed)" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]


def test_an_iterable_written_to_npy_holds_one_batch_at_a_time(unet, tmp_path, monkeypatch):
    images = np.repeat(make_digits(8, seed=3)[0], 512, axis=0)  # 4096 inputs: 25.7 MB of relevance in all
    reference = reflrp.explain_dataset(unet, images[:64], TARGET, RULES, progress=False)
    held, write = [], runs.NpyStream.write

    def measured(self, *args):
        write(self, *args)
        # what reflrp still holds between batches (other tests' threads may be allocating meanwhile)
        ours = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, f"{reflrp.__path__[0]}/*")])
        held.append(sum(trace.size for trace in ours.traces))

    monkeypatch.setattr(runs.NpyStream, "write", measured)
    tracemalloc.start()
    result = reflrp.explain_dataset(unet, (images[k:k + 32] for k in range(0, 4096, 32)), TARGET, RULES,
                                    out=tmp_path / "big.npy", progress=False)
    tracemalloc.stop()
    assert len(held) == 128 and max(held) < 4 << 20, max(held)
    assert result.relevance.shape == images.shape and result.totals.shape == (4096, len(dataset.TOTALS))
    np.testing.assert_array_equal(np.load(tmp_path / "big.npy")[:64], reference.relevance)
    np.testing.assert_array_equal(np.load(tmp_path / "big.totals.npy")[:64], reference.totals)


def test_out_is_checked_before_an_iterable_is_consumed_and_nans_are_found_by_sample(unet, digits, tmp_path):
    consumed = []

    def batches():
        for k in range(0, 64, 16):
            consumed.append(k)
            yield digits[k:k + 16]

    for out, message in ((tmp_path / "no" / "r.npy", "does not exist"), (tmp_path / "r.txt", "must end in .npy")):
        with pytest.raises(ReflrpError, match=message):
            reflrp.explain_dataset(unet, batches(), TARGET, RULES, out=out, progress=False)
    assert consumed == []
    bad = digits[:64].copy()
    bad[37, 0, 5, 5] = np.inf
    with pytest.raises(ReflrpError, match=r"the dataset contains NaN or Inf \(sample 37\)"):
        reflrp.explain_dataset(unet, bad, TARGET, RULES, batch_size=16, progress=False)
    with pytest.raises(ReflrpError, match=r"batch 2 of the inputs contains NaN or Inf \(sample 37\)"):
        reflrp.explain_dataset(unet, (bad[k:k + 16] for k in range(0, 64, 16)), TARGET, RULES, progress=False)
