"""Judging routers from a live log: which off-policy estimator, which exploration design (issue #21).

    .venv/bin/python -m benchmarks.ope_study [--workdir build/benchmarks] [--out benchmarks/results]
                                             [--quick] [--skip-onboarding] [--report-only]

(The estimators, reward models and exploration designs it chose now live in the product:
router_ml.core.off_policy and router_ml.policy.exploration; benchmarks/live_loop.py checks them
through the service.)

In production each routed request shows only the outcome of the model it went to. This
study simulates that loop offline on LLMRouter's nine models (5,989 prompts with every
model's outcome, benchmarks/datasets.py), so the truth, which the estimators never see,
is known:

1. For each of SPLITS seeded splits of the prompts: TRAFFIC_PROMPTS are the live
   traffic; CHAMPION_PROMPTS train the champion (per-model heads); the rest ("elsewhere")
   train a router of another kind (cheapest-successful head), a deliberately worse one
   (kNN on WORSE_PROMPTS of them) and a better one (the pipeline's automatic head choice
   on the champion's and the elsewhere prompts together). No router trains on the
   traffic. Training is the project's own pipeline (training/fit/pipeline.py).
2. For each of LOGS_PER_SPLIT log seeds and each size n in SIZES, the champion serves n
   traffic prompts at its default target; with probability RATE a request is explored
   by an exploration design (benchmarks/ope/exploration.py). Only the served model's
   score and cost are revealed; the log keeps the logging policy's whole distribution
   and the champion's per-model P(success) and cost estimates (as the audit log can).
   Designs share their random numbers (the same prompts, the same uniform draws).
3. From the log alone, each estimator (benchmarks/ope/estimators.py, reward models
   cross-fitted over FOLDS folds of the log: benchmarks/ope/reward_models.py) estimates,
   for a target router, its mean score and mean cost at its default target and its AIQ
   over its target sweep (steps of SWEEP_STEP), with 90 % bootstrap intervals over
   requests (RESAMPLES draws, the same draws for every policy of a log; percentile and
   basic intervals both scored). The truth is the same figure on the same n prompts from
   their complete outcomes.
4. Retraining's decision, judged on the log: the paired bootstrap of the difference of
   DR terms (challenger minus champion, the same draws) gives a one-sided 95 % lower
   bound; the challenger is promoted when it is >= 0 (margin 0).
5. Onboarding a held-back model (benchmarks/ope/onboarding.py): AIQ against a router
   that had it from the start, by the number of its logged outcomes.

Writes results/ope_study.md (the tables) and results/ope_study.json (the same tables);
every record of the run goes to WORKDIR/ope/ope_study_records.json, from which
`--report-only` rebuilds both. Routers are trained once per split and kept in
WORKDIR/ope; embeddings come from the shared cache (training/embed/cache.py). The
whole run takes about 20 minutes on two shared cores. `--quick` runs one split, two log
seeds and two designs (a smoke run).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from benchmarks.datasets import prepare
from benchmarks.harness import benchmark_parser, write_result_file, write_results
from benchmarks.ope.designs import ExplorationDesign, logging_policy
from router_ml.core.off_policy.estimators import (
    LoggedTraffic,
    aiq_batch,
    basic_interval,
    bias_corrected,
    effective_sample_size,
    estimator_terms,
    importance_weights,
    percentile_interval,
    predicted_width,
    ratio,
    resample_counts,
)
from router_ml.core.off_policy.reward_models import cross_fit, embedding_rewards, logged_score_rewards

CHAMPION_PROMPTS = 1000
TRAFFIC_PROMPTS = 4000
WORSE_PROMPTS = 200
SPLITS = 4
LOGS_PER_SPLIT = 6
SIZES = (1000, 2000, 4000)
RATE = 0.1
RESAMPLES = 1000
FOLDS = 5
LEVEL = 0.9
PROMOTION_CONFIDENCE = 0.95
MAX_WEIGHT = 20.0
SWEEP_STEP = 0.02  # AIQ's target sweep (evaluation's is 0.01 plus the schedule's points: 3x the columns)
COMPONENTS = 64  # principal components of the embedding the reward models see
WIDTH_GOAL = 0.08
ONBOARDED = ("llama-3.1-nemotron-51b-instruct", "qwen2.5-7b-instruct")  # held back, then onboarded (part 5)
ONBOARDING_DRAWS = 3
SWEEP_DESIGN_TARGETS = (0.25, 0.5, 0.75, 0.9, 1.0)  # besides the default: the "sweep" design's utilities

# name: (prompts it trains on, head strategy)
ROUTERS = {
    "champion": ("champion", "per_model"),
    "elsewhere": ("elsewhere", "cheapest_successful"),
    "worse": ("worse", "knn"),
    "better": ("champion+elsewhere", "auto"),
}
TARGETS = ("champion", "elsewhere", "better")  # routers scored with every estimator (the others with the decision's)
CHALLENGERS = ("worse", "better", "elsewhere")  # judged against the champion for promotion

# label: (estimator, reward model); reward models: see reward_models()
SUITE = {
    "IPS": ("ips", None),
    "SNIPS": ("snips", None),
    "DM (logged P)": ("dm", "logged"),
    "DR (embedding)": ("dr", "embedding"),
    "DR (logged P)": ("dr", "logged"),
    "DR (logged P + embedding)": ("dr", "logged+embedding"),
    "DR (raw logged P, no fit)": ("dr", "raw"),
    "clipped DR (logged P, w<=20)": ("clipped_dr", "logged"),
}
DECISION_ESTIMATOR = "DR (logged P)"  # what the retrain decision and the design tables use
SHORT_SUITE = ("IPS", "SNIPS", DECISION_ESTIMATOR)  # designs other than FULL_SUITE_DESIGNS

DESIGNS = (
    ExplorationDesign("uniform (today)", RATE),
    ExplorationDesign("utility T=0.05 floor 0.3", RATE, "utility", 0.05, 0.3),
    ExplorationDesign("utility T=0.05 floor 0.1", RATE, "utility", 0.05, 0.1),
    ExplorationDesign("utility T=0.2 floor 0.3", RATE, "utility", 0.2, 0.3),
    ExplorationDesign("sweep utility T=0.05 floor 0.3", RATE, "utility", 0.05, 0.3, sweep=True),
    ExplorationDesign("closeness T=0.05 floor 0.3", RATE, "closeness", 0.05, 0.3),
    ExplorationDesign("utility T=0.05 floor 0.3, cost cap 0.1", RATE, "utility", 0.05, 0.3, max_extra_cost=0.1),
    ExplorationDesign("shadow: elsewhere, floor 0.3", RATE, "shadow", 0.05, 0.3),
    ExplorationDesign("shadow: all challengers, floor 0.3", RATE, "shadow", 0.05, 0.3),
    ExplorationDesign("shadow focused: elsewhere, floor 0.3, base 0.02", RATE, "shadow", 0.05, 0.3, focus=0.02),
    ExplorationDesign("shadow focused: all challengers, floor 0.3, base 0.02", RATE, "shadow", 0.05, 0.3,
                      focus=0.02),
)
SHADOWS = {"shadow: elsewhere, floor 0.3": ("elsewhere",),
           "shadow: all challengers, floor 0.3": ("elsewhere", "worse", "better"),
           "shadow focused: elsewhere, floor 0.3, base 0.02": ("elsewhere",),
           "shadow focused: all challengers, floor 0.3, base 0.02": ("elsewhere", "worse", "better")}
# every estimator on these designs; SHORT_SUITE on the others
FULL_SUITE_DESIGNS = ("uniform (today)", "utility T=0.05 floor 0.3", "shadow: elsewhere, floor 0.3")


# ---------------------------------------------------------------------------------------------
# The data and the routers
# ---------------------------------------------------------------------------------------------

@dataclass
class Pool:
    """Every prompt with every model's outcome, and its embedding."""

    frame: pd.DataFrame  # the long outcomes table (prompt_id, prompt, model, score, task)
    prompt_ids: list[str]
    prompts: list[str]
    models: list[str]
    scores: np.ndarray  # (N, m)
    costs: np.ndarray  # (N, m), USD
    X: np.ndarray  # (N, dim)
    Z: np.ndarray  # (N, COMPONENTS) the embedding's first principal components (the reward models' input)
    catalog: Path


