"""The benchmarks as a code base: each is a module run as `python -m benchmarks.NAME` with a
`main(argv)`, imports nothing heavy until it runs, answers --help, and writes its results only
through benchmarks/harness.py; and the harness itself (targets, exit code, atomic result files,
the markdown's targets section). Nothing here runs a benchmark."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import harness
from benchmarks.harness import Target, benchmark_parser, exit_code, targets_markdown, write_result_file, write_results

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "benchmarks"
SHARED_MODULES = {"__init__", "datasets", "harness"}  # shared code, not benchmarks
BENCHMARKS = sorted(p.stem for p in FOLDER.glob("*.py") if p.stem not in SHARED_MODULES)
# Importing a benchmark (and so asking it for --help) must not pull these in: they cost seconds.
HEAVY = ("torch", "sentence_transformers", "transformers", "onnxruntime", "onnx", "sklearn", "scipy", "pandas",
         "pyarrow", "pyspark", "mlflow", "matplotlib")


def tree(name: str) -> ast.Module:
    return ast.parse((FOLDER / f"{name}.py").read_text(encoding="utf-8"))


def calls(module: ast.Module, function: str) -> list[ast.Call]:
    return [n for n in ast.walk(module) if isinstance(n, ast.Call)
            and (getattr(n.func, "id", None) == function or getattr(n.func, "attr", None) == function)]


def test_every_benchmark_is_found():
    assert set(BENCHMARKS) >= {"quality", "truncation", "latency", "service_load", "policies", "cascades", "retrain",
                               "int8_partial", "spark_scale"}


def test_benchmarks_import_light_and_have_main():
    """One fresh interpreter imports every benchmark: none runs anything or imports a heavy library at import."""
    probe = (
        "import importlib, inspect, json, sys\n"
        f"names, heavy = {BENCHMARKS!r}, {HEAVY!r}\n"
        "mains = {}\n"
        "for name in names:\n"
        "    main = getattr(importlib.import_module('benchmarks.' + name), 'main', None)\n"
        "    mains[name] = list(inspect.signature(main).parameters) if callable(main) else None\n"
        "print(json.dumps({'mains': mains, 'heavy': [m for m in heavy if m in sys.modules]}))\n"
    )
    run = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["heavy"] == [], f"importing the benchmarks imported {found['heavy']}: import them where they are used"
    assert found["mains"] == {name: ["argv"] for name in BENCHMARKS}, "each benchmark has main(argv)"


@pytest.mark.parametrize("name", BENCHMARKS)
def test_help_through_python_m(name):
    run = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"usage: python -m benchmarks.{name} ")
    for option in ("--workdir", "--out", "--cache-dir"):
        assert option in run.stdout
    doc = ast.get_docstring(tree(name))
    assert doc.splitlines()[0] in run.stdout


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_source_uses_the_harness(name):
    source = (FOLDER / f"{name}.py").read_text(encoding="utf-8")
    module = tree(name)
    assert "sys.path" not in source, "run as python -m benchmarks.NAME from the repository root: no path hacks"
    assert "noqa: E402" not in source
    assert f".venv/bin/python -m benchmarks.{name}" in ast.get_docstring(module), "the usage line says how to run it"
    imported = {alias.name for n in ast.walk(module) if isinstance(n, ast.ImportFrom) for alias in n.names}
    assert not imported & {"atomic_write_text", "atomic_write_bytes", "to_json_text"}, \
        "results are written by benchmarks.harness only"
    parsers = calls(module, "benchmark_parser")
    assert [c.args[0].value for c in parsers] == [name], "one parser, named after the module"
    written = [c.args[1].value for c in calls(module, "write_results")
               if len(c.args) > 1 and isinstance(c.args[1], ast.Constant)]
    assert len(written) == len(calls(module, "write_results")), "result names are literal"
    assert name in written, "its results are named after it"
    assert not calls(module, "ArgumentParser")


# The harness.

def test_target_normalizes_and_validates():
    t = Target("x >= 1: 2", {"value": np.float32(2.0), "ok": np.bool_(True), "missing": None}, np.bool_(True))
    assert t.passed is True and t.measured == {"value": 2.0, "ok": True, "missing": None}
    assert type(t.measured["value"]) is float
    assert Target("n: 3", np.int64(3), False).measured == 3.0
    with pytest.raises(ValueError, match="one non-empty line"):
        Target("", 1.0, True)
    with pytest.raises(ValueError, match="one non-empty line"):
        Target("two\nlines", 1.0, True)
    with pytest.raises(TypeError, match="measured 'speed'.*got str '12/s'"):
        Target("speed", {"speed": "12/s"}, True)


def test_exit_code():
    assert exit_code([]) == 0
    assert exit_code([Target("a", 1.0, True), Target("b", 2.0, True)]) == 0
    assert exit_code([Target("a", 1.0, True), Target("b", 2.0, False)]) == 1


def test_write_results_with_targets(tmp_path):
    shown = []
    targets = [Target("APGR >= 0.66: 0.670", 0.67, True), Target("cost <= 0.5: nan", float("nan"), False)]
    code = write_results(tmp_path / "out", "demo", "# Demo\n\n| a |\n|---|\n| 1 |\n", {"figure": float("inf"), "n": 3},
                         targets, show=shown.append)
    assert code == 1
    md = (tmp_path / "out" / "demo.md").read_text()
    assert md == ("# Demo\n\n| a |\n|---|\n| 1 |\n\n## Targets\n- PASS: APGR >= 0.66: 0.670\n"
                  "- FAIL: cost <= 0.5: nan\n")
    assert shown == [md]
    strict = json.loads((tmp_path / "out" / "demo.json").read_text(),
                        parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert strict == {"figure": None, "n": 3, "targets": [
        {"target": "APGR >= 0.66: 0.670", "pass": True, "measured": 0.67},
        {"target": "cost <= 0.5: nan", "pass": False, "measured": None}]}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["demo.json", "demo.md"]  # no temporary left


def test_write_results_without_targets(tmp_path):
    assert write_results(tmp_path, "plain", "# Plain\n\ntext", {"rows": [1, 2]}, show=lambda _: None) == 0
    assert (tmp_path / "plain.md").read_text() == "# Plain\n\ntext\n"
    assert json.loads((tmp_path / "plain.json").read_text()) == {"rows": [1, 2]}


def test_write_results_refuses_what_it_cannot_write_faithfully(tmp_path):
    with pytest.raises(ValueError, match="already hold 'targets'"):
        write_results(tmp_path, "x", "# X", {"targets": []}, [Target("a", 1.0, True)], show=lambda _: None)
    with pytest.raises(ValueError, match="without folders or suffix"):
        write_results(tmp_path, "../x", "# X", {}, show=lambda _: None)
    with pytest.raises(ValueError, match="without folders or suffix"):
        write_results(tmp_path, "x.md", "# X", {}, show=lambda _: None)
    with pytest.raises(TypeError, match="Target records"):
        write_results(tmp_path, "x", "# X", {}, [("label", True)], show=lambda _: None)
    with pytest.raises(ValueError, match="without folders"):
        write_result_file(tmp_path, "sub/rules.yaml", "")
    assert list(tmp_path.iterdir()) == []


def test_result_files_are_replaced_atomically(tmp_path, monkeypatch):
    """A write that fails at the last step leaves the previous results whole, and no temporary behind."""
    write_results(tmp_path, "demo", "# Old", {"old": 1}, [Target("old", 1.0, True)], show=lambda _: None)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("router_ml.core.files.os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_results(tmp_path, "demo", "# New", {"new": 2}, [Target("new", 2.0, False)], show=lambda _: None)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize("name", ["quality", "latency", "service_load", "cascades"])
def test_committed_results_keep_the_targets_format(name):
    """The committed results' targets sections are what targets_markdown writes from their JSON."""
    results = ROOT / "benchmarks" / "results"
    recorded = json.loads((results / f"{name}.json").read_text())["targets"]
    targets = [Target(t["target"], t.get("measured"), t["pass"]) for t in recorded]
    assert (results / f"{name}.md").read_text().endswith("\n\n" + targets_markdown(targets) + "\n")


