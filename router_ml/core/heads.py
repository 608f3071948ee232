"""Heads: estimators that map prompt embeddings to each model's probability of success.

Every head has the same shape, so the pipeline can swap one for another and pick by
the routing metric:

    head.fit(X, Y, costs=None, sample_weight=None)
                                 # X (n, dim) embeddings; Y (n, n_models) 1/0, NaN = not tried;
                                 # sample_weight (n, n_models): how much each observed outcome counts
    head.predict_proba(X)        # (n, n_models): P(model j succeeds on the prompt)

Scores and decisions are separate: a head never looks at prices to *decide*; the
policy (`router_ml.core.decision`) trades these probabilities against cost. The label head
uses costs only to define its training label.

- `CheapestSuccessfulHead`: the design's classifier on the cheapest-successful label
  (`router_ml.core.labeling`), multinomial logistic regression. Its class probabilities
  become per-model success probabilities through a matrix S[k, j] = P(model j succeeds
  | label k), estimated on the training data. That keeps the two traps out: a pricier
  but weaker model gets its own measured success rate instead of one assumed from its
  price, and the "no model succeeded" class lowers every model's probability instead
  of pointing at one.
- `PerModelSuccessHead`: one logistic regression per model, each fitted on the prompts
  where that model was tried (so partial logs train it too).
- `KNNHead`: a model's success rate among the k nearest training prompts (cosine), the
  baseline the benchmarks compare against.
- `SimilarityWeightedHead`: each model's success rate over every training prompt, weighted
  by similarity as RouteLLM's similarity-weighted ranking weights its battles; with two
  models, routing on the difference of these rates is RouteLLM's router.
- `BlendHead`: the mean of the per-model and kNN heads.
- `MLPHead`: one small neural network per model.
- `EnsembleHead`: the mean of several heads' calibrated probabilities (training builds
  one from the best few candidates when it measures better than each alone).

`PlattCalibration` and `RoutingHead` wrap whichever head wins so that reported
confidences are calibrated on held-out predictions.

Wrapped scikit-learn estimators do the fitting; these classes follow its contract:
settings in `__init__`, validation in `fit`, learned state ending in `_`, and
`predict_proba` checks that the head is fitted.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from router_ml.core.head_arrays import knn_proba, sw_proba, unit_rows
from router_ml.core.labeling import CENSORED, cheapest_successful_labels

# Laplace-style prior strength for rates estimated from few prompts (S matrix, kNN).
PRIOR_WEIGHT = 1.0


def _check_weights(sample_weight, Y: np.ndarray) -> np.ndarray:
    """(n, n_models) weights, 1 where none are given; finite and > 0 where a model was tried."""
    if sample_weight is None:
        return np.where(np.isnan(Y), 0.0, 1.0)
    W = np.asarray(sample_weight, dtype=np.float64)
    if W.shape != Y.shape:
        raise ValueError(f"sample_weight must have Y's shape {Y.shape}, found {W.shape}")
    tried = ~np.isnan(Y)
    if not (np.isfinite(W[tried]) & (W[tried] > 0)).all():
        raise ValueError("sample_weight must be finite and > 0 wherever a model was tried")
    return np.where(tried, W, 0.0)


def _check_targets(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float32)
    Y = np.asarray(Y, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or len(X) != len(Y):
        raise ValueError(f"expected X (n, dim) and Y (n, n_models) with the same n, found {X.shape} and {Y.shape}")
    if len(X) == 0:
        raise ValueError("cannot fit a head on zero prompts")
    observed = Y[~np.isnan(Y)]
    if not np.isin(observed, (0.0, 1.0)).all():
        raise ValueError("Y must hold 1.0 (success), 0.0 (failure) or NaN (not tried)")
    return X, Y


def _prior_rates(Y: np.ndarray, W: np.ndarray | None = None) -> np.ndarray:
    """Each model's overall (weighted) success rate; 0.5 for a model never tried."""
    W = np.where(np.isnan(Y), 0.0, 1.0) if W is None else W
    tried = W.sum(axis=0)
    wins = (np.nan_to_num(Y) * W).sum(axis=0)
    return np.where(tried > 0, (wins + 0.5) / (tried + 1.0), 0.5)