def load_pool(workdir: Path, log=print) -> Pool:
    """LLMRouter's train and test sides (the shared questions once), embedded with the training embedder."""
    import pandas as pd

    from router_ml.core.catalog import load_catalog
    from router_ml.training.data.outcomes import read_outcomes, to_routing_data
    from router_ml.training.embed.cache import DiskCachedEmbedder
    from router_ml.training.fit.pipeline import TrainConfig, make_training_embedder

    bench = next(b for b in prepare(workdir) if b.name == "llmrouter")
    train, test = read_outcomes(bench.train), read_outcomes(bench.test)
    frame = pd.concat([train, test[~test["prompt_id"].isin(set(train["prompt_id"]))]], ignore_index=True)
    data = to_routing_data(frame, load_catalog(bench.catalog))
    if not data.complete.all():
        raise SystemExit("LLMRouter: expected every model's outcome on every prompt")
    embedder = DiskCachedEmbedder(make_training_embedder(TrainConfig(outcomes=str(bench.train), out="unused"), log))
    started = time.perf_counter()
    X = embedder.encode(data.prompts, progress=False)
    log(f"{len(data)} prompts, {len(data.models)} models; embedded in {time.perf_counter() - started:.0f} s "
        f"({embedder.hits} cached)")
    keep = ["prompt_id", "prompt", "model", "score", "task"]
    return Pool(frame[keep], data.prompt_ids, data.prompts, data.models, data.scores, data.costs, X,
                principal_components(X, COMPONENTS), bench.catalog)


def principal_components(X: np.ndarray, k: int) -> np.ndarray:
    """The first k principal components of X (centred), scaled to unit variance: no outcome is used."""
    centred = X - X.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    Z = centred @ vt[:k].T
    return Z / Z.std(axis=0)


def split_parts(n: int, split: int) -> dict[str, np.ndarray]:
    """Row indices of each part of a split (module docstring, step 1)."""
    order = np.random.default_rng([21, split]).permutation(n)
    traffic, champion = order[:TRAFFIC_PROMPTS], order[TRAFFIC_PROMPTS:TRAFFIC_PROMPTS + CHAMPION_PROMPTS]
    elsewhere = order[TRAFFIC_PROMPTS + CHAMPION_PROMPTS:]
    return {"traffic": np.sort(traffic), "champion": np.sort(champion), "elsewhere": np.sort(elsewhere),
            "worse": np.sort(elsewhere[:WORSE_PROMPTS]), "champion+elsewhere": np.sort(np.concatenate([champion, elsewhere]))}


