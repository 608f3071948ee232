"""Which head-selection rule generalises: repeated splits of the training side only.

    .venv/bin/python -m benchmarks.selection_study [--splits 10] [--dev-size 0.25] [--sets gsm8k,mmlu,llmrouter]

The rule that picks the router's head (training/fit/selection.py) is itself a setting, and
the test side of the shared sets must not choose it. This study never opens the test side:
for each shared set it takes the prompts the benchmarks train on (benchmarks/datasets.py)
and splits them, many times with different seeds, into a development-train part and a
development-test part. On each split every candidate head is cross-validated on the
development-train part exactly as training does (`FoldPredictions`, cross-fitted Platt
scaling, the policy sweep), each rule picks a head from those figures alone, and every
candidate (and every average the rules can form) is fitted on the whole development-train
part and routed on the development-test part. So each rule, and each shipped baseline,
gets one held-out AIQ per split, on the same prompts.

The rules compared:

- **best** (the rule training ships): the highest out-of-fold AIQ among the candidates
  and the calibrated averages of the best 2 and 3 of different families.
- **per-model unless beaten**: "best", unless it fails to beat the plain per-model logistic
  router (C=1) out of fold by a paired 90 % interval above zero; then the plain router
  (`select_head(anchor=...)`).
- **blend unless beaten**: the same with the shipped blend (per-model logistic C=0.1 and
  kNN k=50) in the plain router's place.
- **best over 3 fold seeds**: "best" on the mean out-of-fold AIQ of three fold assignments.
- **best single**: the same without the averages.
- **average of families**: the calibrated average of the best candidate of every family
  (linear, label classifier, neighbours, SW kernel, MLP; a blend counts as linear and
  neighbours, so it stands in for both only when it is a family's best).
- **average unless beaten**: that average, unless the best candidate beats it out of fold
  with a paired 90 % interval above zero.

Figures: per set, each rule's mean held-out AIQ over the splits, and its difference from
each shipped baseline and from "best": the mean over splits with the 5th and 95th
percentiles of the per-split differences, and how many splits it was at least as good.
The splits share prompts, so the per-split differences are not independent: the spread is
a description, not a confidence interval.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.datasets import prepare
from benchmarks.harness import benchmark_parser, write_results

SETS = {"gsm8k": "routellm-gsm8k", "mmlu": "routellm-mmlu", "llmrouter": "llmrouter"}
RULES = ("best", "best single", "average of families", "average unless beaten", "best over 3 fold seeds",
         "per-model unless beaten", "blend unless beaten")
PER_MODEL = "per_model(C=1.0)"
BLEND = ("blend", {"C": 0.1, "k": 50})
FOLD_SEEDS = 3


def training_side(bench):
    """The prompts the benchmarks train the router on (never their test side)."""
    from router_ml.core.catalog import load_catalog
    from router_ml.training.data.outcomes import read_outcomes, split_prompts, to_routing_data

    catalog = load_catalog(bench.catalog) if bench.catalog else None
    data = to_routing_data(read_outcomes(bench.train), catalog)
    train, _ = split_prompts(data, bench.test_size, bench.seed)
    return train.subset(np.flatnonzero(train.complete))


def embed(prompts: list[str], cache_dir: str | None) -> np.ndarray:
    from router_ml.training.embed.cache import DiskCachedEmbedder
    from router_ml.training.fit.pipeline import TrainConfig, make_training_embedder

    config = TrainConfig(outcomes="unused", out="unused", cache_dir=cache_dir)
    return DiskCachedEmbedder(make_training_embedder(config, log=lambda _: None), cache_dir).encode(prompts)


def family_average(chooser, names: list[str]) -> str:
    """The calibrated average of the best candidate of every family among `names` (by out-of-fold AIQ)."""
    from router_ml.training.fit.selection import FAMILIES

    members, families = [], set()
    for name in sorted(names, key=lambda n: -chooser.aiq(n)):
        family = FAMILIES.get(chooser.scored[name].candidate.strategy, {name})
        if not family & families:
            members.append(name)
            families |= family
    return chooser.ensemble(members) if len(members) >= 2 else members[0]


def repeated_best(choosers) -> str:
    """The rule "best" on the mean out-of-fold AIQ over several fold assignments."""
    from router_ml.training.fit.selection import ENSEMBLE_SIZES, FAMILIES

    first = choosers[0]
    mean = lambda name: np.mean([c.aiq(name) for c in choosers])  # noqa: E731
    options = list(first.base)
    ranked = sorted(first.base, key=lambda n: -mean(n))
    for size in ENSEMBLE_SIZES:
        members, families = [], set()
        for name in ranked:
            family = FAMILIES.get(first.scored[name].candidate.strategy, {name})
            if not family & families:
                members.append(name)
                families |= family
            if len(members) == size:
                options.append([c.ensemble(members) for c in choosers][0])
                break
    return max(options, key=lambda n: (mean(n), -options.index(n)))


def pick(rule: str, chooser, boot, strong, choosers=()) -> str:
    if rule == "best":
        return chooser.best()
    if rule == "best over 3 fold seeds":
        return repeated_best(choosers)
    if rule == "blend unless beaten":
        return chooser.choose()  # the chooser is anchored on BLEND
    if rule == "per-model unless beaten":
        best = chooser.best()
        return best if best == PER_MODEL or chooser.compare(best, PER_MODEL).lower > 0 else PER_MODEL
    if rule == "best single":
        return max(chooser.base, key=lambda n: (chooser.aiq(n), -chooser.base.index(n)))
    average = family_average(chooser, chooser.base)
    if rule == "average of families":
        return average
    best = chooser.best()
    if best == average:
        return average
    margin = boot.compare(chooser.scored[best].curve_of(strong), chooser.scored[average].curve_of(strong), "aiq")
    return best if margin.lower > 0 else average


def one_split(X: np.ndarray, data, dev: np.ndarray, seed: int) -> dict[str, float]:
    """Held-out AIQ of each rule's pick and each baseline, on the development-test rows `dev`."""
    from router_ml.core.decision import choose as route
    from router_ml.core.heads import PlattCalibration
    from router_ml.training.evaluate import metrics
    from router_ml.training.evaluate.paired import PairedBootstrap
    from router_ml.training.fit.selection import (
        BASELINE_CANDIDATES,
        SWEEP_POINTS,
        Candidate,
        FoldPredictions,
        _Chooser,
        default_candidates,
        fold_ids,
        lam_grid,
        policy_costs,
    )

    fit_rows = np.setdiff1d(np.arange(len(data)), dev)
    train, test = data.subset(fit_rows), data.subset(dev)
    candidates, _ = default_candidates(train.success.size)
    est = policy_costs(train)
    cost_scale = float(est.mean(axis=0).max())
    k_max = max([int(c.params.get("k", 25)) for c in candidates if c.strategy in ("knn", "blend")] + [0])
    choosers = []
    for repeat in range(FOLD_SEEDS):
        fold_of = fold_ids(len(train), 5, seed + 7919 * repeat)
        predictions = FoldPredictions(X[fit_rows], train, fold_of, k_max=k_max)
        chooser = _Chooser(train, fold_of, train.complete, est, cost_scale, anchor=Candidate(*BLEND).name, seed=seed)
        for candidate in candidates:
            chooser.add(candidate, predictions.raw(candidate))
            chooser.base.append(candidate.name)
        choosers.append(chooser)
    chooser = choosers[0]
    strong = chooser._strong()
    boot = PairedBootstrap(chooser.scores, chooser.costs, resamples=200, seed=seed, strong=strong)
    picks = {rule: pick(rule, chooser, boot, strong, choosers) for rule in RULES}

    test_costs = policy_costs(test)
    singles = np.column_stack([test.costs.mean(0), test.scores.mean(0)])
    rows = np.arange(len(test))
    calibrated: dict[str, np.ndarray] = {}

    def test_proba(name: str) -> np.ndarray:
        if name not in calibrated:
            scored = chooser.scored[name]
            if scored.candidate.strategy == "ensemble":
                members = [Candidate(k, p).name for k, p in scored.candidate.params["members"]]
                raw = np.mean([test_proba(m) for m in members], axis=0)
            else:
                head = scored.candidate.make().fit(X[fit_rows], train.success, costs=train.costs)
                raw = head.predict_proba(X[dev])
            calibrated[name] = PlattCalibration().fit(scored.raw, train.success).transform(raw)
        return calibrated[name]

    def held_out_aiq(name: str) -> float:
        proba = test_proba(name)
        points = []
        for lam in lam_grid(SWEEP_POINTS):
            c = route(proba, test_costs, lam, cost_scale)
            points.append((test.costs[rows, c].mean(), test.scores[rows, c].mean()))
        return metrics.aiq(np.array(points), singles)

    figures = {f"rule: {rule}": held_out_aiq(name) for rule, name in picks.items()}
    for label, (kind, params) in BASELINE_CANDIDATES.items():
        if Candidate(kind, params).name in chooser.scored:
            figures[f"baseline: {label}"] = held_out_aiq(Candidate(kind, params).name)
    figures["picks"] = picks
    return figures


