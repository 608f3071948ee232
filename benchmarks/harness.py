"""What every benchmark shares: its command line, its targets and how it writes its results.

A benchmark is a module `benchmarks/NAME.py`, run from the repository root as

    .venv/bin/python -m benchmarks.NAME [--workdir build/benchmarks] [--out benchmarks/results] [--cache-dir DIR]

with a `main(argv) -> int`. It builds its command line with `benchmark_parser(NAME, __doc__)` (and adds
its own options), measures, and ends with `write_results(...)`, which writes `<out>/NAME.md` (the
benchmark's tables, then a "## Targets" list of PASS/FAIL lines when it checks targets) and
`<out>/NAME.json` (its figures and the targets), each file atomically, prints the markdown, and returns
the exit code: 1 when a target failed, else 0.

Deliberately left out: measuring and the tables themselves, which are each benchmark's own; and
anything heavy at import time (pandas, scikit-learn, torch), so that `--help` stays fast.
"""

from __future__ import annotations

import argparse
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WORKDIR = REPO / "build" / "benchmarks"
DEFAULT_OUT = REPO / "benchmarks" / "results"

# A target's measured figure: one number, or several by name when the target combines them (a yes/no
# condition among them stays a bool).
Measured = float | Mapping[str, float | bool | None] | None


def benchmark_parser(name: str, doc: str | None) -> argparse.ArgumentParser:
    """The command line every benchmark starts from: --workdir, --out and --cache-dir, its docstring as help."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                        help="where the data sets are imported and routers trained (default: build/benchmarks)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"where {name}.md and {name}.json are written (default: benchmarks/results)")
    parser.add_argument("--cache-dir", default=None,
                        help="embedding cache (default: $ROUTER_ML_CACHE or ~/.cache/router-ml)")
    return parser


def _figure(value, where: str) -> float | bool | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (numbers.Real, np.number)):  # ints and numpy scalars too
        return float(value)
    raise TypeError(f"{where}: expected a number, a bool or None, got {type(value).__name__} {value!r}")


@dataclass(frozen=True)
class Target:
    """One target a benchmark checks.

    `label` is the line people read: the target and what was measured, formatted ("RouteLLM MMLU
    APGR >= 0.66: 0.670"); `measured` the same figure(s) as numbers for a program (one number, or
    several by name; None where nothing could be measured); `passed` whether the target was met.
    """

    label: str
    measured: Measured
    passed: bool

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label.strip() or "\n" in self.label:
            raise ValueError(f"a target's label is one non-empty line, got {self.label!r}")
        if isinstance(self.measured, Mapping):
            measured = {str(k): _figure(v, f"target {self.label!r}, measured {k!r}") for k, v in self.measured.items()}
        else:
            measured = _figure(self.measured, f"target {self.label!r}, measured")
        object.__setattr__(self, "measured", measured)
        object.__setattr__(self, "passed", bool(self.passed))  # comparisons of numpy figures give numpy bools

    @property
    def line(self) -> str:
        return f"- {'PASS' if self.passed else 'FAIL'}: {self.label}"

    def to_dict(self) -> dict:
        return {"target": self.label, "pass": self.passed, "measured": self.measured}


def exit_code(targets: Sequence[Target]) -> int:
    """1 when any target failed, else 0 (also when there are none)."""
    return 0 if all(t.passed for t in targets) else 1


def targets_markdown(targets: Sequence[Target]) -> str:
    """The "## Targets" section: one PASS/FAIL line per target."""
    return "\n".join(["## Targets", *(t.line for t in targets)])


def write_result_file(out: Path, filename: str, text: str) -> Path:
    """Write `<out>/<filename>` atomically (a reader sees the old file or the new one, never a part)."""
    from router_ml.core.files import atomic_write_text

    if Path(filename).name != filename:
        raise ValueError(f"a result file is named without folders, got {filename!r}")
    out.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(out / filename, text)


def write_results(out: Path, name: str, markdown: str, figures: Mapping, targets: Sequence[Target] = (),
                  show: Callable[[str], object] = print) -> int:
    """Write `<out>/<name>.md` (`markdown`, then the targets section when there are targets) and
    `<out>/<name>.json` (`figures`, plus "targets": [{"target", "pass", "measured"}] when there are
    targets; NaN and infinities as null), each atomically; show the markdown; return the exit code."""
    if not name or Path(name).name != name or Path(name).suffix:
        raise ValueError(f"a benchmark's results are named without folders or suffix, got {name!r}")
    targets = list(targets)
    for t in targets:
        if not isinstance(t, Target):
            raise TypeError(f"{name}: targets are Target records, got {type(t).__name__} {t!r}")
    if targets and "targets" in figures:
        raise ValueError(f"{name}: the figures already hold 'targets'; pass them as `targets` only")
    from router_ml.training.evaluate.report import to_json_text

    text = markdown.rstrip("\n") + ("\n\n" + targets_markdown(targets) if targets else "") + "\n"
    payload = {**figures, "targets": [t.to_dict() for t in targets]} if targets else dict(figures)
    json_text = to_json_text(payload)  # before anything is written: a figure that fails leaves both files as they were
    write_result_file(out, f"{name}.json", json_text)
    write_result_file(out, f"{name}.md", text)
    show(text)
    return exit_code(targets)
