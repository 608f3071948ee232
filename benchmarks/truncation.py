"""How to cut prompts longer than the embedder's window: head, tail or head_tail.

    .venv/bin/python -m benchmarks.truncation [--workdir build/benchmarks] [--out benchmarks/results]

all-MiniLM-L6-v2 sees 256 tokens. On the real sets about 9 % of prompts are longer
(few-shot examples, reading passages), and those put the question at the end. For each
real set and each strategy this trains the default pipeline with a fixed head
(per-model logistic regression, C=0.1, so only the embedding changes) and reports the
test routing metrics, overall and on the long prompts alone. The embedding cache is
keyed by the text the model saw, so prompts that fit the window are embedded once for
all three strategies.

Writes results/truncation.md and results/truncation.json.
"""

from __future__ import annotations

import sys

import numpy as np

from benchmarks.datasets import prepare, test_data
from benchmarks.harness import benchmark_parser, write_results
from router_ml import load_router
from router_ml.core.embedders import TRUNCATIONS


def long_prompt_validation(bench, truncation: str, cache_dir, tokenizer) -> dict:
    """5-fold out-of-fold AIQ on the long training prompts (more of them than on the test side)."""
    from router_ml.core.catalog import load_catalog
    from router_ml.core.embedders.sentence_transformer import SentenceTransformerEmbedder
    from router_ml.training.data.outcomes import read_outcomes, split_prompts, to_routing_data
    from router_ml.training.embed.cache import DiskCachedEmbedder
    from router_ml.training.evaluate import metrics
    from router_ml.training.fit.selection import Candidate, fold_ids, out_of_fold, policy_costs, single_points, sweep

    catalog = load_catalog(bench.catalog) if bench.catalog else None
    data = to_routing_data(read_outcomes(bench.train), catalog)
    if not bench.test:
        data, _ = split_prompts(data, bench.test_size, bench.seed)
    embedder = DiskCachedEmbedder(SentenceTransformerEmbedder(truncation=truncation), cache_dir)
    X = embedder.encode(data.prompts)
    proba = out_of_fold(Candidate("per_model", {"C": 0.1}), X, data, fold_ids(len(data), 5, 0))
    lengths = np.array([len(tokenizer(p, add_special_tokens=False, verbose=False)["input_ids"]) for p in data.prompts])
    rows = np.flatnonzero((lengths > 254) & data.complete)
    long = data.subset(rows)
    est = policy_costs(data)
    curve = sweep(proba[rows], est[rows], float(est.mean(axis=0).max()), long.scores, long.costs)
    singles = single_points(long)
    aiq = metrics.aiq(curve.points(), singles)
    zero = metrics.zero_router_aiq(singles)
    oracle = metrics.oracle_aiq(singles, np.array([
        long.costs[np.arange(len(long)), metrics.oracle_choice(long.scores, long.costs)].mean(),
        long.scores.max(axis=1).mean()]))
    return {"prompts": int(len(rows)), "aiq": aiq, "gap_closed": metrics.gap_closed(aiq, zero, oracle)}


def main(argv=None) -> int:
    args = benchmark_parser("truncation", __doc__).parse_args(argv)
    from router_ml.core.embedders.sentence_transformer import SentenceTransformerEmbedder
    from router_ml.training.evaluate.evaluation import evaluate_router
    from router_ml.training.fit.pipeline import TrainConfig, train

    tokenizer = SentenceTransformerEmbedder().tokenizer
    results, lines = {}, []
    for bench in prepare(args.workdir):
        test = test_data(bench)
        lengths = np.array([len(tokenizer(p, add_special_tokens=False, verbose=False)["input_ids"]) for p in test.prompts])
        long_rows = np.flatnonzero(lengths > 254)
        results[bench.name] = {"test_prompts": len(test), "long_prompts": int(len(long_rows))}
        for truncation in TRUNCATIONS:
            out = args.workdir / "routers" / f"{bench.name}-trunc-{truncation}"
            config = TrainConfig(
                outcomes=str(bench.train), test_outcomes=str(bench.test) if bench.test else None,
                catalog=str(bench.catalog) if bench.catalog else None, out=str(out), overwrite=True,
                test_size=bench.test_size, seed=bench.seed, strategy="per_model", truncation=truncation,
                mlflow=False, cache_dir=args.cache_dir, router_version=f"trunc-{truncation}",
            )
            config_candidates = {"strategy": "per_model"}
            tag = f"{bench.name}/{truncation}"
            result = train(config, log=lambda m, tag=tag: print(f"  [{tag}] {m}", flush=True), progress=False)
            router = load_router(out)
            overall = result.report["metrics"]
            on_long = evaluate_router(router, test.subset(long_rows))["metrics"] if len(long_rows) else {}
            validation = long_prompt_validation(bench, truncation, args.cache_dir, tokenizer)
            results[bench.name][truncation] = {"overall": overall, "long": on_long, "long_validation": validation,
                                               **config_candidates}
            print(f"{bench.name} {truncation}: AIQ {overall['aiq']:.4f}, long-prompt AIQ {on_long.get('aiq', float('nan')):.4f}", flush=True)

    lines = ["# Truncation strategies (benchmarks/truncation.py)", "",
             "Head: per-model logistic regressions, C chosen by validation AIQ; only the truncation changes.", "",
             "Long prompts are those over the 254-token window. The last two columns are 5-fold out-of-fold",
             "figures on the long *training* prompts (per-model C=0.1), which are more numerous than the long test prompts.", "",
             "| data set | strategy | test AIQ (all) | gap closed (all) | APGR (all) | test AIQ (long) | gap closed (long) | long test prompts | validation gap closed (long) | long training prompts |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, res in results.items():
        for truncation in TRUNCATIONS:
            r = res[truncation]
            lines.append(
                f"| {name} | {truncation} | {r['overall']['aiq']:.4f} | {r['overall']['gap_closed']:.3f} | "
                f"{r['overall'].get('apgr', float('nan')):.3f} | {r['long'].get('aiq', float('nan')):.4f} | "
                f"{r['long'].get('gap_closed', float('nan')):.3f} | {res['long_prompts']} of {res['test_prompts']} | "
                f"{r['long_validation']['gap_closed']:.3f} | {r['long_validation']['prompts']} |"
            )
    return write_results(args.out, "truncation", "\n".join(lines), results)


if __name__ == "__main__":
    sys.exit(main())