def train_router(pool: Pool, rows: np.ndarray, strategy: str, out: Path, seed: int, log=print):
    """Train a router on some prompts with the project's pipeline (kept in `out` for reruns); load it."""
    from router_ml import load_router
    from router_ml.training.fit.pipeline import TrainConfig, train

    ids = sorted(pool.prompt_ids[i] for i in rows)
    spec = {"strategy": strategy, "seed": seed, "prompts": len(ids), "ids_hash": hash_ids(ids)}
    spec_file, artifact = out / "study_spec.json", out / "router"
    if not (spec_file.exists() and json.loads(spec_file.read_text()) == spec and (artifact / "manifest.json").exists()):
        out.mkdir(parents=True, exist_ok=True)
        outcomes = out / "outcomes.parquet"
        pool.frame[pool.frame["prompt_id"].isin(set(ids))].to_parquet(outcomes, index=False)
        started = time.perf_counter()
        train(TrainConfig(outcomes=str(outcomes), catalog=str(pool.catalog), out=str(artifact), overwrite=True,
                          test_size=0.0, seed=seed, strategy=strategy, mlflow=False, baselines=(), neighbours=False,
                          verifier=False, router_version=f"ope-{out.name}"), log=lambda _: None, progress=False)
        spec_file.write_text(json.dumps(spec))
        log(f"  trained {out.name} ({strategy}, {len(ids)} prompts) in {time.perf_counter() - started:.0f} s")
    return load_router(artifact, decision_cache_size=0)


