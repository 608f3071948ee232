"""The training pipeline, one way from an outcomes log to a packaged, evaluated router.

`train` runs these stages, one function each:

    1. read_inputs        read and validate the outcomes, split the prompts (training.data.outcomes)
    2. report_labels      each prompt's cheapest successful model, counted (router_ml.core.labeling)
    3. embed_prompts      embed the training prompts through a cache (training.embed.cache)
    4. choose_head        choose and fit the head by the routing metric (training.fit.selection)
    5. fit_cascades       the learned verifier and its cascades, when the log has answers (training.fit.verifier)
    6. describe_router    the manifest (router_ml.core.manifest) and the arrays beside the head
    7. evaluate_held_out  the router as it will be loaded, on held-out prompts (training.evaluate.evaluation)
    8. write_router       the artifact, atomically (router_ml.core.artifact), and the report
    9. log_run            the run in MLflow, optionally a registered version (training.registry.tracking)

Each stage that can take more than a moment starts with a line stamped with the time so far
(training.progress), the embedding shows a bar when `progress` is on, and training ends with
a line saying where the time went (also logged to MLflow as `seconds.<stage>` metrics).

`TrainConfig` holds every setting; its `to_dict()` is what MLflow logs as parameters.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from router_ml.core.artifact import check_output_dir, write_artifact
from router_ml.core.catalog import Catalog, load_catalog
from router_ml.core.embedders import DEFAULT_MODEL, DEFAULT_TRUNCATION, TRUNCATIONS, embedder_class
from router_ml.core.heads import HEADS, RoutingHead
from router_ml.core.labeling import CENSORED, cheapest_successful_labels
from router_ml.core.manifest import (
    EmbedderSection,
    Manifest,
    MetricsSection,
    PolicySection,
    StrategySection,
    TrainingDataSection,
    json_safe,
)
from router_ml.core.neighbours import NEIGHBOURS_FILE, TrainingNeighbours
from router_ml.core.provenance import TRAINED_ON_FILE, trained_on_arrays
from router_ml.core.router import Router
from router_ml.core.validation import check_share
from router_ml.errors import ConfigError, OutcomesError
from router_ml.training.data.outcomes import (
    DUPLICATE_POLICIES,
    RoutingData,
    data_hash,
    read_outcomes,
    split_prompts,
    to_routing_data,
)
from router_ml.training.embed.cache import DiskCachedEmbedder
from router_ml.training.evaluate.evaluation import BASELINES, evaluate_router
from router_ml.training.fit.selection import (
    DEFAULT_CANDIDATES,
    Candidate,
    Selection,
    default_candidates,
    describe_choice,
    fold_ids,
    select_head,
)
from router_ml.training.progress import StageClock

STRATEGIES = ("auto", *HEADS)
# What a router trains with: "onnx" is a backend of the first, "static" is distilled from it.
EMBEDDER_KINDS = ("sentence-transformers", "static", "hashing")
BACKENDS = ("torch", "onnx")


@dataclass
class TrainConfig:
    """Every training setting; validated on creation."""

    outcomes: str
    out: str
    catalog: str | None = None
    test_outcomes: str | None = None
    embedder: str = DEFAULT_MODEL
    embedder_kind: str = "sentence-transformers"
    backend: str = "torch"  # for sentence-transformers models: "torch", or "onnx" (no torch when serving)
    onnx_precision: str = "fp32"  # with backend "onnx": "fp32" (routes as torch does) or "int8" (faster)
    truncation: str = DEFAULT_TRUNCATION
    static_max_tokens: int = 0  # static embedder: tokens it sees (0: the whole prompt)
    success_threshold: float = 0.5
    test_size: float = 0.2
    seed: int = 0
    strategy: str = "auto"
    folds: int = 5
    models: list[str] | None = None
    duplicates: str = "error"
    column_map: dict[str, str] = field(default_factory=dict)
    router_version: str | None = None
    cache_dir: str | None = None
    overwrite: bool = False
    register: str | None = None
    experiment: str = "router-ml"
    mlflow: bool = True
    baselines: tuple[str, ...] = BASELINES  # learned baselines in the held-out report
    report_dir: str | None = None  # also write the held-out report (Markdown, JSON, plots) here
    neighbours: bool = True  # keep the training prompts in the router (explanations, novelty)
    verifier: bool = True  # learn a verifier and cascades when the outcomes have responses
    spark_master: str | None = None  # read, label and embed on Spark (training/data/spark.py); fit on the driver
    max_driver_prompts: int = 250_000  # with Spark: above this many prompts, fit on a stratified sample (about 10 GB)
    onboard: tuple[str, ...] = ()  # models with outcomes only from the traffic they were sent: own heads (retraining)

    def __post_init__(self) -> None:
        check_share(self.success_threshold, "success_threshold")
        if not 0.0 <= self.test_size < 1.0:
            raise ConfigError(f"test_size: expected a fraction in [0, 1), found {self.test_size!r}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy: expected one of {STRATEGIES}, found {self.strategy!r}")
        if self.embedder_kind not in EMBEDDER_KINDS:
            raise ConfigError(f"embedder_kind: expected one of {EMBEDDER_KINDS}, found {self.embedder_kind!r}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend: expected one of {BACKENDS}, found {self.backend!r}")
        if self.onnx_precision not in ("int8", "fp32"):
            raise ConfigError(f"onnx_precision: expected int8 or fp32, found {self.onnx_precision!r}")
        if self.truncation not in TRUNCATIONS:
            raise ConfigError(f"truncation: expected one of {TRUNCATIONS}, found {self.truncation!r}")
        if self.duplicates not in DUPLICATE_POLICIES:
            raise ConfigError(f"duplicates: expected one of {DUPLICATE_POLICIES}, found {self.duplicates!r}")
        unknown = set(self.baselines) - set(BASELINES)
        if unknown:
            raise ConfigError(f"baselines: expected some of {BASELINES}, found {sorted(unknown)}")
        if self.folds < 2:
            raise ConfigError(f"folds: expected at least 2, found {self.folds}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    path: Path
    manifest: dict
    report: dict | None
    selection_table: list[dict]
    run_id: str | None = None
    model_version: str | None = None
    head: object = None  # the fitted RoutingHead (what head.npz holds)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage (training.progress)


def make_training_embedder(config: TrainConfig, log: Callable[[str], None] = print):
    """The embedder a new router trains with (its backend class from the registry)."""
    if config.embedder_kind == "hashing":
        return embedder_class("hashing")()
    if config.embedder_kind == "static":
        from router_ml.training.embed.static_distill import distill_static

        files = distill_static(config.embedder, config.cache_dir, log=log)
        return embedder_class("static")(files, truncation=config.truncation, max_tokens=config.static_max_tokens)
    if config.backend == "onnx":
        from router_ml.training.embed.onnx_export import export_onnx

        files = export_onnx(config.embedder, config.cache_dir, precision=config.onnx_precision, log=log)
        return embedder_class("onnx")(files, truncation=config.truncation)
    return embedder_class("sentence-transformers")(model=config.embedder, truncation=config.truncation)


def _silent(_message: str) -> None:
    pass


def label_summary(data: RoutingData) -> dict[str, int]:
    labels = cheapest_successful_labels(data.success, data.costs)
    counts = {m: int((labels == j).sum()) for j, m in enumerate(data.models)}
    counts["none"] = int((labels == len(data.models)).sum())
    counts["censored"] = int((labels == CENSORED).sum())
    return counts


def _candidates(strategy: str, outcomes: int = 0, log: Callable[[str], None] = _silent) -> list[Candidate]:
    """The candidates for `strategy` ("auto": the default list, less what is too slow for `outcomes`)."""
    if strategy == "auto":
        candidates, notes = default_candidates(outcomes)
        for note in notes:
            log(f"  {note}")
        return candidates
    grid = [Candidate(s, p) for s, p in DEFAULT_CANDIDATES if s == strategy]
    return grid or [Candidate(strategy, {})]


@dataclass
class TrainingInputs:
    """What the first stage read: the outcomes kept, every prompt's routing data, its split."""

    outcomes: pd.DataFrame  # the rows kept (after --models)
    data: RoutingData  # every prompt of the training log
    train: RoutingData
    test: RoutingData | None  # None: no held-out side (test_size 0)
    sha256: str  # data_hash(outcomes)
    sampled: list[str]  # with Spark: each file fitted on a sample, and how