def one_blas_thread():
    """A context in which BLAS uses one thread: heads are fitted in it, their products being small.

    Logistic regressions and small MLPs multiply a few thousand rows by a few hundred
    columns at a time; extra BLAS threads only synchronise, and on a shared machine
    OpenBLAS's spinning threads fight every other process for the cores. Measured on a
    loaded two-core machine: three logistic regressions on 4,500 x 384, 1.42 s with the
    default threads and 0.17 s with one; one MLP fit on 520 x 384, 12.6 s against 1.4 s.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def success_counts(Y: np.ndarray, sample_weight=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tried, wins, prior) of a training set: each outcome's weight where the model was tried, the
    weighted successes, and each model's overall rate (what the neighbour heads count with)."""
    W = _check_weights(sample_weight, Y)
    return W.astype(np.float32), (np.nan_to_num(Y) * W).astype(np.float32), _prior_rates(Y, W)


class _ConstantProbability:
    """Stands in for a classifier when a model's outcomes on the training data never vary."""

    def __init__(self, p: float) -> None:
        self.p = p

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.tile([1.0 - self.p, self.p], (len(X), 1))


def _fit_per_model(X: np.ndarray, Y: np.ndarray, W: np.ndarray, fit_one, min_rows: int = 1) -> list:
    """One estimator per model, fitted by `fit_one(X, y, w)` on the prompts where that model was
    tried; a constant at the model's prior rate where its outcomes never vary (or are fewer
    than `min_rows`)."""
    prior = _prior_rates(Y, W)
    estimators = []
    with one_blas_thread():
        for j in range(Y.shape[1]):
            tried = ~np.isnan(Y[:, j])
            y = Y[tried, j].astype(int)
            if len(np.unique(y)) < 2 or tried.sum() < min_rows:
                estimators.append(_ConstantProbability(float(prior[j])))
            else:
                estimators.append(fit_one(X[tried], y, W[tried, j]))
    return estimators


