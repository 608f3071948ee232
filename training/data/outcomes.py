"""Step 1 of the pipeline: read an outcomes log and check it against the contract.

The contract (data/README.md): one row per (prompt, model) attempt with `prompt`,
`model`, and `score` in [0, 1] and/or `success`; optional `prompt_id`, `cost`,
`input_tokens`, `output_tokens`, `latency_ms`, `timestamp`, `task`. The file format
follows the extension: `.csv`, `.jsonl`/`.ndjson`, `.parquet` (each optionally `.gz`
for the text formats).

Every problem raises `OutcomesError` naming the file, the row (counted from 1,
header excluded, in file order) and the field, with the value found. The raw file is
only read, never changed.

`to_routing_data` then pivots the validated rows into the prompt x model matrices the
rest of the pipeline works on, pricing every call: the logged `cost` if the column is
present, else logged tokens times catalog prices, else an estimate from the prompt's
length and the catalog's typical output length.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from router_ml.core.catalog import Catalog, CostModel, estimate_tokens
from router_ml.core.prompts import has_content, prompt_sha256, replace_unencodable
from router_ml.core.tables import read_table, row_name
from router_ml.core.validation import check_share
from router_ml.errors import CatalogError, OutcomesError

REQUIRED = ("prompt", "model")
OPTIONAL = ("prompt_id", "score", "success", "cost", "input_tokens", "output_tokens", "latency_ms", "timestamp", "task",
            "weight", "response")
_TRUE = {"true", "1", "yes", "y", "t", "1.0"}
_FALSE = {"false", "0", "no", "n", "f", "0.0"}
DUPLICATE_POLICIES = ("error", "mean")


def _bad_rows(frame: pd.DataFrame, mask: pd.Series, field: str, expected: str, source: str) -> None:
    """Raise naming the first offending rows when `mask` is true anywhere."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return
    rows = np.flatnonzero(mask)
    def show(value):
        return repr(value.item() if isinstance(value, np.generic) else value)

    shown = ", ".join(f"{row_name(frame, r)} ({show(frame[field].iloc[r])})" for r in rows[:3])
    more = f" and {len(rows) - 3} more" if len(rows) > 3 else ""
    raise OutcomesError(f"{source}: field '{field}': expected {expected}; found {shown}{more}")


