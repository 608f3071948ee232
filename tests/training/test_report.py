import json
import re

import pytest

from router_ml import load_router
from router_ml.core.catalog import load_catalog
from router_ml.training.data.outcomes import read_outcomes, to_routing_data
from router_ml.training.evaluate.evaluation import evaluate_router, training_side
from router_ml.training.evaluate.report import comparison, comparison_text, write_comparison, write_report


@pytest.fixture(scope="module")
def report(trained_router_dir, demo_files):
    router = load_router(trained_router_dir)
    data = to_routing_data(read_outcomes(demo_files["holdout"]), load_catalog(demo_files["catalog"]))
    return evaluate_router(router, data, training=training_side(router, log=lambda _: None))


def test_report_folder(report, tmp_path):
    out = write_report(report, tmp_path / "report")
    for name in ("curves.png", "reliability.png", "route_mix.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    summary = (out / "summary.md").read_text()
    assert "| kNN k=25 |" in summary and "## Per task" in summary and "![cost-quality curves](curves.png)" in summary
    saved = json.loads((out / "report.json").read_text())
    assert saved["metrics"]["aiq"] == pytest.approx(report["metrics"]["aiq"])


def test_comparison_table_equals_its_json(report, tmp_path):
    other = json.loads(json.dumps(report))
    other["router_version"] = "other"
    other["metrics"]["aiq"] -= 0.01
    out, summary = write_comparison({"a": report, "b": other}, tmp_path / "cmp")
    assert (out / "compare_curves.png").stat().st_size > 5000
    saved = json.loads((out / "compare.json").read_text())
    text = comparison_text(saved)
    for row in text.splitlines()[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        key, values = cells[0], cells[1:]
        for label, shown in zip(["a", "b"], values):
            number = saved["routers"][label][key]
            assert shown == ("n/a" if number is None else format(number, ".4g" if key == "default_mean_cost" else ".4f"))
    assert comparison({"a": report})["routers"]["a"]["aiq"] == report["metrics"]["aiq"]
    assert re.search(r"\| aiq \| [0-9.]+ \| [0-9.]+ \|", (out / "compare.md").read_text())
