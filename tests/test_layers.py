"""The package's layers, checked on the source: every import, top-level or inside a function,
runs one way (core <- policy <- serve <- integrations; `router_ml.training`, installed from the
folder `training/`, uses core and policy, never serve, and nothing in router_ml uses it; nothing
imports the integrations, so importing router_ml never imports LiteLLM), and no module imports
itself back through others."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Folder -> the package it installs as (pyproject.toml's package-dir).
PACKAGES = {"router_ml": "router_ml", "training": "router_ml.training"}

# What each layer may import (besides itself). `router_ml.errors` is every layer's.
ALLOWED = {
    "core": {"errors"},
    "policy": {"errors", "core"},
    "serve": {"errors", "core", "policy"},
    "integrations": {"errors", "core", "policy", "serve"},  # other people's gateways (LiteLLM): nothing imports them
    "errors": set(),
    "top": {"errors", "core", "policy", "serve"},  # router_ml/__init__.py, router_ml/cli.py, compat shims
    "training": {"errors", "core", "policy", "top"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGES[parts[0]], *parts[1:]])


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "training":
        return "bare training"  # the folder's name, which is not an importable package: always wrong
    if parts[0] != "router_ml":
        return None  # a third-party or standard module
    if len(parts) > 1 and parts[1] in ("core", "policy", "serve", "integrations", "errors", "training"):
        return parts[1]
    return "top"


def _type_checking_only(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(path: Path, module: str | None = None) -> set[str]:
    """Every module `path` (the module `module`) imports, as absolute names, except those
    only for type checkers."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    module = module or module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # `from pkg import module`
    return found


def source_modules() -> dict[str, set[str]]:
    known = {module_name(p): p for folder in PACKAGES for p in (ROOT / folder).rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in known or layer_of(m) == "bare training"}
            for name, path in known.items()}


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Every edge that runs against the layers, as "importer -> imported"."""
    return sorted(f"{module} -> {dep}" for module, deps in graph.items() for dep in deps
                  if layer_of(dep) != layer_of(module) and layer_of(dep) not in ALLOWED[layer_of(module)])


def imports_everywhere() -> dict[str, set[str]]:
    """Every import of the tests, benchmarks and notebooks' code too (for the bare-name check)."""
    found = {}
    for folder in ("tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            found[str(path.relative_to(ROOT))] = imports_of(path, ".".join(path.relative_to(ROOT).with_suffix("").parts))
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, str] = {}
    found = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            if dep == node or dep.startswith(node + "."):
                continue  # a package importing its own submodules
            if state.get(dep) == "open":
                found.append(path[path.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


GRAPH = source_modules()


def test_the_graph_sees_the_packages_and_lazy_imports():
    assert {"router_ml.core.router", "router_ml.policy.cascade", "router_ml.serve.service", "router_ml.training.fit.pipeline"} <= set(GRAPH)
    assert "router_ml.core.artifact" in GRAPH["router_ml.core.router"]
    # imported inside a function body, and as `from package import module`:
    assert "router_ml.core.mlflow_registry" in GRAPH["router_ml.core.router"]
    assert "router_ml.core.head_arrays" in GRAPH["router_ml.core.heads"]


def test_imports_run_one_way_through_the_layers():
    assert violations(GRAPH) == []


def test_training_uses_the_audit_format_not_the_service():
    assert "router_ml.core.audit_format" in GRAPH["router_ml.training.loop.retrain"]
    assert not [m for m, deps in GRAPH.items() if m.startswith("router_ml.training")
                for d in deps if d.startswith("router_ml.serve")]


def test_nothing_imports_the_folder_training_by_its_bare_name():
    """`training` is a folder; the package is `router_ml.training` (an unrelated `training` may be installed)."""
    bare = {where: sorted(m for m in deps if m.split(".")[0] == "training")
            for where, deps in {**GRAPH, **imports_everywhere()}.items()}
    assert {where: mods for where, mods in bare.items() if mods} == {}


def test_nothing_imports_the_command_line_entry():
    assert sorted(name for name, deps in GRAPH.items() if "router_ml.cli" in deps) == []


def test_no_import_cycles():
    assert cycles(GRAPH) == []


def test_the_checks_catch_a_wrong_edge_and_a_cycle():
    graph = {"router_ml.core.router": {"router_ml.training.fit.pipeline", "router_ml.serve.audit"},
             "router_ml.policy.rules": {"router_ml.policy.checks"},
             "router_ml.policy.checks": {"router_ml.policy.rules"},
             "router_ml.training.fit.pipeline": {"router_ml.core.router"}}
    assert violations(graph) == ["router_ml.core.router -> router_ml.serve.audit",
                                 "router_ml.core.router -> router_ml.training.fit.pipeline"]
    assert cycles(graph) == [["router_ml.core.router", "router_ml.training.fit.pipeline", "router_ml.core.router"],
                             ["router_ml.policy.checks", "router_ml.policy.rules", "router_ml.policy.checks"]]


def test_type_checking_imports_do_not_count_and_relative_imports_resolve(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from router_ml.serve import audit\n"
                     "def f():\n    from ..policy import rules\n")
    found = imports_of(probe, "router_ml.core.probe")
    assert "router_ml.policy.rules" in found and "router_ml.serve.audit" not in found


def test_every_package_folder_is_installed():
    """pyproject.toml lists the packages by hand (the folder training/ installs as router_ml.training):
    a new folder that is not listed would be missing from a wheel."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed = set(project["packages"])
    folders = {module_name(init) for folder in PACKAGES for init in (ROOT / folder).rglob("__init__.py")}
    assert folders == listed
    assert project["package-dir"]["router_ml.training"] == "training"


def test_nothing_imports_the_integrations_and_router_ml_does_not_import_litellm():
    assert sorted(m for m, deps in GRAPH.items() if not m.startswith("router_ml.integrations")
                  for d in deps if d.startswith("router_ml.integrations")) == []
    import subprocess
    import sys

    code = ("import sys, router_ml, router_ml.serve.app, router_ml.serve.gateway, router_ml.serve.sessions; "
            "print('litellm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
