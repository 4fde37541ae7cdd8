"""Installs that survive each other: compiled kernels are cached outside the package, an unwritable cache falls
back to compiling in memory, and the README's two install commands work in either order in one venv."""

import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

EXPLAIN = textwrap.dedent(
    """
    import hashlib, numpy as np, reflrp
    from reflrp import _cache
    from reflrp.kernels import conv
    model = reflrp.load(reflrp.models.DIGITS_UNET_FILE)
    x = np.random.default_rng(0).uniform(size=(2, 1, 28, 28))
    e = reflrp.explain(model, x, (0, 5, 5), reflrp.composites.EpsilonGammaBox(0.0, 1.0))
    print(_cache.cache_folder(conv._im2col2d_tasks))
    print(hashlib.sha256(e.relevance.tobytes()).hexdigest())
    """
)


def explain_in_subprocess(cache_home, **env):
    clean = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    result = subprocess.run([sys.executable, "-c", EXPLAIN], env={**clean, "XDG_CACHE_HOME": str(cache_home), **env},
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    folder, digest = result.stdout.split()
    return folder, digest


def kernel_cache_files(folder):
    return sorted(p.name for p in pathlib.Path(folder).rglob("*") if p.suffix in (".nbi", ".nbc"))


@pytest.mark.slow
def test_kernels_are_cached_in_the_user_cache_folder_not_in_the_package(tmp_path):
    package_before = kernel_cache_files(ROOT / "reflrp")
    folder, digest = explain_in_subprocess(tmp_path)
    assert pathlib.Path(folder).is_relative_to(tmp_path / "numba")
    assert any(name.startswith("conv._im2col2d_tasks") for name in kernel_cache_files(tmp_path))
    assert kernel_cache_files(ROOT / "reflrp") == package_before == []
    again_folder, again = explain_in_subprocess(tmp_path)  # loaded from the cache: the same bits
    assert (again_folder, again) == (folder, digest)


@pytest.mark.slow
def test_an_unwritable_cache_compiles_in_memory_with_the_same_bits(tmp_path):
    _, expected = explain_in_subprocess(tmp_path / "writable")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # a cache home below a file cannot be created, even by root
    folder, digest = explain_in_subprocess(blocker / "cache")
    assert folder == "None" and digest == expected


def _run(args, cwd, env=None):
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=1200)
    assert result.returncode == 0, f"{' '.join(map(str, args))}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.slow
def test_readme_install_commands_work_in_either_order_in_one_venv(tmp_path):
    """``pip install .`` + ``reflrp demo``, then ``pip install -e .``, then ``pip install .`` again; after each
    install, reflrp is imported and the demo runs from an unrelated folder."""
    source = tmp_path / "source"
    # a copy, so builds write their build/ and egg-info folders there and not into the working tree
    skip = (".git", ".venv", ".ci-venv", ".nox", ".peers", "build", "*.egg-info", "__pycache__", ".pytest_cache",
            ".hypothesis", "site", "reflrp-demo")
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*skip))
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    python, reflrp_cmd = venv / "bin" / "python", venv / "bin" / "reflrp"
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "PYTHONPATH", "VIRTUAL_ENV")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    check = "import reflrp; assert callable(reflrp.explain), reflrp.__path__; print(reflrp.__file__)"

    installed = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages" / "reflrp"

    def works(editable):
        where = _run([python, "-c", check], elsewhere, env).strip()
        assert pathlib.Path(where).is_relative_to(source if editable else venv), where
        _run([reflrp_cmd, "demo", "--out", str(elsewhere / f"demo-{len(list(elsewhere.iterdir()))}")], elsewhere, env)
        if editable:  # the earlier install left nothing behind that could shadow the package
            assert not installed.exists(), sorted(str(p) for p in installed.rglob("*"))
        else:
            assert kernel_cache_files(installed) == []

    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run([*pip, str(source)], elsewhere, env)
    works(editable=False)
    _run([*pip, "-e", str(source)], elsewhere, env)
    works(editable=True)
    _run([*pip, str(source)], elsewhere, env)
    works(editable=False)