def _success_columns(estimators: list, X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    return np.column_stack([est.predict_proba(X)[:, 1] for est in estimators])


class PerModelSuccessHead(BaseEstimator):
    """One logistic regression per model on the prompts where that model was tried."""

    def __init__(self, C: float = 1.0, max_iter: int = 2000) -> None:
        self.C = C
        self.max_iter = max_iter

    def fit(self, X, Y, costs=None, sample_weight=None) -> PerModelSuccessHead:
        X, Y = _check_targets(X, Y)
        W = _check_weights(sample_weight, Y)
        self.estimators_ = _fit_per_model(
            X, Y, W, lambda Xj, y, w: LogisticRegression(C=self.C, max_iter=self.max_iter).fit(Xj, y, sample_weight=w))
        self.n_models_ = Y.shape[1]
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "estimators_")
        return _success_columns(self.estimators_, X)

    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Parameters for router_ml.core.head_arrays (a constant model is a zero row with its logit)."""
        check_is_fitted(self, "estimators_")
        dim = next((e.coef_.shape[1] for e in self.estimators_ if hasattr(e, "coef_")), 0)
        coef = np.zeros((len(self.estimators_), dim))
        intercept = np.zeros(len(self.estimators_))
        for j, est in enumerate(self.estimators_):
            if isinstance(est, _ConstantProbability):
                intercept[j] = _logit(np.array(est.p))
            else:
                coef[j], intercept[j] = est.coef_[0], est.intercept_[0]
        return {prefix + "coef": coef, prefix + "intercept": intercept}


class CheapestSuccessfulHead(BaseEstimator):
    """Multinomial classifier on the cheapest-successful label, mapped to per-model success."""

    def __init__(self, C: float = 1.0, max_iter: int = 2000) -> None:
        self.C = C
        self.max_iter = max_iter

    def fit(self, X, Y, costs=None, sample_weight=None) -> CheapestSuccessfulHead:
        X, Y = _check_targets(X, Y)
        W = _check_weights(sample_weight, Y)
        if costs is None:
            raise ValueError("CheapestSuccessfulHead needs costs (n, n_models) to define the cheapest success")
        labels = cheapest_successful_labels(Y, costs)
        known = labels != CENSORED
        if known.sum() == 0:
            raise ValueError("every prompt is censored (a cheaper model was never tried): no labels to learn from")
        n_models = Y.shape[1]
        self.classes_ = np.unique(labels[known])
        self.label_counts_ = np.bincount(labels[known], minlength=n_models + 1)
        # S[k, j] = P(model j succeeds | label k), shrunk toward j's overall rate.
        prior = _prior_rates(Y, W)
        success_given_label = np.empty((len(self.classes_), n_models))
        for row, k in enumerate(self.classes_):
            block, weights = Y[labels == k], W[labels == k]
            tried = weights.sum(axis=0)
            wins = (np.nan_to_num(block) * weights).sum(axis=0)
            success_given_label[row] = (wins + PRIOR_WEIGHT * prior) / (tried + PRIOR_WEIGHT)
        self.success_given_label_ = success_given_label
        if len(self.classes_) == 1:
            self.classifier_ = None
        else:
            # A prompt's label rests on several observations: it counts as much as their mean weight.
            row_weight = W[known].sum(axis=1) / np.maximum((W[known] > 0).sum(axis=1), 1)
            with one_blas_thread():
                self.classifier_ = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(
                    X[known], labels[known], sample_weight=row_weight)
        self.n_models_ = n_models
        return self

    def predict_label_proba(self, X) -> np.ndarray:
        """(n, n_classes) probabilities of each cheapest-successful label in `classes_`."""
        check_is_fitted(self, "success_given_label_")
        X = np.asarray(X, dtype=np.float32)
        if self.classifier_ is None:
            return np.ones((len(X), 1))
        return self.classifier_.predict_proba(X)

    def predict_proba(self, X) -> np.ndarray:
        return self.predict_label_proba(X) @ self.success_given_label_

    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        check_is_fitted(self, "success_given_label_")
        if self.classifier_ is None:
            coef, intercept = np.zeros((0, 0)), np.zeros(0)
        else:
            coef, intercept = self.classifier_.coef_, self.classifier_.intercept_
        return {prefix + "label_coef": coef, prefix + "label_intercept": intercept,
                prefix + "success_given_label": self.success_given_label_}


class KNNHead(BaseEstimator):
    """Success rate of each model among the k most similar training prompts (cosine)."""

    def __init__(self, k: int = 25) -> None:
        self.k = k

    def fit(self, X, Y, costs=None, sample_weight=None) -> KNNHead:
        X, Y = _check_targets(X, Y)
        if self.k < 1:
            raise ValueError(f"k: expected >= 1, found {self.k}")
        self.X_ = unit_rows(X)
        self.tried_, self.wins_, self.prior_ = success_counts(Y, sample_weight)
        return self

    def predict_proba(self, X) -> np.ndarray:
        # The serving code, block by block: a whole query-by-training similarity matrix (and its
        # argpartition indices) grew as the square of the log, 1.4 GB at 24,000 prompts in validation.
        check_is_fitted(self, "X_")
        return knn_proba(self.to_arrays(), "", np.asarray(X, dtype=np.float32))

    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        check_is_fitted(self, "X_")
        return {prefix + "train_X": self.X_, prefix + "tried": self.tried_, prefix + "wins": self.wins_,
                prefix + "prior": self.prior_, prefix + "k": np.array(self.k),
                prefix + "prior_weight": np.array(PRIOR_WEIGHT)}


class SimilarityWeightedHead(BaseEstimator):
    """Each model's success rate over every training prompt, each weighted 10 * 10^(sim / max sim).

    The weighting of RouteLLM's similarity-weighted (SW) ranking router, whose two-model
    form is a weighted Bradley-Terry win rate of the strong model; with 0/1 outcomes and
    ties counted as half a win that rate is 1/2 + (p_strong - p_weak) / 2 of these rates,
    so routing on their difference is RouteLLM's router, and with more models the same
    rates trade against cost like any head's.
    """

    def fit(self, X, Y, costs=None, sample_weight=None) -> SimilarityWeightedHead:
        X, Y = _check_targets(X, Y)
        self.X_ = unit_rows(X)
        self.tried_, self.wins_, self.prior_ = success_counts(Y, sample_weight)
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "X_")
        return sw_proba(self.to_arrays(), "", np.asarray(X, dtype=np.float32))

    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        check_is_fitted(self, "X_")
        return {prefix + "train_X": self.X_, prefix + "tried": self.tried_, prefix + "wins": self.wins_,
                prefix + "prior": self.prior_}


class MLPHead(BaseEstimator):
    """One small multilayer perceptron per model (a baseline in evaluation reports)."""

    def __init__(self, hidden: int = 128, alpha: float = 1e-3, max_iter: int = 200, random_state: int = 0) -> None:
        self.hidden = hidden
        self.alpha = alpha
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X, Y, costs=None, sample_weight=None) -> MLPHead:
        from sklearn.neural_network import MLPClassifier

        X, Y = _check_targets(X, Y)
        W = _check_weights(sample_weight, Y)

        def fit_one(Xj, y, w):
            # Early stopping holds out 10 %: worth it only when that is a real validation set.
            mlp = MLPClassifier(hidden_layer_sizes=(self.hidden,), alpha=self.alpha, max_iter=self.max_iter,
                                early_stopping=bool(len(y) >= 1000), random_state=self.random_state)
            with warnings.catch_warnings():
                # A baseline with a fixed budget of epochs; not converging is part of what it measures.
                warnings.simplefilter("ignore", ConvergenceWarning)
                return mlp.fit(Xj, y, sample_weight=w)

        self.estimators_ = _fit_per_model(X, Y, W, fit_one, min_rows=20)
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "estimators_")
        return _success_columns(self.estimators_, X)

    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        check_is_fitted(self, "estimators_")
        out = {prefix + "n_models": np.array(len(self.estimators_))}
        for j, est in enumerate(self.estimators_):
            q = f"{prefix}m{j}_"
            if isinstance(est, _ConstantProbability):
                out[q + "const"] = np.array(est.p)
                continue
            out[q + "layers"] = np.array(len(est.coefs_))
            for i, (W, b) in enumerate(zip(est.coefs_, est.intercepts_)):
                out[f"{q}W{i}"], out[f"{q}b{i}"] = W, b
        return out


class BlendHead(BaseEstimator):
    """The mean of a per-model logistic head and a kNN head.

    The two err differently: the linear head sees global directions in embedding space
    (topic, language, task), the kNN head local neighbourhoods (near-duplicate
    questions, narrow sub-topics). Averaging their probabilities lowers variance; on
    both real data sets it routed better than either alone (benchmarks/quality.py).
    """

    def __init__(self, C: float = 0.1, k: int = 50) -> None:
        self.C = C
        self.k = k

    def fit(self, X, Y, costs=None, sample_weight=None) -> BlendHead:
        self.linear_ = PerModelSuccessHead(C=self.C).fit(X, Y, sample_weight=sample_weight)
        self.knn_ = KNNHead(k=self.k).fit(X, Y, sample_weight=sample_weight)
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "knn_")
        return 0.5 * (self.linear_.predict_proba(X) + self.knn_.predict_proba(X))

    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        return {**self.linear_.to_arrays(prefix + "linear_"), **self.knn_.to_arrays(prefix + "knn_")}


class EnsembleHead(BaseEstimator):
    """The mean of several heads' calibrated probabilities: "a calibrated average of the best few".

    `members` is a list of (strategy, params) pairs naming heads in HEADS. Each member's
    probabilities are Platt-scaled before averaging, so that a timid head and a bold one
    count alike; the scaling must come from predictions on prompts the member did not see.
    `fit` takes them as `member_calibrations` (training has them from cross-validation)
    or, without them, fits each on `calibration_folds`-fold out-of-fold predictions.
    """

    def __init__(self, members=(("per_model", {"C": 0.3}), ("knn", {"k": 25})), calibration_folds: int = 5,
                 random_state: int = 0) -> None:
        self.members = members
        self.calibration_folds = calibration_folds
        self.random_state = random_state

    def _member_specs(self) -> list[tuple[str, dict]]:
        specs = [(str(kind), dict(params)) for kind, params in self.members]
        if len(specs) < 2:
            raise ValueError(f"members: expected at least 2 heads, found {len(specs)}")
        for kind, _ in specs:
            if kind not in HEADS or kind == "ensemble":
                raise ValueError(f"members: {kind!r} is not a head that can be averaged; expected one of "
                                 f"{sorted(set(HEADS) - {'ensemble'})}")
        return specs

    def fit(self, X, Y, costs=None, sample_weight=None, member_calibrations=None) -> EnsembleHead:
        X, Y = _check_targets(X, Y)
        specs = self._member_specs()
        if member_calibrations is None:
            folds = np.random.default_rng(self.random_state).permutation(len(X)) % self.calibration_folds
            member_calibrations = []
            for kind, params in specs:
                raw = np.empty(Y.shape)
                for k in range(self.calibration_folds):
                    held = folds == k
                    fitted = HEADS[kind](**params).fit(X[~held], Y[~held], costs=None if costs is None else costs[~held],
                                                       sample_weight=None if sample_weight is None else sample_weight[~held])
                    raw[held] = fitted.predict_proba(X[held])
                member_calibrations.append(PlattCalibration().fit(raw, Y, sample_weight=sample_weight))
        if len(member_calibrations) != len(specs):
            raise ValueError(f"member_calibrations: expected {len(specs)}, found {len(member_calibrations)}")
        self.heads_ = [HEADS[kind](**params).fit(X, Y, costs=costs, sample_weight=sample_weight) for kind, params in specs]
        self.kinds_ = [kind for kind, _ in specs]
        self.calibrations_ = list(member_calibrations)
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "heads_")
        return np.mean([c.transform(h.predict_proba(X)) for h, c in zip(self.heads_, self.calibrations_)], axis=0)

    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        check_is_fitted(self, "heads_")
        out = {prefix + "n_members": np.array(len(self.heads_))}
        for i, (kind, head, calibration) in enumerate(zip(self.kinds_, self.heads_, self.calibrations_)):
            q = f"{prefix}m{i}_"
            out.update(head.to_arrays(q))
            out[q + "kind"] = np.array(kind)
            out[q + "calibration_coef"] = calibration.coef_
            out[q + "calibration_intercept"] = calibration.intercept_
        return out


HEADS = {
    "cheapest_successful": CheapestSuccessfulHead,
    "per_model": PerModelSuccessHead,
    "knn": KNNHead,
    "sw": SimilarityWeightedHead,
    "blend": BlendHead,
    "mlp": MLPHead,
    "ensemble": EnsembleHead,
}


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


class ExtendedHead(BaseEstimator):
    """A fitted head for the models a router was trained on, extended with a per-model head for models
    onboarded since (router_ml.policy.onboarding): their outcomes come only from the traffic they were
    sent, so they cannot join the base head's selection; each gets its own logistic regression on the
    prompts it answered. `order` puts the columns (base's, then the extra's) in the router's model order.
    Not a candidate of head selection: retraining builds it (router_ml.training.fit.pipeline).
    """

    def __init__(self, base=None, extra=None, order=None) -> None:
        self.base = base
        self.extra = extra
        self.order = order

    def predict_proba(self, X) -> np.ndarray:
        return np.hstack([self.base.predict_proba(X), self.extra.predict_proba(X)])[:, self.order]

    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        kind = next((name for name, cls in HEADS.items() if type(self.base) is cls), None)
        if kind is None:
            raise ValueError(f"no compiled form for {type(self.base).__name__}")
        return {prefix + "base_kind": np.array(kind), prefix + "order": np.asarray(self.order, dtype=np.int64),
                **self.base.to_arrays(prefix + "base_"), **self.extra.to_arrays(prefix + "extra_")}


# Every head a router may carry (the candidates of head selection, and heads built from them).
COMPILED = {**HEADS, "extended": ExtendedHead}


class PlattCalibration(BaseEstimator):
    """Per-model Platt scaling: P(success) = sigmoid(a_j * logit(p_j) + b_j).

    Fitted on out-of-fold probabilities (predictions for prompts the head did not see),
    so a strongly regularised head that is right about the order of prompts but timid
    about its probabilities still reports honest confidences. Monotone per model: it
    never reorders prompts for one model, only fixes how models compare.
    """

    def fit(self, proba, Y, sample_weight=None) -> PlattCalibration:
        proba, Y = np.asarray(proba, dtype=float), np.asarray(Y, dtype=float)
        W = _check_weights(sample_weight, Y)
        self.coef_ = np.ones(Y.shape[1])
        self.intercept_ = np.zeros(Y.shape[1])
        for j in range(Y.shape[1]):
            tried = ~np.isnan(Y[:, j])
            y = Y[tried, j]
            if len(np.unique(y)) < 2:
                continue  # nothing to learn: keep the head's probabilities
            lr = LogisticRegression(C=1e4, max_iter=1000).fit(_logit(proba[tried, j])[:, None], y.astype(int),
                                                              sample_weight=W[tried, j])
            self.coef_[j], self.intercept_[j] = lr.coef_[0, 0], lr.intercept_[0]
        return self

    def transform(self, proba) -> np.ndarray:
        check_is_fitted(self, "coef_")
        z = _logit(np.asarray(proba, dtype=float)) * self.coef_ + self.intercept_
        return 1.0 / (1.0 + np.exp(-z))


class RoutingHead(BaseEstimator):
    """What an artifact stores: a fitted head and its calibration.

    `predict(X)` returns the calibrated probabilities: what the router trades against
    cost and what a Decision reports as `scores` and `confidence`, one probability space
    so that a reason can never contradict a choice. `route_on_calibrated=False` exists
    for routers trained before that rule (they routed on the head's own probabilities and
    now report those too); training always sets it.
    """

    def __init__(self, head=None, calibration=None, route_on_calibrated: bool = True) -> None:
        self.head = head
        self.calibration = calibration
        self.route_on_calibrated = route_on_calibrated

    def predict(self, X) -> np.ndarray:
        raw = self.head.predict_proba(X)
        return self.calibration.transform(raw) if self.route_on_calibrated else raw

    predict_proba = predict

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything router_ml.core.head_arrays needs to predict exactly as this head does."""
        from router_ml.core import head_arrays

        kind = next((name for name, cls in COMPILED.items() if type(self.head) is cls), None)
        if kind is None:
            raise ValueError(f"no compiled form for {type(self.head).__name__}")
        return {"format": np.array(head_arrays.FORMAT), "kind": np.array(kind),
                "route_on_calibrated": np.array(self.route_on_calibrated),
                "calibration_coef": self.calibration.coef_, "calibration_intercept": self.calibration.intercept_,
                **self.head.to_arrays("head_")}
