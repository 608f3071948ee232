import json
import subprocess
import sys

import pytest

from router_ml.cli import main


def run(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train", "--out", "x"], "Missing option '--outcomes'"),
        (["train", "--outcomes", "nope.csv", "--out", "x", "--no-mlflow"], "nope.csv: file not found"),
        (["train", "--outcomes", "o.csv", "--out", "x", "--test-size", "abc"], "'abc' is not a valid float"),
        (["route", "--router", "r"], "give either a PROMPT or --input"),
        (["route", "--router", "missing-dir", "hi"], "not a router directory"),
        (["import", "routellm", "missing"], "does not exist"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["train", "--outcomes", "o.csv", "--out", "x", "--map", "broken"], "--map: expected KEY=VALUE"),
        (["serve", "--router", "r", "--policy", "missing.yaml"],
         "'missing.yaml' does not exist: give a policy file (YAML) or learned-cascade"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys, args, fragment):
    code, out, err = run(capsys, *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("router-ml"), err
    assert fragment in err, err


def test_help_lists_every_layers_commands_without_heavy_imports():
    code = (
        "import sys; from router_ml.cli import main; code = main(['--help']); "
        "heavy = [m for m in ('torch', 'mlflow', 'sklearn', 'fastapi', 'pandas', 'router_ml.training.fit.pipeline') if m in sys.modules]; "
        "print('HEAVY', heavy); sys.exit(code)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout, result.stdout
    commands = {"route", "serve", "rules", "import", "demo-data", "train", "evaluate", "compare", "promote", "convert",
                "retrain", "replay"}
    listed = {line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines() if line.startswith("  ")}
    assert commands <= listed


def test_bad_quality_target_and_input_lines(capsys, trained_router_dir, tmp_path):
    code, _, err = run(capsys, "route", "--router", str(trained_router_dir), "--quality-target", "3", "hi")
    assert code == 2 and "quality_target" in err
    bad = tmp_path / "in.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": 5}\n')
    code, _, err = run(capsys, "route", "--router", str(trained_router_dir), "--input", str(bad))
    assert code == 2 and "line 2" in err


def test_batch_route_writes_jsonl(capsys, trained_router_dir, tmp_path):
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    # a blank line between prompts is refused (tests/core/test_route_command.py); one at the end is the file's end
    src.write_text('{"prompt": "What is 2 + 2?"}\n{"prompt": "Translate into Basque: hello"}\n\n')
    code, _, _ = run(capsys, "route", "--router", str(trained_router_dir), "--input", str(src), "--output", str(dst))
    assert code == 0
    rows = [json.loads(line) for line in dst.read_text().splitlines()]
    assert len(rows) == 2 and all({"line", "model", "confidence", "scores", "reason"} <= set(r) for r in rows)
    assert [r["line"] for r in rows] == [1, 2]


@pytest.mark.slow
def test_end_to_end_with_the_real_embedding_model(tmp_path):
    """demo-data -> train -> route -> evaluate, as a user runs them, with all-MiniLM-L6-v2."""
    cli = [sys.executable, "-m", "router_ml.cli"]
    env_run = dict(cwd=tmp_path, capture_output=True, text=True, timeout=900)
    step = subprocess.run(cli + ["demo-data", "--out", "demo", "--prompts", "240"], **env_run)
    assert step.returncode == 0, step.stderr
    step = subprocess.run(cli + ["train", "--outcomes", "demo/outcomes.csv", "--catalog", "demo/catalog.yaml",
                                 "--out", "router", "--cache-dir", "cache", "--folds", "3", "--json", "report.json"], **env_run)
    assert step.returncode == 0, step.stderr
    assert "router @ target" in step.stdout and (tmp_path / "mlflow.db").exists()
    manifest = json.loads((tmp_path / "router" / "manifest.json").read_text())
    assert manifest["embedder"]["kind"] == "sentence-transformers" and manifest["embedder"]["dim"] == 384
    step = subprocess.run(cli + ["route", "--router", "router", "Write a Python function that reverses a string."], **env_run)
    assert step.returncode == 0, step.stderr
    decision = json.loads(step.stdout)
    assert decision["model"] in manifest["models"] and 0 <= decision["confidence"] <= 1
    step = subprocess.run(cli + ["evaluate", "--router", "router", "--outcomes", "demo/holdout.csv",
                                 "--catalog", "demo/catalog.yaml", "--json", "eval.json"], **env_run)
    assert step.returncode == 0, step.stderr
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["prompts"] == 60 and report["noisy"] is True
    assert "only 60 prompts: noisy" in step.stdout
    # compare works across embedders: each router embeds the prompts its own way
    step = subprocess.run(cli + ["train", "--outcomes", "demo/outcomes.csv", "--catalog", "demo/catalog.yaml",
                                 "--out", "hashing", "--embedder-kind", "hashing", "--folds", "2", "--no-mlflow",
                                 "--no-baselines", "--router-version", "hashing-router"], **env_run)
    assert step.returncode == 0, step.stderr
    step = subprocess.run(cli + ["compare", "--router", "router", "--router", "hashing", "--outcomes", "demo/holdout.csv",
                                 "--catalog", "demo/catalog.yaml", "--report", "cmp", "--json", "cmp.json"], **env_run)
    assert step.returncode == 0, step.stderr
    compared = json.loads((tmp_path / "cmp.json").read_text())
    assert set(compared["routers"]) == {manifest["router_version"], "hashing-router"} and compared["prompts"] == 60


def test_the_table_format_aligns_long_model_names():
    from router_ml.core.cli import decisions_table
    from router_ml.core.decision import Decision

    def decision(model):
        return Decision(model=model, confidence=0.5, scores={model: 0.5}, reason="r", router_version="v",
                        quality_target=0.5, estimated_cost=1e-4)

    text = decisions_table(["first", "second"], [decision("llama-3.1-nemotron-51b-instruct"), decision("nano")], "v")
    rows = text.splitlines()[1:]
    assert rows[0].index(" p=") == rows[1].index(" p=")  # the columns after the model line up
    assert rows[1].strip().startswith("nano")


# -- serve ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_on_a_port_in_use_exits_2_before_creating_anything(trained_router_dir, tmp_path, workers):
    """Found in review: `serve` on a busy port printed "serving ... on http://...", created the audit
    database and its key, then exited 3 with uvicorn's message."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "router_ml.cli", "serve", "--router", str(trained_router_dir),
                               "--port", str(port), "--workers", workers], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("router-ml serve: error:"), proc.stderr
    assert f"127.0.0.1:{port} is in use" in proc.stderr and "--port" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no audit.sqlite, no audit.sqlite.key


def test_serve_help_says_what_the_audit_log_keeps(capsys, tmp_path):
    """Found in review: --audit-key-file's help named AUDIT.key where the store creates
    <database>.key, and --prompt-storage said sha256 where the log keeps an HMAC-SHA256 digest."""
    from router_ml.serve.audit import AuditStore

    code, out, _ = run(capsys, "serve", "--help")
    assert code == 0
    text = " ".join(out.split())
    AuditStore(tmp_path / "audit.sqlite").close()  # --audit's default name
    created = {p.name for p in tmp_path.iterdir()} - {"audit.sqlite", "audit.sqlite-wal", "audit.sqlite-shm"}
    assert created == {"audit.sqlite.key"} and "(audit.sqlite.key)" in text, text
    assert "HMAC-SHA256" in text and "sha256 + length" not in text
