"""The learned verifier: P(success | prompt, answer, model), and the cascades planned from it.

`router-ml train` fits it whenever the outcomes log has responses (training/fit/verifier.py)
and stores it in the router: `verifier.npz` (plain arrays, no pickle) and a `verifier`
section in the manifest. For each model with enough answered rows there is one logistic
model on standardised features, from one of these sets (chosen per model by
cross-validated log loss on the training folds):

    estimate                   the router's own prompt-only P(success) for that model (logit)
    text                       plain signals of the answer (router_ml.policy.answers.TEXT_FEATURES)
    text+estimate              both
    text+estimate+embedding    and the answer's embedding by the router's embedder

and, where two models' answers were logged on the same prompts, an *agreement* model for
the second one (`after` the first): its set plus whether the two answers agree, read in the
`answer_form` (router_ml.policy.answers.ANSWER_FORMS: the marked final answer, a choice
letter, the last number, a code block, the last line, the whole text) whose agreement
predicted success best on the training folds; "final" for routers trained before forms.

**Escalation rule.** A cascade step's answer is kept unless its verifier score falls
short of what escalating would bring: escalate when

    verifier(answer) - estimate(the model escalated to) < threshold

(the model escalated to is the cascade's last step, for the second cheap step's answer as
for the first's), so a doubtful answer is escalated only when the strong model is likely
to do better (on GSM8K, prompts both models fail are not paid for twice). The planned cascades (`plans`)
give, per quality target, the first model, an optional second cheap model checked by
agreement, where to escalate (`router`: the router's choice at that target; `best`: the
model it rates most likely to succeed) and the thresholds; each was fitted on the
training folds to reach the single-shot router's quality at that target for the least
expected cost, every call counted. `plan_for(target)` picks the plan stored for the
highest target not above the one asked for.
"""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from router_ml.errors import ArtifactFormatError
from router_ml.policy.answers import ANSWER_FORMS, TEXT_FEATURES, agree, text_features

VERIFIER_FILE = "verifier.npz"
FORMAT = 1
FEATURE_SETS = ("estimate", "text", "text+estimate", "text+estimate+embedding")
AGREEMENT_FEATURES = ("agree", "no_common_answer")
THEN = ("router", "best")  # where a learned cascade escalates to
_EPS = 1e-4


def logit(p: float) -> float:
    p = min(max(float(p), _EPS), 1 - _EPS)
    return math.log(p / (1 - p))


def feature_names(features: str, dim: int = 0, after: str | None = None) -> list[str]:
    names = []
    if "text" in features.split("+"):
        names += list(TEXT_FEATURES)
    if "estimate" in features.split("+"):
        names.append("estimate_logit")
    if "embedding" in features.split("+"):
        names += [f"embedding_{i}" for i in range(dim)]
    if after is not None:
        names += list(AGREEMENT_FEATURES)
    return names


def feature_vector(features: str, prompt: str, text: str, estimate: float, embedding: np.ndarray | None = None,
                   earlier: str | None = None, text_part: np.ndarray | None = None, form: str = "final") -> np.ndarray:
    """The features of one answer for a verifier using `features` (and agreement with `earlier`,
    the two answers read in `form`)."""
    parts = []
    kinds = features.split("+")
    if "text" in kinds:
        parts.append(text_features(prompt, text) if text_part is None else text_part)
    if "estimate" in kinds:
        parts.append(np.array([logit(estimate)]))
    if "embedding" in kinds:
        if embedding is None:
            raise ValueError("this verifier reads the answer's embedding")
        parts.append(np.asarray(embedding, dtype=np.float64))
    if earlier is not None:
        same = agree(text, earlier, form)
        parts.append(np.array([float(same is True), float(same is None)]))
    return np.concatenate(parts) if parts else np.zeros(0)


