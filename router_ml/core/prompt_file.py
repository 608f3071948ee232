"""A file of prompts to route (`router-ml route --input`): read, checked, routed, matched back.

    prompts = read_prompt_file("prompts.jsonl")     # every check, before the router is loaded
    decisions = route_prompt_file(router, prompts, quality_target=0.8)
    records = prompts.records(decisions)          # {"line": 3, "prompt_id": ..., "model": ...}

The file is CSV, JSON Lines or Parquet (`router_ml.core.tables`) with a `prompt` column
and, optionally, `prompt_id` and `quality_target`.

- **Every row is routed, so every row must be routable.** A blank line (JSON Lines) or
  empty row (CSV) between prompts, a prompt that is missing, not a string or without
  content, a prompt over the router's size limit, and a `quality_target` that is not a
  number in [0, 1] are refused with the file, the line (JSON Lines) or row (CSV and
  Parquet: counted from 1, header excluded) and the value, before anything is routed.
  Blank lines after the last prompt are only the file's end.
- **Targets per row.** A row's `quality_target`, when it has one, is its target; the
  others take the caller's, else the router's default (as `route --spark-master` does).
  The prompts are embedded once; the decision rule then runs once per distinct target.
- **Matching output to input.** Each record carries `line` (JSON Lines) or `row` (CSV,
  Parquet) and, when the file has that column, `prompt_id`. The prompt text is left out
  unless asked for: it may be large, and private.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from router_ml.core.decision import Decision
from router_ml.core.prompts import has_content, normalize_prompt
from router_ml.core.tables import is_missing, read_table
from router_ml.core.validation import check_quality_target, is_number
from router_ml.errors import ConfigError, OutcomesError, PromptError

PROMPT, PROMPT_ID, QUALITY_TARGET = "prompt", "prompt_id", "quality_target"
SHOWN = 3  # bad rows quoted in an error message


@dataclass(frozen=True)
class PromptFile:
    """The rows of a prompt file, checked: one prompt per row, in file order."""

    source: str
    place: str  # how rows are counted: "line" (JSON Lines) or "row" (CSV, Parquet)
    numbers: list[int]  # each row's line or row number, 1-based
    prompts: list[str]
    targets: list[float | None]  # the row's own quality_target; None: the caller's or the router's
    prompt_ids: list | None = None  # None when the file has no prompt_id column

    def __len__(self) -> int:
        return len(self.prompts)

    def where(self, i: int) -> str:
        """Row `i` (0-based) as a user finds it in the file: "line 7" or "row 7"."""
        return f"{self.place} {self.numbers[i]}"

    def labels(self) -> list[str]:
        """Each row's place, and its prompt id when the file has them, in aligned columns."""
        places = [self.where(i) for i in range(len(self))]
        if self.prompt_ids is None:
            return places
        width = max(map(len, places))
        return [f"{place:<{width}s}  {'-' if pid is None else pid}" for place, pid in zip(places, self.prompt_ids)]

    def records(self, decisions: list[Decision], with_prompt: bool = False) -> list[dict]:
        """One JSON-able record per decision: the row's line or row number, its prompt id (when the
        file has them), its prompt (only `with_prompt`), then the decision's fields."""
        records = []
        for i, decision in enumerate(decisions):
            record = {self.place: self.numbers[i]}
            if self.prompt_ids is not None:
                record[PROMPT_ID] = self.prompt_ids[i]
            if with_prompt:
                record[PROMPT] = self.prompts[i]
            records.append(record | decision.to_dict())
        return records


def read_prompt_file(path: str | Path) -> PromptFile:
    """The prompts of `path`, checked row by row (module docstring); OutcomesError when the file
    cannot be read, PromptError for a bad prompt, ConfigError for a bad quality_target."""
    path = Path(path)
    frame = read_table(path, keep_blank_lines=True)
    if PROMPT not in frame.columns:
        raise OutcomesError(f"{path}: expected a '{PROMPT}' column, found {list(frame.columns)}")
    lines = frame.attrs.get("lines")
    place, numbers = ("line", list(lines)) if lines else ("row", list(range(1, len(frame) + 1)))
    _check_prompts(frame, path, place, numbers)
    return PromptFile(
        source=str(path), place=place, numbers=numbers, prompts=frame[PROMPT].tolist(),
        targets=_row_targets(frame, path, place, numbers),
        prompt_ids=[_prompt_id(v) for v in frame[PROMPT_ID]] if PROMPT_ID in frame.columns else None,
    )


