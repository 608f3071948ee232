"""The decision explorer's queries on a large audit log: how long each page's SQL takes.

    .venv/bin/python -m benchmarks.explorer_scale [--rows 1000000] [--workdir build/benchmarks] [--out benchmarks/results]

Writes a synthetic audit database of `--rows` decisions (one every 3 s, five models, 40 %
with an outcome, 10 % with a cascade, prompt text kept) through the audit format's own
schema, then times, on that database read-only, what each explorer page runs
(router_ml.serve.explorer.queries): the overview page (its figures and the router versions)
over the last 24 h and over everything, the versions page over everything, the newest page of decisions unfiltered and filtered by
a model and by a rule, and one request. Each time is the median of 3 runs; writes
results/explorer_scale.md and .json. No targets: the figures are for docs/monitoring.md.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import time
from pathlib import Path

from benchmarks.harness import benchmark_parser, write_results

MODELS = ["nano", "mini", "coder", "pro", "legacy-xl"]


def cost_model():
    from router_ml.core.catalog import CostModel

    return CostModel(MODELS, [0.05, 0.15, 0.3, 2.5, 2.5], [0.4, 0.6, 1.2, 10.0, 10.0], [200] * 5, [None] * 5, 4.0)


def write_log(path: Path, rows: int, seed: int = 0, chunk: int = 100_000) -> None:
    import numpy as np

    from router_ml.core.audit_format import COLUMNS, create_schema

    rng = np.random.default_rng(seed)
    db = sqlite3.connect(path)
    create_schema(db)
    t0 = time.time() - rows * 3.0
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        p = rng.uniform(0.3, 0.95, (n, len(MODELS)))
        served = rng.integers(len(MODELS), size=n)
        decisions, outcomes = [], []
        for j in range(n):
            i = start + j
            model = MODELS[served[j]]
            steps = json.dumps([{"model": "nano", "outcome": "check_failed", "check": "json"},
                                {"model": model, "outcome": "accepted"}]) if j % 10 == 0 else None
            decisions.append((f"r{i:09d}", t0 + 3.0 * i, "v2" if i > rows // 2 else "v1", model, float(p[j, served[j]]),
                              json.dumps(dict(zip(MODELS, p[j].round(4).tolist()))), 0.7, "cheapest with p >= 0.7",
                              "long" if j % 13 == 0 else None, None, 0, 0.95, float(3 + j % 17), "0" * 64,
                              40 + j % 900, f"prompt {i}", None, steps, None, float(rng.random()), None, None, None))
            if j % 5 < 2:
                outcomes.append((f"r{i:09d}", model, t0 + 3.0 * i + 60, None, int(rng.random() < p[j, served[j]]),
                                 None, None, "api"))
        with db:
            db.executemany(f"INSERT INTO decisions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                           decisions)
            db.executemany("INSERT INTO outcomes VALUES (?, ?, ?, ?, ?, ?, ?, ?)", outcomes)
    db.close()


def timed(fn) -> float:
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main(argv=None) -> int:
    parser = benchmark_parser("explorer_scale", __doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="decisions in the synthetic audit log")
    args = parser.parse_args(argv)
    from router_ml.serve.explorer import queries

    costs = cost_model()
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.workdir / f"explorer-{args.rows}.sqlite"
    if not path.exists():
        start = time.perf_counter()
        write_log(path, args.rows)
        print(f"wrote {args.rows:,} decisions in {time.perf_counter() - start:.0f} s ({path})")
    else:  # a log written before the explorer's indexes: bring it up to date first
        from router_ml.core.audit_format import create_schema

        with sqlite3.connect(path) as db:
            create_schema(db)
    db = queries.connect(path)
    day, everything = queries.window_of(db, "24h"), queries.window_of(db, "all")

    def page(window):  # what /ui runs: one grouped pass for the overview and the versions
        grouped = queries.cells(db, window, costs)
        queries.overview(db, window, costs, grouped=grouped)
        queries.versions(db, window, costs, grouped=grouped)

    cases = {
        "overview page, last 24 h": lambda: page(day),
        "overview page, everything": lambda: page(everything),
        "router versions, everything": lambda: queries.versions(db, everything, costs),
        "newest 50 decisions": lambda: queries.decisions(db, queries.Search()),
        "newest 50 of one model": lambda: queries.decisions(db, queries.Search(model="pro")),
        "newest 50 matching a rule": lambda: queries.decisions(db, queries.Search(text="long")),
        "one request": lambda: queries.request(db, "r000000042"),
    }
    in_day = queries.overview(db, day, costs)["requests"]
    seconds = {name: timed(fn) for name, fn in cases.items()}
    db.close()
    lines = [f"# Decision explorer on {args.rows:,} decisions (last 24 h: {in_day:,})", "",
             "| page | seconds (median of 3) |", "|---|---|", *(f"| {k} | {v:.3f} |" for k, v in seconds.items())]
    return write_results(args.out, "explorer_scale", "\n".join(lines),
                         {"rows": args.rows, "rows_last_24h": in_day, "seconds": seconds})


if __name__ == "__main__":
    raise SystemExit(main())