@dataclass
class LogisticModel:
    """P(success) = sigmoid(coef . (x - mean) / scale + intercept)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def predict(self, X: np.ndarray) -> np.ndarray:
        z = ((np.atleast_2d(X) - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


@dataclass
class Entry:
    """One verifier: for `model`'s answers (after `after`'s answer, for an agreement verifier)."""

    model: str
    after: str | None
    features: str
    fit: LogisticModel
    validation: dict
    answer_form: str = "final"  # how an agreement verifier reads the two answers (ANSWER_FORMS)

    @property
    def uses_embedding(self) -> bool:
        return "embedding" in self.features


@dataclass(frozen=True)
class CascadePlan:
    """A learned cascade for one quality target (see the module docstring)."""

    quality_target: float
    first: str | None  # None: no cascade pays at this target; route single-shot
    second: str | None = None  # a second cheap model, kept when it agrees (its agreement verifier passes)
    then: str = "router"  # "router" or "best"
    thresholds: tuple[float, ...] = ()  # one per checked step (first, then second)
    expected: dict | None = None  # training-fold quality, cost, escalation share

    def to_dict(self) -> dict:
        return {"quality_target": self.quality_target, "first": self.first, "second": self.second, "then": self.then,
                "thresholds": list(self.thresholds), "expected": self.expected}

    @classmethod
    def from_dict(cls, data: dict) -> CascadePlan:
        return cls(float(data["quality_target"]), data.get("first"), data.get("second"), data.get("then", "router"),
                   tuple(float(t) for t in data.get("thresholds", ())), data.get("expected"))


class Verifier:
    """A router's learned verifier and planned cascades (see the module docstring)."""

    def __init__(self, spec: dict, arrays: dict[str, np.ndarray], models: list[str], embedder=None) -> None:
        if int(spec.get("format", 0)) != FORMAT:
            raise ValueError(f"verifier format {spec.get('format')!r}, expected {FORMAT}")
        self.embedder = embedder
        self.entries: dict[tuple[str, str | None], Entry] = {}
        for i, e in enumerate(spec["entries"]):
            if e["model"] not in models or (e.get("after") is not None and e["after"] not in models):
                raise ValueError(f"verifier entry {i} names a model the router does not route to: {e['model']!r}")
            if e["features"] not in FEATURE_SETS:
                raise ValueError(f"verifier entry {i}: unknown feature set {e['features']!r}")
            fit = LogisticModel(np.asarray(arrays[f"{i}.mean"], dtype=np.float64),
                                np.asarray(arrays[f"{i}.scale"], dtype=np.float64),
                                np.asarray(arrays[f"{i}.coef"], dtype=np.float64), float(arrays[f"{i}.intercept"]))
            if not (len(fit.mean) == len(fit.scale) == len(fit.coef)):
                raise ValueError(f"verifier entry {i}: arrays of different lengths")
            form = e.get("answer_form", "final")
            if form not in ANSWER_FORMS:
                raise ValueError(f"verifier entry {i}: unknown answer form {form!r}, expected one of {sorted(ANSWER_FORMS)}")
            self.entries[(e["model"], e.get("after"))] = Entry(e["model"], e.get("after"), e["features"], fit,
                                                               e.get("validation", {}), form)
        self.plans = sorted((CascadePlan.from_dict(p) for p in spec.get("plans", [])), key=lambda p: p.quality_target)
        for plan in self.plans:
            for model in (plan.first, plan.second):
                if model is not None and (model, None) not in self.entries:
                    raise ValueError(f"plan for quality_target {plan.quality_target}: no verifier for {model!r}")
            if plan.then not in THEN:
                raise ValueError(f"plan for quality_target {plan.quality_target}: then {plan.then!r}, expected {THEN}")
        self.spec = spec

    @property
    def models(self) -> list[str]:
        return [m for m, after in self.entries if after is None]

    def has(self, model: str) -> bool:
        return (model, None) in self.entries

    def score(self, model: str, prompt: str, text: str, estimate: float, earlier: tuple[tuple[str, str], ...] = ()
              ) -> float | None:
        """P(success) of `model`'s answer `text`; uses the agreement verifier with the latest earlier
        answer it has one for. None when there is no verifier for this model."""
        entry, before = self.entries.get((model, None)), None
        for other, other_text in reversed(earlier):
            if (model, other) in self.entries:
                entry, before = self.entries[(model, other)], other_text
                break
        if entry is None:
            return None
        embedding = None
        if entry.uses_embedding:
            if self.embedder is None:
                raise ValueError(f"the verifier of {model} reads the answer's embedding, and no embedder was given")
            embedding = self.embedder.encode([text])[0]
        x = feature_vector(entry.features, prompt, text, estimate, embedding, before, form=entry.answer_form)
        return float(entry.fit.predict(x)[0])

    def plan_for(self, quality_target: float) -> CascadePlan | None:
        """The plan stored for the highest target not above `quality_target` (None: no plans)."""
        chosen = None
        for plan in self.plans:
            if plan.quality_target <= quality_target + 1e-12:
                chosen = plan
        return chosen or (self.plans[0] if self.plans else None)


def load_verifier(router) -> Verifier | None:
    """The router's verifier, or None when it was trained without responses."""
    spec = router.manifest.get("verifier")
    if not spec:
        return None
    if router.path is None:
        raise ArtifactFormatError("the router has a verifier but no artifact directory to read it from")
    path = Path(router.path) / VERIFIER_FILE
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        return Verifier(spec, arrays, router.models, embedder=router.embedder)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ArtifactFormatError(f"{path}: not a verifier this router-ml can read: {exc}") from exc


_LOADED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOADED_LOCK = threading.Lock()


def verifier_of(router) -> Verifier | None:
    """`load_verifier(router)`, once per router object."""
    with _LOADED_LOCK:
        if router not in _LOADED:
            _LOADED[router] = load_verifier(router)
        return _LOADED[router]


def attach_verifier(router, verifier: Verifier | None) -> None:
    """Give a router object its verifier (training evaluates a router before it is written)."""
    with _LOADED_LOCK:
        _LOADED[router] = verifier