def hash_ids(ids: list[str]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


@dataclass
class RouterView:
    """What one router does on the traffic prompts (rows of the split's traffic part)."""

    proba: np.ndarray  # (N, m) P(success)
    est_costs: np.ndarray  # (N, m) its cost estimates
    default: np.ndarray  # (N,) choice at its default target
    sweep: np.ndarray  # (N, T) choices at each distinct decision of its target sweep
    lams: np.ndarray  # trade-off rates: the default target's, then SWEEP_DESIGN_TARGETS'
    cost_scale: float
    default_target: float


def router_view(router, pool: Pool, rows: np.ndarray) -> RouterView:
    if sorted(router.models) != sorted(pool.models):
        raise SystemExit(f"router models {router.models} are not the pool's {pool.models}")
    columns = [router.models.index(m) for m in pool.models]  # the router's columns in the pool's order
    to_pool = np.array([pool.models.index(m) for m in router.models])  # a router's choice as a pool column
    scores = router.predict_scores([pool.prompts[i] for i in rows], embeddings=pool.X[rows])
    targets = sorted({*np.round(np.arange(0.0, 1.0 + 1e-9, SWEEP_STEP), 4), router.default_quality_target})
    sweep = np.stack([to_pool[router.choose_indices(scores, t)] for t in targets], axis=1)
    lams = [router.schedule.lam_for(t) for t in (router.default_quality_target, *SWEEP_DESIGN_TARGETS)]
    return RouterView(scores.proba[:, columns], scores.costs[:, columns], to_pool[router.choose_indices(scores)],
                      np.unique(sweep, axis=1), np.array(lams), router.cost_scale, router.default_quality_target)


# ---------------------------------------------------------------------------------------------
# One simulated log
# ---------------------------------------------------------------------------------------------

def reward_models(pool: Pool, rows: np.ndarray, logging: RouterView, traffic: LoggedTraffic,
                  rng: np.random.Generator, kinds: set[str]) -> dict[str, np.ndarray]:
    """The reward models' (n, m) score predictions for the logged requests, cross-fitted.

    "raw": the logging router's P(success) as it is; "embedding": per-model logistic on the
    embedding's first principal components; "logged": the logged P(success) recalibrated;
    "logged+embedding": the same with the components as a shared prompt term.
    """
    Z, proba, n = pool.Z[rows], logging.proba, len(rows)
    served, score = traffic.served, traffic.score
    m = proba.shape[1]
    makers = {
        "raw": None,
        "embedding": lambda: embedding_rewards(Z, served, score, m),
        "logged": lambda: logged_score_rewards(proba, served, score),
        "logged+embedding": lambda: logged_score_rewards(proba, served, score, X=Z, C=0.3),
    }
    out = {}
    for kind, make in makers.items():  # every kind draws its folds, so a subset keeps the others' folds
        folds = np.random.default_rng(rng.integers(2**32))
        if kind in kinds:
            out[kind] = proba if make is None else cross_fit(make(), n, FOLDS, folds)
    return out


def policy_columns(view: RouterView, singles: tuple[int, int]) -> np.ndarray:
    """(n, 3 + T) choices of the policies a router is judged by: the cheapest and the dearest
    single models (the ends of AIQ's cost range), the default target, then the sweep (which
    includes the default target again: a repeated point leaves AIQ unchanged)."""
    n = len(view.default)
    return np.column_stack([np.full(n, singles[0]), np.full(n, singles[1]), view.default, view.sweep])


DEFAULT_COLUMN = 2


def draw_log(design: ExplorationDesign, views: dict[str, RouterView], scores: np.ndarray, costs: np.ndarray,
             draws: np.ndarray) -> LoggedTraffic:
    """The champion serves the requests under `design`; only the served model's outcome is kept.
    draws: (n,) uniforms that pick the served model from the logging distribution."""
    champion = views["champion"]
    shadow = np.column_stack([views[name].default for name in SHADOWS.get(design.name, ())] or [champion.default])
    policy = logging_policy(design, champion.default, champion.proba, champion.est_costs, champion.lams,
                            champion.cost_scale, shadow)
    served = np.minimum((draws[:, None] > np.cumsum(policy, axis=1)).sum(axis=1), policy.shape[1] - 1)
    rows = np.arange(len(served))
    return LoggedTraffic(served, scores[rows, served], costs[rows, served], policy)


@dataclass
class Curves:
    """A router's estimated policies on a log (policy_columns' layout): point estimates (P,) and
    bootstrap draws (B, P) of the mean score and the mean cost."""

    quality: np.ndarray
    cost: np.ndarray
    quality_draws: np.ndarray
    cost_draws: np.ndarray

    def figure(self, metric: str) -> tuple[float, np.ndarray]:
        """A figure's point estimate and its bootstrap draws: quality or cost at the default target, or AIQ."""
        if metric == "aiq":
            return float(aiq_batch(self.cost[None], self.quality[None])[0]), aiq_batch(self.cost_draws,
                                                                                        self.quality_draws)
        point, draws = (self.quality, self.quality_draws) if metric == "quality" else (self.cost, self.cost_draws)
        return float(point[DEFAULT_COLUMN]), draws[:, DEFAULT_COLUMN]


def true_figures(columns: np.ndarray, scores: np.ndarray, costs: np.ndarray) -> dict[str, float]:
    """The figures estimators aim at, from the complete outcomes of the logged prompts."""
    rows = np.arange(len(columns))[:, None]
    q, c = scores[rows, columns].mean(axis=0), costs[rows, columns].mean(axis=0)
    return {"quality": float(q[DEFAULT_COLUMN]), "cost": float(c[DEFAULT_COLUMN]),
            "aiq": float(aiq_batch(c[None], q[None])[0])}


METRICS = ("quality", "cost", "aiq")


def simulate_log(pool: Pool, traffic_rows: np.ndarray, views: dict[str, RouterView], design: ExplorationDesign,
                 draws: np.ndarray, seed: list[int], suite: tuple[str, ...]) -> tuple[list[dict], dict, list[dict]]:
    """Log n requests under `design`; score the estimators of `suite` and the promotion decision on it.

    traffic_rows: (n,) pool rows of the requests; draws: (n,) uniforms that pick the
    served model; views: each router's view restricted to these requests. Returns the
    estimate records, the exploration's cost record and the promotion records.
    """
    champion = views["champion"]
    scores, costs = pool.scores[traffic_rows], pool.costs[traffic_rows]
    traffic = draw_log(design, views, scores, costs, draws)
    n, rows = len(traffic), np.arange(len(traffic))
    rng = np.random.default_rng([*seed, 1])
    needed = {SUITE[label][1] for label in suite} - {None}
    predicted = reward_models(pool, traffic_rows, champion, traffic, rng, needed)
    counts = resample_counts(n, RESAMPLES, rng)
    mean_costs = costs.mean(axis=0)
    singles = (int(np.argmin(mean_costs)), int(np.argmax(mean_costs)))  # as metrics.aiq picks them
    policy = traffic.policy
    exploration = {
        "extra_cost": float((policy * costs).sum() / costs[rows, champion.default].sum() - 1.0),
        "quality_loss": float(scores[rows, champion.default].mean() - (policy * scores).sum(axis=1).mean()),
        "min_propensity": float(policy.min()),
        **{f"reward model mse: {kind}": float(np.mean((traffic.score - p[rows, traffic.served]) ** 2))
           for kind, p in predicted.items()},
    }

    records, decision, truths = [], {}, {}
    for name, view in views.items():
        columns = policy_columns(view, singles)
        truths[name] = true_figures(columns, scores, costs)
        disagree = view.default != champion.default
        diagnostics = {
            "ess": effective_sample_size(importance_weights(traffic, view.default)),
            "disagreement": float(disagree.mean()),
            "matched_disagreements": int((disagree & (traffic.served == view.default)).sum()),
            "expected_matched_disagreements": float(policy[rows, view.default][disagree].sum()),
            "predicted_width": predicted_width(predicted["logged"][rows, view.default], policy[rows, view.default],
                                               LEVEL) if "logged" in predicted else float("nan"),
        }
        cost_curves = {}  # the cost's reward model is the router's price estimate whatever the score's
        for label in suite if name in TARGETS else (DECISION_ESTIMATOR,):
            estimator, reward = SUITE[label]
            uq, dq = estimator_terms(estimator, traffic, traffic.score, columns,
                                     None if reward is None else predicted[reward], MAX_WEIGHT)
            if estimator not in cost_curves:
                uc, dc = estimator_terms(estimator, traffic, traffic.cost, columns, view.est_costs, MAX_WEIGHT)
                cost_curves[estimator] = ratio(uc, dc), ratio(uc.astype(np.float32), dc, counts)
            curves = Curves(ratio(uq, dq), cost_curves[estimator][0], ratio(uq.astype(np.float32), dq, counts),
                            cost_curves[estimator][1])
            if label == DECISION_ESTIMATOR:
                decision[name] = curves
            for metric in METRICS:
                value, metric_draws = curves.figure(metric)
                true = truths[name][metric]
                lo, hi = percentile_interval(metric_draws, LEVEL)
                b_lo, b_hi = basic_interval(value, metric_draws, LEVEL)
                corrected = bias_corrected(value, metric_draws)
                records.append({"router": name, "estimator": label, "metric": metric, "value": value, "lower": lo,
                                "upper": hi, "truth": true, "covers": bool(lo <= true <= hi), "width": hi - lo,
                                "abs_error": abs(value - true), "error": value - true,
                                "basic_covers": bool(b_lo <= true <= b_hi), "corrected_error": corrected - true,
                                **diagnostics})
    return records, exploration, promotion_records(decision, truths)


def promotion_records(curves: dict[str, Curves], truths: dict[str, dict]) -> list[dict]:
    """Retraining's decision for each challenger: the one-sided lower bound of (challenger -
    champion) from the paired bootstrap (the same draws for both), promoted when >= 0."""
    out = []
    champion = {metric: curves["champion"].figure(metric) for metric in ("aiq", "quality")}
    for name in CHALLENGERS:
        for metric in ("aiq", "quality"):
            value, draws = curves[name].figure(metric)
            difference, estimate = draws - champion[metric][1], value - champion[metric][0]
            lower = float(np.nanquantile(difference, 1.0 - PROMOTION_CONFIDENCE))
            basic_lower = 2.0 * estimate - float(np.nanquantile(difference, PROMOTION_CONFIDENCE))
            out.append({"challenger": name, "metric": metric, "difference": estimate,
                        "se": float(np.nanstd(difference)), "lower": lower, "promoted": lower >= 0.0,
                        "basic_lower": basic_lower, "promoted_basic": basic_lower >= 0.0,
                        "true_difference": truths[name][metric] - truths["champion"][metric]})
    return out


def restrict(view: RouterView, idx: np.ndarray) -> RouterView:
    """The view on some of the traffic prompts."""
    return RouterView(view.proba[idx], view.est_costs[idx], view.default[idx], view.sweep[idx], view.lams,
                      view.cost_scale, view.default_target)


# ---------------------------------------------------------------------------------------------
# The runs
# ---------------------------------------------------------------------------------------------

def run(pool: Pool, workdir: Path, splits: int, log_seeds: int, sizes: tuple[int, ...],
        designs: tuple[ExplorationDesign, ...], log=print) -> dict:
    """Every split, log seed, size and design (module docstring); raw records."""
    estimates, exploration, promotions, routers = [], [], [], []
    for split in range(splits):
        parts = split_parts(len(pool.prompt_ids), split)
        traffic = parts["traffic"]
        mean_costs = pool.costs[traffic].mean(axis=0)
        singles = (int(np.argmin(mean_costs)), int(np.argmax(mean_costs)))
        views = {}
        for name, (part, strategy) in ROUTERS.items():
            router = train_router(pool, parts[part], strategy, workdir / "ope" / f"split{split}-{name}", split, log)
            view = views[name] = router_view(router, pool, traffic)
            routers.append({"split": split, "router": name, "strategy": strategy, "train_prompts": len(parts[part]),
                            "default_target": view.default_target, "sweep_points": view.sweep.shape[1],
                            "disagreement_with_champion": float((view.default != views["champion"].default).mean()),
                            **true_figures(policy_columns(view, singles), pool.scores[traffic], pool.costs[traffic])})
        for seed in range(log_seeds):
            rng = np.random.default_rng([21, split, seed])
            order, draws = rng.permutation(len(traffic)), rng.random(len(traffic))
            for n in sizes:
                idx = order[:n]
                sub = {name: restrict(view, idx) for name, view in views.items()}
                started = time.perf_counter()
                for design in designs:
                    tag = {"split": split, "seed": seed, "n": n, "design": design.name}
                    suite = tuple(SUITE) if design.name in FULL_SUITE_DESIGNS else SHORT_SUITE
                    recs, expl, promos = simulate_log(pool, traffic[idx], sub, design, draws[idx], [split, seed, n],
                                                      suite)
                    estimates += [{**tag, **r} for r in recs]
                    exploration.append({**tag, **expl})
                    promotions += [{**tag, **p} for p in promos]
                log(f"  split {split} seed {seed} n {n}: {len(designs)} designs in {time.perf_counter() - started:.0f} s")
    return {"estimates": estimates, "exploration": exploration, "promotions": promotions, "routers": routers}


def run_onboarding(pool: Pool, splits: int, draws: int, log=print) -> list[dict]:
    """Part 5: each held-back model, split and draw (benchmarks/ope/onboarding.py). The router
    trains on the champion's prompts, the new model's outcomes come from the first half of
    the traffic, and the router is judged on the other half and the elsewhere prompts
    (2,989 prompts, every outcome known)."""
    from benchmarks.ope.onboarding import onboarding_runs

    prices = pool.costs.mean(axis=0)
    out = []
    for model in ONBOARDED:
        new = pool.models.index(model)
        for split in range(splits):
            parts = split_parts(len(pool.prompt_ids), split)
            for draw in range(draws):
                started = time.perf_counter()
                rng = np.random.default_rng([21, split, draw, new])
                traffic = np.random.default_rng([21, split]).permutation(parts["traffic"])
                half = len(traffic) // 2
                runs = onboarding_runs(pool.X, pool.scores, pool.costs, prices, new, parts["champion"],
                                       traffic[:half], np.sort(np.concatenate([traffic[half:], parts["elsewhere"]])),
                                       rng)
                out += [{"model": model, "split": split, "draw": draw, **r} for r in runs]
                log(f"  onboarding {model} split {split} draw {draw}: {time.perf_counter() - started:.0f} s")
    return out


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------

def _f(value, spec: str = ".3f") -> str:
    return "-" if value is None or (isinstance(value, float) and not np.isfinite(value)) else format(value, spec)


def md_table(frame: pd.DataFrame, formats: dict[str, str] | None = None) -> str:
    """A DataFrame as a Markdown table; `formats` maps a column to its format spec."""

    formats = formats or {}
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_f(row[c], formats[c]) if c in formats else str(row[c]) for c in frame.columns)
                     + " |")
    return "\n".join(lines)


