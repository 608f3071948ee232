"""A deterministic generator of a SYNTHETIC outcomes log, for the demo and for tests.

Nothing here was measured on a real model. The log imitates what a team's logs look
like: six task families (arithmetic, code, translation, factual questions,
summarisation, logic puzzles), prompts whose wording carries their difficulty (more
digits, rarer languages, more constraints), and five models with different strengths
and prices:

    nano        cheap, fine on easy prompts
    mini        mid-priced generalist
    coder       cheap code specialist, weak elsewhere
    pro         expensive and strong everywhere; the only one that solves many hard prompts
    legacy-xl   expensive but no better than mini: a pricier model that is weaker, the
                trap that breaks any rule assuming price means quality

Each prompt's success chance per model is a logistic function of the model's skill on
the task, the prompt's difficulty and a per-prompt hardness shared by all models, so
some prompts are solved by no model and a realistic share only by `pro`.
Summaries get a graded score in [0, 1]; every other task is scored 1 or 0. Calls are
logged with token counts (no dollar cost), so training prices them with the catalog.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from router_ml.artifact import atomic_write_text
from router_ml.catalog import Catalog, ModelPrice, write_catalog

MODELS: dict[str, ModelPrice] = {
    "nano": ModelPrice(input_price=0.10, output_price=0.40, output_tokens=200, description="synthetic: cheap, easy prompts"),
    "coder": ModelPrice(input_price=0.20, output_price=0.80, output_tokens=300, description="synthetic: cheap code specialist"),
    "mini": ModelPrice(input_price=0.40, output_price=1.60, output_tokens=250, description="synthetic: mid-priced generalist"),
    "legacy-xl": ModelPrice(input_price=3.00, output_price=12.00, output_tokens=250, description="synthetic: pricey, no better than mini"),
    "pro": ModelPrice(input_price=2.50, output_price=10.00, output_tokens=300, description="synthetic: expensive, strong"),
}
TASKS = ("arithmetic", "code", "translation", "factual", "summarisation", "logic")
# Skill (logit of success on an easy prompt) and how fast it falls with difficulty.
SKILL = {
    "nano":      {"arithmetic": 3.2, "code": 0.8, "translation": 3.4, "factual": 3.0, "summarisation": 2.8, "logic": 1.2},
    "coder":     {"arithmetic": 2.6, "code": 4.2, "translation": 1.0, "factual": 1.3, "summarisation": 1.4, "logic": 2.0},
    "mini":      {"arithmetic": 3.7, "code": 3.1, "translation": 3.7, "factual": 3.5, "summarisation": 3.5, "logic": 2.5},
    "legacy-xl": {"arithmetic": 3.4, "code": 2.8, "translation": 3.8, "factual": 3.6, "summarisation": 3.2, "logic": 2.2},
    "pro":       {"arithmetic": 3.8, "code": 3.8, "translation": 3.6, "factual": 3.6, "summarisation": 3.4, "logic": 3.2},
}
SLOPE = {"nano": 7.0, "coder": 5.5, "mini": 5.0, "legacy-xl": 5.0, "pro": 3.0}
OUTPUT_TOKENS = {"arithmetic": 60, "code": 320, "translation": 80, "factual": 60, "summarisation": 140, "logic": 200}
LATENCY_MS_PER_TOKEN = {"nano": 4.0, "coder": 6.0, "mini": 9.0, "legacy-xl": 30.0, "pro": 25.0}

_NAMES = ["Ada", "Ben", "Chloe", "Dev", "Elif", "Femi", "Grace", "Hiro", "Ines", "Jon", "Kofi", "Lena"]
_ITEMS = ["apples", "tickets", "books", "bolts", "crates", "shares", "tiles", "seeds"]
_LANGS = [("French", 0.1), ("Spanish", 0.1), ("German", 0.25), ("Italian", 0.2), ("Portuguese", 0.3),
          ("Polish", 0.55), ("Turkish", 0.6), ("Finnish", 0.75), ("Icelandic", 0.9), ("Swahili", 0.85), ("Basque", 0.95)]
_SENTENCES = [
    "Where is the train station?", "The meeting has been moved to Thursday afternoon.",
    "Please keep the receipt in case you need to return the item.",
    "Our quarterly revenue grew despite the supply chain disruptions in the spring.",
    "The committee will not approve the proposal unless the environmental assessment is revised.",
    "I would have called you earlier, had I known the flight was delayed by three hours.",
    "Thank you for the lovely dinner.", "Could you recommend a quiet hotel near the old town?",
    "The software update fixes a bug that drained the battery overnight.",
    "Notwithstanding the previous clause, the tenant remains liable for damages caused by negligence.",
]
_EASY_CODE = ["reverses a string", "returns the largest element of a list", "counts the vowels in a word",
              "checks whether a number is even", "sums the digits of an integer", "removes duplicates from a list"]
_HARD_CODE = ["a lock-free multi-producer queue", "an LRU cache with O(1) operations and TTL expiry",
              "a parser for arithmetic expressions with operator precedence", "a rate limiter using the token bucket algorithm",
              "Dijkstra's shortest path on a graph with 10^6 edges", "a B-tree with deletion and rebalancing",
              "a consistent hashing ring with virtual nodes"]
_CODE_LANGS = [("Python", 0.0), ("JavaScript", 0.05), ("Go", 0.15), ("Rust", 0.25), ("Haskell", 0.35)]
_EASY_FACTS = [("the capital of {}", ["France", "Japan", "Canada", "Italy", "Egypt", "Brazil"]),
               ("the largest planet in the solar system", [None]), ("the chemical symbol for {}", ["gold", "iron", "sodium", "oxygen"]),
               ("the author of {}", ["Romeo and Juliet", "Pride and Prejudice", "War and Peace"])]
_HARD_FACTS = [("the 14th-century {} who first described {}", ["physician", "astronomer", "cartographer"], ["the rete mirabile", "a lunar libration", "the Catalan atlas"]),
               ("the year the {} treaty between {} was signed", ["Treaty of Nerchinsk", "Peace of Oliva", "Treaty of Tordesillas"], ["the two empires", "the crowns"]),
               ("the melting point in kelvin of {}", ["hafnium carbide", "tantalum", "osmium"], [None])]
_DOCS = ["meeting transcript", "customer complaint", "research abstract", "news article", "legal memo", "product review"]
_FILLER = ("the team discussed the budget and the timeline for the next release while several open questions "
           "about staffing, vendor contracts and the migration plan were raised and assigned owners ").split()
_LOGIC_ROLES = ["a painter", "a pilot", "a baker", "a chemist", "a poet", "a judge", "a nurse", "a sailor"]


def _arithmetic(rng) -> tuple[str, float]:
    digits = int(rng.integers(1, 7))
    steps = int(rng.integers(1, 4))
    nums = [int(rng.integers(10 ** (digits - 1), 10**digits)) for _ in range(steps + 1)]
    ops = rng.choice(["+", "-", "*", "/"], size=steps)
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    if rng.random() < 0.5:
        expr = str(nums[0]) + "".join(f" {op} {n}" for op, n in zip(ops, nums[1:]))
        text = f"What is {expr}? Give the exact answer."
    else:
        words = {"+": "adds", "-": "gives away", "*": "multiplies the pile by", "/": "splits the pile into parts of"}
        steps_text = ", then ".join(f"{words[op]} {n}" for op, n in zip(ops, nums[1:]))
        text = f"{name} has {nums[0]} {item} and {steps_text}. How many {item} are there now?"
    difficulty = (digits - 1) / 5 * 0.6 + (steps - 1) / 2 * 0.3 + 0.1 * ("/" in ops)
    return text, difficulty


def _code(rng) -> tuple[str, float]:
    lang, lang_d = _CODE_LANGS[int(rng.integers(len(_CODE_LANGS)))]
    if rng.random() < 0.5:
        text = f"Write a {lang} function that {rng.choice(_EASY_CODE)}."
        return text, 0.1 + lang_d
    extra = rng.choice(["", " Include unit tests.", " It must be thread-safe.", " Explain its complexity."])
    return f"Implement {rng.choice(_HARD_CODE)} in {lang}.{extra}", 0.55 + lang_d + 0.1 * bool(extra)


def _translation(rng) -> tuple[str, float]:
    lang, lang_d = _LANGS[int(rng.integers(len(_LANGS)))]
    sentence = _SENTENCES[int(rng.integers(len(_SENTENCES)))]
    formal = rng.random() < 0.3
    text = f"Translate into {lang}{' using formal register' if formal else ''}: \"{sentence}\""
    return text, 0.6 * lang_d + 0.3 * min(1.0, len(sentence) / 100) + 0.1 * formal


def _factual(rng) -> tuple[str, float]:
    if rng.random() < 0.55:
        template, fills = _EASY_FACTS[int(rng.integers(len(_EASY_FACTS)))]
        fill = fills[int(rng.integers(len(fills)))]
        subject = template.format(fill) if fill else template
        return f"What is {subject}?", 0.1 + 0.1 * rng.random()
    template, a, b = _HARD_FACTS[int(rng.integers(len(_HARD_FACTS)))]
    first, second = a[int(rng.integers(len(a)))], b[int(rng.integers(len(b)))]
    subject = template.format(first, second) if second else template.format(first)
    return f"Name {subject}, and cite a primary source.", 0.7 + 0.3 * rng.random()


def _summarisation(rng) -> tuple[str, float]:
    words = int(rng.integers(30, 220))
    start = int(rng.integers(len(_FILLER)))
    body = " ".join(_FILLER[(start + i) % len(_FILLER)] for i in range(words))
    sentences = int(rng.integers(1, 4))
    text = f"Summarise the following {rng.choice(_DOCS)} in {sentences} sentence{'s' * (sentences > 1)}: {body}"
    return text, 0.15 + 0.7 * (words - 30) / 190 + 0.1 * (sentences == 1)


def _logic(rng) -> tuple[str, float]:
    people = int(rng.integers(3, 7))
    names = list(rng.choice(_NAMES, size=people, replace=False))
    roles = list(rng.choice(_LOGIC_ROLES, size=people, replace=False))
    clues = []
    for _ in range(people + int(rng.integers(0, 3))):
        a, b = rng.choice(people, size=2, replace=False)
        clues.append(rng.choice([f"{names[a]} sits left of {names[b]}.", f"{names[a]} is not {roles[b]}.",
                                 f"{roles[a].capitalize()} sits next to {names[b]}."]))
    text = (f"{people} people ({', '.join(names)}) sit in a row. Their jobs are {', '.join(roles)}. "
            + " ".join(clues) + f" Who is {roles[0]}?")
    return text, (people - 3) / 3 * 0.8 + 0.2 * rng.random()


_GENERATORS = {"arithmetic": _arithmetic, "code": _code, "translation": _translation,
               "factual": _factual, "summarisation": _summarisation, "logic": _logic}


def generate_demo(n_prompts: int = 2400, seed: int = 7) -> pd.DataFrame:
    """The synthetic outcomes log: one row per (prompt, model), every model tried."""
    rng = np.random.default_rng(seed)
    rows = []
    start = pd.Timestamp("2026-09-01T00:00:00Z")
    seen: set[str] = set()
    i = 0
    while len(seen) < n_prompts:
        task = TASKS[i % len(TASKS)]
        i += 1
        text, difficulty = _GENERATORS[task](rng)
        if text in seen:
            continue
        seen.add(text)
        difficulty = float(np.clip(difficulty, 0.0, 1.0))
        hardness = rng.normal(0.0, 0.5)  # shared by all models: some prompts are just hard
        in_tokens = math.ceil(len(text) / 4)
        prompt_id = f"demo-{len(seen):05d}"
        for model in MODELS:
            logit = SKILL[model][task] - SLOPE[model] * difficulty - hardness
            p = 1.0 / (1.0 + math.exp(-logit))
            if task == "summarisation":
                score = float(np.clip(p + rng.normal(0.0, 0.12), 0.0, 1.0))
            else:
                score = float(rng.random() < p)
            out_tokens = int(OUTPUT_TOKENS[task] * rng.uniform(0.6, 1.4))
            rows.append({
                "prompt_id": prompt_id, "prompt": text, "model": model, "task": task,
                "score": round(score, 4), "input_tokens": in_tokens, "output_tokens": out_tokens,
                "latency_ms": round(LATENCY_MS_PER_TOKEN[model] * out_tokens + rng.uniform(80, 300), 1),
                "timestamp": (start + pd.Timedelta(minutes=len(rows) * 3)).isoformat(),
            })
    return pd.DataFrame(rows)


def demo_catalog() -> Catalog:
    return Catalog(models=dict(MODELS), default_output_tokens=256, source="demo catalog")


def write_demo(out_dir: str | Path, n_prompts: int = 2400, seed: int = 7) -> dict[str, Path]:
    """Write outcomes.csv, a disjoint holdout.csv (a quarter as many prompts) and catalog.yaml."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = generate_demo(n_prompts + n_prompts // 4, seed)
    ids = frame["prompt_id"].unique()
    train_ids = set(ids[:n_prompts])
    outcomes, holdout = out_dir / "outcomes.csv", out_dir / "holdout.csv"
    atomic_write_text(outcomes, frame[frame["prompt_id"].isin(train_ids)].to_csv(index=False))
    atomic_write_text(holdout, frame[~frame["prompt_id"].isin(train_ids)].to_csv(index=False))
    catalog = out_dir / "catalog.yaml"
    tmp = out_dir / ".catalog.yaml.tmp"
    write_catalog(demo_catalog(), tmp)
    tmp.replace(catalog)
    return {"outcomes": outcomes, "holdout": holdout, "catalog": catalog}
