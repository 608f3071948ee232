"""notebooks/01-explore-routing.ipynb runs end to end on a fresh report and outcomes file."""

from pathlib import Path

import pytest

from router_ml import load_router
from router_ml.core.catalog import load_catalog
from router_ml.training.data.outcomes import read_outcomes, to_routing_data
from router_ml.training.evaluate.evaluation import evaluate_router, training_side
from router_ml.training.evaluate.report import write_report

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "01-explore-routing.ipynb"


@pytest.mark.slow
def test_explore_notebook_executes(trained_router_dir, demo_files, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    router = load_router(trained_router_dir)
    data = to_routing_data(read_outcomes(demo_files["holdout"]), load_catalog(demo_files["catalog"]))
    write_report(evaluate_router(router, data, training=training_side(router, log=lambda _: None)), tmp_path / "r")
    monkeypatch.setenv("ROUTER_ML_REPORT", str(tmp_path / "r" / "report.json"))
    monkeypatch.setenv("ROUTER_ML_OUTCOMES", str(demo_files["holdout"]))
    monkeypatch.setenv("ROUTER_ML_CATALOG", str(demo_files["catalog"]))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(str(o.get("data", {}).get("text/plain", "")) + o.get("text", "") for o in outputs)
    assert "report:" in text and "router" in text
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "math" in html  # the per-task table and the success-per-task table were displayed