def scorecard(estimates: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per group: coverage of the percentile and of the basic interval, bias and mean absolute
    error of the estimate and of the bias-corrected one, interval width (mean and p90)."""

    return estimates.groupby(by, sort=False).agg(
        logs=("covers", "size"), coverage=("covers", "mean"), coverage_basic=("basic_covers", "mean"),
        bias=("error", "mean"), bias_corrected=("corrected_error", "mean"), mae=("abs_error", "mean"),
        width=("width", "mean"), width_p90=("width", lambda w: w.quantile(0.9))).reset_index()


def size_for_width(widths: pd.Series, goal: float = WIDTH_GOAL) -> float:
    """Log size at which an interval's width reaches `goal`, from widths at several sizes
    (indexed by n), fitted as width = a / sqrt(n) (least squares on log width)."""

    n, w = np.asarray(widths.index, dtype=float), widths.to_numpy(dtype=float)
    ok = np.isfinite(w) & (w > 0)
    if ok.sum() == 0:
        return float("nan")
    log_a = float(np.mean(np.log(w[ok]) + 0.5 * np.log(n[ok])))
    return float((np.exp(log_a) / goal) ** 2)


def onboarding_table(runs: list[dict]) -> pd.DataFrame:
    """Mean AIQ gap to the from-the-start router (positive: worse) per model, head and logged outcomes."""
    import pandas as pd

    frame = pd.DataFrame(runs)
    frame["gap"] = frame["reference"] - frame["aiq"]
    return frame.groupby(["model", "head", "logged"], sort=False).agg(
        runs=("gap", "size"), aiq=("aiq", "mean"), reference=("reference", "mean"), gap=("gap", "mean"),
        within_001=("gap", lambda g: float(np.mean(g <= 0.01)))).reset_index()


def promotion_sizes(promotions: pd.DataFrame) -> pd.DataFrame:
    """Logged requests until a truly better challenger is promoted with probability 50 % and 80 %.

    The paired difference's standard error shrinks as 1/sqrt(n): se(n) = s / sqrt(n), s taken
    from the largest log. The one-sided test promotes when estimate >= z95 se(n); with a true
    difference D > 0 that happens with probability Phi(D / se(n) - z95), so
    n(p) = (s (z95 + z_p) / D)^2.
    """
    import pandas as pd

    z95, z80 = 1.6449, 0.8416
    rows = []
    for (design, challenger, metric), group in promotions.groupby(["design", "challenger", "metric"], sort=False):
        last = group.sort_values("n").iloc[-1]
        s, true = last["se"] * np.sqrt(last["n"]), last["true_difference"]
        rows.append({"design": design, "challenger": challenger, "metric": metric, "true_difference": true,
                     "se at 1000": s / np.sqrt(1000),
                     "n for 50 %": (s * z95 / true) ** 2 if true > 0 else float("nan"),
                     "n for 80 %": (s * (z95 + z80) / true) ** 2 if true > 0 else float("nan")})
    return pd.DataFrame(rows)


def summarise(results: dict) -> dict[str, pd.DataFrame]:
    """The report's tables."""
    import pandas as pd

    est = pd.DataFrame(results["estimates"])
    expl = pd.DataFrame(results["exploration"])
    promo = pd.DataFrame(results["promotions"])
    out: dict[str, pd.DataFrame] = {}
    out["routers"] = pd.DataFrame(results["routers"]).groupby(["router", "strategy"], sort=False).agg(
        train_prompts=("train_prompts", "mean"), default_target=("default_target", "mean"),
        quality=("quality", "mean"), cost=("cost", "mean"), aiq=("aiq", "mean"),
        disagreement=("disagreement_with_champion", "mean")).reset_index()
    targets = est[est["router"].isin(TARGETS)]
    for design in FULL_SUITE_DESIGNS:
        d = targets[targets["design"] == design]
        for metric in METRICS:
            out[f"estimators|{design}|{metric}"] = scorecard(d[d["metric"] == metric], ["estimator", "n", "router"])
    decision = est[est["estimator"] == DECISION_ESTIMATOR]
    out["design_cost"] = expl.groupby(["design", "n"], sort=False).agg(
        extra_cost=("extra_cost", "mean"), quality_loss=("quality_loss", "mean"),
        min_propensity=("min_propensity", "min")).reset_index()
    quality = scorecard(decision[decision["metric"] == "quality"], ["design", "n", "router"])
    predicted = decision[decision["metric"] == "quality"].groupby(["design", "n", "router"], sort=False)[
        "predicted_width"].mean().reset_index(drop=True)
    aiq_card = scorecard(decision[decision["metric"] == "aiq"], ["design", "n", "router"])
    out["design_quality"] = quality.assign(predicted_width=predicted)[
        ["design", "n", "router", "logs", "coverage", "width", "width_p90", "predicted_width"]]
    out["design_aiq"] = aiq_card[["design", "n", "router", "logs", "coverage", "coverage_basic", "bias",
                                  "bias_corrected", "width"]]
    rows = []
    for (design, router), group in decision[decision["metric"] == "quality"].groupby(["design", "router"], sort=False):
        by_n = group.groupby("n")["width"]
        rows.append({"design": design, "router": router, "n for mean width 0.08": size_for_width(by_n.mean()),
                     "n for p90 width 0.08": size_for_width(by_n.quantile(0.9)),
                     **{f"width p90 at {n}": w for n, w in by_n.quantile(0.9).items()}})
    out["width_goal"] = pd.DataFrame(rows)
    q = decision[(decision["metric"] == "quality") & (decision["disagreement"] > 0)].copy()
    bins = [-1, 4, 9, 19, 39, 79, 10**9]
    labels = ["0-4", "5-9", "10-19", "20-39", "40-79", ">=80"]
    for key, column in (("matched", "matched_disagreements"), ("expected", "expected_matched_disagreements")):
        q[key] = pd.cut(q[column], bins, labels=labels)
        out[f"overlap|{key}"] = q.groupby(key, observed=True).agg(
            logs=("covers", "size"), coverage=("covers", "mean"), width=("width", "mean"),
            predicted_width=("predicted_width", "mean"), disagreement=("disagreement", "mean"),
            ess_share=("ess", lambda e: float(np.mean(e / q.loc[e.index, "n"])))).reset_index()
    q["width_ratio"] = q["width"] / q["predicted_width"]
    out["overlap|predicted"] = q.groupby(["router", "n"], sort=False).agg(
        logs=("width_ratio", "size"), width=("width", "mean"), predicted_width=("predicted_width", "mean"),
        ratio_median=("width_ratio", "median"), ratio_p10=("width_ratio", lambda r: r.quantile(0.1)),
        ratio_p90=("width_ratio", lambda r: r.quantile(0.9))).reset_index()
    out["promotions"] = promo.groupby(["design", "challenger", "metric", "n"], sort=False).agg(
        logs=("promoted", "size"), true_difference=("true_difference", "mean"),
        truly_better=("true_difference", lambda t: float(np.mean(t > 0))), estimate=("difference", "mean"),
        se=("se", "mean"), promoted=("promoted", "mean"), promoted_basic=("promoted_basic", "mean")).reset_index()
    out["promotion_size"] = promotion_sizes(out["promotions"])
    mse = [c for c in expl.columns if c.startswith("reward model mse")]
    out["reward_models"] = expl.groupby(["design", "n"], sort=False)[mse].mean().reset_index().rename(
        columns={c: c.removeprefix("reward model mse: ") for c in mse})
    if results.get("onboarding"):
        out["onboarding"] = onboarding_table(results["onboarding"])
    return out


PCT, F4 = ".0%", ".4f"
CARD = {"coverage": PCT, "coverage_basic": PCT, "bias": "+.4f", "bias_corrected": "+.4f", "mae": F4, "width": F4,
        "width_p90": F4, "predicted_width": F4}


def render(tables: dict, settings: dict) -> str:
    """The Markdown report."""

    lines = [
        "# Off-policy evaluation from a live log: estimators and exploration designs (issue #21)",
        "",
        "Generated by `python -m benchmarks.ope_study` (benchmarks/ope_study.py; estimators, reward models and "
        "designs in benchmarks/ope/). LLMRouter, nine models, every model's outcome known; the estimators see "
        "only the served model's. Settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()) + ".",
        "",
        "coverage: share of logs whose 90 % percentile bootstrap interval holds the truth (the figure on the same "
        "logged prompts from their complete outcomes); coverage_basic: the same for the basic (reverse percentile) "
        "interval; bias: mean of estimate - truth; bias_corrected: the same for 2 estimate - mean of the resamples; "
        "mae: mean absolute error; width: mean interval width (p90: its 90th percentile over logs).",
        "",
        "## The routers (truth on the 4,000 traffic prompts, mean over splits)",
        "",
        md_table(tables["routers"], {"train_prompts": ".0f", "default_target": ".2f", "quality": F4, "cost": ".3g",
                                     "aiq": F4, "disagreement": ".1%"}),
        "",
        "disagreement: share of traffic prompts where the router's default choice differs from the champion's.",
    ]
    for design in FULL_SUITE_DESIGNS:
        for metric in METRICS:
            frame = tables[f"estimators|{design}|{metric}"]
            fmt = CARD | ({"bias": "+.3g", "bias_corrected": "+.3g", "mae": ".3g", "width": ".3g", "width_p90": ".3g"}
                          if metric == "cost" else {})
            where = "over the target sweep" if metric == "aiq" else "at the default target"
            lines += ["", f"## Estimators: {metric} {where}, design: {design}", "", md_table(frame, fmt)]
    lines += ["", f"## Exploration designs at rate {RATE:g}: what they cost", "",
              "extra_cost: the exploration's expected cost over the champion's own choices, relative to their cost; "
              "quality_loss: the champion's mean score minus the logging policy's expected mean score.", "",
              md_table(tables["design_cost"], {"extra_cost": "+.1%", "quality_loss": F4, "min_propensity": F4}),
              "", f"## Exploration designs: quality at the default target ({DECISION_ESTIMATOR})", "",
              "predicted_width: predicted_width() from the logged distribution and the reward model alone.", "",
              md_table(tables["design_quality"], CARD),
              "", f"## Exploration designs: AIQ ({DECISION_ESTIMATOR})", "", md_table(tables["design_aiq"], CARD)]
    lines += ["", f"## Log size for a {WIDTH_GOAL:g}-wide quality interval ({DECISION_ESTIMATOR})", "",
              "Fitted as width = a / sqrt(n) on the runs' widths (mean, and 90th percentile over logs).", "",
              md_table(tables["width_goal"], {c: ".0f" if c.startswith("n for") else F4
                                              for c in tables["width_goal"].columns if c not in ("design", "router")})]
    for key, what in (("matched", "logged requests where the served model is the target's choice and the champion "
                       "chose otherwise"), ("expected", "the same expected from the logged distribution alone "
                                                  "(sum of the target's propensity over disagreeing requests)")):
        lines += ["", f"## Overlap: coverage by {key} disagreements ({DECISION_ESTIMATOR}, quality, every design "
                  "and size, routers other than the champion)", "", f"{key}: {what}.", "",
                  md_table(tables[f"overlap|{key}"], CARD | {"disagreement": ".1%", "ess_share": ".3f"})]
    lines += ["", "## Overlap: bootstrap width over predicted width (quality, every design)", "",
              md_table(tables["overlap|predicted"], CARD | {"ratio_median": ".2f", "ratio_p10": ".2f",
                                                            "ratio_p90": ".2f"})]
    lines += ["", f"## Retraining's decision ({DECISION_ESTIMATOR}, paired bootstrap, one-sided "
              f"{PROMOTION_CONFIDENCE:.0%} lower bound >= 0)", "",
              "promoted: on the percentile bound; promoted_basic: on the basic bound 2 estimate - q95 (the bias-"
              "corrected rule AIQ needs).", "",
              md_table(tables["promotions"], {"promoted": PCT, "promoted_basic": PCT, "true_difference": "+.4f",
                                              "truly_better": PCT, "estimate": "+.4f", "se": F4}),
              "", "Logged requests until a truly better challenger is promoted (extrapolated from the largest log, "
              "see promotion_sizes):", "",
              md_table(tables["promotion_size"], {"true_difference": "+.4f", "se at 1000": F4, "n for 50 %": ".0f",
                                                  "n for 80 %": ".0f"})]
    lines += ["", "## Reward models: mean squared error on the served outcomes (cross-fitted)", "",
              md_table(tables["reward_models"], {c: F4 for c in tables["reward_models"].columns
                                                 if c not in ("design", "n")})]
    if "onboarding" in tables:
        lines += ["", "## Onboarding a new model (benchmarks/ope/onboarding.py)", "",
                  "AIQ over a sweep of trade-off rates on 2,989 held-out prompts (half the traffic and the "
                  "elsewhere prompts); reference: the same per-model router trained with the model from the start; "
                  "gap = reference - AIQ; within_001: share of runs within 0.01. logged: the new model's outcomes "
                  "from traffic, besides its offline evaluations.", "",
                  md_table(tables["onboarding"], {"aiq": F4, "reference": F4, "gap": "+.4f", "within_001": PCT})]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = benchmark_parser("ope_study", __doc__)
    parser.add_argument("--quick", action="store_true", help="one split, two log seeds, two designs (a smoke run)")
    parser.add_argument("--skip-onboarding", action="store_true", help="leave out part 5 (onboarding a new model)")
    parser.add_argument("--report-only", action="store_true", help="rebuild the report from the last run's records")
    args = parser.parse_args(argv)
    splits, log_seeds, designs = (1, 2, DESIGNS[:2]) if args.quick else (SPLITS, LOGS_PER_SPLIT, DESIGNS)
    name = "ope_study_quick" if args.quick else "ope_study"
    raw = args.workdir / "ope" / f"{name}_records.json"  # every record, to rebuild the report (--report-only)
    if args.report_only:
        saved = json.loads(raw.read_text())
        results, settings = saved["results"], saved["settings"]
    else:
        started = time.perf_counter()
        pool = load_pool(args.workdir)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):  # small products: one BLAS thread is ~10x faster on shared cores than several
            results = run(pool, args.workdir, splits, log_seeds, SIZES, designs)
            if not args.skip_onboarding:
                results["onboarding"] = run_onboarding(pool, splits, 1 if args.quick else ONBOARDING_DRAWS)
        settings = {"splits": splits, "log seeds per split": log_seeds, "sizes": list(SIZES), "exploration rate": RATE,
                    "bootstrap resamples": RESAMPLES, "reward-model folds": FOLDS, "interval level": LEVEL,
                    "AIQ sweep step": SWEEP_STEP, "minutes": round((time.perf_counter() - started) / 60, 1)}
        write_result_file(raw.parent, raw.name, json.dumps({"settings": settings, "results": results}, default=float))
    tables = summarise(results)
    payload = {"settings": settings, "designs": [asdict(d) for d in designs], "suite": SUITE,
               "tables": {k: v.to_dict(orient="records") for k, v in tables.items()}}
    if args.quick:
        return write_results(args.out, "ope_study_quick", render(tables, settings), payload)
    return write_results(args.out, "ope_study", render(tables, settings), payload)


if __name__ == "__main__":
    sys.exit(main())
