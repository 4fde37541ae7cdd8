"""Developer sessions.  ``nox -s tests`` is what CI runs (through .ci/run).  Extra arguments go to the tool:
``nox -s tests -- -k ledger``."""

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.default_venv_backend = "venv"


@nox.session
def tests(session):
    """The whole test-suite, hypothesis properties included (derandomized CI profile)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs, env={"HYPOTHESIS_PROFILE": "ci"})


@nox.session
def properties(session):
    """Only the hypothesis properties, with more examples."""
    session.install("-e", ".[test]")
    session.run("pytest", "tests/properties", *session.posargs, env={"HYPOTHESIS_PROFILE": "ci"})


@nox.session
def nojit(session):
    """Kernel tests with NUMBA_DISABLE_JIT=1: the kernel bodies run as plain Python on small shapes."""
    session.install("-e", ".[test]")
    session.run("pytest", "tests/test_kernels.py", "tests/test_rules.py", *session.posargs,
                env={"NUMBA_DISABLE_JIT": "1"})


@nox.session
def lint(session):
    session.install("ruff>=0.5")
    session.run("ruff", "check", "reflrp", "tests", "bench", "scripts", "noxfile.py", *session.posargs)


#: reflrp before the speed work (issue 12): the suite's "before" columns.
SPEED_BASELINE = "8e0a9e4"


@nox.session
def bench(session):
    """Benchmarks: ratios against alternatives measured side by side (see docs/speed.md).  The speed suite
    (bench/suite.py) runs in the Zennit venv that ``nox -s peers -- zennit`` builds, when it exists, so Zennit is
    timed in the same run; otherwise without Zennit.  By default: every model, float32 and float64, batch 1, with
    reflrp before the speed work (SPEED_BASELINE) timed in the same run; ``nox -s bench -- --models unet128
    --batches 16 --repeat 1 --no-extras`` passes other arguments to the suite."""
    import pathlib

    session.install("-e", ".[test]")
    arguments = session.posargs or ["--baseline", SPEED_BASELINE, "--batches", "1"]
    zennit_python = pathlib.Path(".peers") / "venv-zennit" / "bin" / "python"
    if zennit_python.exists():
        session.run(str(zennit_python), "-m", "pip", "install", "-q", "threadpoolctl", "-e", ".", external=True)
        session.run(str(zennit_python), "bench/suite.py", *arguments, external=True)
        session.run(str(zennit_python), "bench/cone.py", external=True)
        session.run(str(zennit_python), "bench/floor.py", external=True)  # with the torchvision models
    else:
        session.log("no .peers/venv-zennit (nox -s peers -- zennit): the suite runs without Zennit")
        session.run("python", "bench/suite.py", *arguments)
        session.run("python", "bench/cone.py")
        session.run("python", "bench/floor.py")
    session.run("python", "bench/run.py")
    session.run("python", "bench/blas_share.py")
    session.run("python", "bench/threads.py")
    session.run("python", "bench/startup.py")
    session.run("python", "bench/container.py")
    session.run("python", "bench/volume128.py")
    lxt_python = pathlib.Path(".peers") / "venv-lxt" / "bin" / "python"
    if lxt_python.exists():  # transformers against LXT, in LXT's venv (nox -s peers -- lxt builds it)
        session.run(str(lxt_python), "bench/attnlrp.py", external=True)
    else:
        session.log("no .peers/venv-lxt (nox -s peers -- lxt): bench/attnlrp.py does not run")


#: Each library in its own venv, as the machine notes say: Zennit imports torchvision, which loads only beside
#: torch 2.14.1 (a ~6 GB build, used on the CPU); iNNvestigate needs TensorFlow 2.14 and numpy < 2; LXT 2.1 is tested
#: with transformers 4.52.4 (the 5.x series breaks its patches).
PEERS = {
    "zennit": ["torch==2.14.1", "torchvision==0.29.1", "zennit==0.5.1", "segmentation-models-pytorch==0.6.0",
               "monai==1.6.1", "onnx", "-e", "."],
    "captum": ["torch==2.13.0", "captum==0.9.0", "-e", "."],
    "innvestigate": ["innvestigate==2.1.2", "tensorflow-cpu<2.15", "numpy<2", "h5py"],
    "lxt": ["torch==2.14.1", "torchvision==0.29.1", "lxt==2.1.0", "transformers==4.52.4", "threadpoolctl", "onnx",
            "onnxscript", "-e", "."],  # the dynamo exporter writes the Hugging Face models' ONNX files
}


@nox.session
def peers(session):
    """Rebuild the fixtures of tests/data/peers from Zennit, Captum, iNNvestigate and LXT themselves (each in its own
    venv under .peers/), then compare reflrp with them live: the profile tests run on the fresh fixtures, the
    peer harness (tests/peers.py) runs Zennit itself, and the model zoo (scripts/peers/zoo.py) is measured
    anew.  ``nox -s peers -- zennit`` rebuilds one library's."""
    import pathlib

    root = pathlib.Path(".peers").resolve()
    chosen = session.posargs or list(PEERS)
    for library in chosen:
        venv = root / f"venv-{library}"
        python = str(venv / "bin" / "python")
        if not venv.exists():
            session.run("python3", "-m", "venv", str(venv), external=True)
        session.run(python, "-m", "pip", "install", "-q", *PEERS[library], external=True)
        session.run(python, f"scripts/peers/{library}_fixtures.py", str(root / "data" / library), external=True)
    zennit_python = root / "venv-zennit" / "bin" / "python"
    tests = [f"tests/test_peers_{library}.py" for library in chosen]
    if "zennit" in chosen:
        session.run(str(zennit_python), "scripts/peers/zennit_live.py", external=True)
        session.run(str(zennit_python), "scripts/peers/zoo.py", str(root / "data" / "zoo.json"), external=True)
        tests.append("tests/test_zoo.py")
    session.install("-e", ".[test]")
    session.run("pytest", *tests, env={"REFLRP_PEERS_DATA": str(root / "data")})


@nox.session
def docs(session):
    """Build the documentation site (strict: broken links and references fail). Its examples run in the tests."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", *session.posargs)