def train(config: TrainConfig, log: Callable[[str], None] = print, progress: bool = True,
          embedder=None, carried_verifier: tuple[dict, dict] | None = None) -> TrainResult:
    """Run the whole pipeline; returns where the artifact went and what was measured.

    `embedder` (an object with the Embedder contract) replaces the one `config` describes,
    for experiments with embedders outside the registry; such a router is written and
    evaluated like any other, but `load_router` can rebuild only registered kinds.
    `carried_verifier` (a manifest section and its arrays, from another router of the same
    models and embedder) is kept when this log has no answers to fit one from (retraining
    carries the champion's that way, training/loop/retrain.py).
    """
    out = Path(config.out)
    check_output_dir(out, config.overwrite)  # before any work: a refusal after an hour of training helps nobody
    for path in (config.outcomes, config.test_outcomes):  # a missing file: one line, before any progress line
        if path and not config.spark_master and "://" not in str(path) and not Path(path).exists():
            raise OutcomesError(f"{path}: file not found")
    clock = StageClock(log)
    catalog = load_catalog(config.catalog) if config.catalog else None
    spark = start_spark(config, embedder, log, clock)
    clock.start("reading", f"reading and checking {config.outcomes}"
                + (f" and {config.test_outcomes}" if config.test_outcomes else ""))
    inputs = read_inputs(config, catalog, spark, log)
    core = without_onboarded(config, inputs, log)
    labels = report_labels(core.train, log)
    embedder, X = embed_prompts(config, core.train, spark, embedder, log, progress, clock)
    selection, head = choose_head(config, X, core.train, log, clock)
    verifier = fit_cascades(config, core.train, selection, embedder, log, clock)
    if config.onboard:
        clock.start("onboarding", f"adding the onboarded models {', '.join(config.onboard)}")
    head = onboard_models(config, X, inputs.train, core.train.models, head, log)
    if verifier is None and carried_verifier is not None and config.verifier:
        verifier = carried_verifier
        log("no answers to fit a verifier from: the verifier given is carried over unchanged")
    if inputs.test is not None and len(inputs.test):
        clock.start("evaluation", f"evaluating the router as it will be loaded on {len(inputs.test)} held-out prompts"
                    + (f", beside {', '.join(config.baselines)}" if config.baselines else ""))
    manifest = describe_router(config, out, inputs, labels, embedder, selection, verifier)
    arrays = router_arrays(config, X, inputs.train, verifier)
    manifest, report = evaluate_held_out(config, manifest, head, embedder, inputs, X, arrays, verifier, log)
    clock.start("writing", f"writing {out}")
    result = write_router(config, out, manifest, head, embedder, arrays, report, log)
    if config.mlflow:
        clock.start("MLflow", "logging the run, the report and the router to MLflow"
                    + (f" (registering {config.register})" if config.register else ""))
    log_run(config, result, log, timings=clock.done())
    clock.stop()
    result.timings = dict(clock.seconds)
    log(clock.summary())
    return result


