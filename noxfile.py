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


@nox.session
def bench(session):
    """Benchmarks: ratios against alternatives measured side by side (see bench/README.md)."""
    session.install("-e", ".[test]")
    session.run("python", "bench/run.py", *session.posargs)
    session.run("python", "bench/threads.py")
    session.run("python", "bench/startup.py")


@nox.session
def docs(session):
    """Build the documentation site (strict: broken links and references fail). Its examples run in the tests."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", *session.posargs)
