"""The predictor: a loaded router that turns prompts into `Decision`s.

    router = load_router("models/demo")            # or "models:/NAME/3", "models:/NAME@champion"
    router.route("Prove that ...")                  # -> Decision
    router.route_batch(prompts, quality_target=0.8) # -> list[Decision], one batched embedding

The router embeds prompts (with a bounded in-process cache, so a sweep of
`quality_target` over the same prompts embeds each once), asks the head for each
model's probability of success, estimates each model's cost from the prompt's length
and the packaged prices, and lets the policy choose.

Deliberately left out: rules, cascades, fallbacks and the audit trail, which wrap a
Router rather than live in it.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from router_ml.core.artifact import MANIFEST_FILE, read_artifact
from router_ml.core.catalog import CostModel
from router_ml.core.decision import Decision, QualitySchedule, choose, explain_choice
from router_ml.core.embedders import CachedEmbedder, Embedder, make_embedder
from router_ml.core.neighbours import NEIGHBOURS_FILE, Neighbour, TrainingNeighbours
from router_ml.core.prompts import normalize_prompt
from router_ml.core.validation import check_quality_target
from router_ml.errors import (
    ArtifactError,
    ArtifactFormatError,
    ConfigError,
    EmbedderMismatchError,
    PromptError,
)

DEFAULT_MAX_PROMPT_CHARS = 500_000
DEFAULT_EMBEDDING_CACHE = 4096
DEFAULT_DECISION_CACHE = 1024  # serving default; training and evaluation build routers with 0


@dataclass(frozen=True)
class Scores:
    """What the router knows about a batch of prompts before the decision rule chooses.

    One probability space: `proba` is what the rule trades against cost and what a
    Decision reports as `scores` and `confidence` (calibrated, for routers trained by this
    version; see heads.RoutingHead).
    """

    proba: np.ndarray  # P(success) per model, (n, n_models)
    costs: np.ndarray  # estimated USD cost per model, (n, n_models)
    novelty: np.ndarray | None = None  # (n,) in [0, 1], when the router carries its training prompts


@dataclass
class Explanation:
    """What `Router.explain` returns; `render()` is what `router-ml route --explain` prints."""

    decision: Decision
    lam: float  # the trade-off rate at this target: P(success) worth lam * cost / cost_scale
    cost_scale: float
    estimates: list[dict]  # per model: p_success, cost, utility (p - lam * cost / cost_scale)
    neighbours: list[Neighbour]

    def render(self) -> str:
        d = self.decision
        lines = [f"-> {d.model} (p={d.confidence:.2f}, ~${d.estimated_cost:.2g}): {d.reason}"]
        if d.novelty is not None:
            lines.append(f"novelty {d.novelty:.2f} (share of held-out prompts at least this close to the training data: "
                         f"{1 - d.novelty:.0%})")
        width = max(len(e["model"]) for e in self.estimates)
        lines.append(f"{'model':<{width}s}  p(success)  est. cost  utility at quality_target {d.quality_target:g}")
        for e in self.estimates:
            utility = "n/a" if e["utility"] is None else f"{e['utility']:+.4f}"
            mark = " <-" if e["model"] == d.model else ""
            lines.append(f"{e['model']:<{width}s}  {e['p_success']:10.3f}  {e['cost']:9.2g}  {utility}{mark}")
        if not self.neighbours:
            lines.append("(this router carries no training prompts to compare with)")
        for n in self.neighbours:
            outcomes = ", ".join(f"{m} {'-' if v is None else format(v, 'g')}" for m, v in n.outcomes.items())
            lines.append(f"  similarity {n.similarity:.2f}: {' '.join(n.prompt.split())[:90]!r}")
            lines.append(f"      {outcomes}")
        return "\n".join(lines)


class Router:
    """A packaged router, ready to route. Build it with `load_router`."""

    def __init__(
        self,
        manifest: dict,
        head,
        embedder: Embedder,
        *,
        embedding_cache_size: int = DEFAULT_EMBEDDING_CACHE,
        decision_cache_size: int = 0,
        max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
        path: str | None = None,
        neighbours: TrainingNeighbours | None = None,
    ) -> None:
        self.manifest = manifest
        self.head = head
        self.path = path
        self.neighbours = neighbours
        self.version: str = manifest["router_version"]
        self.models: list[str] = list(manifest["models"])
        try:
            self.cost_model = CostModel.from_dict(manifest["cost_model"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactFormatError(f"manifest: cost_model is malformed: {exc}") from exc
        if self.cost_model.models != self.models:
            raise ArtifactFormatError(
                f"manifest: cost_model lists {self.cost_model.models}, expected the models {self.models} in that order"
            )
        policy = manifest["policy"]
        try:
            self.schedule = QualitySchedule.from_dict(policy["schedule"])
        except (KeyError, TypeError, ValueError) as exc:  # ConfigError is a ValueError too
            raise ArtifactFormatError(f"manifest: policy.schedule is malformed: {exc}") from exc
        self.cost_scale = float(policy["cost_scale"])
        self.default_quality_target = float(policy["default_quality_target"])
        self.max_prompt_chars = max_prompt_chars
        self.embedder = CachedEmbedder(embedder, maxsize=embedding_cache_size)
        # Repeated (prompt, target) pairs return the same Decision object; treat it as read-only.
        self.decision_cache_size = decision_cache_size
        self._decisions: OrderedDict[tuple, Decision] = OrderedDict()
        self._decisions_lock = threading.Lock()
        self._lams: dict[float, float] = {}
        self._blas = None

    def _predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The head's probabilities and the novelty of embeddings; small batches with one BLAS thread.

        The products are tiny (one prompt against a few thousand training vectors): a
        second BLAS thread only adds synchronisation, and OpenBLAS's spinning threads fight
        the embedder's threads for the cores. Measured on the LLMRouter router with the
        torch backend: route() p50 116 ms with both pools spinning, 27 ms with BLAS held to
        one thread; with the static embedder, novelty alone took 7 ms a prompt under
        several BLAS threads.
        """
        if len(X) > 64:
            return self.head.predict(X), self._novelty(X)
        if self._blas is None:
            from threadpoolctl import ThreadpoolController

            self._blas = ThreadpoolController()
        with self._blas.limit(limits=1, user_api="blas"):
            return self.head.predict(X), self._novelty(X)

    def _lam(self, target: float) -> float:
        lam = self._lams.get(target)
        if lam is None:
            lam = self._lams[target] = self.schedule.lam_for(target)
            if len(self._lams) > 1024:
                self._lams.clear()
        return lam

    def trade_off(self, quality_target: float | None = None) -> float:
        """The rate lam the decision rule trades P(success) against cost at this target (see
        router_ml.core.decision): utility = p - lam * cost / cost_scale."""
        return self._lam(self._quality_target(quality_target))

    def __repr__(self) -> str:
        return f"Router(version={self.version!r}, models={self.models}, embedder={self.embedder.id!r})"

    def normalize(self, prompts) -> tuple[list[str], int]:
        """The prompts as the router sees them (router_ml.core.prompts) and how many characters
        were replaced; a PromptError naming the first bad one."""
        if isinstance(prompts, str):
            raise PromptError("route_batch: expected a list of prompts, found a single string; use route() for one")
        if prompts is None or not hasattr(prompts, "__iter__") or isinstance(prompts, (dict, bytes)):
            raise PromptError(f"prompts: expected a list of strings, found {type(prompts).__name__}")
        prompts = list(prompts)
        out, replaced = [], 0
        for i, prompt in enumerate(prompts):
            text, n = normalize_prompt(prompt, f"prompts[{i}]" if len(prompts) > 1 else "prompt", self.max_prompt_chars)
            out.append(text)
            replaced += n
        return out, replaced

    def check_prompts(self, prompts) -> list[str]:
        return self.normalize(prompts)[0]

    def _quality_target(self, quality_target) -> float:
        return self.default_quality_target if quality_target is None else check_quality_target(quality_target)

    def predict_scores(self, prompts: list[str], embeddings: np.ndarray | None = None) -> Scores:
        """Success probabilities and estimated costs, (n, n_models) each.

        `embeddings` (from this router's embedder) skips embedding, for evaluations that
        already hold them.
        """
        return self._scores(self.check_prompts(prompts), embeddings)

    def _scores(self, prompts: list[str], embeddings: np.ndarray | None = None) -> Scores:
        """predict_scores for prompts already normalised."""
        if embeddings is None:
            embeddings = self.embedder.encode(prompts)
        proba, novelty = self._predict(embeddings)
        costs = self.cost_model.estimate(np.fromiter((len(p) for p in prompts), dtype=np.int64, count=len(prompts)))
        return Scores(proba, costs, novelty)

    def _novelty(self, X: np.ndarray) -> np.ndarray | None:
        return None if self.neighbours is None else self.neighbours.novelty(X)

    def allowed_mask(self, models) -> np.ndarray | None:
        """Boolean mask over `self.models` for a restriction (None: every model)."""
        if models is None:
            return None
        unknown = sorted(set(models) - set(self.models))
        if unknown:
            raise ConfigError(f"allowed models {unknown}: not routed by {self.version} (it routes {self.models})")
        mask = np.array([m in set(models) for m in self.models])
        if not mask.any():
            raise ConfigError("allowed models: the restriction leaves no model to route to")
        return mask

    def choose_indices(self, scores: Scores, quality_target: float | None = None, allowed=None) -> np.ndarray:
        """Chosen model index per prompt of `predict_scores` output, at a quality target.

        `allowed`: model names to choose among, or a boolean (n_prompts, n_models) mask.
        """
        target = self._quality_target(quality_target)
        mask = allowed if isinstance(allowed, np.ndarray) else self.allowed_mask(allowed)
        return choose(scores.proba, scores.costs, self._lam(target), self.cost_scale, mask)

    def route(self, prompt: str, quality_target: float | None = None, allowed=None) -> Decision:
        """Route one prompt; `quality_target` None uses the router's default; `allowed`
        (model names) restricts the candidates, as rules do.

        The serving path: a decision-cache lookup, one embedding, one head call.
        """
        target = self._quality_target(quality_target)
        key = (prompt, target, None if allowed is None else tuple(sorted(allowed)))
        cached = self.decision_cache_size and self._cached(key)
        if cached:
            return cached
        [prompt] = self.check_prompts([prompt])
        mask = self.allowed_mask(allowed)
        X = self.embedder.encode([prompt])
        proba, novelty = self._predict(X)
        costs = self.cost_model.estimate(len(prompt))
        lam = self._lam(target)
        chosen = int(choose(proba, costs, lam, self.cost_scale, mask)[0])
        decision = self._decision(proba[0].tolist(), costs[0].tolist(), chosen, target, lam, mask,
                                  None if novelty is None else float(novelty[0]))
        if self.decision_cache_size:
            self._remember(key, decision)
        return decision

    def _cached(self, key) -> Decision | None:
        with self._decisions_lock:
            decision = self._decisions.get(key) if isinstance(key[0], str) else None
            if decision is not None:
                self._decisions.move_to_end(key)
            return decision

    def _remember(self, key, decision: Decision) -> None:
        with self._decisions_lock:
            self._decisions[key] = decision
            while len(self._decisions) > self.decision_cache_size:
                self._decisions.popitem(last=False)

    def route_batch(self, prompts: list[str], quality_target: float | None = None, allowed=None) -> list[Decision]:
        """Route many prompts with one batched embedding; same decisions as `route` one by one."""
        target = self._quality_target(quality_target)
        prompts = self.check_prompts(prompts)
        if len(prompts) == 0:
            return []
        mask = self.allowed_mask(allowed)
        return self.decisions_from(self._scores(prompts), target, mask)

    def decisions_from(self, scores: Scores, quality_target: float | None = None, allowed=None, rows=None) -> list[Decision]:
        """Decisions from `predict_scores` output (optionally for some `rows`), without re-embedding:
        how evaluations and replays sweep targets and restrictions over the same prompts."""
        target = self._quality_target(quality_target)
        mask = allowed if isinstance(allowed, np.ndarray) or allowed is None else self.allowed_mask(allowed)
        if rows is not None:
            scores = Scores(scores.proba[rows], scores.costs[rows],
                            None if scores.novelty is None else scores.novelty[rows])
        lam = self._lam(target)
        chosen = choose(scores.proba, scores.costs, lam, self.cost_scale, mask).tolist()
        proba, costs = scores.proba.tolist(), scores.costs.tolist()  # Python floats once, not per element
        novelty = [None] * len(chosen) if scores.novelty is None else scores.novelty.tolist()
        per_row = mask is not None and mask.ndim == 2
        return [self._decision(proba[i], costs[i], chosen[i], target, lam, mask[i] if per_row else mask, novelty[i])
                for i in range(len(chosen))]

    def _decision(self, proba: list[float], costs: list[float], chosen: int, target: float, lam: float,
                  mask: np.ndarray | None = None, novelty: float | None = None) -> Decision:
        return Decision(
            model=self.models[chosen],
            confidence=proba[chosen],
            scores=dict(zip(self.models, proba)),
            reason=explain_choice(self.models, proba, costs, chosen, target, lam, self.cost_scale, mask),
            router_version=self.version,
            quality_target=target,
            estimated_cost=costs[chosen],
            costs=dict(zip(self.models, costs)),
            novelty=novelty,
        )

    def explain(self, prompt: str, quality_target: float | None = None, k: int = 5) -> Explanation:
        """Why `prompt` goes where it goes: every model's estimate, cost and trade-off at this
        target, the prompt's novelty, and the `k` nearest training prompts with what each model
        did on them (when the router carries its training prompts)."""
        target = self._quality_target(quality_target)
        [prompt] = self.check_prompts([prompt])
        X = self.embedder.encode([prompt])
        proba, novelty = self._predict(X)
        decision = self.decisions_from(Scores(proba, self.cost_model.estimate(len(prompt)), novelty), target)[0]
        lam = self._lam(target)
        estimates = [{"model": m, "p_success": decision.scores[m], "cost": decision.costs[m],
                      "utility": None if math.isinf(lam) else decision.scores[m] - lam * decision.costs[m] / self.cost_scale}
                     for m in self.models]
        neighbours = [] if self.neighbours is None else self.neighbours.nearest(X[0], k)
        return Explanation(decision, lam, self.cost_scale, estimates, neighbours)


