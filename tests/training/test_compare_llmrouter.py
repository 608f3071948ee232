"""`compare` on real data: two routers with different heads on the LLMRouter set."""

import json
import subprocess
import sys

import pytest

from tests.support.data import shared_data

pytestmark = pytest.mark.slow


def cli(*args, cwd):
    result = subprocess.run([sys.executable, "-m", "router_ml.cli", *args], cwd=cwd, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_compare_two_heads_on_llmrouter(tmp_path):
    root = shared_data("llmrouter")
    cli("import", "llmrouter", str(root / "dcrouter_preprocessed" / "train.json"), "--prices",
        str(root / "llm_candidates" / "default_llm.json"), "--catalog-out", "catalog.yaml", "--out", "train.parquet",
        cwd=tmp_path)
    cli("import", "llmrouter", str(root / "dcrouter_preprocessed" / "test.json"), "--out", "test.parquet", cwd=tmp_path)
    for strategy in ("per_model", "knn"):
        cli("train", "--outcomes", "train.parquet", "--test-outcomes", "test.parquet", "--catalog", "catalog.yaml",
            "--out", strategy, "--strategy", strategy, "--embedder-kind", "hashing", "--folds", "2", "--no-mlflow",
            "--no-baselines", "--cache-dir", "cache", "--router-version", strategy, cwd=tmp_path)
    out = cli("compare", "--router", "per_model", "--router", "knn", "--outcomes", "test.parquet", "--catalog",
              "catalog.yaml", "--report", "cmp", "--json", "cmp.json", cwd=tmp_path)
    png = tmp_path / "cmp" / "compare_curves.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000
    summary = json.loads((tmp_path / "cmp.json").read_text())
    assert summary["prompts"] == 381  # 500 test questions minus the 119 also in train.json
    table = out.split("\n\n")[0]  # the figures; the paired differences follow in a table of their own
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| metric")]
    assert "paired bootstrap intervals" in out
    assert len(rows) == len(summary["metrics"])
    for row in rows:
        key, *values = [c.strip() for c in row.strip("|").split("|")]
        for label, shown in zip(["per_model", "knn"], values):
            number = summary["routers"][label][key]
            assert shown == ("n/a" if number is None else format(number, ".4g" if key == "default_mean_cost" else ".4f"))
