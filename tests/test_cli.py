"""The command line, the demo, PNG input and heatmaps."""

import importlib
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from extras import need

need("PIL")

from PIL import Image

import reflrp
from reflrp import cli, models, viz
from reflrp.errors import ReflrpError
from reflrp.images import read_png
from reflrp.models import DIGITS_UNET_FILE as MODEL_FILE


def write_png(path, image):
    """An (H, W) or (H, W, 3) image in [0, 1] as an 8-bit PNG."""
    Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)).save(path)


@pytest.fixture
def digit(tmp_path):
    from reflrp.digits import make_digits

    images, _ = make_digits(2, seed=5)
    path = tmp_path / "digits.npy"
    np.save(path, images)
    return path, images


def test_help_lists_every_command():
    result = subprocess.run([sys.executable, "-m", "reflrp", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for word in ("demo", "explain", "ledger", "info", "Exit codes"):
        assert word in result.stdout
    for command in ("demo", "explain", "ledger", "info"):
        sub = subprocess.run([sys.executable, "-m", "reflrp", command, "--help"], capture_output=True, text=True)
        assert sub.returncode == 0 and "usage: reflrp" in sub.stdout


def test_explain_a_saved_model_end_to_end(digit, tmp_path, capsys):
    path, images = digit
    out = tmp_path / "r.npy"
    png = tmp_path / "r.png"
    code = cli.main(["explain", str(MODEL_FILE), str(path), "--target", "0,6,6", "--composite",
                     "epsilongammabox:low=0,high=1", "--out", str(out), "--png", str(png), "--ledger"])
    assert code == 0
    text = capsys.readouterr().out
    assert "closure" in text and "conv1" in text and "wrote relevance (2, 1, 28, 28)" in text
    expected = reflrp.explain(reflrp.load(MODEL_FILE), images, (0, 6, 6),
                              reflrp.composites.EpsilonGammaBox(0.0, 1.0)).relevance
    assert np.load(out).tobytes() == expected.tobytes()
    assert png.read_bytes().startswith(b"\x89PNG")


def test_ledger_command_with_a_rule_and_png_input(tmp_path, capsys):
    from reflrp.digits import make_digits

    image = make_digits(1, seed=2)[0][0, 0]
    write_png(tmp_path / "digit.png", image)
    code = cli.main(["ledger", str(MODEL_FILE), str(tmp_path / "digit.png"), "--target", "argmax:0",
                     "--rule", "zplus:epsilon=0"])
    assert code == 0
    text = capsys.readouterr().out
    assert "ZPlus(epsilon=0.0)" in text and "target value" in text


@pytest.mark.parametrize(
    "args,message",
    [
        (["explain", "missing.reflrp", "x.npy", "--target", "0"], "does not exist"),
        (["explain", "{model}", "{input}", "--target", "0,99,0"], "outside the output"),
        (["explain", "{model}", "{input}", "--target", "0", "--rule", "magic"], "unknown rule 'magic'"),
        (["explain", "{model}", "{input}", "--target", "0", "--rule", "alphabeta:alpha=3"], "alpha - beta must be 1"),
        (["explain", "{model}", "{input}", "--target", "0", "--rule", "epsilon:eps=1"],
         "rule epsilon has no parameter .eps.; its parameters are epsilon"),
        (["explain", "{model}", "{input}", "--target", "0", "--rule", "epsilon", "--composite", "epsilonplus"],
         "not both"),
        (["explain", "{model}", "{model}", "--target", "0"], "expected a .npy array or a .png image"),
        (["explain", "{model}", "{input}", "--target", "one"], "target 'one' is not an integer"),
        (["info", "{input}"], "no loader for '.npy' files"),
    ],
)
def test_bad_input_exits_1_with_a_clear_message(args, message, digit, capsys):
    path, _ = digit
    args = [a.format(model=MODEL_FILE, input=path) for a in args]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("reflrp: error:")
    assert __import__("re").search(message, err), err


def test_usage_errors_exit_2():
    result = subprocess.run([sys.executable, "-m", "reflrp", "explain", "model.reflrp"], capture_output=True)
    assert result.returncode == 2
    assert subprocess.run([sys.executable, "-m", "reflrp"], capture_output=True).returncode == 2


def test_info_prints_graph_and_metadata(capsys):
    assert cli.main(["info", str(MODEL_FILE)]) == 0
    text = capsys.readouterr().out
    assert "ConvTranspose2d" in text and "test_foreground_iou" in text


def test_demo_prints_ledgers_and_writes_heatmaps(tmp_path, capsys):
    assert cli.main(["demo", "--out", str(tmp_path / "demo")]) == 0
    text = capsys.readouterr().out
    assert text.count("target value") == 6 and "... ready in" in text and "Summary" in text
    names = ["input.png", "overlay_bn_folded.png", "overlay_bn_kept.png", "relevance.npz", "relevance_bn_folded.png",
             "relevance_bn_kept.png"]
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == names  # no partial files left
    for name in names:
        assert (tmp_path / "demo" / name).stat().st_size > 0
    with np.load(tmp_path / "demo" / "relevance.npz") as arrays:
        assert len(arrays.files) == 7


def test_demo_without_matplotlib_still_runs_and_says_how_to_get_pngs(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    from reflrp.demo import run

    run(out_dir=tmp_path / "d")
    text = capsys.readouterr().out
    assert 'Heatmap PNGs need matplotlib: pip install "reflrp[viz]"' in text
    assert not list((tmp_path / "d").glob("*.png")) and (tmp_path / "d" / "relevance.npz").exists()
    with pytest.raises(ReflrpError, match="heatmap PNGs need matplotlib"):
        viz.save_heatmaps(tmp_path / "x.png", {"a": np.ones((2, 2))})


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA", "P", "1", "I;16"])
def test_png_images_become_channels_in_0_1(mode, tmp_path, rng):
    """Greyscale (with alpha, 1-bit, 16-bit) is one channel, the rest three; alpha is dropped."""
    if mode == "I;16":
        samples = rng.integers(0, 65536, size=(13, 17), dtype=np.uint16)
        image, expected = Image.fromarray(samples), samples[None] / 65535.0
    else:
        rgba = rng.integers(0, 256, size=(13, 17, 4), dtype=np.uint8)
        image = Image.fromarray(rgba, mode="RGBA").convert(mode)
        grey = mode in ("L", "LA", "1")
        flat = np.asarray(image.convert("L" if grey else "RGB"))
        expected = (flat[None] if grey else flat.transpose(2, 0, 1)) / 255.0
    image.save(tmp_path / "p.png")
    got = read_png(tmp_path / "p.png")
    assert got.dtype == np.float64 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_bad_png_files_are_one_clear_error(tmp_path, rng):
    write_png(tmp_path / "w.png", rng.uniform(size=(9, 11, 3)))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ReflrpError, match="is not a PNG file"):
        read_png(tmp_path / "bad.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "jpeg.png", format="JPEG")
    with pytest.raises(ReflrpError, match="is not a PNG file"):
        read_png(tmp_path / "jpeg.png")
    data = (tmp_path / "w.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ReflrpError, match="not a readable PNG"):
        read_png(tmp_path / "cut.png")


def test_colorize_is_diverging_symmetric_and_centred_at_zero():
    relevance = np.array([[-2.0, -1.0, 0.0, 1.0, 2.0, 100.0]])
    rgb = viz.colorize(relevance, limit=2.0)
    np.testing.assert_array_equal(rgb[0, 2], [1.0, 1.0, 1.0])  # zero is white
    assert rgb[0, 4, 0] > rgb[0, 4, 2] and rgb[0, 0, 2] > rgb[0, 0, 0]  # red positive, blue negative
    np.testing.assert_allclose(1 - rgb[0, 1], (1 - rgb[0, 0]) / 2)  # linear up to the limit
    np.testing.assert_array_equal(rgb[0, 5], rgb[0, 4])  # clipped beyond it
    assert viz.symmetric_limit(np.array([-4.0, 1.0, 2.0]), quantile=1.0) == 4.0
    assert viz.overlay(np.zeros((1, 6)), relevance).shape == (1, 6, 3)
    with pytest.raises(ReflrpError, match="quantile must be in"):
        viz.colorize(relevance, quantile=0)


def test_cli_targets_and_specs():
    assert cli.parse_target("3") == 3
    assert cli.parse_target("0,6,6") == reflrp.targets.Index((0, 6, 6))
    assert cli.parse_target("argmax:0") == reflrp.targets.ArgmaxRegion(0)
    assert cli.parse_target("pixels:0:1,2;3,4").pixels == ((1, 2), (3, 4))
    with pytest.raises(ReflrpError, match="must look like ROW,COL"):
        cli.parse_target("pixels:0:1;3,4")
    gamma = cli.parse_spec("gamma:gamma=0.5,zero_bias=true", cli.RULES, "rule")
    assert gamma == reflrp.rules.Gamma(0.5, zero_bias=True)
    assert repr(cli.parse_spec("EpsilonPlus", cli.COMPOSITES, "composite")) == "EpsilonPlus(epsilon=1e-06)"
    assert models.small_unet  # the model the CLI tests explain is the U-Net of reflrp.models


def _png_bomb(path, width, height):
    """A valid-looking PNG header claiming ``width x height`` with almost no data."""
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize(
    "args,message",
    [
        (["explain", "{model}", "{empty}", "--target", "0"], r"INPUT .*empty.npy' is not a valid .npy array"),
        (["explain", "{model}", "{input}", "--target", "mask:{empty}"], "target mask .* is not a valid .npy array"),
        (["explain", "{model}", "{input}", "--target", "mask:{input}"], "target mask .*: arrays of float64 are not"),
        (["explain", "{model}", "{input}", "--target", "0", "--out", "{tmp}/no/r.npy"], "folder .* does not exist"),
        (["explain", "{model}", "{input}", "--target", "0", "--png", "{tmp}/no/h.png"], "folder .* does not exist"),
        (["explain", "{model}", "{input}", "--target", "0", "--png", "{tmp}/h.jpg"], "--png .* must end in .png"),
        (["explain", "{model}", "{input}", "--target", "0", "--out", "{tmp}/dir.npy"], "--out .* is a folder"),
        (["explain", "{model}", "{bomb}", "--target", "0"], "bomb.png': the image has more than .* pixels"),
        (["explain", "{tmp}", "{input}", "--target", "0"], "MODEL .* is a directory, not a file"),
        (["explain", "{text}", "{input}", "--target", "0"], "not a readable reflrp model file"),
        (["explain", "{model}", "{text_npy}", "--target", "0"], "is not a valid .npy array"),
        (["info", "{tmp}"], "MODEL .* is a directory"),
        (["demo", "--out", "{input}"], "--out .* exists and is not a folder"),
        (["demo", "--seed", "-5"], "--seed must be >= 0"),
        (["demo", "--pixel", "12", "0"], "--pixel 12 0 is outside the 12x12 output"),
    ],
)
def test_every_failure_is_one_line_before_anything_runs(args, message, digit, tmp_path, capsys, monkeypatch):
    path, _ = digit
    (tmp_path / "empty.npy").write_bytes(b"")
    (tmp_path / "text.reflrp").write_text("a text file\n")
    (tmp_path / "text.npy").write_text("1 2 3\n")
    (tmp_path / "dir.npy").mkdir()
    files = {"model": MODEL_FILE, "input": path, "empty": tmp_path / "empty.npy", "tmp": tmp_path,
             "bomb": _png_bomb(tmp_path / "bomb.png", 30000, 30000), "text": tmp_path / "text.reflrp",
             "text_npy": tmp_path / "text.npy"}

    def forbidden(*a, **k):
        raise AssertionError("an explanation ran before the arguments were checked")

    importlib.import_module("reflrp.demo")
    monkeypatch.setattr(sys.modules["reflrp.explain"], "explain", forbidden)
    monkeypatch.setattr(sys.modules["reflrp.demo"], "run", forbidden)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert cli.main([a.format(**files) for a in args]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("reflrp: error:"), err
    assert __import__("re").search(message, err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing was written


def test_the_paths_printed_are_the_paths_written(digit, tmp_path, capsys):
    path, _ = digit
    assert cli.main(["explain", str(MODEL_FILE), str(path), "--target", "0,6,6", "--out", str(tmp_path / "r")]) == 0
    assert f"to {tmp_path / 'r.npy'}" in capsys.readouterr().out
    assert (tmp_path / "r.npy").exists() and not (tmp_path / "r").exists()


def test_version_usage_errors_and_bugs_are_one_line(capsys, monkeypatch):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"reflrp {reflrp.__version__}"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["explain", "model.reflrp"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "the following arguments are required" in err

    def broken(args):
        raise RuntimeError("something\nunexpected")

    monkeypatch.setattr(cli, "cmd_info", broken)
    assert cli.main(["info", str(MODEL_FILE)]) == 3
    err = capsys.readouterr().err
    assert err == "reflrp: internal error (RuntimeError: something unexpected); please report it with the command " \
                  "that caused it\n"


def test_output_names_the_file_numpy_writes_and_inputs_fit_the_models_dtype(digit, tmp_path, capsys):
    path, _ = digit
    upper = tmp_path / "r.NPY"
    assert cli.main(["explain", str(MODEL_FILE), str(path), "--target", "0,6,6", "--out", str(upper)]) == 0
    assert f"to {upper}.npy" in capsys.readouterr().out and (tmp_path / "r.NPY.npy").exists()
    for bad in (str(tmp_path) + "/", ""):
        assert cli.main(["explain", str(MODEL_FILE), str(path), "--target", "0", "--out", bad]) == 1
        assert "names no file" in capsys.readouterr().err
    assert cli.main(["demo", "--out", ""]) == 1
    assert "--out is empty" in capsys.readouterr().err
    float32 = tmp_path / "m32.reflrp"
    reflrp.save(reflrp.load(MODEL_FILE).astype(np.float32), float32)
    np.save(tmp_path / "big.npy", np.full((1, 1, 28, 28), 1e300))
    assert cli.main(["explain", str(float32), str(tmp_path / "big.npy"), "--target", "0"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "beyond the range of float32 (the model's dtype)" in err


def test_closed_stdout_and_the_predicted_target(tmp_path):
    import subprocess
    import sys

    model = tmp_path / "m.reflrp"
    rng = np.random.default_rng(0)
    reflrp.save(reflrp.Sequential([reflrp.Linear(rng.normal(size=(3, 4)), rng.normal(size=3))]), model)
    np.save(tmp_path / "x.npy", rng.normal(size=(2, 4)))
    closed = subprocess.run([sys.executable, "-m", "reflrp", "info", str(model)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, pass_fds=(), close_fds=True,
                            preexec_fn=lambda: __import__("os").close(1))
    assert closed.returncode == 1 and "standard output is closed" in closed.stderr
    assert cli.main(["explain", str(model), str(tmp_path / "x.npy"), "--target", "predicted"]) == 0


@pytest.mark.parametrize("option, cone", [("auto", "auto"), ("on", True), ("off", False)])
def test_the_cone_option(digit, tmp_path, option, cone):
    path, images = digit
    out = tmp_path / "r.npy"
    assert cli.main(["explain", str(MODEL_FILE), str(path), "--target", "0,6,6", "--rule", "epsilon", "--out",
                     str(out), "--cone", option]) == 0
    expected = reflrp.explain(reflrp.load(MODEL_FILE), images, (0, 6, 6), reflrp.rules.Epsilon(), cone=cone)
    assert np.load(out).tobytes() == expected.relevance.tobytes()


def test_the_profile_option(tmp_path, capsys):
    model = tmp_path / "m.reflrp"
    rng = np.random.default_rng(0)
    reflrp.save(reflrp.Sequential([reflrp.Linear(rng.normal(size=(3, 4)), rng.normal(size=3))]), model)
    np.save(tmp_path / "x.npy", rng.normal(size=(1, 4)))
    assert cli.main(["ledger", str(model), str(tmp_path / "x.npy"), "--target", "1", "--composite", "epsilonplus",
                     "--profile", "zennit"]) == 0
    out = capsys.readouterr().out
    assert "profile               zennit" in out and "target value          +1\n" in out


@pytest.mark.slow
def test_the_demo_says_it_compiles_only_when_it_does(tmp_path):
    """A fresh cache: the first run announces the compilation and says it compiled; the second (warm) run does
    neither."""
    env = {**__import__("os").environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}

    def demo():
        result = subprocess.run([sys.executable, "-m", "reflrp", "demo", "--out", str(tmp_path / "d")],
                                capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    cold, warm = demo(), demo()
    assert "compiling numba kernels on first use" in cold and "(kernels compiled now and cached on disk)" in cold
    assert "compiling" not in warm and "(kernels loaded from the disk cache)" in warm


def test_every_panel_is_titled_with_what_it_shows_and_no_figure_is_half_empty(tmp_path, monkeypatch, digit):
    drawn = {}

    def record(path, panels, columns=4, **kwargs):
        drawn[pathlib.Path(path).name] = ([p.title for p in panels], columns)

    monkeypatch.setattr(viz, "save_panels", record)
    from reflrp.demo import run

    run(out_dir=tmp_path / "d", write=lambda line: None)
    titles, columns = drawn["input.png"]
    assert titles[0] == "input digit" and titles[1].startswith("predicted stroke probability")
    for name, (titles, columns) in drawn.items():
        assert len(titles) % min(columns, len(titles)) == 0, name  # every row full
    path, images = digit  # two samples: each map beside its own sample's input
    x = np.concatenate([images, images[:1]])
    e = reflrp.explain(reflrp.load(MODEL_FILE), x, (0, 6, 6), reflrp.rules.Epsilon())
    panels, columns = cli.heatmap_panels(x, e)
    assert columns == 2 and [p.title for p in panels] == [
        "input, sample 0", "explanation 0 (sample 0)", "input, sample 1", "explanation 1 (sample 1)",
        "input, sample 2", "explanation 2 (sample 2)"]
    assert all(np.array_equal(p.image, x[k // 2].mean(axis=0)) for k, p in enumerate(panels))
    pixels = reflrp.explain(reflrp.load(MODEL_FILE), x[:1], reflrp.targets.Pixels(0, [(6, 6), (3, 3)]),
                            reflrp.rules.Epsilon())
    panels, columns = cli.heatmap_panels(x[:1], pixels)
    assert columns == 3 and [p.title for p in panels] == ["input", "pixel (6, 6)", "pixel (3, 3)"]


def test_files_appear_only_when_complete(tmp_path, monkeypatch):
    from reflrp.files import written

    with pytest.raises(RuntimeError), written(tmp_path / "a.npy") as partial:
        with open(partial, "wb") as handle:
            handle.write(b"half")
        raise RuntimeError("the disk filled up")
    assert list(tmp_path.iterdir()) == []
    model = reflrp.Sequential([reflrp.Linear(np.ones((2, 3)))])

    def half_written(handle, **arrays):
        handle.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", half_written)
    with pytest.raises(KeyboardInterrupt):
        reflrp.save(model, tmp_path / "m.reflrp")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    def failing_savefig(self, path, **kwargs):
        pathlib.Path(path).write_bytes(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    from matplotlib.figure import Figure

    monkeypatch.setattr(Figure, "savefig", failing_savefig)
    with pytest.raises(OSError):
        viz.save_heatmaps(tmp_path / "h.png", {"a": np.ones((2, 2))})
    assert list(tmp_path.iterdir()) == []


def test_every_install_hint_names_a_real_extra_and_every_cli_hint_a_real_option():
    """Hints in the package's messages: ``reflrp[EXTRA]`` and require(..., "EXTRA", ...) name extras pyproject.toml
    defines; ``--option`` in a message names an option of the CLI."""
    import re
    from importlib.metadata import metadata

    extras = set(metadata("reflrp").get_all("Provides-Extra"))
    options = {o for parser in cli.build_parser()._subparsers._group_actions[0].choices.values()
               for action in parser._actions for o in action.option_strings} | {"--help", "--version"}
    source = "\n".join(p.read_text() for p in pathlib.Path(reflrp.__file__).parent.rglob("*.py"))
    named = set(re.findall(r"reflrp\[(\w+)\]", source)) | set(re.findall(r'require\("[\w.]+", "(\w+)"', source))
    assert named and named <= extras, named - extras
    hinted = set(re.findall(r"(--[a-z][a-z-]+)", source))
    assert hinted <= options, hinted - options


def test_a_png_with_the_wrong_channels_says_how_it_was_read(tmp_path, capsys):
    Image.fromarray(np.zeros((28, 28, 4), np.uint8), mode="RGBA").save(tmp_path / "x.png")  # a grey-looking RGBA
    assert cli.main(["ledger", str(MODEL_FILE), str(tmp_path / "x.png"), "--target", "argmax:0"]) == 1
    err = capsys.readouterr().err
    assert "reads as a colour image (3 channels)" in err and "input has 3 channels, weight expects 1" in err
    assert "8-bit greyscale for 1 channel" in err


def test_cli_messages_use_the_cli_s_own_words(digit, capsys):
    path, _ = digit
    for args, message in (
            (["explain", str(MODEL_FILE), str(path), "--target", "0", "--rule", "zbox:low=0"], "rule zbox needs high"),
            (["explain", str(MODEL_FILE), str(path), "--target", "predicted"], "argmax:CLASS on the command line"),
            (["explain-dataset", str(MODEL_FILE), str(path), "--target", "0,6,6", "--out", "r.npy", "--batch-size",
              "0"], "--batch-size must be >= 1")):
        assert cli.main(args) == 1
        assert message in capsys.readouterr().err