def _download_mlflow_model(uri: str) -> Path:
    """Local directory of the router inside an MLflow model (models:/ or runs:/ URI)."""
    from router_ml.core.mlflow_registry import import_mlflow, resolve_model_version

    mlflow = import_mlflow()
    if uri.startswith("models:/"):
        version = resolve_model_version(mlflow.MlflowClient(), uri)  # clear errors for a missing name or alias
        uri = f"models:/{version.name}/{version.version}"
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except Exception as exc:
        raise ArtifactError(f"{uri}: cannot fetch from the MLflow registry at {mlflow.get_tracking_uri()}: {exc}") from exc
    manifests = sorted(local.rglob(MANIFEST_FILE))
    if not manifests:
        raise ArtifactError(f"{uri}: the MLflow model holds no {MANIFEST_FILE}; was it logged by router-ml?")
    return manifests[0].parent


def load_router(
    path_or_uri: str | os.PathLike,
    *,
    embedder_model: str | None = None,
    device: str | None = None,
    embedding_cache_size: int = DEFAULT_EMBEDDING_CACHE,
    decision_cache_size: int = DEFAULT_DECISION_CACHE,
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
) -> Router:
    """Load a router from an artifact directory or an MLflow `models:/`/`runs:/` URI.

    `embedder_model` points at another copy of the embedding model (a local path, for
    a machine without the hub); its files must still be the ones the router was trained
    with. `decision_cache_size` keeps that many recent (prompt, quality_target)
    decisions (0 turns it off); `embedding_cache_size` that many prompt vectors.
    Raises ArtifactFormatError, ArtifactIntegrityError or EmbedderMismatchError.
    """
    source = str(path_or_uri)
    path = _download_mlflow_model(source) if source.startswith(("models:/", "runs:/")) else Path(source)
    manifest, head = read_artifact(path)
    neighbours = None
    if NEIGHBOURS_FILE in manifest["files"]:
        try:
            neighbours = TrainingNeighbours.load(path / NEIGHBOURS_FILE, manifest["models"])
        except (ValueError, KeyError, OSError) as exc:
            raise ArtifactFormatError(f"{path / NEIGHBOURS_FILE}: not neighbours this router-ml can read: {exc}") from exc
    overrides = {k: v for k, v in (("model", embedder_model), ("device", device)) if v is not None}
    embedder = make_embedder(manifest["embedder"], artifact_dir=path, **overrides)
    if embedder.id != manifest["embedder"]["id"]:
        raise EmbedderMismatchError(
            f"{path}: router trained with embedder {manifest['embedder']['id']!r}, loaded {embedder.id!r}"
        )
    return Router(
        manifest,
        head,
        embedder,
        embedding_cache_size=embedding_cache_size,
        decision_cache_size=decision_cache_size,
        max_prompt_chars=max_prompt_chars,
        path=str(path),
        neighbours=neighbours,
    )
