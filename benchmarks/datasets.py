"""The real data sets the benchmarks use, imported with the project's own importers.

The files sit in ../shared/data beside the checkout (see its README for sources and
licences); nothing from them is copied into the repository. Each set is imported into
a work directory and described by a `Benchmark`: what to train on, what to test on.

- RouteLLM MMLU (two models): RouteLLM's contaminated prompts dropped, as its own
  evaluation does; each call costs the flat per-call average of the RouteLLM paper
  (appendix D: GPT-4 $10/$30 and Mixtral 8x7B $0.24 per million input/output tokens,
  about 95 input and 264 output tokens per request), so cost is proportional to the
  share of GPT-4 calls, RouteLLM's own cost axis. Seeded 50/50 split by prompt.
- RouteLLM GSM8K (two models, with their answers): contaminated prompts dropped, the
  same flat per-call costs, seeded 50/50 split by prompt.
- LLMRouter (nine models): its train.json / test.json, the 119 questions in both
  dropped from the test side, prices from its default_llm.json, tasks from query_data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import REPO

SHARED = REPO.parent / "shared" / "data"
GPT4, MIXTRAL = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
CALL_COST = {GPT4: (95 * 10.0 + 264 * 30.0) / 1e6, MIXTRAL: (95 + 264) * 0.24 / 1e6}


@dataclass
class Benchmark:
    name: str
    train: Path
    test: Path | None = None  # None: split `train` with test_size and seed
    catalog: Path | None = None
    test_size: float = 0.0
    seed: int = 0


def prepare(workdir: Path, log=print) -> list[Benchmark]:
    """Import the real sets into `workdir` (once) and describe them."""
    from router_ml.training.data.importers import run_import

    if not SHARED.is_dir():
        raise SystemExit(f"real data not found at {SHARED}; the benchmarks need ../shared/data beside the checkout")
    workdir.mkdir(parents=True, exist_ok=True)
    quiet = lambda _: None  # noqa: E731
    mmlu = workdir / "mmlu.parquet"
    if not mmlu.exists():
        root = SHARED / "routellm" / "mmlu"
        run_import("routellm", root, mmlu, contaminated=root / "contaminated_prompts.jsonl", call_costs=CALL_COST, log=quiet)
    gsm8k = workdir / "gsm8k.parquet"
    if not gsm8k.exists():
        root = SHARED / "routellm" / "gsm8k"
        run_import("routellm", root / "gsm8k_responses.csv", gsm8k, contaminated=root / "contaminated_prompts.jsonl",
                   call_costs=CALL_COST, log=quiet)
    llm = SHARED / "llmrouter"
    train, test, catalog = workdir / "llmrouter_train.parquet", workdir / "llmrouter_test.parquet", workdir / "llmrouter.yaml"
    if not (train.exists() and test.exists() and catalog.exists()):
        run_import("llmrouter", llm / "dcrouter_preprocessed" / "train.json", train, overwrite=True,
                   prices=llm / "llm_candidates" / "default_llm.json", catalog_out=catalog,
                   tasks=llm / "query_data" / "default_query_train.jsonl", log=quiet)
        run_import("llmrouter", llm / "dcrouter_preprocessed" / "test.json", test, overwrite=True,
                   tasks=llm / "query_data" / "default_query_test.jsonl", log=quiet)
    return [
        Benchmark("routellm-mmlu", mmlu, test_size=0.5, seed=0),
        Benchmark("routellm-gsm8k", gsm8k, test_size=0.5, seed=0),
        Benchmark("llmrouter", train, test=test, catalog=catalog),
    ]


def test_data(bench: Benchmark):
    """The benchmark's test prompts as RoutingData (the ones every router is evaluated on): its test file
    without the prompts also in training, or the seeded split of its one file."""
    from router_ml.core.catalog import load_catalog
    from router_ml.training.data.outcomes import read_outcomes, split_prompts, to_routing_data

    catalog = load_catalog(bench.catalog) if bench.catalog else None
    if bench.test:
        train_ids = set(read_outcomes(bench.train)["prompt_id"])
        frame = read_outcomes(bench.test)
        return to_routing_data(frame[~frame["prompt_id"].isin(train_ids)], catalog)
    _, test = split_prompts(to_routing_data(read_outcomes(bench.train), catalog), bench.test_size, bench.seed)
    return test
