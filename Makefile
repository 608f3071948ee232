# Two commands set everything up on a fresh machine:
#   make demo   create .venv, install, train on the synthetic demo data, evaluate, log to MLflow, set @champion, route
#   make test   install what the tests need and run them all, fast tier first (CI: .ci/run runs `make lint docs test`)
# `make docs` builds the documentation site into site/ (mkdocs build --strict).
# While working: `make test-fast` (unit tests, no real embedding model or processes) and `make lint`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# A CPU build of torch; override (e.g. TORCH_SPEC="torch") on machines with a GPU.
TORCH_SPEC ?= torch==2.13.0
export MLFLOW_DISABLE_TELEMETRY := true
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test test-fast lint docs clean-demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e '.[test,spark,docs,litellm]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/router-ml demo-data --out data/demo
	$(BIN)/router-ml train --outcomes data/demo/outcomes.csv --catalog data/demo/catalog.yaml --embedder-kind static \
		--out models/demo --overwrite --register router-ml-demo --report reports/demo
	$(BIN)/router-ml evaluate --router models:/router-ml-demo/latest --outcomes data/demo/holdout.csv \
		--catalog data/demo/catalog.yaml --report reports/demo-holdout
	$(BIN)/router-ml promote router-ml-demo latest --alias champion --outcomes data/demo/holdout.csv
	$(BIN)/router-ml route --router models/demo --input data/demo/examples.jsonl --format table
	$(BIN)/router-ml route --router models/demo --input data/demo/examples.jsonl --format table --quality-target 0.5
	$(BIN)/router-ml replay --router models/demo --outcomes data/demo/holdout.csv --policy data/policy.example.yaml \
		--policy learned-cascade

# Fast tier first (unit tests, stop at the first failure), then the slow tier (real model,
# processes, data sets). Either tier collecting no test exits 5, which fails here too.
test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -x
	$(BIN)/python -m pytest -m slow

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

clean-demo:
	rm -rf models/demo reports data/demo/outcomes.csv data/demo/holdout.csv data/demo/catalog.yaml \
		data/demo/catalog-local.yaml
