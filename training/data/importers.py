"""Importers: convert public routing data sets to the outcomes contract.

    routellm     RouteLLM's response CSVs: a folder of mmlu_<subject>.csv (or one CSV) with a
                 `prompt` column and one True/False column per model; the subject becomes
                 `task`. Optionally drops the prompts in contaminated_prompts.jsonl.
    llmrouter    LLMRouter's JSON list of {question, scores: {model: 0..1}}, with its price
                 file (written out as a catalog) and its query_data JSONL for task names.
    routerbench  RouterBench's wide table: `prompt` (maybe a Python list literal),
                 `eval_name`, one score column per model and `<model>|total_cost`; from
                 CSV, Parquet or the published pandas pickle.

Each importer returns a DataFrame that already passes `validate_outcomes`; the raw
files are only read. A prompt that appears more than once in a source keeps its first
occurrence (the count dropped is reported), because the contract has one outcome per
(prompt, model).
"""

from __future__ import annotations

import ast
import json
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from router_ml.core.catalog import Catalog, ModelPrice, write_catalog
from router_ml.core.files import atomic_write_text
from router_ml.errors import ArtifactExistsError, ImportFormatError
from router_ml.training.data.outcomes import prompt_hash, validate_outcomes


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, keep_default_na=False, dtype={"prompt": str})
    except Exception as exc:
        raise ImportFormatError(f"{path}: cannot be read as CSV: {exc}") from exc