def study(name: str, X: np.ndarray, data, splits: int, dev_size: float, log) -> dict:
    per_split = []
    for s in range(splits):
        started = time.perf_counter()
        rng = np.random.default_rng(1000 + s)
        dev = np.sort(rng.permutation(len(data))[: int(round(dev_size * len(data)))])
        per_split.append(one_split(X, data, dev, seed=s))
        log(f"{name} split {s + 1}/{splits} ({time.perf_counter() - started:.0f} s): "
            + ", ".join(f"{rule} -> {per_split[-1]['picks'][rule]}" for rule in RULES))
    labels = [k for k in per_split[0] if k != "picks"]
    values = {k: np.array([f[k] for f in per_split]) for k in labels}
    summary = {"splits": splits, "prompts": len(data), "dev_prompts": int(round(dev_size * len(data))),
               "mean_aiq": {k: float(v.mean()) for k, v in values.items()}, "differences": {},
               "picks": [f["picks"] for f in per_split]}
    for rule in RULES:
        ours = values[f"rule: {rule}"]
        summary["differences"][rule] = {
            other: {"mean": float((ours - values[other]).mean()),
                    "p05": float(np.percentile(ours - values[other], 5)),
                    "p95": float(np.percentile(ours - values[other], 95)),
                    "at_least_as_good": int((ours >= values[other] - 1e-12).sum())}
            for other in labels if other != f"rule: {rule}"}
    return summary


