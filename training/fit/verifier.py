"""Step 4b: the learned verifier and the cascades planned from it, when the log has responses.

What is stored and how it is used is in router_ml.policy.verifier. Fitted with the same
honesty as the router: every choice (feature set, regularisation, agreement models,
cascade thresholds) is made on the training prompts' folds, the folds the head was
selected on. The verifier reads the router's *out-of-fold* estimate, so no row's feature
comes from a head that saw that row; its own scores used for planning are out-of-fold too.

1. For each model with at least MIN_ROWS answered rows (and MIN_CLASS of each outcome):
   each feature set in FEATURE_SETS x C in C_GRID, scored by out-of-fold log loss; the
   best is refitted on all its rows. The report gives its out-of-fold AUC and calibration
   error beside the prompt-only estimate's on the same rows.
2. For each pair of cheap models answered on the same prompts: an agreement verifier for
   the second, with the two answers read in each of ANSWER_FORMS (the marked final answer,
   a choice letter, the last number, a code block, the last line, the whole text: the
   answer format is learned from the log, not set per benchmark); the form with the lowest
   out-of-fold log loss is kept, and only if choosing the form that way beats the second's
   own verifier when measured nested (each fold scored with the form chosen on the others).
3. Cascades: every cascade (a first model, optionally a second kept by agreement,
   escalation to the router's choice at the target or to the model it rates best,
   thresholds on a grid of margins) is scored on the complete training prompts with the
   out-of-fold scores. The knob keeps its meaning, 0 is the cheapest model's quality and
   1 the best quality on offer, now the best any cascade reaches (a cascade that reads
   the answer can beat every single model). At each quality target on a grid (and the
   router's default) the bar is the larger of the single-shot router's quality there and
   that point of the scale; the cheapest plan reaching it is kept, single-shot routing
   included. A cascade must clear the bar by a margin for unseen prompts, measured like
   the router's default-target margin: plans chosen on all folds but one are run on the
   one left out, and the margin is their mean shortfall plus its standard error. A plan
   is never kept when it escalates every prompt (single-shot plus a call whose answer is
   never used) or when single-shot routing at some target is as good, within the margin,
   for no more cost, nor when single-shot routing at some target reaches the bar for less
   (a low target would otherwise buy far more quality than it asks for); where no plan
   reaches the bar, the best plan is kept only if it beats single-shot at the target by the
   margin, and otherwise the target routes single-shot. With
   fewer than MIN_PLAN_PROMPTS complete answered prompts no plan is made (the learned
   cascade then routes single-shot): below that a plan's gain cannot be told from noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from router_ml.core.decision import QualitySchedule, choose
from router_ml.policy.answers import ANSWER_FORMS, text_features
from router_ml.policy.verifier import AGREEMENT_FEATURES, FEATURE_SETS, FORMAT, THEN, feature_names, logit
from router_ml.training.data.outcomes import RoutingData
from router_ml.training.evaluate import metrics

MIN_ROWS = 100
MIN_CLASS = 20
C_GRID = (0.1, 1.0)
MAX_FIRST = 3  # cheapest models considered as a cascade's first (or second) step
TARGET_GRID = tuple(round(t, 4) for t in np.linspace(0.0, 1.0, 41))
MIN_PLAN_PROMPTS = 300  # fewer: a plan's quality on unseen prompts cannot be told from noise
NEVER, ALWAYS = -2.0, 2.0  # thresholds outside any margin (margins are differences of probabilities)
MARGIN_GRID = 60


def _auc(p: np.ndarray, y: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else None


def _fit_logistic(X: np.ndarray, y: np.ndarray, C: float) -> dict:
    from sklearn.linear_model import LogisticRegression

    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    model = LogisticRegression(C=C, solver="newton-cholesky", max_iter=200).fit((X - mean) / scale, y)
    return {"mean": mean, "scale": scale, "coef": model.coef_[0].astype(np.float64),
            "intercept": np.array(float(model.intercept_[0]))}


def _predict(fit: dict, X: np.ndarray) -> np.ndarray:
    z = ((X - fit["mean"]) / fit["scale"]) @ fit["coef"] + float(fit["intercept"])
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def _out_of_fold(X: np.ndarray, y: np.ndarray, folds: np.ndarray, C: float) -> np.ndarray:
    out = np.empty(len(y))
    for k in np.unique(folds):
        held = folds == k
        if y[~held].min() == y[~held].max():  # one class only: the base rate
            out[held] = y[~held].mean()
            continue
        out[held] = _predict(_fit_logistic(X[~held], y[~held], C), X[held])
    return out


def _nested_form_loss(by_form: dict[str, np.ndarray], y: np.ndarray, folds: np.ndarray) -> float:
    """The log loss of choosing the answer form by out-of-fold log loss, measured the nested way: each
    fold's rows scored with the form chosen on the other folds (`by_form`: each form's out-of-fold
    probabilities). Picking the best of several forms on the folds that score it flatters the winner;
    this does not."""
    nested = np.empty(len(y))
    for k in np.unique(folds):
        held = folds == k
        chosen = min(by_form, key=lambda f: _log_loss(by_form[f][~held], y[~held]))
        nested[held] = by_form[chosen][held]
    return _log_loss(nested, y)


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


class _Features:
    """Feature matrices per (model, feature set), computed once."""

    def __init__(self, data: RoutingData, oof: np.ndarray, embed: Callable[[list[str]], np.ndarray] | None) -> None:
        self.data, self.oof, self.embed = data, oof, embed
        self._text: dict[int, np.ndarray] = {}
        self._embedding: dict[int, np.ndarray] = {}

    def rows(self, j: int) -> np.ndarray:
        answered = np.array([bool(r) for r in self.data.responses[:, j]])
        return np.flatnonzero(answered & ~np.isnan(self.data.success[:, j]))

    def text(self, j: int) -> np.ndarray:
        if j not in self._text:
            rows = self.rows(j)
            full = np.zeros((len(self.data), len(feature_names("text"))))
            full[rows] = np.stack([text_features(self.data.prompts[i], self.data.responses[i, j]) for i in rows])
            self._text[j] = full
        return self._text[j]

    def embedding(self, j: int) -> np.ndarray:
        if j not in self._embedding:
            rows = self.rows(j)
            vectors = self.embed([self.data.responses[i, j] for i in rows])
            full = np.zeros((len(self.data), vectors.shape[1]))
            full[rows] = vectors
            self._embedding[j] = full
        return self._embedding[j]

    def matrix(self, j: int, features: str, rows: np.ndarray, after: int | None = None, form: str = "final"
               ) -> np.ndarray:
        kinds = features.split("+")
        parts = []
        if "text" in kinds:
            parts.append(self.text(j)[rows])
        if "estimate" in kinds:
            parts.append(np.array([[logit(p)] for p in self.oof[rows, j]]))
        if "embedding" in kinds:
            parts.append(self.embedding(j)[rows])
        if after is not None:
            from router_ml.policy.answers import agree

            same = [agree(self.data.responses[i, j], self.data.responses[i, after], form) for i in rows]
            parts.append(np.array([[float(s is True), float(s is None)] for s in same]))
        return np.hstack(parts)


def fit_verifier(data: RoutingData, oof: np.ndarray, fold_of: np.ndarray, schedule: QualitySchedule,
                 cost_scale: float, est_costs: np.ndarray, default_target: float,
                 embed: Callable[[list[str]], np.ndarray] | None = None,
                 log: Callable[[str], None] = print,
                 on_planning: Callable[[], None] | None = None) -> tuple[dict, dict[str, np.ndarray]] | None:
    """The verifier's manifest section and arrays, or None when the log has too few answers.

    `oof` are the router's calibrated out-of-fold probabilities on `data` (its training
    prompts), `fold_of` their folds; `est_costs` the costs as the router estimates them
    when serving; `embed` embeds answers (the router's embedder; None leaves the
    embedding feature set out); `on_planning` is called when the verifiers are fitted and the
    cascade planning starts (the pipeline times the two apart).
    """
    if data.responses is None:
        return None
    feats = _Features(data, oof, embed)
    sets = [s for s in FEATURE_SETS if embed is not None or "embedding" not in s]
    entries, arrays, oof_scores = [], {}, {}
    y_all = data.success
    for j, model in enumerate(data.models):
        rows = feats.rows(j)
        y = y_all[rows, j]
        if len(rows) < MIN_ROWS or min(y.sum(), len(y) - y.sum()) < MIN_CLASS:
            if len(rows):
                log(f"  verifier: {model}: {len(rows)} answered rows ({int(y.sum())} successes); too few to learn from")
            continue
        tried = []
        for features in sets:
            X = feats.matrix(j, features, rows)
            for C in C_GRID:
                p = _out_of_fold(X, y, fold_of[rows], C)
                tried.append((_log_loss(p, y), features, C, p))
        loss, features, C, p = min(tried, key=lambda t: t[0])
        prompt_only = oof[rows, j]
        validation = _validation(p, prompt_only, y, loss)
        validation["candidates"] = [{"features": f, "C": c, "log_loss": round(ll, 5)} for ll, f, c, _ in tried]
        i = len(entries)
        fit = _fit_logistic(feats.matrix(j, features, rows), y, C)
        arrays.update({f"{i}.{k}": v for k, v in fit.items()})
        entries.append({"model": model, "after": None, "features": features, "C": C, "rows": int(len(rows)),
                        "feature_names": feature_names(features, feats.embedding(j).shape[1] if "embedding" in features
                                                       else 0),
                        "validation": validation})
        scores = np.full(len(data), np.nan)
        scores[rows] = p
        oof_scores[(j, None)] = scores
        log(f"  verifier: {model}: {features} (C={C}) on {len(rows)} answers: AUC {_fmt(validation['auc'])} "
            f"(prompt-only {_fmt(validation['prompt_only_auc'])}), calibration error {validation['ece']:.3f} "
            f"(prompt-only {validation['prompt_only_ece']:.3f})")
    if not entries:
        return None

    # Agreement verifiers: the second of two cheap models, when both answered.
    cheap = [j for j in range(len(data.models)) if (j, None) in oof_scores][:MAX_FIRST]
    for j in cheap:
        base = next(e for e in entries if e["model"] == data.models[j] and e["after"] is None)
        for e in cheap:
            if e >= j:  # a cascade goes from cheap to dear: agreement with a cheaper model's answer
                continue
            rows = np.intersect1d(feats.rows(j), feats.rows(e))
            y = y_all[rows, j]
            if len(rows) < MIN_ROWS or min(y.sum(), len(y) - y.sum()) < MIN_CLASS:
                continue
            own = _log_loss(oof_scores[(j, None)][rows], y)
            by_form = {}  # how to read the two answers: the form whose agreement predicts success best
            for form in ANSWER_FORMS:
                X = feats.matrix(j, base["features"], rows, after=e, form=form)
                p = _out_of_fold(X, y, fold_of[rows], base["C"])
                by_form[form] = (_log_loss(p, y), X, p)
            form = min(by_form, key=lambda f: by_form[f][0])
            loss, X, p = by_form[form]
            nested = _nested_form_loss({f: v[2] for f, v in by_form.items()}, y, fold_of[rows])
            if nested >= own:
                log(f"  verifier: {data.models[j]} after {data.models[e]}: agreement does not help "
                    f"(log loss {nested:.4f} with the form chosen without each fold, vs {own:.4f}; answers read "
                    f"as {form}); not kept")
                continue
            i = len(entries)
            fit = _fit_logistic(X, y, base["C"])
            arrays.update({f"{i}.{k}": v for k, v in fit.items()})
            validation = _validation(p, oof[rows, j], y, loss)
            validation["without_agreement_log_loss"] = own
            validation["nested_log_loss"] = nested
            validation["answer_forms"] = {f: round(v[0], 5) for f, v in by_form.items()}
            entries.append({"model": data.models[j], "after": data.models[e], "features": base["features"],
                            "C": base["C"], "rows": int(len(rows)), "answer_form": form,
                            "feature_names": base["feature_names"] + list(AGREEMENT_FEATURES), "validation": validation})
            scores = np.full(len(data), np.nan)
            scores[rows] = p
            oof_scores[(j, e)] = scores
            log(f"  verifier: {data.models[j]} after {data.models[e]}: agreement kept (answers read as {form}), AUC "
                f"{_fmt(validation['auc'])}, log loss {loss:.4f} vs {own:.4f} without")

    if on_planning is not None:
        on_planning()
    plans = plan_cascades(data, oof, oof_scores, schedule, cost_scale, est_costs, default_target, fold_of, log)
    spec = {"format": FORMAT, "entries": entries, "plans": [p for p in plans],
            "selected_by": "out-of-fold log loss on the training folds (features, C, agreement); plans: the cheapest "
                           "cascade reaching the single-shot router's out-of-fold quality at each target"}
    return spec, arrays


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _validation(p: np.ndarray, prompt_only: np.ndarray, y: np.ndarray, loss: float) -> dict:
    return {"rows": int(len(y)), "success_rate": float(y.mean()), "log_loss": loss, "auc": _auc(p, y),
            "ece": metrics.expected_calibration_error(p, y)[0], "prompt_only_auc": _auc(prompt_only, y),
            "prompt_only_ece": metrics.expected_calibration_error(prompt_only, y)[0],
            "prompt_only_log_loss": _log_loss(prompt_only, y)}


class _Planner:
    """Cascade candidates and their quality and cost on any subset of the planning prompts."""

    def __init__(self, data: RoutingData, oof: np.ndarray, verifier_oof: dict, firsts: list[int], rows: np.ndarray,
                 schedule: QualitySchedule, cost_scale: float, est_costs: np.ndarray) -> None:
        self.models = data.models
        self.scores, self.costs, self.proba = data.scores[rows], data.costs[rows], oof[rows]
        self.est_costs, self.schedule, self.cost_scale = est_costs[rows], schedule, cost_scale
        self.v = {key: value[rows] for key, value in verifier_oof.items()}
        self.firsts = firsts
        self.at = np.arange(len(rows))
        self._single: dict[bytes, np.ndarray] = {}
        self._routed: dict[float | None, np.ndarray] = {}
        self.best = self.routed(None)

    def routed(self, target: float | None) -> np.ndarray:
        """The router's choice per prompt at `target` (None: the model it rates likeliest to succeed)."""
        if target not in self._routed:
            lam = 0.0 if target is None else self.schedule.lam_for(target)
            self._routed[target] = choose(self.proba, self.est_costs, lam, self.cost_scale)
        return self._routed[target]

    def margins(self, key, nxt: np.ndarray) -> np.ndarray:
        return self.v[key] - self.proba[self.at, nxt]

    def plans(self, idx: np.ndarray, routed: np.ndarray):
        """Every candidate plan, thresholds from the margins on the prompts `idx`."""
        for then, nxt in (("router", routed), ("best", self.best)):
            for first in self.firsts:
                m1 = self.margins((first, None), nxt)[idx]
                for t1 in _thresholds(m1):
                    yield {"first": first, "second": None, "then": then, "thresholds": (float(t1),)}
                for second in self.firsts:
                    if second <= first or (second, first) not in self.v:
                        continue
                    m2 = self.margins((second, first), nxt)[idx]
                    for t1 in _thresholds(m1, MARGIN_GRID // 4):
                        for t2 in _thresholds(m2, MARGIN_GRID // 4):
                            yield {"first": first, "second": second, "then": then, "thresholds": (float(t1), float(t2))}

    def evaluated(self, idx: np.ndarray, routed: np.ndarray):
        """(plan, run(plan, idx, routed)) for every plan of `plans(idx, routed)`, in the same order: each
        first step's thresholds (and each pair's grid of two) at once, as arrays, not one plan at a time."""
        at = self.at[idx]
        for then, full in (("router", routed), ("best", self.best)):
            nxt = full[idx]
            s_next, c_next = self.scores[at, nxt], self.costs[at, nxt]
            for first in self.firsts:
                m1 = self.margins((first, None), full)[idx]
                s1, c1 = self.scores[at, first], self.costs[at, first]
                ts = _thresholds(m1)
                escalate = (m1[None, :] < ts[:, None]) & (nxt != first)[None, :]
                quality = np.where(escalate, s_next, s1).mean(axis=1)
                cost = (c1 + np.where(escalate, c_next, 0.0)).mean(axis=1)
                share = escalate.mean(axis=1)
                for k, t1 in enumerate(ts):
                    yield ({"first": first, "second": None, "then": then, "thresholds": (float(t1),)},
                           (float(quality[k]), float(cost[k]), float(share[k])))
                for second in self.firsts:
                    if second <= first or (second, first) not in self.v:
                        continue
                    m2 = self.margins((second, first), full)[idx]
                    s2, c2 = self.scores[at, second], self.costs[at, second]
                    t1s, t2s = _thresholds(m1, MARGIN_GRID // 4), _thresholds(m2, MARGIN_GRID // 4)
                    go_on = (m1[None, :] < t1s[:, None])[:, None, :]  # (t1, 1, prompts)
                    escalate = go_on & (m2[None, None, :] < t2s[None, :, None]) & \
                        ((nxt != second) & (nxt != first))[None, None, :]
                    quality = np.where(go_on, np.where(escalate, s_next, s2), s1).mean(axis=2)
                    cost = (c1 + np.where(go_on, c2, 0.0) + np.where(escalate, c_next, 0.0)).mean(axis=2)
                    share = go_on[:, 0, :].mean(axis=1)
                    for a, t1 in enumerate(t1s):
                        for b, t2 in enumerate(t2s):
                            yield ({"first": first, "second": second, "then": then,
                                    "thresholds": (float(t1), float(t2))},
                                   (float(quality[a, b]), float(cost[a, b]), float(share[a])))

    def run(self, plan: dict | None, idx: np.ndarray, routed: np.ndarray) -> tuple[float, float, float]:
        """(quality, cost, share escalated from the first step) of `plan` (None: single-shot) on prompts `idx`."""
        at = self.at[idx]
        if plan is None:
            return float(self.scores[at, routed[idx]].mean()), float(self.costs[at, routed[idx]].mean()), 0.0
        full = routed if plan["then"] == "router" else self.best
        nxt = full[idx]
        first, second = plan["first"], plan["second"]
        go_on = self.margins((first, None), full)[idx] < plan["thresholds"][0]
        if second is None:
            escalate = go_on & (nxt != first)
            quality = np.where(escalate, self.scores[at, nxt], self.scores[at, first])
            cost = self.costs[at, first] + np.where(escalate, self.costs[at, nxt], 0.0)
            return float(quality.mean()), float(cost.mean()), float(escalate.mean())
        escalate = go_on & (self.margins((second, first), full)[idx] < plan["thresholds"][1]) & \
            (nxt != second) & (nxt != first)
        quality = np.where(go_on, np.where(escalate, self.scores[at, nxt], self.scores[at, second]),
                           self.scores[at, first])
        cost = self.costs[at, first] + np.where(go_on, self.costs[at, second], 0.0) + \
            np.where(escalate, self.costs[at, nxt], 0.0)
        return float(quality.mean()), float(cost.mean()), float(go_on.mean())

    def top(self, idx: np.ndarray) -> tuple[float, float]:
        """(the cheapest model's quality, the best quality any plan reaches) on prompts `idx`."""
        bottom = self.run(None, idx, self.routed(0.0))[0]
        best = [self.run(None, idx, self.routed(1.0))[0]]
        best += [result[0] for plan, result in self.evaluated(idx, self.best) if plan["then"] == "best"]
        return bottom, max(best)

    def single_shot(self, idx: np.ndarray) -> np.ndarray:
        """(quality, cost) of single-shot routing at every target of the grid, on prompts `idx`."""
        key = idx.tobytes()
        if key not in self._single:
            self._single[key] = np.array([self.run(None, idx, self.routed(t))[:2] for t in TARGET_GRID])
        return self._single[key]

    def dominated(self, result: tuple[float, float, float], idx: np.ndarray, margin: float = 0.0) -> bool:
        """Single-shot routing at some target is as good (within `margin`) for no more cost: the cascade pays for nothing."""
        curve = self.single_shot(idx)
        return bool(np.any((curve[:, 0] >= result[0] - margin - 1e-12) & (curve[:, 1] <= result[1] + 1e-12)))

    def choose(self, idx: np.ndarray, target: float, bottom: float, top: float, margin: float = 0.0,
               prefer_single_shot: bool = True):
        """The cheapest plan reaching the target's bar (+ margin) on prompts `idx`, else the best one that beats
        single-shot routing by the margin, else single-shot; and (`prefer_single_shot`) single-shot whenever
        single-shot routing at another target reaches the bar for less than the chosen cascade.

        Never a plan that always escalates (single-shot with a wasted call), nor one that single-shot
        routing at some target matches (within the margin) for no more cost.
        """
        routed = self.routed(target)
        single = self.run(None, idx, routed)
        bar = max(single[0], bottom + target * (top - bottom))
        chosen, fallback = None, (single, None)
        if single[0] >= bar - 1e-12:
            chosen = (single, 0, None)
        for plan, result in self.evaluated(idx, routed):  # a cascade must clear the bar by the margin for unseen prompts
            if plan["second"] is None and result[2] >= 1.0 - 1e-12:
                continue  # every prompt escalated: the first call is never used
            if result[0] <= single[0] + margin + 1e-12 and result[1] >= single[1] - 1e-12:
                continue  # no better than single-shot at this target, for as much or more
            if self.dominated(result, idx, margin):
                continue
            if result[0] > max(fallback[0][0], single[0] + margin) + 1e-12:
                fallback = (result, plan)
            complexity = 1 if plan["second"] is None else 2
            if result[0] >= bar + margin - 1e-12 and (
                    chosen is None or (result[1], complexity) < (chosen[0][1], chosen[1])):
                chosen = (result, complexity, plan)
        if chosen is None:
            return fallback[0], fallback[1], bar, single
        if prefer_single_shot and chosen[2] is not None and self.cheaper_single_shot(idx, bar + margin, chosen[0][1]):
            # Single-shot routing (at a higher target) reaches the bar for less: a cascade here would
            # buy far more quality than the target asks for, at a cost a person would not expect of it.
            return single, None, bar, single
        return chosen[0], chosen[2], bar, single

    def cheaper_single_shot(self, idx: np.ndarray, bar: float, cost: float) -> bool:
        """Does single-shot routing at some target reach `bar` for less than `cost` on prompts `idx`?"""
        curve = self.single_shot(idx)
        reach = curve[curve[:, 0] >= bar - 1e-12]
        return bool(len(reach)) and float(reach[:, 1].min()) < cost - 1e-12


def plan_cascades(data: RoutingData, oof: np.ndarray, verifier_oof: dict, schedule: QualitySchedule,
                  cost_scale: float, est_costs: np.ndarray, default_target: float, fold_of: np.ndarray | None = None,
                  log: Callable[[str], None] = print) -> list[dict]:
    """The cheapest cascade reaching each target's quality bar, with a margin for unseen prompts (module docstring)."""
    firsts = [j for j in range(len(data.models)) if (j, None) in verifier_oof][:MAX_FIRST]
    rows = np.flatnonzero(data.complete & np.all([~np.isnan(verifier_oof[(j, None)]) for j in firsts], axis=0))
    if len(rows) < MIN_PLAN_PROMPTS:
        log(f"  cascades: {len(rows)} complete answered training prompts (need {MIN_PLAN_PROMPTS}); none planned")
        return []
    planner = _Planner(data, oof, verifier_oof, firsts, rows, schedule, cost_scale, est_costs)
    everything = np.arange(len(rows))
    targets = sorted(set(TARGET_GRID) | {round(float(default_target), 4)})

    # The margin: plans chosen on all folds but one fall short of their bar on the one left out.
    shortfalls = []
    folds = fold_of[rows] if fold_of is not None else np.arange(len(rows)) % 5
    for k in np.unique(folds):
        fit, held = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        bottom, top = planner.top(fit)
        held_bottom, held_top = planner.top(held)
        for target in TARGET_GRID[1:-1]:
            # the cascades' own shortfall: single-shot kept where it is cheaper elsewhere is not a cascade's
            _, plan, _, _ = planner.choose(fit, target, bottom, top, prefer_single_shot=False)
            routed = planner.routed(target)
            held_bar = max(planner.run(None, held, routed)[0], held_bottom + target * (held_top - held_bottom))
            shortfalls.append(held_bar - planner.run(plan, held, routed)[0])
    shortfalls = np.asarray(shortfalls)
    margin = max(0.0, float(shortfalls.mean() + shortfalls.std(ddof=1) / math.sqrt(len(shortfalls))))

    bottom, top = planner.top(everything)
    plans = []
    for target in targets:
        (quality, cost, escalated), plan, bar, single = planner.choose(everything, target, bottom, top, margin)
        expected = {"prompts": len(rows), "bar": bar, "margin": margin, "quality": quality, "cost": cost,
                    "single_shot_quality": single[0], "single_shot_cost": single[1], "escalated": escalated}
        named = {"first": None, "second": None, "then": "router", "thresholds": []} if plan is None else {
            "first": data.models[plan["first"]], "then": plan["then"], "thresholds": list(plan["thresholds"]),
            "second": None if plan["second"] is None else data.models[plan["second"]]}
        plans.append({"quality_target": target, **named, "expected": expected})
    cascaded = [p for p in plans if p["first"] is not None]
    log(f"  cascades: planned for {len(plans)} quality targets on {len(rows)} training prompts (quality from "
        f"{bottom:.4f} to {top:.4f}; margin for unseen prompts {margin:.4f}, from planning on all folds but one); a "
        f"cascade pays at {len(cascaded)} of them (at the default target: {_describe(plans, default_target)})")
    assert all(p["then"] in THEN for p in plans)
    return plans


def _describe(plans: list[dict], target: float) -> str:
    plan = next(p for p in plans if p["quality_target"] == round(float(target), 4))
    e = plan["expected"]
    if plan["first"] is None:
        return "single-shot"
    steps = " -> ".join(x for x in (plan["first"], plan["second"], plan["then"]) if x)
    share = e["cost"] / e["single_shot_cost"] if e["single_shot_cost"] > 0 else math.nan
    return (f"{steps}, {e['escalated']:.0%} escalated: quality {e['quality']:.4f} at {share:.0%} of the cost of "
            f"single-shot routing, whose quality is {e['single_shot_quality']:.4f}")


def _thresholds(margins: np.ndarray, points: int = MARGIN_GRID) -> np.ndarray:
    """Thresholds worth trying: never, always, and the margins' quantiles in between."""
    inner = np.unique(np.quantile(margins, np.linspace(0, 1, points + 1)))
    return np.concatenate([[NEVER], inner + 1e-12, [ALWAYS]])