def test_parser_defaults_and_options(tmp_path):
    parser = benchmark_parser("demo", "Demo benchmark.\n\nMore.")
    args = parser.parse_args([])
    assert (args.workdir, args.out, args.cache_dir) == (ROOT / "build" / "benchmarks", ROOT / "benchmarks" / "results",
                                                         None)
    assert harness.DEFAULT_OUT == ROOT / "benchmarks" / "results"
    args = parser.parse_args(["--workdir", str(tmp_path), "--out", "o", "--cache-dir", "c"])
    assert (args.workdir, args.out, args.cache_dir) == (tmp_path, Path("o"), "c")
    assert parser.prog == "python -m benchmarks.demo"


def test_live_loop_summarises_only_the_parts_that_ran():
    from benchmarks.live_loop import ONBOARD_MODEL, summarise

    onboarded = [{"split": 0, "outcomes": 405, "requests": 1600, "aiq": 0.6069, "reference_aiq": 0.6203,
                  "gap": 0.0134, "target_outcomes": 400, "served_to_new": 405, "in_router": True}]
    markdown, figures, targets = summarise([], [], [], onboarded)  # `--parts c`: no part (a) to tabulate
    assert f"## (c) Onboarding {ONBOARD_MODEL}" in markdown and "(a)" not in markdown
    assert set(figures) == {"c"} and [t.passed for t in targets] == [False]
