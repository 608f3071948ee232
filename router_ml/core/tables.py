"""Reading the tables users hand the router: outcomes logs, prompt files.

One reader for CSV, JSON Lines and Parquet (chosen by the file's extension, `.gz`
allowed for the text formats), shared by training (the outcomes contract) and by the
library's own commands (`route --input`, `rules check --outcomes`). Every problem is an
`OutcomesError` naming the file and, for JSON Lines, the line.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from router_ml.errors import OutcomesError


def _format_of(path: Path) -> str:
    name = path.name.lower()
    for suffix, fmt in ((".csv", "csv"), (".jsonl", "jsonl"), (".ndjson", "jsonl"), (".parquet", "parquet"), (".pq", "parquet")):
        if name.endswith(suffix) or name.endswith(suffix + ".gz"):
            return fmt
    raise OutcomesError(f"{path}: expected a .csv, .jsonl, .ndjson or .parquet file, found '{path.suffix or path.name}'")


def read_table(path: str | Path, *, keep_blank_lines: bool = False) -> pd.DataFrame:
    """Parse a CSV, JSON Lines or Parquet file into a DataFrame, or say why not.

    Blank lines are skipped, unless `keep_blank_lines`: then each blank line before the last
    row is a row of its own with every field missing (so a file of prompts keeps one row per
    line, and a check can name the blank one); blank lines after the last row are only the
    file's end. JSON Lines frames list their blank lines in `attrs["blank_lines"]`.
    """
    path = Path(path)
    fmt = _format_of(path)
    if not path.is_file():
        raise OutcomesError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise OutcomesError(f"{path}: the file is empty; expected a header and at least one row")
    try:
        if fmt == "csv":
            frame = _read_csv(path, keep_blank_lines)
        elif fmt == "jsonl":
            frame = _read_jsonl(path, keep_blank_lines)
        else:
            frame = pd.read_parquet(path)
    except OutcomesError:
        raise
    except Exception as exc:
        raise OutcomesError(f"{path}: cannot be read as {fmt.upper()}: {type(exc).__name__}: {exc}") from exc
    if len(frame) == 0:
        raise OutcomesError(f"{path}: no rows; expected one row per (prompt, model) attempt")
    return frame


def _read_csv(path: Path, keep_blank_lines: bool = False) -> pd.DataFrame:
    frame = pd.read_csv(
        path, dtype={"prompt": str, "model": str, "prompt_id": str, "task": str}, keep_default_na=False,
        encoding_errors="strict", skip_blank_lines=not keep_blank_lines,
        na_values={"score": [""], "cost": [""], "input_tokens": [""], "output_tokens": [""], "latency_ms": [""]},
    )
    if keep_blank_lines:  # the blank lines at the end (rows with nothing in any cell) are only the file's end
        filled = np.flatnonzero(~frame.map(is_missing).all(axis=1).to_numpy())
        frame = frame.iloc[: filled[-1] + 1 if len(filled) else 0]
    return frame


def is_missing(value) -> bool:
    """True for a cell with nothing in it: None, NaN, pandas' NA, or text that is only whitespace."""
    if isinstance(value, str):
        return not value.strip()
    return value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and math.isnan(value))


def _read_jsonl(path: Path, keep_blank_lines: bool = False) -> pd.DataFrame:
    """JSON Lines, one object per non-blank line (see `read_table` for blank ones); errors name
    the line. `attrs["lines"]` keeps each row's line number, so later checks can name it too."""
    import gzip
    import json

    from router_ml.core.prompts import clean_json

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    records, lines, blank, waiting, replaced = [], [], [], [], [0]
    with opener(path, "rt", encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                waiting.append(number)
                continue
            if keep_blank_lines:  # the blank lines before this one are rows; any after the last are not
                records += [{}] * len(waiting)
                lines += waiting
                blank += waiting
            waiting = []
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise OutcomesError(f"{path}: line {number}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
            if not isinstance(record, dict):
                raise OutcomesError(f"{path}: line {number}: expected a JSON object, found {type(record).__name__}")
            records.append(clean_json(record, replaced))
            lines.append(number)
    if replaced[0]:
        import warnings

        warnings.warn(f"{path}: {replaced[0]} characters no encoder takes (lone surrogates) were replaced by U+FFFD",
                      stacklevel=3)
    frame = pd.DataFrame.from_records(records)
    frame.attrs["lines"] = lines
    frame.attrs["blank_lines"] = blank
    return frame


def row_name(frame: pd.DataFrame, index: int) -> str:
    """How to point a user at row `index` (0-based) of a table from `read_table`."""
    lines = frame.attrs.get("lines")
    return f"line {lines[index]}" if lines else f"row {index + 1}"


def read_prompts(path: str | Path, column: str = "prompt") -> pd.DataFrame:
    """A table with a string `column` of prompts (other columns kept), or an error naming the row."""
    path = Path(path)
    frame = read_table(path)
    if column not in frame.columns:
        raise OutcomesError(f"{path}: expected a '{column}' column, found {list(frame.columns)}")
    bad = [i for i, value in enumerate(frame[column]) if not isinstance(value, str)]
    if bad:
        shown = ", ".join(f"{row_name(frame, i)} ({frame[column].iloc[i]!r})" for i in bad[:3])
        raise OutcomesError(f"{path}: field '{column}': expected a string; found {shown}")
    return frame