def _as_bool(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Booleans parsed from bools, 0/1 or true/false-like strings; and a mask of bad cells."""
    def parse(value):
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if isinstance(value, (int, float, np.integer, np.floating)) and not (isinstance(value, float) and math.isnan(value)):
            return {1: True, 0: False}.get(value)
        if isinstance(value, str):
            lowered = value.strip().lower()
            return True if lowered in _TRUE else False if lowered in _FALSE else None
        return None

    parsed = series.map(parse)
    return parsed, parsed.isna().to_numpy()


def _as_number(frame: pd.DataFrame, field: str) -> tuple[np.ndarray, np.ndarray]:
    numbers = pd.to_numeric(frame[field].map(lambda v: None if isinstance(v, bool) else v), errors="coerce")
    return numbers.to_numpy(dtype=float), numbers.isna().to_numpy()


def prompt_hash(prompt: str) -> str:
    """Stable id for a prompt without one: the first 16 hex digits of its sha256."""
    return prompt_sha256(prompt)[:16]


def validate_outcomes(
    frame: pd.DataFrame,
    source: str = "<outcomes>",
    *,
    success_threshold: float = 0.5,
    duplicates: str = "error",
) -> pd.DataFrame:
    """Check a raw outcomes table and return it in canonical form.

    Canonical columns: prompt_id, prompt, model, score, success, cost (NaN when not
    logged), input_tokens, output_tokens (NaN when not logged), task (None when not
    given), weight (1 unless given: how much the row counts when fitting; retraining gives
    logged traffic inverse-propensity weights), response (the model's answer, "" when not
    logged), row (1-based source row).
    """
    check_share(success_threshold, "success_threshold", error=OutcomesError)
    if duplicates not in DUPLICATE_POLICIES:
        raise OutcomesError(f"duplicates: expected one of {DUPLICATE_POLICIES}, found {duplicates!r}")
    _check_columns(frame, source)
    frame = frame.reset_index(drop=True)
    out = pd.DataFrame({"row": np.arange(1, len(frame) + 1)})
    for field in ("prompt", "model"):
        out[field] = _texts(frame, field, source)
    out["model"] = out["model"].str.strip()
    for field, values in _scores_and_success(frame, source, success_threshold).items():
        out[field] = values
    out["cost"] = _costs(frame, source)
    for field in ("input_tokens", "output_tokens"):
        out[field] = _token_counts(frame, field, source)
    out["weight"] = _weights(frame, source)
    out["prompt_id"] = _prompt_ids(frame, out, source)
    out["task"] = _tasks(frame)
    out["response"] = _responses(frame, source)
    return _resolve_duplicates(out, source, duplicates, success_threshold)


def _check_columns(frame: pd.DataFrame, source: str) -> None:
    """The contract's required columns: prompt, model, and score or success."""
    columns = list(frame.columns)
    missing = [c for c in REQUIRED if c not in columns]
    if missing or not ({"score", "success"} & set(columns)):
        need = missing + ([] if {"score", "success"} & set(columns) else ["score or success"])
        raise OutcomesError(
            f"{source}: missing required columns {need}; expected prompt, model and score (0..1) or success "
            f"(true/false); found {columns}. Rename columns to the contract in data/README.md "
            "(router-ml train --map SOURCE=TARGET)"
        )


def _texts(frame: pd.DataFrame, field: str, source: str) -> np.ndarray:
    """A text column (prompt, model): strings with content, unencodable characters replaced (with a warning)."""
    values = frame[field].map(lambda v: replace_unencodable(v) if isinstance(v, str) else (v, 0))
    texts = values.map(lambda pair: pair[0])
    bad = ~texts.map(lambda v: isinstance(v, str) and has_content(v)).to_numpy()
    _bad_rows(frame, bad, field, "a string with some content (not only whitespace, control or zero-width "
                                 "characters)", source)
    replaced = int(values.map(lambda pair: pair[1]).sum())
    if replaced:
        warnings.warn(f"{source}: field '{field}': {replaced} characters no encoder takes (lone surrogates) "
                      "were replaced by U+FFFD", stacklevel=3)  # the caller of validate_outcomes
    return texts.to_numpy(dtype=object)


def _scores_and_success(frame: pd.DataFrame, source: str, success_threshold: float) -> dict[str, np.ndarray]:
    """The `score` and `success` columns, in the order they are added: each row gives either and
    the other follows (success by `success_threshold`, score 1.0/0.0 from success)."""
    has_score, has_success = "score" in frame.columns, "success" in frame.columns
    if has_score:
        score, missing_score = _checked_scores(frame, source, required=not has_success)
    if not has_success:
        return {"score": score, "success": score >= success_threshold}
    success = _checked_success(frame, source, (score, missing_score) if has_score else None, success_threshold)
    as_score = success.astype(float)
    return {"success": success, "score": np.where(~missing_score, score, as_score) if has_score else as_score}


def _checked_scores(frame: pd.DataFrame, source: str, required: bool) -> tuple[np.ndarray, np.ndarray]:
    """(scores, mask of rows without one); every given score is a finite number in [0, 1], and
    every row has one when `required` (no success column to fall back on)."""
    score, missing_score = _as_number(frame, "score")
    _bad_rows(frame, missing_score & required, "score", "a number in [0, 1]", source)
    known = ~missing_score
    _bad_rows(frame, known & ~np.isfinite(np.where(known, score, 0.0)), "score", "a finite number in [0, 1]", source)
    _bad_rows(frame, known & ((score < 0) | (score > 1)), "score", "a number in [0, 1]", source)
    return score, missing_score


def _checked_success(frame: pd.DataFrame, source: str, scores: tuple[np.ndarray, np.ndarray] | None,
                     success_threshold: float) -> np.ndarray:
    """Success per row: the logged flag, else (with `scores`: the scores and their missing mask)
    score >= `success_threshold`; a row with neither is an error."""
    success, bad_success = _as_bool(frame["success"])
    if scores is None:
        _bad_rows(frame, bad_success, "success", "true/false, yes/no or 1/0", source)
    else:  # a row may give either; it must give at least one
        score, missing_score = scores
        _bad_rows(frame, bad_success & missing_score, "success", "true/false (or a score in [0, 1]) on every row",
                  source)
        success = success.where(~success.isna(), pd.Series(score >= success_threshold))
    return success.to_numpy(dtype=bool)


def _costs(frame: pd.DataFrame, source: str) -> np.ndarray | float:
    """Logged USD per call (a finite number >= 0 on every row), or NaN when the column is absent."""
    if "cost" not in frame.columns:
        return np.nan
    cost, missing_cost = _as_number(frame, "cost")
    _bad_rows(frame, missing_cost | ~np.isfinite(np.nan_to_num(cost, nan=np.inf)), "cost",
              "a finite cost in USD >= 0 on every row (drop the column to price calls from the catalog)", source)
    _bad_rows(frame, cost < 0, "cost", "a cost in USD >= 0", source)
    return cost


def _token_counts(frame: pd.DataFrame, field: str, source: str) -> np.ndarray | float:
    """Whole token counts >= 0, NaN where not logged (or the column is absent)."""
    if field not in frame.columns:
        return np.nan
    tokens, missing_tokens = _as_number(frame, field)
    filled = np.nan_to_num(tokens, nan=0.0)
    bad = ~missing_tokens & ((filled < 0) | (filled != np.round(filled)) | ~np.isfinite(filled))
    _bad_rows(frame, bad, field, "a whole number of tokens >= 0 (or empty)", source)
    return tokens


def _weights(frame: pd.DataFrame, source: str) -> np.ndarray | float:
    """Fitting weights: finite and > 0, 1 where empty (or the column is absent)."""
    if "weight" not in frame.columns:
        return 1.0
    weight, missing_weight = _as_number(frame, "weight")
    weight = np.where(missing_weight & frame["weight"].map(lambda v: v is None or v == "").to_numpy(), 1.0, weight)
    _bad_rows(frame, ~(np.isfinite(weight) & (weight > 0)), "weight", "a finite number > 0 (or empty for 1)",
              source)
    return weight


def _prompt_ids(frame: pd.DataFrame, out: pd.DataFrame, source: str):
    """The logged prompt ids (non-empty, one prompt text each), else a hash of each prompt in `out`."""
    if "prompt_id" not in frame.columns:
        return [prompt_hash(p) for p in out["prompt"]]
    ids = frame["prompt_id"]
    bad = ~ids.map(lambda v: (isinstance(v, str) and bool(v.strip())) or isinstance(v, (int, np.integer))).to_numpy()
    _bad_rows(frame, bad, "prompt_id", "a non-empty id (or leave the column out to hash the prompt)", source)
    ids = ids.astype(str).to_numpy(dtype=object)
    texts_per_id = pd.DataFrame({"prompt_id": ids, "prompt": out["prompt"]}).groupby("prompt_id")["prompt"].nunique()
    clash = texts_per_id[texts_per_id > 1]
    if len(clash):
        pid = clash.index[0]
        rows = out.loc[ids == pid, "row"].tolist()[:3]
        raise OutcomesError(f"{source}: field 'prompt_id': {pid!r} is used for different prompt texts (rows {rows})")
    return ids


def _tasks(frame: pd.DataFrame) -> pd.Series | None:
    """Task labels, None where not logged (or the column is absent)."""
    if "task" not in frame.columns:
        return None
    # object dtype: a pandas 3 string column would turn the None back into NaN
    return pd.Series([_task(v) for v in frame["task"]], index=frame.index, dtype=object)


def _responses(frame: pd.DataFrame, source: str) -> np.ndarray | str:
    """The text each model answered, "" where it was not logged (or the column is absent)."""
    if "response" not in frame.columns:
        return ""

    def response(value):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        return replace_unencodable(value)[0] if isinstance(value, str) else None

    texts = frame["response"].map(response)
    _bad_rows(frame, texts.isna().to_numpy(), "response", "the model's answer as a string (or empty)", source)
    return texts.to_numpy(dtype=object)


def _resolve_duplicates(out: pd.DataFrame, source: str, duplicates: str, success_threshold: float) -> pd.DataFrame:
    """Repeated (prompt, model) pairs: an error naming the rows, or (duplicates="mean") averaged."""
    dup = out.duplicated(["prompt_id", "model"], keep=False)
    if not dup.any():
        return out
    if duplicates == "error":
        first = out.loc[dup].iloc[0]
        rows = out.loc[dup & (out["prompt_id"] == first["prompt_id"]) & (out["model"] == first["model"]), "row"].tolist()
        raise OutcomesError(
            f"{source}: {int(dup.sum())} rows repeat a (prompt, model) pair, e.g. rows {rows[:3]} for model "
            f"{first['model']!r}; remove the repeats or pass --duplicates mean to average them"
        )
    return _average_duplicates(out, success_threshold)


def _last_answer(responses: pd.Series) -> str:
    """The last logged answer of repeated attempts ("" when none was logged): a repeat without
    an answer (a retry, a served request) does not erase one that was logged."""
    answered = [r for r in responses if r]
    return answered[-1] if answered else ""


def _average_duplicates(out: pd.DataFrame, success_threshold: float) -> pd.DataFrame:
    """Merge repeated (prompt, model) attempts: mean score and cost, success by the mean score,
    the smallest of their weights (an outcome also seen in an unbiased log needs no
    inverse-propensity weight) and the last answer logged."""
    grouped = out.groupby(["prompt_id", "model"], sort=False)
    merged = grouped.agg(
        row=("row", "min"), prompt=("prompt", "first"), score=("score", "mean"), cost=("cost", "mean"),
        input_tokens=("input_tokens", "mean"), output_tokens=("output_tokens", "mean"), task=("task", "first"),
        success_rate=("success", "mean"), weight=("weight", "min"), response=("response", _last_answer),
    ).reset_index()
    merged["success"] = merged["success_rate"] >= 0.5
    return merged.drop(columns="success_rate").sort_values("row").reset_index(drop=True)


def read_outcomes(
    path: str | Path,
    *,
    success_threshold: float = 0.5,
    duplicates: str = "error",
    column_map: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Read and validate an outcomes file (see module docstring)."""
    frame = read_table(path)
    if column_map:
        absent = [src for src in column_map if src not in frame.columns]
        if absent:
            raise OutcomesError(f"{path}: --map names columns {absent} that are not in the file; found {list(frame.columns)}")
        frame = frame.rename(columns=column_map)
    return validate_outcomes(frame, str(path), success_threshold=success_threshold, duplicates=duplicates)


def data_hash(outcomes: pd.DataFrame) -> str:
    """sha256 of the validated content, independent of file format and row order."""
    cols = ["prompt_id", "prompt", "model", "score", "success", "cost"]
    canonical = outcomes[cols].sort_values(["prompt_id", "model"]).to_csv(index=False, float_format="%.10g")
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def evaluation_set_hash(data: RoutingData) -> str:
    """The fingerprint of what an evaluation measured: `data_hash` of exactly these prompts and
    every model's outcome and cost on them (independent of row and model column order).

    Two evaluations share it only when they scored the same prompts with the same outcomes
    and prices, so their figures can stand side by side; a file evaluated again after dropping
    the prompts a router trained on gets a fingerprint of its own.
    """
    n, m = len(data), len(data.models)
    frame = pd.DataFrame({
        "prompt_id": np.repeat(np.asarray(data.prompt_ids, dtype=object), m),
        "prompt": np.repeat(np.asarray(data.prompts, dtype=object), m),
        "model": np.tile(np.asarray(data.models, dtype=object), n),
        "score": data.scores.ravel(), "success": data.success.ravel(), "cost": data.costs.ravel(),
    })
    return data_hash(frame)


@dataclass
class RoutingData:
    """Outcomes as prompt x model matrices. Models are ordered from cheapest to dearest."""

    prompt_ids: list[str]
    prompts: list[str]
    tasks: list[str | None]
    models: list[str]
    scores: np.ndarray  # (n, m) in [0, 1], NaN where the model was not tried
    success: np.ndarray  # (n, m) 1.0 / 0.0, NaN where not tried
    costs: np.ndarray  # (n, m) USD, logged or priced; estimated where not tried
    cost_model: CostModel
    pricing: str = "logged cost per call"  # how `costs` were priced (see to_routing_data)
    weights: np.ndarray | None = None  # (n, m) weight of each observed outcome (retraining's IPW); None: all 1
    responses: np.ndarray | None = None  # (n, m) the answers (str, "" where not logged); None: no answers logged

    def __len__(self) -> int:
        return len(self.prompt_ids)

    def subset(self, rows) -> RoutingData:
        rows = np.asarray(rows)
        pick = lambda seq: [seq[i] for i in rows]  # noqa: E731
        return RoutingData(
            pick(self.prompt_ids), pick(self.prompts), pick(self.tasks), list(self.models),
            self.scores[rows], self.success[rows], self.costs[rows], self.cost_model, self.pricing,
            None if self.weights is None else self.weights[rows],
            None if self.responses is None else self.responses[rows],
        )

    def columns(self, models: list[str]) -> RoutingData:
        """The same prompts with the model columns `models` (a reordering or a subset), in that order."""
        order = [self.models.index(m) for m in models]
        return RoutingData(
            self.prompt_ids, self.prompts, self.tasks, list(models), self.scores[:, order], self.success[:, order],
            self.costs[:, order], self.cost_model.columns(models), self.pricing,
            None if self.weights is None else self.weights[:, order],
            None if self.responses is None else self.responses[:, order],
        )

    @property
    def complete(self) -> np.ndarray:
        """Rows where every model was tried (what quality-vs-cost sweeps are measured on)."""
        return ~np.isnan(self.scores).any(axis=1)


def check_models(outcomes: pd.DataFrame, catalog: Catalog | None, source: str) -> list[str]:
    """Models to route between; mismatches with the catalog are errors or warnings."""
    seen = list(dict.fromkeys(outcomes["model"]))
    if catalog is None:
        return seen
    unknown = [m for m in seen if m not in catalog.models]
    if unknown:
        raise CatalogError(
            f"{source}: models {unknown} are not in the catalog {catalog.source} (it lists {list(catalog.models)}); "
            "add them with their prices, or train on a subset with --models"
        )
    unused = [m for m in catalog.models if m not in seen]
    if unused:
        warnings.warn(f"catalog {catalog.source}: models {unused} have no outcomes and will not be routed to", stacklevel=2)
    return seen


def to_routing_data(
    outcomes: pd.DataFrame,
    catalog: Catalog | None = None,
    source: str = "<outcomes>",
    cost_model: CostModel | None = None,
) -> RoutingData:
    """Pivot validated outcomes into matrices and price every (prompt, model) pair.

    How a call is priced, everywhere (training, evaluation, replay, retraining):

    1. its logged `cost`, when the log has a cost column;
    2. else its token counts times the model's prices: input tokens as logged (else
       estimated from the prompt's characters), output tokens as logged (else the model's
       typical output length), prices from `catalog` when one is given, else from the
       router's own `cost_model` (evaluating a packaged router);
    3. a model the router only knows by a mean logged cost per call costs that.

    Pairs never tried are priced as the router estimates them when serving (from the
    prompt's length), so labels can order models that were not tried.
    """
    models = check_models(outcomes, catalog, source)
    has_logged_cost = _check_cost_known(outcomes, models, catalog, cost_model, source)
    first = outcomes.drop_duplicates("prompt_id")
    cells = _Cells.of(outcomes, first["prompt_id"].tolist(), models)
    chars_per_token = catalog.chars_per_token if catalog else (cost_model.chars_per_token if cost_model else 4.0)
    if has_logged_cost:
        costs, pricing = cells.matrix(outcomes["cost"].to_numpy(dtype=float)), "logged cost per call"
    else:
        costs = cells.matrix(price_calls(outcomes, catalog, cost_model, chars_per_token))
        pricing = ("token counts (logged, else estimated) x " +
                   (f"catalog prices ({catalog.source})" if catalog is not None else "the router's prices"))
    cost_model = _routing_cost_model(models, costs, catalog, cost_model, chars_per_token)
    prompts = first["prompt"].tolist()
    # Price untried pairs as the router would at serving time, so labels can order them.
    costs = np.where(np.isnan(costs), cost_model.estimate(np.array([len(p) for p in prompts])), costs)
    data = RoutingData(
        cells.prompt_ids, prompts, [_task(t) for t in first["task"]], models,
        cells.matrix(outcomes["score"].to_numpy(dtype=float)), cells.matrix(outcomes["success"].to_numpy(dtype=float)),
        costs, cost_model, pricing=pricing, weights=_weight_matrix(outcomes, cells),
        responses=_response_matrix(outcomes, cells),
    )
    return _cheapest_first(data)


@dataclass(frozen=True)
class _Cells:
    """Where each outcome row lands in the prompt x model matrices."""

    prompt_ids: list[str]
    rows: np.ndarray
    cols: np.ndarray
    shape: tuple[int, int]

    @classmethod
    def of(cls, outcomes: pd.DataFrame, prompt_ids: list[str], models: list[str]) -> _Cells:
        index = {pid: i for i, pid in enumerate(prompt_ids)}
        col = {m: j for j, m in enumerate(models)}
        return cls(prompt_ids, outcomes["prompt_id"].map(index).to_numpy(), outcomes["model"].map(col).to_numpy(),
                   (len(prompt_ids), len(models)))

    def matrix(self, values, fill=np.nan, dtype=float) -> np.ndarray:
        """A (prompts, models) matrix of `values` (one per outcome row), `fill` where nothing was logged."""
        out = np.full(self.shape, fill, dtype=dtype)
        out[self.rows, self.cols] = values
        return out


def _check_cost_known(outcomes: pd.DataFrame, models: list[str], catalog: Catalog | None,
                      cost_model: CostModel | None, source: str) -> bool:
    """Whether every call's cost was logged; without, a catalog or a router pricing every model is needed."""
    has_logged_cost = bool(outcomes["cost"].notna().all())
    if not has_logged_cost and catalog is None and cost_model is None:
        raise CatalogError(
            f"{source}: no cost information: the outcomes have no 'cost' column and no catalog was given. "
            "Add a cost column (USD per call), or pass --catalog FILE with input_price and output_price "
            "(USD per million tokens) for every model; see data/README.md"
        )
    if cost_model is not None and catalog is None:
        unpriced = [m for m in models if m not in cost_model.models]
        if unpriced and not has_logged_cost:
            raise CatalogError(f"{source}: models {unpriced} are not priced by the router; pass --catalog")
    return has_logged_cost


def _weight_matrix(outcomes: pd.DataFrame, cells: _Cells) -> np.ndarray | None:
    """Each observed outcome's fitting weight (1 where not logged); None when every weight is 1."""
    if "weight" in outcomes.columns and (outcomes["weight"].to_numpy(dtype=float) != 1.0).any():
        return cells.matrix(outcomes["weight"].to_numpy(dtype=float), fill=1.0)
    return None


def _response_matrix(outcomes: pd.DataFrame, cells: _Cells) -> np.ndarray | None:
    """Each observed outcome's answer ("" where not logged); None when no answer was logged."""
    if "response" in outcomes.columns and (outcomes["response"].str.len() > 0).any():
        return cells.matrix(outcomes["response"].to_numpy(dtype=object), fill="", dtype=object)
    return None


def _routing_cost_model(models: list[str], costs: np.ndarray, catalog: Catalog | None, cost_model: CostModel | None,
                        chars_per_token: float) -> CostModel:
    """How the router will estimate costs: a given router's own prices for these models (evaluating
    it without a catalog), else the catalog's prices and each model's mean cost per call here."""
    if cost_model is not None and catalog is None and all(x in cost_model.models for x in models):
        return _pick_models(cost_model, [cost_model.models.index(x) for x in models])
    return CostModel(
        models=models,
        input_price=[catalog.models[x].input_price if catalog else None for x in models],
        output_price=[catalog.models[x].output_price if catalog else None for x in models],
        output_tokens=[catalog.output_tokens(x) if catalog else 0 for x in models],
        mean_call_cost=[float(np.nanmean(costs[:, j])) for j in range(len(models))],
        chars_per_token=chars_per_token,
    )


def _pick_models(cost_model: CostModel, picked) -> CostModel:
    """`cost_model` for the models at indices `picked`, in that order."""
    return CostModel(
        models=[cost_model.models[j] for j in picked],
        input_price=[cost_model.input_price[j] for j in picked],
        output_price=[cost_model.output_price[j] for j in picked],
        output_tokens=[cost_model.output_tokens[j] for j in picked],
        mean_call_cost=[cost_model.mean_call_cost[j] for j in picked],
        chars_per_token=cost_model.chars_per_token,
    )


def _cheapest_first(data: RoutingData) -> RoutingData:
    """`data` with its models (columns and cost model) ordered by mean cost per prompt, cheapest first."""
    order = np.argsort(np.nanmean(data.costs, axis=0), kind="stable")
    return replace(data.columns([data.models[j] for j in order]), cost_model=_pick_models(data.cost_model, order))


def price_calls(rows: pd.DataFrame, catalog: Catalog | None, cost_model: CostModel | None = None,
                chars_per_token: float | None = None) -> np.ndarray:
    """USD per row of validated outcomes by steps 2 and 3 of the pricing rule (to_routing_data):
    token counts (logged, else estimated) times the catalog's prices, else the router's."""
    if chars_per_token is None:
        chars_per_token = catalog.chars_per_token if catalog else cost_model.chars_per_token
    models = rows["model"].tolist()
    prices = _price_table(sorted(set(models)), catalog, cost_model)
    lengths = rows["prompt"].str.len().to_numpy()
    in_tokens = rows["input_tokens"].to_numpy(dtype=float)
    in_tokens = np.where(np.isnan(in_tokens), estimate_tokens(lengths, chars_per_token), in_tokens)
    out_tokens = rows["output_tokens"].to_numpy(dtype=float)
    out_tokens = np.where(np.isnan(out_tokens), np.array([prices[m][2] for m in models], dtype=float), out_tokens)
    in_price = np.array([prices[m][0] for m in models], dtype=float)
    out_price = np.array([prices[m][1] for m in models], dtype=float)
    flat = np.array([np.nan if prices[m][3] is None else prices[m][3] for m in models], dtype=float)
    return np.where(np.isnan(flat), (in_tokens * in_price + out_tokens * out_price) / 1e6, flat)


def _price_table(models: list[str], catalog: Catalog | None, cost_model: CostModel | None) -> dict[str, tuple]:
    """Per model (input USD/M tokens, output USD/M tokens, typical output tokens, flat USD per call or None),
    from the catalog, else from a router's cost model."""
    table = {}
    for model in models:
        if catalog is not None:
            price = catalog.models[model]
            table[model] = (price.input_price, price.output_price, catalog.output_tokens(model), None)
            continue
        j = cost_model.models.index(model)
        if cost_model.input_price[j] is not None and cost_model.output_price[j] is not None:
            table[model] = (cost_model.input_price[j], cost_model.output_price[j], cost_model.output_tokens[j], None)
        else:
            table[model] = (0.0, 0.0, 0, cost_model.mean_call_cost[j])
    return table


def split_prompts(data: RoutingData, test_size: float, seed: int) -> tuple[RoutingData, RoutingData | None]:
    """Seeded split by prompt (all of a prompt's outcomes land on one side)."""
    if test_size == 0:
        return data, None
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data))
    n_test = int(round(len(data) * test_size))
    if n_test == 0 or n_test == len(data):
        raise OutcomesError(f"test_size {test_size} leaves no prompts on one side of {len(data)}; change --test-size")
    return data.subset(np.sort(order[n_test:])), data.subset(np.sort(order[:n_test]))


def _task(value) -> str | None:
    """A task label, or None when it was not logged (None, NaN, pandas' NA or empty)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    return str(value)