def _parse_bool_column(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    mapping = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
    values = frame[column].map(lambda v: v if isinstance(v, bool) else mapping.get(str(v).strip().lower()))
    bad = values.isna()
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise ImportFormatError(f"{path}: row {row + 1}, column '{column}': expected True/False, found {frame[column].iloc[row]!r}")
    return values.astype(bool)


def _first_occurrences(frame: pd.DataFrame, log: Callable[[str], None]) -> pd.DataFrame:
    repeated = frame.duplicated(["prompt_id", "model"], keep="first")
    if repeated.any():
        log(f"dropped {int(repeated.sum())} rows whose prompt appeared earlier (kept the first occurrence)")
    return frame[~repeated].reset_index(drop=True)


def import_routellm(src: Path, contaminated: Path | None = None, call_costs: dict[str, float] | None = None,
                    log: Callable[[str], None] = print) -> pd.DataFrame:
    """RouteLLM response CSVs (folder of mmlu_<subject>.csv, or one CSV such as gsm8k_responses.csv).

    One True/False column per model; a `<model>_response` column, where present, is the
    text that model answered and becomes the `response` of its rows.
    """
    src = Path(src)
    files = sorted(src.glob("*.csv")) if src.is_dir() else [src]
    if not files:
        raise ImportFormatError(f"{src}: no .csv files found; expected RouteLLM's mmlu_<subject>.csv files")
    parts = []
    for path in files:
        frame = _read_csv(path)
        if "prompt" not in frame.columns or len(frame.columns) < 3:
            raise ImportFormatError(
                f"{path}: expected a 'prompt' column and one True/False column per model, found {list(frame.columns)}"
            )
        task = path.stem[len("mmlu_"):] if path.stem.startswith("mmlu_") else path.stem
        task = task.removesuffix("_responses")
        models = [c for c in frame.columns if c != "prompt" and not c.endswith("_response")]
        for model in models:
            part = pd.DataFrame({"prompt": frame["prompt"], "model": model,
                                 "success": _parse_bool_column(frame, model, path), "task": task})
            if f"{model}_response" in frame.columns:
                part["response"] = frame[f"{model}_response"].fillna("").astype(str)
            parts.append(part)
    long = pd.concat(parts, ignore_index=True)
    if contaminated is not None:
        banned = set()
        with open(contaminated, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    banned.add(json.loads(line)["eval_prompt"])
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise ImportFormatError(f"{contaminated}: line {number}: expected a JSON object with 'eval_prompt' ({exc})") from exc
        dropped = long["prompt"].isin(banned)
        log(f"dropped {int(dropped.sum() // max(1, long['model'].nunique()))} contaminated prompts listed in {contaminated}")
        long = long[~dropped]
    long.insert(0, "prompt_id", [prompt_hash(p) for p in long["prompt"]])
    long = _first_occurrences(long, log)
    if call_costs:
        unknown = sorted(set(call_costs) - set(long["model"]))
        missing = sorted(set(long["model"]) - set(call_costs))
        if unknown or missing:
            raise ImportFormatError(f"--call-cost: give a cost for each of {sorted(set(long['model']))}"
                                    + (f"; unknown {unknown}" if unknown else "") + (f"; missing {missing}" if missing else ""))
        long["cost"] = long["model"].map(call_costs)
    return long


def _load_json(path: Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImportFormatError(f"{path}: not valid JSON: {exc}") from exc


def llmrouter_catalog(prices: Path) -> Catalog:
    """LLMRouter's default_llm.json as a catalog (prices are USD per million tokens)."""
    raw = _load_json(prices)
    if not isinstance(raw, dict) or not raw:
        raise ImportFormatError(f"{prices}: expected an object mapping model names to their details")
    models = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict) or "input_price" not in entry or "output_price" not in entry:
            raise ImportFormatError(f"{prices}: model {name!r}: expected input_price and output_price")
        models[name] = ModelPrice(float(entry["input_price"]), float(entry["output_price"]),
                                  description=str(entry.get("model", "")))
    return Catalog(models=models, source=str(prices))


def import_llmrouter(src: Path, tasks: Path | None = None, log: Callable[[str], None] = print) -> pd.DataFrame:
    """LLMRouter's JSON list of {question, scores}, optionally joined to task names."""
    raw = _load_json(src)
    if not isinstance(raw, list) or not raw:
        raise ImportFormatError(f"{src}: expected a JSON list of {{question, scores}} objects")
    rows = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("question"), str) or not isinstance(item.get("scores"), dict):
            raise ImportFormatError(f"{src}: item {i}: expected {{'question': str, 'scores': {{model: score}}}}")
        for model, score in item["scores"].items():
            rows.append({"prompt": item["question"], "model": model, "score": score})
    long = pd.DataFrame(rows)
    if tasks is not None:
        try:
            queries = pd.read_json(tasks, lines=True)
        except ValueError as exc:
            raise ImportFormatError(f"{tasks}: not valid JSON Lines: {exc}") from exc
        if not {"query", "task_name"} <= set(queries.columns):
            raise ImportFormatError(f"{tasks}: expected 'query' and 'task_name' fields, found {list(queries.columns)}")
        task_of = dict(zip(queries["query"], queries["task_name"]))
        long["task"] = long["prompt"].map(task_of)
        unmatched = long.loc[long["task"].isna(), "prompt"].nunique()
        if unmatched:
            log(f"{unmatched} questions have no task in {tasks}")
    long.insert(0, "prompt_id", [prompt_hash(p) for p in long["prompt"]])
    return _first_occurrences(long, log)


def _routerbench_prompt(value, row: int, path: Path) -> str:
    if isinstance(value, (list, tuple)):
        parts = value
    elif isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        try:
            parts = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value  # a prompt that only looks like a list
    else:
        return value
    if not all(isinstance(p, str) for p in parts):
        raise ImportFormatError(f"{path}: row {row + 1}, field 'prompt': expected a list of strings, found {value!r}")
    return "\n\n".join(parts)


def _response_text(value) -> str:
    """A RouterBench response cell as text: a list of strings (or its literal, in CSV exports), a string, or missing."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value  # an answer that only looks like a list
    if isinstance(value, (list, tuple)):
        return "\n\n".join(str(v) for v in value)
    return str(value)


def import_routerbench(src: Path, log: Callable[[str], None] = print) -> pd.DataFrame:
    """RouterBench's wide layout from .csv, .parquet or the published .pkl."""
    src = Path(src)
    suffix = src.suffix.lower()
    try:
        if suffix == ".csv":
            wide = pd.read_csv(src, keep_default_na=False, na_values={"": []})
        elif suffix in (".parquet", ".pq"):
            wide = pd.read_parquet(src)
        elif suffix in (".pkl", ".pickle"):
            warnings.warn(f"{src}: loading a pickle runs code stored in it; only import pickles from a source you trust",
                          stacklevel=2)
            log(f"warning: {src} is a pickle, which runs code when loaded; only import pickles you trust")
            wide = pd.read_pickle(src)
        else:
            raise ImportFormatError(f"{src}: expected .csv, .parquet or .pkl, found '{suffix}'")
    except ImportFormatError:
        raise
    except Exception as exc:
        raise ImportFormatError(f"{src}: cannot be read: {type(exc).__name__}: {exc}") from exc
    models = [c[: -len("|total_cost")] for c in wide.columns if c.endswith("|total_cost")]
    missing = [c for c in ("prompt", *models) if c not in wide.columns]
    if not models or missing:
        raise ImportFormatError(
            f"{src}: expected 'prompt', a score column per model and '<model>|total_cost' columns; "
            f"found models {models}" + (f", missing columns {missing}" if missing else "")
        )
    prompts = [_routerbench_prompt(v, i, src) for i, v in enumerate(wide["prompt"])]
    ids = wide["sample_id"].astype(str) if "sample_id" in wide.columns else pd.Series([prompt_hash(p) for p in prompts])
    task = wide["eval_name"] if "eval_name" in wide.columns else None
    parts = []
    for model in models:
        parts.append(pd.DataFrame({
            "prompt_id": ids.to_numpy(), "prompt": prompts, "model": model,
            "score": pd.to_numeric(wide[model], errors="coerce").to_numpy(),
            "cost": pd.to_numeric(wide[f"{model}|total_cost"], errors="coerce").to_numpy(),
            **({"task": task.to_numpy()} if task is not None else {}),
            **({"response": wide[f"{model}|model_response"].map(_response_text).to_numpy()}
               if f"{model}|model_response" in wide.columns else {}),
        }))
    return _first_occurrences(pd.concat(parts, ignore_index=True), log)


def write_outcomes(frame: pd.DataFrame, out: Path, overwrite: bool = False) -> Path:
    """Write an outcomes table atomically in the format its extension names."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise ArtifactExistsError(f"{out}: already exists; choose another --out or pass --overwrite")
    name = out.name.lower()
    if name.endswith(".csv"):
        atomic_write_text(out, frame.to_csv(index=False))
    elif name.endswith((".jsonl", ".ndjson")):
        atomic_write_text(out, frame.to_json(orient="records", lines=True, force_ascii=False))
    elif name.endswith((".parquet", ".pq")):
        tmp = out.with_name(f".{out.name}.tmp")
        frame.to_parquet(tmp, index=False)
        tmp.replace(out)
    else:
        raise ImportFormatError(f"{out}: expected a .csv, .jsonl or .parquet output file")
    return out


def run_import(fmt: str, src: Path, out: Path, *, prices=None, tasks=None, contaminated=None, call_costs=None,
               catalog_out=None, overwrite=False, log: Callable[[str], None] = print) -> dict:
    """The `router-ml import` command: convert, check against the contract, write."""
    src, out = Path(src), Path(out)
    if out.exists() and not overwrite:
        raise ArtifactExistsError(f"{out}: already exists; choose another --out or pass --overwrite")
    if catalog_out is not None and (fmt != "llmrouter" or prices is None):
        raise ImportFormatError("--catalog-out needs llmrouter with --prices (its default_llm.json)")
    if fmt == "routellm":
        frame = import_routellm(src, contaminated=contaminated, call_costs=call_costs, log=log)
    elif fmt == "llmrouter":
        frame = import_llmrouter(src, tasks=tasks, log=log)
    elif fmt == "routerbench":
        frame = import_routerbench(src, log=log)
    else:
        raise ImportFormatError(f"format: expected routellm, llmrouter or routerbench, found {fmt!r}")
    validate_outcomes(frame, f"{src} (as imported)")
    write_outcomes(frame, out, overwrite=overwrite)
    result = {"outcomes": str(out), "rows": int(len(frame)), "prompts": int(frame["prompt_id"].nunique()),
              "models": sorted(frame["model"].unique())}
    if catalog_out is not None:
        catalog = llmrouter_catalog(prices)
        missing = sorted(set(frame["model"]) - set(catalog.models))
        if missing:
            raise ImportFormatError(f"{prices}: no prices for models {missing} found in {src}")
        catalog = Catalog({m: catalog.models[m] for m in sorted(set(frame["model"]))}, source=str(prices))
        tmp = Path(catalog_out).with_name(f".{Path(catalog_out).name}.tmp")
        write_catalog(catalog, tmp)
        tmp.replace(catalog_out)
        result["catalog"] = str(catalog_out)
    return result
