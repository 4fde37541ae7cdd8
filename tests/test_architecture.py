"""The import graph: kernels import nothing from the rest of the package, rules only the stabilizer, errors and
the layer protocol, no cycles; the core imports no optional dependency."""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "reflrp"


def module_name(path):
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports():
    """``{module: set of reflrp modules it imports at module level or inside functions}``."""
    graph = {}
    for path in ROOT.rglob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("reflrp"):
                submodules = set()
                for alias in node.names:
                    candidate = f"{node.module}.{alias.name}"
                    where = ROOT.parent / candidate.replace(".", "/")
                    if where.with_suffix(".py").exists() or (where / "__init__.py").exists():
                        submodules.add(candidate)
                found |= submodules
                if len(submodules) < len(node.names):  # names defined in the module itself
                    found.add(node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("reflrp")}
        graph[module_name(path)] = found - {module_name(path)}
    return graph


def test_kernels_import_only_the_jit_wrapper_and_each_other():
    for module, deps in imports().items():
        if module.startswith("reflrp.kernels"):
            assert all(d == "reflrp._jit" or d.startswith("reflrp.kernels") for d in deps), (module, deps)


def test_rules_import_only_stabilizer_errors_and_validation():
    # rules read layers' capabilities, never their classes: they do not even import the layers
    allowed = {"reflrp.steps", "reflrp.stabilize", "reflrp.errors", "reflrp.validate"}
    rule_modules = {m for m in imports() if m == "reflrp.rules" or m.startswith("reflrp.rules.")}
    assert rule_modules >= {"reflrp.rules.base", "reflrp.rules.plain", "reflrp.rules.signed", "reflrp.rules.first"}
    for module in rule_modules:
        assert imports()[module] - rule_modules <= allowed, module
    # the steps' elementwise passes run as fused kernels (pure array functions, which import nothing of reflrp)
    assert imports()["reflrp.steps"] <= {"reflrp.stabilize", "reflrp.errors", "reflrp.arrays", "reflrp.kernels.fused",
                                         "reflrp.kernels.sums"}
    for module, deps in imports().items():
        if module.startswith("reflrp.layers"):
            allowed = ("reflrp.kernels", "reflrp.errors", "reflrp.validate", "reflrp.arrays", "reflrp.boxes")
            assert all(d in allowed or d.startswith("reflrp.layers") for d in deps), (module, deps)
    assert not imports()["reflrp.boxes"]  # boxes (the receptive cone's parts of a tensor) are plain numpy


def test_graph_imports_no_concrete_layer_class():
    tree = ast.parse((ROOT / "graph.py").read_text())
    names = {a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module == "reflrp.layers"
             for a in node.names}
    assert names == {"Layer"}


def test_no_module_is_over_500_lines():
    lengths = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in ROOT.rglob("*.py")}
    assert {k: v for k, v in lengths.items() if v > 500} == {}


def test_no_import_cycles_among_core_modules():
    graph = {m: {d for d in deps if d != "reflrp"} for m, deps in imports().items() if m != "reflrp"}
    state = {}

    def visit(module, path):
        state[module] = "active"
        for dep in sorted(graph.get(module, ())):
            assert state.get(dep) != "active", " -> ".join(path + [dep])
            if dep not in state:
                visit(dep, path + [dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_core_imports_no_optional_dependency():
    code = ("import sys, reflrp, reflrp.cli, reflrp.demo, reflrp.viz, reflrp.importers; "
            "print(sorted(m for m in ('torch', 'matplotlib', 'onnx', 'dask', 'h5py', 'zarr', 'tqdm', 'distributed') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_lint_is_clean():
    paths = ["reflrp", "tests", "bench", "scripts", "noxfile.py"]
    result = subprocess.run([sys.executable, "-m", "ruff", "check", *paths], cwd=ROOT.parent, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr  # stderr says so when ruff is not installed


def test_the_engine_imports_nothing_from_the_compat_floor():
    """Other libraries' conventions sit on a floor above the engine: only the package's front doors (its
    ``__init__``, the command line and the HTML report) and compat itself import reflrp.compat."""
    front = {"reflrp", "reflrp.cli", "reflrp.report"}
    for module, deps in imports().items():
        if module not in front and not module.startswith("reflrp.compat"):
            assert not any(d.startswith("reflrp.compat") for d in deps), (module, deps)


def test_rules_are_reflrps_own_and_libraries_are_settings():
    """No rule of another library's name: a library's rule is a reflrp rule with its knobs (docs/profiles.md)."""
    import inspect

    import reflrp.compat
    from reflrp.rules.base import Rule

    modules = [reflrp.rules, reflrp.compat.zennit, reflrp.compat.innvestigate, reflrp.compat.captum]
    classes = {c for m in modules for _, c in inspect.getmembers(m, inspect.isclass) if issubclass(c, Rule)}
    assert all(c.__module__.startswith("reflrp.rules") for c in classes), classes
    assert not [c.__name__ for c in classes if c.__name__.startswith(("Inn", "Captum"))]