def markdown(results: dict, splits: int, dev_size: float) -> str:
    lines = ["# Head-selection rules on repeated splits of the training side (benchmarks/selection_study.py)", "",
             f"{splits} seeded splits per set, {dev_size:.0%} of the training prompts held out each time; the test "
             "side is never read. Each cell: the rule's held-out AIQ minus the other's, mean over splits "
             "[5th, 95th percentile of the per-split differences] (splits at least as good / splits).", ""]
    for name, summary in results.items():
        labels = list(summary["mean_aiq"])
        lines += [f"## {name}: {summary['prompts']} training prompts, {summary['dev_prompts']} held out per split", "",
                  "| held-out AIQ, mean over splits | " + " | ".join(labels) + " |",
                  "|---|" + "---|" * len(labels),
                  "| | " + " | ".join(f"{summary['mean_aiq'][k]:.4f}" for k in labels) + " |", "",
                  "| rule minus | " + " | ".join(k for k in labels if not k.startswith("rule: best")
                                                   or k == "rule: best") + " |"]
        others = [k for k in labels if not k.startswith("rule: best") or k == "rule: best"]
        lines.append("|---|" + "---|" * len(others))
        for rule in RULES:
            cells = []
            for other in others:
                d = summary["differences"][rule].get(other)
                cells.append("" if d is None else f"{d['mean']:+.4f} [{d['p05']:+.4f}, {d['p95']:+.4f}] "
                                                  f"({d['at_least_as_good']}/{summary['splits']})")
            lines.append(f"| {rule} | " + " | ".join(cells) + " |")
        lines += ["", "Picks per split:", ""]
        for rule in RULES:
            chosen = [p[rule] for p in summary["picks"]]
            counts = {c: chosen.count(c) for c in dict.fromkeys(chosen)}
            lines.append(f"- {rule}: " + "; ".join(f"{c} x{n}" for c, n in counts.items()))
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser("selection_study", __doc__)
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--dev-size", type=float, default=0.25)
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of {', '.join(SETS)}")
    args = parser.parse_args(argv)
    wanted = [SETS[s.strip()] for s in args.sets.split(",") if s.strip()]
    results = {}
    for bench in prepare(args.workdir):
        if bench.name not in wanted:
            continue
        data = training_side(bench)
        X = embed(data.prompts, args.cache_dir)
        results[bench.name] = study(bench.name, X, data, args.splits, args.dev_size, log=print)
    return write_results(Path(args.out), "selection_study", markdown(results, args.splits, args.dev_size),
                         {"splits": args.splits, "dev_size": args.dev_size, "sets": results})


if __name__ == "__main__":
    sys.exit(main())