def route_prompt_file(router, prompts: PromptFile, quality_target: float | None = None) -> list[Decision]:
    """The router's decision for every row of `prompts`, in order: each row at its own target, else
    `quality_target`, else the router's default. One embedding of all the prompts; the same
    decisions as `router.route_batch` on each target's rows."""
    default = router.default_quality_target if quality_target is None else check_quality_target(quality_target)
    texts = [normalize_prompt(p, f"{prompts.source}: {prompts.where(i)}", router.max_prompt_chars)[0]
             for i, p in enumerate(prompts.prompts)]
    if not texts:
        return []
    scores = router.predict_scores(texts)
    targets = np.array([default if t is None else t for t in prompts.targets], dtype=float)
    decisions: list[Decision | None] = [None] * len(texts)
    for target in np.unique(targets):
        rows = np.flatnonzero(targets == target)
        for i, decision in zip(rows, router.decisions_from(scores, float(target), rows=rows)):
            decisions[i] = decision
    return decisions


def _check_prompts(frame, path: Path, place: str, numbers: list[int]) -> None:
    """PromptError quoting the rows without a prompt with content: blank lines, empty rows, missing,
    non-string or contentless prompts."""
    blank_lines = set(frame.attrs.get("blank_lines", ()))
    shown = [None if isinstance(value, str) and has_content(value) else
             _shown_prompt(value, numbers[i] in blank_lines, place == "row" and frame.iloc[i].map(is_missing).all())
             for i, value in enumerate(frame[PROMPT])]
    _refuse(PromptError, path, place, numbers, shown, PROMPT,
            "a prompt with some content on every row (each row gets one decision, in order)")


def _shown_prompt(value, blank_line: bool, empty_row: bool) -> str:
    """How a row without a usable prompt is quoted in the error."""
    if blank_line:
        return "blank line"
    if empty_row:
        return "empty row"
    return repr(_plain(value)) if isinstance(value, str) or not is_missing(value) else "no prompt"


def _row_targets(frame, path: Path, place: str, numbers: list[int]) -> list[float | None]:
    """Each row's own quality_target (None where the cell is empty, or without the column); a
    ConfigError quoting the rows whose value is not a number in [0, 1]."""
    if QUALITY_TARGET not in frame.columns:
        return [None] * len(frame)
    values = frame[QUALITY_TARGET].tolist()
    parsed = [_row_target(value) for value in values]
    _refuse(ConfigError, path, place, numbers, [None if ok else repr(_plain(v)) for (_, ok), v in zip(parsed, values)],
            QUALITY_TARGET, "a number in [0, 1] or empty")
    return [target for target, _ in parsed]


def _row_target(value) -> tuple[float | None, bool]:
    """(a row's quality_target, whether it is valid): None when the cell is empty; numbers, or
    text that reads as one (CSV cells are text), in [0, 1]."""
    if is_missing(value):
        return None, True
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None, False
    if not is_number(value):
        return None, False
    try:
        return check_quality_target(value), True
    except ConfigError:
        return None, False


def _prompt_id(value):
    """A row's prompt id as JSON writes it: None when empty; whole numbers that pandas turned into
    floats (a JSON Lines column with gaps) back to integers."""
    if is_missing(value):
        return None
    value = _plain(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, (str, int, float, bool)) else str(value)


def _plain(value):
    """A numpy scalar as the Python value it holds."""
    return value.item() if isinstance(value, np.generic) else value


def _refuse(error: type[Exception], path: Path, place: str, numbers: list[int], shown: list[str | None],
            field: str, expected: str) -> None:
    """Raise `error` quoting the first rows whose `shown` is not None, and how many more there are."""
    bad = [i for i, text in enumerate(shown) if text is not None]
    if not bad:
        return
    quoted = ", ".join(f"{place} {numbers[i]} ({shown[i]})" for i in bad[:SHOWN])
    more = f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
    raise error(f"{path}: field '{field}': expected {expected}; found {quoted}{more}")
