"""Judging routers from the audit log alone: `router-ml evaluate --audit AUDIT --router A [--router B]`.

A live log shows, for each request, the outcome of the one model it was served by, and (since
the serving policy logs it) the whole distribution that model was drawn from
(router_ml.serve.exploring). That is enough to estimate what *another* router would have
scored on the same traffic, without calling a model again:

1. **The traffic** (`read_traffic`): every logged decision with the text of its prompt, its
   serving distribution and a reported outcome of the model that served it; the rest is
   counted and left out (no text, no distribution, answered by a fallback, no outcome).
2. **Rows a router saw are left out.** A router records the prompts it was trained on
   (router_ml.core.provenance; older routers: the outcomes file their manifest names); its
   estimate uses only the other requests, and says how many it left out.
3. **The reward model**: every model's expected score on each request, from what the serving
   router believed then (its logged P(success) for every model) recalibrated on the log's
   outcomes, cross-fitted over FOLDS folds so that no request's own outcome enters its
   prediction (router_ml.core.off_policy.reward_models).
4. **Doubly robust estimates** of the router's mean score and cost at its default target (or
   `quality_target`), and of every point of its target sweep and of each single model (AIQ),
   each with a 90 % basic bootstrap interval over requests (RESAMPLES resamples shared by
   every figure, so AIQ and paired differences get theirs from the same draws), and for AIQ
   the bias-corrected estimate too (the hull of noisy points is optimistic). Costs: the logged
   cost where the router's choice was served, the router's price estimate otherwise.
5. **Overlap**: where a router would send requests the log almost never sent there, the
   estimate rests on the reward model alone. Each router's entry says how many logged
   requests its choice was served on (and how many of them against the serving router's own
   choice), the share of requests whose choice the serving policy could not have made
   (propensity 0), the effective sample size, and the width the interval was predicted to have
   from the propensities alone; it is flagged `thin` when those say the interval cannot be
   relied on, with the log size a 0.08-wide interval would need.

benchmarks/ope_study.py chose the estimator, the reward model and the intervals on LLMRouter
(DR covered the truth in 88-100 % of simulated logs; inverse propensity alone was wider and the
reward model alone missed most of the time); benchmarks/live_loop.py checks them through the
real service (docs/benchmarks.md).

Deliberately left out: cascades (a cascade's answer depends on more than one model's outcome
per request: replay it on a log with every model's outcome) and rows without prompt text.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from router_ml.core.off_policy.estimators import (
    aiq_batch,
    basic_interval,
    bias_corrected,
    effective_sample_size,
    predicted_width,
    ratio,
    resample_counts,
)
from router_ml.core.off_policy.reward_models import cross_fit, logged_score_rewards
from router_ml.errors import ConfigError

FOLDS = 5
RESAMPLES = 1000
LEVEL = 0.9
SWEEP = tuple(round(float(t), 2) for t in np.linspace(0.0, 1.0, 51))
MIN_MATCHED = 10  # below this many served requests where a router differs from the serving choice: no interval to trust
MAX_ZERO_SHARE = 0.01  # choices the serving policy could not make, above which an estimate rests on the reward model
NEEDED_WIDTH = 0.08  # a quality interval wider than this decides little between routers
ESTIMATOR = ("doubly robust: reward model = the serving router's logged P(success) recalibrated on the log's "
             f"outcomes, cross-fitted over {FOLDS} folds; {int(LEVEL * 100)} % basic bootstrap intervals over requests")


@dataclass
class Traffic:
    """Logged requests usable to judge routers: one served model and its outcome each."""

    request_ids: list[str]
    prompts: list[str]
    metadata: list[dict]
    models: list[str]  # every model the serving policy could send to, in the log's order
    served: np.ndarray  # (n,) index into models
    planned: np.ndarray  # (n,) index of the serving policy's own choice (before exploration)
    score: np.ndarray  # (n,) the served model's outcome, 0..1
    cost: np.ndarray  # (n,) its logged cost, NaN when none was reported
    policy: np.ndarray  # (n, m) the serving distribution per request
    logged_proba: np.ndarray  # (n, m) the serving router's P(success) per model (NaN where it had none)
    decisions: int = 0  # decisions in the log (usable or not)
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, rows: np.ndarray) -> Traffic:
        rows = np.asarray(rows)
        pick = (lambda values: [values[i] for i in rows])
        return Traffic(pick(self.request_ids), pick(self.prompts), pick(self.metadata), self.models, self.served[rows],
                       self.planned[rows], self.score[rows], self.cost[rows], self.policy[rows],
                       self.logged_proba[rows], self.decisions, dict(self.skipped))


def _skip(skipped: dict, reason: str) -> None:
    skipped[reason] = skipped.get(reason, 0) + 1


def _usable(d: dict, known_prompts: dict[str, str], skipped: dict) -> tuple[str, dict] | None:
    """(the prompt, the served model's outcome) of a logged decision, or None (counted by reason)."""
    prompt = d.get("prompt") if d.get("prompt") is not None else known_prompts.get(d.get("prompt_sha256"))
    if prompt is None:
        _skip(skipped, "no prompt text (logged as a digest; serve with --prompt-storage text)")
        return None
    if not d.get("propensities"):
        _skip(skipped, "no serving distribution (logged before propensities were)")
        return None
    if d.get("fallback"):
        _skip(skipped, "answered by a fallback, not the drawn model")
        return None
    outcome = next((o for o in d["outcomes"] if o["model"] == d["model"]), None)
    if outcome is None:
        _skip(skipped, "no outcome reported for the model it was served by")
        return None
    score = outcome.get("score")
    if score is None and outcome.get("success") is not None:
        score = float(bool(outcome["success"]))
    if not isinstance(score, (int, float)) or not math.isfinite(score) or not 0.0 <= score <= 1.0:
        _skip(skipped, "an outcome without a score in [0, 1] or success")
        return None
    total = sum(d["propensities"].values())
    if abs(total - 1.0) > 1e-6 or d["model"] not in d["propensities"]:
        _skip(skipped, "a serving distribution that does not sum to 1 or misses the served model")
        return None
    return prompt, {**outcome, "score": float(score)}


def read_traffic(audit_path, since: float | None = None, known_prompts: dict[str, str] | None = None,
                 log: Callable[[str], None] = print) -> Traffic:
    """The usable requests of an audit log (module docstring, step 1). `known_prompts` maps a
    logged digest to its text, for prompts logged as digests that an offline log holds."""
    from router_ml.core.audit_format import read_joined

    decisions = read_joined(audit_path, since)
    skipped: dict[str, int] = {}
    rows = []
    for d in decisions:
        found = _usable(d, known_prompts or {}, skipped)
        if found is not None:
            rows.append((d, *found))
    models: list[str] = []
    for d, _, _ in rows:
        for name in (*d["propensities"], *d["scores"]):
            if name not in models:
                models.append(name)
    index = {m: j for j, m in enumerate(models)}
    n, m = len(rows), len(models)
    policy, logged = np.zeros((n, m)), np.full((n, m), np.nan)
    for i, (d, _, _) in enumerate(rows):
        for name, p in d["propensities"].items():
            policy[i, index[name]] = p
        for name, p in d["scores"].items():
            if isinstance(p, (int, float)) and math.isfinite(p):
                logged[i, index[name]] = p
    traffic = Traffic(
        request_ids=[d["request_id"] for d, _, _ in rows], prompts=[p for _, p, _ in rows],
        metadata=[d.get("metadata") or {} for d, _, _ in rows], models=models,
        served=np.array([index[d["model"]] for d, _, _ in rows], dtype=int),
        planned=np.array([index.get(d.get("planned_model") or d["model"], -1) for d, _, _ in rows], dtype=int),
        score=np.array([o["score"] for _, _, o in rows], dtype=float),
        cost=np.array([np.nan if o.get("cost") is None else float(o["cost"]) for _, _, o in rows], dtype=float),
        policy=policy, logged_proba=logged, decisions=len(decisions), skipped=skipped)
    log(f"{audit_path}: {len(decisions)} decisions, {n} usable to judge routers"
        + (": left out " + ", ".join(f"{k} {v}" for k, v in skipped.items()) if skipped else ""))
    return traffic


def reward_predictions(traffic: Traffic, folds: int = FOLDS, seed: int = 0) -> np.ndarray:
    """(n, m) every model's expected score on each request, cross-fitted (module docstring, step 3)."""
    logged = traffic.logged_proba.copy()
    means = np.nanmean(np.where(np.isnan(logged).all(axis=0, keepdims=True), 0.5, logged), axis=0)
    logged = np.where(np.isnan(logged), means[None, :], logged)
    predict = logged_score_rewards(logged, traffic.served, traffic.score)
    folds = max(2, min(folds, len(traffic) // 2))
    return cross_fit(predict, len(traffic), folds, np.random.default_rng(seed))


@dataclass
class Judged:
    """One router (or router + policy) to judge, as its choices on the traffic."""

    label: str
    router: object
    policy: object = None
    quality_target: float | None = None


def _choices(judged: Judged, prompts: list[str], metadata: list[dict], targets) -> tuple[np.ndarray, list[str]]:
    """(len(targets), n) the model each target's decisions choose, by name index into the router's
    models; with a policy (rules, novelty guard) its first step."""
    router = judged.router
    scores = router.predict_scores(prompts)
    if judged.policy is None:
        return np.stack([router.choose_indices(scores, t) for t in targets]), list(router.models)
    from router_ml.policy.plans import make_plans

    if judged.policy.cascade is not None:
        raise ConfigError(f"{judged.label}: its policy has a cascade, whose answer depends on more than one "
                          "model's outcome per request: a live log cannot judge it (replay it on a log with every "
                          "model's outcome: router-ml replay)")
    rows = []
    for t in targets:
        plans = make_plans(router, judged.policy, prompts, metadata, t, scores=scores)
        rows.append([router.models.index(plan.model) if plan.model in router.models else -1 for plan in plans])
    return np.asarray(rows), list(router.models)


def trained_mask(router, prompts: list[str], log: Callable[[str], None] = print) -> np.ndarray:
    """(n,) which of `prompts` the router was trained on (module docstring, step 2)."""
    from router_ml.core.provenance import TrainedOn, trained_on
    from router_ml.training.evaluate.evaluation import training_side

    record = trained_on(router)
    if record is None:
        data = training_side(router, log=log)
        if data is None:
            raise ConfigError(
                f"{router.version} carries no record of its training prompts (trained before router-ml recorded "
                "them) and the outcomes its manifest names are gone or changed: its estimate could include "
                "prompts it learned from. Retrain it, or judge it on a log it cannot have seen")
        record = TrainedOn.of_prompts(data.prompts)
    return record.contains(prompts)


def _terms(traffic: Traffic, predicted: np.ndarray, est_costs: np.ndarray, choice: np.ndarray):
    """DR numerators for quality and cost of the policies in `choice` (P, n) (index into traffic.models,
    -1 for a model the log never saw); and the importance weights (P, n)."""
    n = len(traffic)
    rows = np.arange(n)
    valid = choice >= 0
    safe = np.where(valid, choice, 0)
    propensity = np.where(valid, traffic.policy[rows[None, :], safe], 0.0)
    matched = valid & (traffic.served[None, :] == safe)
    weight = np.where(matched, 1.0 / np.where(propensity > 0, propensity, 1.0), 0.0)
    residual_q = traffic.score - predicted[rows, traffic.served]
    quality = predicted[rows[None, :], safe] + weight * residual_q[None, :]
    served_cost = est_costs[rows, traffic.served]
    logged = np.where(np.isfinite(traffic.cost), traffic.cost, served_cost)
    residual_c = np.where(np.isfinite(served_cost), logged - served_cost, 0.0)
    cost = est_costs[rows[None, :], safe] + weight * residual_c[None, :]
    return quality.T, cost.T, weight, propensity  # quality, cost: (n, P)


def _router_columns(router_models: list[str], traffic: Traffic, label: str) -> np.ndarray:
    unknown = [m for m in router_models if m not in traffic.models]
    if unknown:
        raise ConfigError(f"{label}: routes {unknown}, which the log's serving policy never sent a request to: the "
                          f"log cannot say how they would do (it knows {traffic.models}); serve them first "
                          "(exploration, or onboarding through the catalog)")
    return np.array([traffic.models.index(m) for m in router_models])


@dataclass
class Curves:
    """One router's DR figures on some traffic rows: the default target's and the sweep's points and
    each single model's, as point estimates (P,) and bootstrap draws (B, P)."""

    quality: np.ndarray
    cost: np.ndarray
    quality_draws: np.ndarray
    cost_draws: np.ndarray
    targets: int  # columns 0..targets-1: the default target, then the sweep; the rest: single models
    choice: np.ndarray  # (n,) the default target's choice, index into traffic.models (-1: never logged)
    weight: np.ndarray  # (n,) its importance weights
    propensity: np.ndarray  # (n,) the serving policy's probability of it

    def aiq(self) -> tuple[float, np.ndarray]:
        """(AIQ's point estimate, its bootstrap draws) over the sweep and the single models."""
        columns = _aiq_columns(self.cost, self.targets)
        point = float(aiq_batch(self.cost[None, columns], self.quality[None, columns])[0])
        return point, aiq_batch(self.cost_draws[:, columns], self.quality_draws[:, columns])


def curves(judged: Judged, sub: Traffic, predicted: np.ndarray, counts: np.ndarray) -> Curves:
    """A router's DR figures on the traffic `sub` (predicted: (n, m) its reward predictions; counts:
    (B, n) the bootstrap resamples of its rows)."""
    router = judged.router
    default = router.default_quality_target if judged.quality_target is None else judged.quality_target
    targets = [default, *SWEEP]
    local, models = _choices(judged, sub.prompts, sub.metadata, targets)
    columns = _router_columns(models, sub, judged.label)
    choice = np.where(local >= 0, columns[np.clip(local, 0, None)], -1)
    singles = np.repeat(columns[:, None], len(sub), axis=1)
    est = np.full((len(sub), len(sub.models)), np.nan)
    est[:, columns] = router.cost_model.estimate(np.array([len(p) for p in sub.prompts]))
    quality, cost, weight, propensity = _terms(sub, predicted, est, np.vstack([choice, singles]))
    ones = np.ones_like(quality)
    return Curves(quality.mean(axis=0), cost.mean(axis=0), ratio(quality, ones, counts), ratio(cost, ones, counts),
                  len(targets), choice[0], weight[0], propensity[0])


def judge_router(judged: Judged, traffic: Traffic, counts: np.ndarray, predicted: np.ndarray,
                 log: Callable[[str], None] = print) -> dict:
    """One router's estimates on the traffic rows it was not trained on (module docstring, 4-5).
    `counts` (B, len(traffic)): the bootstrap resamples shared by every router."""
    unseen = ~trained_mask(judged.router, traffic.prompts, log=log)
    rows = np.flatnonzero(unseen)
    if len(rows) < 2:
        raise ConfigError(f"{judged.label}: it was trained on {int((~unseen).sum())} of the {len(traffic)} usable "
                          "logged requests, leaving too few to judge it on")
    sub = traffic.subset(rows)
    figures = curves(judged, sub, predicted[rows], counts[:, rows])
    return _report(judged, sub, figures, predicted[rows], len(traffic) - len(rows))


def _aiq_columns(point_c: np.ndarray, k: int) -> np.ndarray:
    """Columns for aiq_batch: the cheapest and dearest single models first, then the sweep's points."""
    singles = np.arange(k, len(point_c))
    cheapest, dearest = singles[np.argmin(point_c[singles])], singles[np.argmax(point_c[singles])]
    return np.array([cheapest, dearest, *range(1, k)])


def _interval(point: float, draws: np.ndarray) -> dict:
    low, high = basic_interval(point, draws, LEVEL)
    return {"estimate": float(point), "low": float(low), "high": float(high)}


def _report(judged: Judged, sub: Traffic, figures: Curves, predicted: np.ndarray, left_out: int) -> dict:
    router = judged.router
    aiq_point, aiq_draws = figures.aiq()
    quality = _interval(figures.quality[0], figures.quality_draws[:, 0])
    cost = _interval(figures.cost[0], figures.cost_draws[:, 0])
    aiq = {**_interval(aiq_point, aiq_draws), "bias_corrected": bias_corrected(aiq_point, aiq_draws)}
    target = router.default_quality_target if judged.quality_target is None else judged.quality_target
    overlap = _overlap(sub, figures.choice, figures.propensity, predicted, quality)
    if overlap["widened"]:
        quality = widened(quality, overlap["predicted_width"])
    return {"router": judged.label, "version": router.version, "quality_target": float(target),
            "policy": None if judged.policy is None else judged.policy.source,
            "requests": len(sub), "trained_on_left_out": int(left_out),
            "quality": quality, "cost": cost, "aiq": aiq,
            "effective_sample_size": effective_sample_size(figures.weight),
            "disagreement": float(np.mean(figures.choice != sub.served)), "overlap": overlap}


def _overlap(sub: Traffic, choice, propensity, predicted, quality) -> dict:
    """How far the estimate rests on logged outcomes of the router's own choices (module docstring, 5)."""
    rows = np.arange(len(sub))
    matched = choice == sub.served
    differs = matched & (choice != sub.planned)
    zero = float(np.mean(propensity <= 0))
    positive = propensity > 0
    predicted_choice = predicted[rows, np.clip(choice, 0, None)]
    width = predicted_width(predicted_choice[positive], propensity[positive], LEVEL) if positive.any() else math.inf
    disagrees = bool(np.any(choice != sub.planned))
    observed = quality["high"] - quality["low"]
    needed = int(math.ceil(len(sub) * (max(observed, width) / NEEDED_WIDTH) ** 2))
    reasons = []
    if zero > MAX_ZERO_SHARE:
        reasons.append(f"{zero:.1%} of its choices the serving policy could not have made (propensity 0): there the "
                       "estimate is the reward model's guess alone")
    return {"served_its_choice": int(matched.sum()), "served_its_choice_where_it_differs": int(differs.sum()),
            "zero_propensity_share": zero, "predicted_width": float(width), "quality_width": float(observed),
            "thin": bool(reasons), "why": reasons,
            "widened": bool(disagrees and int(differs.sum()) < MIN_MATCHED),
            "requests_for_width_0.08": needed if observed > NEEDED_WIDTH else None}


def widened(interval: dict, width: float) -> dict:
    """The interval made at least `width` wide around its estimate: where few logged requests show a
    router's choice against the serving choice (fewer than MIN_MATCHED), the bootstrap cannot see the
    variance it has not sampled (measured: 20-40 % too narrow), and the width predicted from the
    serving propensities (`predicted_width`) is the honest one."""
    if not math.isfinite(width) or interval["high"] - interval["low"] >= width:
        return interval
    half = width / 2
    return {**interval, "low": min(interval["low"], interval["estimate"] - half),
            "high": max(interval["high"], interval["estimate"] + half)}


def evaluate_audit(traffic: Traffic, judged: list[Judged], *, resamples: int = RESAMPLES, seed: int = 0,
                   log: Callable[[str], None] = print) -> dict:
    """The estimates of every router on the traffic (module docstring); the JSON `evaluate --audit` writes."""
    if len(traffic) < 20:
        raise ConfigError(f"only {len(traffic)} logged requests can judge routers (a served model, its outcome and "
                          "the serving distribution): report outcomes (POST /v1/outcomes) for more requests first"
                          + ("; left out: " + ", ".join(f"{k} {v}" for k, v in traffic.skipped.items())
                             if traffic.skipped else ""))
    predicted = reward_predictions(traffic, seed=seed)
    counts = resample_counts(len(traffic), resamples, np.random.default_rng(seed + 1))
    routers = [judge_router(j, traffic, counts, predicted, log=log) for j in judged]
    return {"estimator": ESTIMATOR, "logged_requests": len(traffic), "decisions": traffic.decisions,
            "left_out": traffic.skipped, "level": LEVEL, "resamples": resamples, "routers": routers}


def format_estimates(report: dict) -> str:
    """The text `evaluate --audit` prints."""
    lines = [f"{report['logged_requests']} logged requests with a served model's outcome and the serving "
             f"distribution (of {report['decisions']} decisions); {report['estimator']}"]
    if report["left_out"]:
        lines.append("left out: " + ", ".join(f"{k}: {v}" for k, v in report["left_out"].items()))
    header = f"{'router':30s} {'target':>6s}  {'quality':>22s}  {'cost per request':>26s}  {'AIQ':>22s}  {'ESS':>6s}  differs"
    lines += ["", header]
    for r in report["routers"]:
        q, c, a = r["quality"], r["cost"], r["aiq"]
        lines.append(f"{r['router'][:30]:30s} {r['quality_target']:6.3g}  {q['estimate']:.4f} [{q['low']:.4f}, "
                     f"{q['high']:.4f}]  ${c['estimate']:.3g} [${c['low']:.3g}, ${c['high']:.3g}]  "
                     f"{a['estimate']:.4f} [{a['low']:.4f}, {a['high']:.4f}]  {r['effective_sample_size']:6.0f}  "
                     f"{r['disagreement']:.0%}")
    for r in report["routers"]:
        o = r["overlap"]
        notes = []
        if r["trained_on_left_out"]:
            notes.append(f"{r['trained_on_left_out']} requests it was trained on left out")
        if o["thin"]:
            notes.append("OVERLAP TOO THIN, do not rely on this estimate: " + "; ".join(o["why"]))
        if o["requests_for_width_0.08"]:
            notes.append(f"quality interval {o['quality_width']:.3f} wide; about {o['requests_for_width_0.08']:,} "
                         "requests like these would narrow it to 0.08 (or serve it with --shadow to aim exploration "
                         "at it)")
        if notes:
            lines.append(f"{r['router']}: " + "; ".join(notes))
    return "\n".join(lines)


@dataclass
class LiveComparison:
    """A challenger against a champion on the same logged requests, paired (retraining's judgement)."""

    requests: int
    quality: dict  # {"challenger", "champion", "difference": {estimate, low, high}}
    aiq: dict
    margin: float
    overlap: dict  # the challenger's (see _overlap)
    level: float = LEVEL

    @property
    def confidence(self) -> float:
        """The one-sided confidence of the lower bounds (a two-sided 90 % interval's low end: 95 %)."""
        return 1.0 - (1.0 - self.level) / 2.0

    def passed(self) -> bool:
        """No worse with confidence on both quality and AIQ, and an estimate that can be relied on."""
        return (not self.overlap["thin"] and self.quality["difference"]["low"] >= -self.margin
                and self.aiq["difference"]["low"] >= -self.margin)

    def why_not(self) -> str | None:
        if self.overlap["thin"]:
            return "the live log cannot judge it: " + "; ".join(self.overlap["why"])
        failed = [name for name, figure in (("quality", self.quality), ("AIQ", self.aiq))
                  if figure["difference"]["low"] < -self.margin]
        if failed:
            bar = "zero" if self.margin == 0 else f"-{self.margin:g} (the margin)"
            return (f"on live traffic its {' and '.join(failed)} may be worse than the champion's: the "
                    f"{self.confidence:.0%} lower bound of the difference is below {bar}")
        return None

    def describe(self) -> str:
        q, a = self.quality["difference"], self.aiq["difference"]
        return (f"on {self.requests} held-out logged requests (doubly robust, paired): quality "
                f"{self.quality['challenger']:.4f} vs {self.quality['champion']:.4f}, difference {q['estimate']:+.4f} "
                f"[{q['low']:+.4f}, {q['high']:+.4f}]; AIQ {self.aiq['challenger']:.4f} vs {self.aiq['champion']:.4f}, "
                f"difference {a['estimate']:+.4f} [{a['low']:+.4f}, {a['high']:+.4f}] ({self.level:.0%} intervals)")

    def to_dict(self) -> dict:
        return {"estimator": ESTIMATOR, "requests": self.requests, "quality": self.quality, "aiq": self.aiq,
                "margin": self.margin, "overlap": self.overlap, "confidence": self.confidence,
                "passed": self.passed(), "why_not": self.why_not()}


def compare_on_traffic(traffic: Traffic, challenger: Judged, champion: Judged, *, margin: float = 0.0,
                       resamples: int = RESAMPLES, seed: int = 0, log: Callable[[str], None] = print
                       ) -> LiveComparison:
    """Both routers on the logged requests neither was trained on, paired: the same reward model and
    the same bootstrap resamples, so the difference's interval is tight where they agree."""
    seen = trained_mask(challenger.router, traffic.prompts, log=log) | trained_mask(champion.router, traffic.prompts,
                                                                                      log=log)
    rows = np.flatnonzero(~seen)
    if len(rows) < 20:
        raise ConfigError(f"only {len(rows)} held-out logged requests neither router was trained on: too few to "
                          "judge the challenger on live traffic")
    sub = traffic.subset(rows)
    predicted = reward_predictions(sub, seed=seed)
    counts = resample_counts(len(sub), resamples, np.random.default_rng(seed + 1))
    new, old = curves(challenger, sub, predicted, counts), curves(champion, sub, predicted, counts)

    def paired(new_point, new_draws, old_point, old_draws) -> dict:
        return {"challenger": float(new_point), "champion": float(old_point),
                "difference": _interval(new_point - old_point, new_draws - old_draws)}

    new_aiq, old_aiq = new.aiq(), old.aiq()
    quality = paired(new.quality[0], new.quality_draws[:, 0], old.quality[0], old.quality_draws[:, 0])
    aiq = paired(new_aiq[0], new_aiq[1], old_aiq[0], old_aiq[1])
    overlap = _overlap(sub, new.choice, new.propensity, predicted, _interval(new.quality[0], new.quality_draws[:, 0]))
    if overlap["widened"]:
        quality["difference"] = widened(quality["difference"], _predicted_difference_width(new, old, predicted))
    return LiveComparison(len(sub), quality, aiq, margin, overlap)


def _predicted_difference_width(new: Curves, old: Curves, predicted: np.ndarray) -> float:
    """The width of a paired difference's interval predicted from the serving propensities alone (as
    `predicted_width` for one router): the requests where the two choose differently carry it all."""
    from statistics import NormalDist

    rows = np.arange(len(new.choice))
    differ = new.choice != old.choice
    parts = np.zeros(len(rows))
    for figures in (new, old):
        yhat = predicted[rows, np.clip(figures.choice, 0, None)]
        safe = np.where(figures.propensity > 0, figures.propensity, np.inf)
        parts += np.where(differ, yhat * (1 - yhat) / safe, 0.0)
    direct = predicted[rows, np.clip(new.choice, 0, None)] - predicted[rows, np.clip(old.choice, 0, None)]
    variance = (parts.mean() + direct.var()) / len(rows)
    return float(2.0 * NormalDist().inv_cdf(0.5 + LEVEL / 2.0) * math.sqrt(variance))