def start_spark(config: TrainConfig, embedder, log: Callable[[str], None], clock: StageClock | None = None):
    """The Spark session `config.spark_master` names (its description logged), or None."""
    if not config.spark_master:
        return None
    if embedder is not None:
        raise ConfigError("spark_master: the workers rebuild the embedder from the config; pass none")
    from router_ml.core.spark import describe, spark_session

    if clock is not None:
        clock.start("Spark", f"starting Spark ({config.spark_master})")
    spark = spark_session(config.spark_master)
    log(describe(spark))
    return spark


def read_inputs(config: TrainConfig, catalog: Catalog | None, spark, log: Callable[[str], None]) -> TrainingInputs:
    """Stage 1: read and validate the outcomes (on Spark when given a session), keep
    `config.models` (and their prices in `catalog`), and split the prompts: by
    `config.test_outcomes` when given (its prompts that are also in the training log
    dropped), else a seeded `test_size` split."""
    sampled = []

    def read(path: str):
        if spark is None:
            return read_outcomes(path, success_threshold=config.success_threshold, duplicates=config.duplicates,
                                 column_map=config.column_map)
        from router_ml.training.data.spark import SparkOutcomes

        reader = SparkOutcomes(spark, path, success_threshold=config.success_threshold, duplicates=config.duplicates,
                               column_map=config.column_map, max_driver_prompts=config.max_driver_prompts,
                               catalog=catalog, seed=config.seed, log=log)
        frame = reader.to_driver()
        if reader.sampled:
            sampled.append(f"{path}: {reader.sampled}")
        return frame

    outcomes = read(config.outcomes)
    if config.models:
        unknown = sorted(set(config.models) - set(outcomes["model"]))
        if unknown:
            raise ConfigError(f"--models {unknown}: not in {config.outcomes} (found {sorted(set(outcomes['model']))})")
        outcomes = outcomes[outcomes["model"].isin(config.models)]
        if catalog is not None:
            catalog = Catalog({m: p for m, p in catalog.models.items() if m in config.models},
                              catalog.default_output_tokens, catalog.chars_per_token, catalog.source)
    data_sha = data_hash(outcomes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = to_routing_data(outcomes, catalog, config.outcomes)
    for w in caught:
        log(f"warning: {w.message}")
    if len(data.models) < 2:
        raise ConfigError(f"{config.outcomes}: found outcomes for {len(data.models)} model(s); routing needs at least 2")
    if config.test_outcomes:
        test_frame = read(config.test_outcomes)
        if config.models:
            test_frame = test_frame[test_frame["model"].isin(config.models)]
        shared = set(test_frame["prompt_id"]) & set(data.prompt_ids)
        if shared:
            log(f"dropping {len(shared)} test prompts that also appear in the training outcomes")
            test_frame = test_frame[~test_frame["prompt_id"].isin(shared)]
        train_data, test_data = data, to_routing_data(test_frame, catalog, config.test_outcomes)
    else:
        train_data, test_data = split_prompts(data, config.test_size, config.seed)
    log(f"outcomes: {len(outcomes)} rows, {len(data)} prompts, models (cheapest first): {', '.join(data.models)}")
    return TrainingInputs(outcomes, data, train_data, test_data, data_sha, sampled)


def without_onboarded(config: TrainConfig, inputs: TrainingInputs, log: Callable[[str], None]) -> TrainingInputs:
    """Stage 1b: the inputs with the onboarded models' columns set aside (they join the head after
    it is chosen: `onboard_models`); the inputs as they are without any."""
    if not config.onboard:
        return inputs
    missing = [m for m in config.onboard if m not in inputs.data.models]
    if missing:
        raise ConfigError(f"onboard: {missing} have no outcomes in {config.outcomes}")
    core = [m for m in inputs.data.models if m not in config.onboard]
    if len(core) < 2:
        raise ConfigError(f"onboard: routing needs at least 2 models besides the onboarded ones, found {core}")
    tried = {m: int((~np.isnan(inputs.train.columns([m]).success[:, 0])).sum()) for m in config.onboard}
    log("onboarded models, each from its own outcomes beside the head chosen for the others: "
        + ", ".join(f"{m} ({n} outcomes)" for m, n in tried.items()))
    test = inputs.test
    if test is not None:
        test = test.columns(core) if set(core) <= set(test.models) else None
    return TrainingInputs(inputs.outcomes, inputs.data.columns(core), inputs.train.columns(core), test,
                          inputs.sha256, inputs.sampled)


ONBOARD_C = 0.3  # the onboarded models' logistic regressions (benchmarks/ope_study.py's onboarding runs)


def onboard_models(config: TrainConfig, X: np.ndarray, train: RoutingData, core: list[str], head: RoutingHead,
                   log: Callable[[str], None]) -> RoutingHead:
    """Stage 5b: the head extended with one logistic regression per onboarded model, fitted on the
    prompts it answered (weighted as the table says), calibrated on cross-fitted predictions, its
    columns in the router's model order (router_ml.core.heads.ExtendedHead); `head` without any."""
    if not config.onboard:
        return head
    from router_ml.core.heads import ExtendedHead, PerModelSuccessHead, PlattCalibration

    new = [m for m in train.models if m not in core]
    part = train.columns(new)
    extra = PerModelSuccessHead(C=ONBOARD_C).fit(X, part.success, sample_weight=part.weights)
    oof = np.empty(part.success.shape)
    fold_of = fold_ids(len(train), min(config.folds, 5), config.seed)
    for k in np.unique(fold_of):
        held = fold_of == k
        fitted = PerModelSuccessHead(C=ONBOARD_C).fit(X[~held], part.success[~held],
                                                       sample_weight=None if part.weights is None else part.weights[~held])
        oof[held] = fitted.predict_proba(X[held])
    calibration = PlattCalibration().fit(oof, part.success, sample_weight=part.weights)
    order = np.array([[*core, *new].index(m) for m in train.models])
    combined = PlattCalibration()
    combined.coef_ = np.concatenate([head.calibration.coef_, calibration.coef_])[order]
    combined.intercept_ = np.concatenate([head.calibration.intercept_, calibration.intercept_])[order]
    log(f"onboarded {', '.join(new)} into the head ({head.head.__class__.__name__} for the others)")
    return RoutingHead(ExtendedHead(head.head, extra, order), combined, route_on_calibrated=True)


def report_labels(train_data: RoutingData, log: Callable[[str], None]) -> dict[str, int]:
    """Stage 2: count the cheapest-successful labels of the training prompts, for the log and
    the manifest (the label head recomputes them from the same function)."""
    labels = label_summary(train_data)
    log("cheapest-successful labels on the training prompts: " + ", ".join(f"{k} {v}" for k, v in labels.items()))
    return labels


def embed_prompts(config: TrainConfig, train_data: RoutingData, spark, embedder, log: Callable[[str], None],
                  progress: bool, clock: StageClock | None = None) -> tuple[object, np.ndarray]:
    """Stage 3: the training embedder behind its cache (the Parquet cache on Spark, else the
    disk cache around `embedder` or the one `config` describes) and the training prompts'
    vectors, (n, dim)."""
    if clock is not None:
        clock.start("embedder", "preparing the embedder: " + (
            "the one given" if embedder is not None else
            f"{config.embedder} as a static embedder (distilled once, then cached)" if config.embedder_kind == "static"
            else f"{config.embedder} exported to ONNX {config.onnx_precision} (once, then cached)"
            if config.backend == "onnx" and config.embedder_kind == "sentence-transformers"
            else "hashing (no model)" if config.embedder_kind == "hashing"
            else f"{config.embedder} ({config.embedder_kind})"))
    if spark is not None:
        import functools

        from router_ml.training.embed.spark import SparkCachedEmbedder

        factory = functools.partial(make_training_embedder, config, log=_silent)  # picklable: rebuilt in each worker
        embedder = SparkCachedEmbedder(make_training_embedder(config, log), spark, factory, config.cache_dir, log=log)
    else:
        embedder = DiskCachedEmbedder(embedder or make_training_embedder(config, log), config.cache_dir)
    message = f"embedding {len(train_data)} training prompts with {embedder.id} (cache: {embedder.path})"
    if clock is not None:
        clock.start("embedding", message)
    else:
        log(message)
    return embedder, embedder.encode(train_data.prompts, progress=progress)


def choose_head(config: TrainConfig, X: np.ndarray, train_data: RoutingData,
                log: Callable[[str], None], clock: StageClock | None = None) -> tuple[Selection, RoutingHead]:
    """Stage 4: choose the head and the quality knob by cross-validated AIQ (every candidate
    logged as it is done), and fit the winner on every training prompt."""
    done = []

    def report_candidate(row):
        done.append(row)
        log(f"  [{len(done)}/{len(candidates)}] {row['candidate']:52s} validation AIQ {row['val_aiq']:.5g}  "
            f"({row['seconds']} s)")

    candidates = _candidates(config.strategy, int(np.isfinite(train_data.success).sum()), log)
    message = (f"choosing the head by {config.folds}-fold validation AIQ: {len(candidates)} "
               f"candidate{'s' if len(candidates) != 1 else ''}")
    if clock is not None:
        clock.start("head selection", message)
    else:
        log(message + ":")
    selection = select_head(X, train_data, candidates, folds=config.folds, seed=config.seed,
                            progress=report_candidate, ensembles=config.strategy == "auto")
    head = RoutingHead(selection.fit_head(X, train_data), selection.calibration, route_on_calibrated=True)
    for line in describe_choice(selection.report):
        log(line)
    log(selection.default.note)
    return selection, head


def fit_cascades(config: TrainConfig, train_data: RoutingData, selection: Selection, embedder,
                 log: Callable[[str], None], clock: StageClock | None = None) -> tuple[dict, dict[str, np.ndarray]] | None:
    """Stage 5: the learned verifier and its cascade plans (manifest section, arrays), when the
    log has the answers and `config.verifier` asks for it; else None."""
    if train_data.responses is None or not config.verifier:
        return None
    from router_ml.training.fit.selection import policy_costs
    from router_ml.training.fit.verifier import fit_verifier

    message = (f"learning a verifier from the logged answers (P(success | prompt, answer, model)) for "
               f"{len(train_data.models)} models:")
    on_planning = None
    if clock is not None:
        clock.start("verifier", message)
        on_planning = lambda: clock.start("cascades", "planning cascades from the verifier's out-of-fold scores")  # noqa: E731
    else:
        log(message)
    return fit_verifier(train_data, selection.out_of_fold, selection.fold_of, selection.schedule,
                        selection.cost_scale, policy_costs(train_data), selection.default_quality_target,
                        embed=embedder.encode, log=log, on_planning=on_planning)


def describe_router(config: TrainConfig, out: Path, inputs: TrainingInputs, labels: dict[str, int], embedder,
                    selection: Selection, verifier: tuple[dict, dict] | None) -> Manifest:
    """Stage 6: the manifest of the new router (validated as it is built); its version is
    `config.router_version` or `<out name>-<UTC time>-<data hash>`."""
    created = dt.datetime.now(dt.UTC)
    version = config.router_version or f"{out.name}-{created:%Y%m%d%H%M%S}-{inputs.sha256[:8]}"
    spark = {"master": config.spark_master, "sampled": inputs.sampled or None} if config.spark_master else None
    return Manifest(
        router_version=version,
        created_at=created.isoformat(timespec="seconds"),
        embedder=EmbedderSection.of(embedder),
        models=inputs.data.models,
        cost_model=inputs.train.cost_model.to_dict(),
        success_threshold=config.success_threshold,
        strategy=StrategySection(
            name=selection.candidate.strategy,
            params=selection.candidate.params,
            route_on_calibrated=True,
            selected_by=f"highest validation AIQ, {config.folds}-fold cross-validation on the training prompts, among "
                        "the candidates and the calibrated averages of the best few; the rule checked nested",
            candidates=selection.table,
            choice=selection.report or None,
        ),
        policy=PolicySection(
            schedule=selection.schedule.to_dict(),
            cost_scale=selection.cost_scale,
            default_quality_target=selection.default_quality_target,
            default_rule=selection.default.to_dict(),
        ),
        training_data=TrainingDataSection(
            source=str(config.outcomes),
            sha256=inputs.sha256,
            rows=int(len(inputs.outcomes)),
            prompts=len(inputs.data),
            train_prompts=len(inputs.train),
            test_prompts=len(inputs.test) if inputs.test is not None else 0,
            labels=labels,
            spark=spark,
        ),
        metrics=MetricsSection(validation=selection.validation),
        config=config.to_dict(),
        verifier=verifier[0] if verifier is not None else None,
    )


def router_arrays(config: TrainConfig, X: np.ndarray, train_data: RoutingData,
                  verifier: tuple[dict, dict] | None) -> dict[str, dict[str, np.ndarray]]:
    """The array files a router carries beside its head: the fingerprints of its training prompts
    (router_ml.core.provenance: so that it is never judged on them), the verifier's, and the
    training prompts (explanations and novelty) unless `config.neighbours` is off."""
    arrays = {TRAINED_ON_FILE: trained_on_arrays(train_data.prompts)}
    if verifier is not None:
        from router_ml.policy.verifier import VERIFIER_FILE

        arrays[VERIFIER_FILE] = verifier[1]
    if config.neighbours:
        arrays[NEIGHBOURS_FILE] = TrainingNeighbours.arrays(X, train_data.scores, train_data.prompts,
                                                            fold_ids(len(train_data), config.folds, config.seed),
                                                            seed=config.seed)
    return arrays


def evaluate_held_out(config: TrainConfig, manifest: Manifest, head: RoutingHead, embedder, inputs: TrainingInputs,
                      X: np.ndarray, arrays: dict, verifier: tuple[dict, dict] | None,
                      log: Callable[[str], None]) -> tuple[Manifest, dict | None]:
    """Stage 7: evaluate on the held-out prompts with the router exactly as it will be loaded
    (and its learned cascade on their logged answers); the manifest with the held-out figures
    and the report, or the manifest unchanged and None without a held-out side."""
    test_data = inputs.test
    if test_data is None or not len(test_data):
        return manifest, None
    if set(inputs.data.models) - set(test_data.models):
        log(f"no held-out evaluation: the held-out outcomes have no outcomes for "
            f"{sorted(set(inputs.data.models) - set(test_data.models))} (onboarded from live traffic; retraining "
            "judges the router on the audit log)")
        return manifest, None
    neighbours = (TrainingNeighbours(arrays[NEIGHBOURS_FILE], inputs.data.models) if NEIGHBOURS_FILE in arrays
                  else None)
    router = Router(json_safe(manifest.to_dict()), head, embedder, embedding_cache_size=0,  # the disk cache serves
                    neighbours=neighbours)
    source = config.test_outcomes or (f"{config.outcomes} (the held-out split: test_size {config.test_size:g}, "
                                      f"seed {config.seed})")
    report = evaluate_router(router, test_data, training=inputs.train, train_embeddings=X, embedder=embedder,
                             baselines=config.baselines, source=str(source), log=log)
    test = held_out_summary(report)
    if verifier is not None and test_data.responses is not None:
        report["cascades"] = held_out_cascades(router, test_data, verifier, embedder, inputs.train, log)
        test["cascades"] = report["cascades"]["summary"]
    return replace(manifest, metrics=replace(manifest.metrics, test=test)), report


def write_router(config: TrainConfig, out: Path, manifest: Manifest, head: RoutingHead, embedder,
                 arrays: dict, report: dict | None, log: Callable[[str], None]) -> TrainResult:
    """Stage 8: write the artifact atomically, and the held-out report when `config.report_dir`
    asks for it."""
    path = write_artifact(out, manifest, head, overwrite=config.overwrite, embedder_files=embedder.files(),
                          arrays=arrays)
    log(f"wrote {path}")
    result = TrainResult(path, manifest.to_dict(), report, manifest.strategy.candidates, head=head)
    if report is not None and config.report_dir:
        from router_ml.training.evaluate.report import write_report

        write_report(report, config.report_dir)
        log(f"wrote the held-out report to {config.report_dir}")
    return result


def log_run(config: TrainConfig, result: TrainResult, log: Callable[[str], None],
            timings: dict[str, float] | None = None) -> None:
    """Stage 9: log the run to MLflow (registering a version when `config.register` names a
    model) unless `config.mlflow` is off; sets the result's run id and version. `timings`
    (seconds per stage so far) are logged as `seconds.<stage>` metrics."""
    if not config.mlflow:
        return
    from router_ml.training.registry.tracking import log_training_run

    result.run_id, result.model_version = log_training_run(config, result.manifest, result.path, result.report,
                                                           timings)
    log(f"logged MLflow run {result.run_id}" + (f", registered {config.register} version {result.model_version}"
                                                if result.model_version else ""))


def held_out_cascades(router, test_data, verifier, embedder, train_data, log) -> dict:
    """The learned cascade against single-shot routing on the held-out prompts' logged answers."""
    from router_ml.policy.file import load_policy
    from router_ml.policy.verifier import Verifier
    from router_ml.training.evaluate.replay import replay

    spec, arrays = verifier
    learned = Verifier(json_safe(spec), arrays, router.models, embedder=embedder)
    policies = {"single-shot": None, "learned-cascade": load_policy("learned-cascade", router.models)}
    report = replay(router, test_data, policies, embedder=embedder, training=train_data, verifier=learned,
                    source="held-out answers", log=log)
    summary = {name: p["summary"] for name, p in report["policies"].items()}
    learned_run, single = report["policies"]["learned-cascade"], report["policies"]["single-shot"]
    log(f"held-out learned cascade: AIQ {learned_run['metrics']['aiq']:.4f} (single-shot "
        f"{single['metrics']['aiq']:.4f}), at the default target {learned_run['default']['escalation_rate']:.0%} "
        f"escalated, {learned_run['default']['calls_per_request']:.2f} calls per request")
    return {"summary": summary, "report": report}


def held_out_summary(report: dict) -> dict:
    """The held-out figures kept in the manifest: every metric, no curves."""
    baselines = {k: v for k, v in report["baselines"].items() if k != "learned"}
    baselines["learned"] = {name: b["metrics"] for name, b in report["baselines"]["learned"].items()}
    return {"prompts": report["prompts"], "default": report["default"], "metrics": report["metrics"],
            "baselines": baselines, "tasks": report["tasks"]}
