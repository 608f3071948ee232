"""A deterministic generator of a SYNTHETIC outcomes log, for the demo and for tests.

Nothing here was measured on a real model. The log imitates what a team's logs look
like: six task families (arithmetic, code, translation, factual questions,
summarisation, logic puzzles), each with easy, medium and hard prompts whose wording
shows their difficulty the way real prompts do (a one-line sum against a fraction in
lowest terms, a common language against a legal clause in Basque), and five models
with different strengths and prices:

    nano        cheap, fine on easy prompts
    coder       cheap code specialist, weak elsewhere
    mini        mid-priced generalist
    pro         expensive and strong everywhere; the only one that solves many hard prompts
    legacy-xl   the most expensive, yet no better than mini: a pricier model that is
                weaker, the trap that breaks any rule assuming price means quality

Each model has a capability per task; a prompt has a difficulty (its tier, give or take)
and a hardness shared by all models. A model almost always succeeds on prompts below
its capability and rarely above it (a steep logistic in capability minus difficulty),
so easy prompts are solved by every model, medium ones from `mini` up and hard ones
mostly only by `pro`, while some prompts are too hard for all; and every model slips
now and then whatever the prompt, the big ones a little more often. That is the
situation a router is for: at the best single model's quality, most traffic can go to
cheap models.
Summaries get a graded score in [0, 1]; every other task is scored 1 or 0. Calls are
logged with token counts (no dollar cost), so training prices them with the catalog.

Each call also logs the model's answer (`response`), written from templates so that an
answer carries some of the signals a real one does, imperfectly: a wrong sum often shows
its arithmetic slip, broken code often does not parse, a model out of its depth hedges or
declines, yet some wrong answers look as confident as right ones and some right ones
hedge. That is what the learned verifier and response checks read (the answers are drawn
from their own random stream, so the outcomes are the same with or without them).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from router_ml.core.catalog import Catalog, ModelPrice, write_catalog
from router_ml.core.files import atomic_write_text

MODELS: dict[str, ModelPrice] = {
    "nano": ModelPrice(input_price=0.10, output_price=0.40, output_tokens=200, description="synthetic: cheap, easy prompts"),
    "coder": ModelPrice(input_price=0.20, output_price=0.80, output_tokens=300, description="synthetic: cheap code specialist"),
    "mini": ModelPrice(input_price=0.40, output_price=1.60, output_tokens=250, description="synthetic: mid-priced generalist"),
    "pro": ModelPrice(input_price=2.50, output_price=10.00, output_tokens=300, description="synthetic: expensive, strong"),
    "legacy-xl": ModelPrice(input_price=3.00, output_price=12.00, output_tokens=250, description="synthetic: priciest, no better than mini"),
}
TASKS = ("arithmetic", "code", "translation", "factual", "summarisation", "logic")
TIERS = ("easy", "medium", "hard")
TIER_SHARE = (0.45, 0.35, 0.20)
TIER_DIFFICULTY = {"easy": 0.1, "medium": 0.5, "hard": 0.9}
# Capability per model (difficulty it handles, 0..1) and its adjustments per task.
CAPABILITY = {"nano": 0.40, "coder": 0.25, "mini": 0.66, "pro": 0.90, "legacy-xl": 0.60}
TASK_BONUS = {
    "nano": {"translation": 0.05, "factual": 0.05, "code": -0.2, "logic": -0.1},
    "coder": {"code": 0.65, "arithmetic": 0.25, "logic": 0.2, "translation": -0.1},
    "mini": {"code": -0.05, "summarisation": 0.05},
    "pro": {},
    "legacy-xl": {"translation": 0.05, "code": -0.1},
}
# Every model also slips now and then whatever the prompt (a truncated answer, a format
# error, overthinking a simple question); the big models' long answers slip more often.
LAPSE = {"nano": 0.01, "coder": 0.02, "mini": 0.02, "pro": 0.05, "legacy-xl": 0.06}
STEEPNESS = 10.0  # logit per unit of (capability - difficulty)
MARGIN = 2.5  # logit of success when difficulty equals capability
HARDNESS_SD = 0.8  # per prompt, shared by all models, in logits
OUTPUT_TOKENS = {"arithmetic": 60, "code": 320, "translation": 80, "factual": 60, "summarisation": 140, "logic": 200}
LATENCY_MS_PER_TOKEN = {"nano": 4.0, "coder": 6.0, "mini": 9.0, "legacy-xl": 30.0, "pro": 25.0}

_NAMES = ["Ada", "Ben", "Chloe", "Dev", "Elif", "Femi", "Grace", "Hiro", "Ines", "Jon", "Kofi", "Lena"]
_ITEMS = ["apples", "tickets", "notebooks", "bolts", "mugs", "stamps", "tiles", "pens"]


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def _arithmetic(rng, tier):
    if tier == "easy":
        a, b = rng.integers(1, 50, size=2)
        return _pick(rng, [f"What is {a} + {b}?", f"Add {a} and {b}.", f"What is {a} minus {b}?"])
    if tier == "medium":
        name, item = _pick(rng, _NAMES), _pick(rng, _ITEMS)
        n, price = int(rng.integers(3, 15)), int(rng.integers(2, 9))
        bill = int(math.ceil(n * price / 20) * 20)
        return f"{name} buys {n} {item} at ${price} each and pays with ${bill}. How much change does {name} get?"
    a, b, c, d = rng.integers(1000, 99999, size=4)
    return _pick(rng, [
        f"Compute ({a} x {b} - {c}) / {d} exactly and give the result as a fraction in lowest terms.",
        f"Find all integer solutions of {a % 97 + 3}x + {b % 89 + 5}y = {c}, and prove there are no others.",
        f"What is the remainder when {a}^{b % 50 + 10} is divided by {d % 900 + 101}? Show the modular arithmetic.",
    ])


_EASY_CODE = ["reverses a string", "returns the largest number in a list", "counts the vowels in a word",
              "checks whether a number is even", "sums the digits of an integer"]
_MEDIUM_CODE = ["parses a CSV file into a list of dictionaries", "implements a stack with push, pop and peek",
                "validates e-mail addresses with a regular expression", "merges two sorted lists",
                "reads a JSON config file and fills in default values"]
_HARD_CODE = ["a lock-free multi-producer multi-consumer queue", "an LRU cache with O(1) operations and TTL expiry",
              "a B-tree with deletion and rebalancing", "a Raft leader election with log replication",
              "a garbage collector for a toy language using tri-colour marking"]
_LANGS = ["Python", "JavaScript", "Go", "Rust", "Java"]


def _code(rng, tier):
    lang = _pick(rng, _LANGS)
    if tier == "easy":
        return f"Write a {lang} function that {_pick(rng, _EASY_CODE)}."
    if tier == "medium":
        return f"Write a {lang} module that {_pick(rng, _MEDIUM_CODE)}, with docstrings and error handling."
    return (f"Implement {_pick(rng, _HARD_CODE)} in {lang}. "
            + _pick(rng, ["It must be thread-safe and come with property-based tests.",
                          "Prove its worst-case complexity and handle every failure mode.",
                          "Benchmark it against the standard library and explain the memory layout."]))


_EASY_SENTENCES = ["Good morning.", "Where is the station?", "Thank you very much.", "I would like a coffee.",
                   "How much does this cost?"]
_MEDIUM_SENTENCES = ["The meeting has been moved to Thursday afternoon because the client is travelling.",
                     "Please keep the receipt in case you need to return the item within thirty days.",
                     "Our quarterly revenue grew despite the supply chain problems in the spring."]
_HARD_SENTENCES = ["Notwithstanding the foregoing, the lessee shall remain jointly and severally liable for any "
                   "damage arising from negligence, save where such damage results from force majeure.",
                   "The indemnifying party shall hold harmless the indemnified party against all claims, "
                   "whether in contract, tort or otherwise, to the fullest extent permitted by applicable law."]


def _translation(rng, tier):
    if tier == "easy":
        return f"Translate into {_pick(rng, ['French', 'Spanish', 'German', 'Italian'])}: \"{_pick(rng, _EASY_SENTENCES)}\""
    if tier == "medium":
        return f"Translate into {_pick(rng, ['Polish', 'Turkish', 'Dutch', 'Portuguese'])}: \"{_pick(rng, _MEDIUM_SENTENCES)}\""
    return (f"Translate this legal clause into {_pick(rng, ['Icelandic', 'Basque', 'Swahili', 'Maltese'])}, keeping the "
            f"formal legal register and defined terms: \"{_pick(rng, _HARD_SENTENCES)}\"")


def _factual(rng, tier):
    if tier == "easy":
        country = _pick(rng, ["France", "Japan", "Canada", "Italy", "Egypt", "Brazil", "Kenya", "Spain", "India",
                              "Mexico", "Norway", "Chile", "Vietnam", "Ghana", "Peru"])
        return _pick(rng, [f"What is the capital of {country}?", f"Which continent is {country} in?",
                           f"Who wrote {_pick(rng, ['Romeo and Juliet', 'Pride and Prejudice', 'War and Peace', 'Hamlet'])}?",
                           f"What is the chemical symbol for {_pick(rng, ['gold', 'iron', 'sodium', 'oxygen'])}?"])
    if tier == "medium":
        return _pick(rng, [f"In which year was the {_pick(rng, ['Treaty of Westphalia', 'Magna Carta', 'Congress of Vienna'])} signed, and by whom?",
                           f"Which element has atomic number {int(rng.integers(20, 80))}, and what is it used for?"])
    return (f"Name the {_pick(rng, ['14th-century', '9th-century', 'early Ming-dynasty'])} "
            f"{_pick(rng, ['physician', 'astronomer', 'cartographer', 'mathematician'])} who first described "
            f"{_pick(rng, ['the rete mirabile', 'a lunar libration', 'the Catalan atlas projection', 'a negative-number rule'])}, "
            "and cite the primary source with its folio number.")


_FILLER = ("the team reviewed the budget and the timeline for the next release while open questions about "
           "staffing vendor contracts and the migration plan were raised assigned to owners and given deadlines "
           "before the steering committee meets again to approve the final scope").split()


def _text(rng, words):
    start = int(rng.integers(len(_FILLER)))
    return " ".join(_FILLER[(start + i) % len(_FILLER)] for i in range(words))


def _summarisation(rng, tier):
    if tier == "easy":
        return f"Summarise in one sentence: {_text(rng, int(rng.integers(25, 50)))}"
    if tier == "medium":
        return f"Summarise the following meeting notes in three bullet points: {_text(rng, int(rng.integers(80, 130)))}"
    return ("Write an executive summary of this board transcript that lists every decision, its owner and its "
            f"deadline, and flags contradictions: {_text(rng, int(rng.integers(160, 220)))}")


_ROLES = ["a painter", "a pilot", "a baker", "a chemist", "a poet", "a judge", "a nurse", "a sailor"]


def _logic(rng, tier):
    if tier == "easy":
        a, b = _pick(rng, [("cats", "animals"), ("roses", "flowers"), ("squares", "rectangles"), ("violins", "instruments")])
        name = _pick(rng, _NAMES)
        return f"All {a} are {b}. {name} has one of the {a}. Does {name} have one of the {b}?"
    people = 3 if tier == "medium" else 6
    names = list(rng.choice(_NAMES, size=people, replace=False))
    roles = list(rng.choice(_ROLES, size=people, replace=False))
    clues = []
    for _ in range(people + (0 if tier == "medium" else 3)):
        a, b = rng.choice(people, size=2, replace=False)
        clues.append(_pick(rng, [f"{names[a]} sits left of {names[b]}.", f"{names[a]} is not {roles[b]}.",
                                 f"{roles[a].capitalize()} sits next to {names[b]}."]))
    tail = f" Who is {roles[0]}?" if tier == "medium" else \
        " Determine everyone's seat and job, and explain each deduction step by step."
    return f"{people} people ({', '.join(names)}) sit in a row; their jobs are {', '.join(roles)}. " + " ".join(clues) + tail


_PREFIXES = ("", "", "Quick question: ", "Please help: ", "Hi! ", "For a work task: ")
_SUFFIXES = ("", "", " Thanks!", " Be concise.", " Answer carefully.")


def _phrased(rng, text: str) -> str:
    """Users wrap the same request in different words; so does the demo."""
    return _pick(rng, _PREFIXES) + text + _pick(rng, _SUFFIXES)


_GENERATORS = {"arithmetic": _arithmetic, "code": _code, "translation": _translation,
               "factual": _factual, "summarisation": _summarisation, "logic": _logic}


_NUMBERS = re.compile(r"\d+")
_HEDGES = ("I think ", "Perhaps ", "I'm not sure, but ", "Assuming the question means the usual thing, ")
_CONFIDENT = {
    "translation": "Here is the translation: \"{text}\"",
    "factual": "The answer is {text}.",
    "summarisation": "Summary: {text}",
    "logic": "Reasoning step by step from the clues, the answer is {text}.",
}
_WORDS = ("Lisbon", "Tokyo", "Ottawa", "the third seat", "the baker", "yes", "1648", "the steering committee",
          "Ada", "approved with changes", "Kofi", "the pilot", "next Thursday")


def _answer(rng, prompt: str, task: str, tier: str, success: bool) -> str:
    """A templated answer to `prompt` that is right when `success` (see the module docstring)."""
    hard = tier == "hard"
    if not success and rng.random() < (0.25 if hard else 0.05):
        return _pick(rng, ["I'm sorry, but I can't help with that request.",
                           "As an AI language model, I cannot provide a complete answer to this."])
    if task == "arithmetic":
        numbers = [int(n) for n in _NUMBERS.findall(prompt)]
        if tier == "medium" and len(numbers) >= 3:
            n, price, bill = numbers[:3]
            spent, change = n * price, bill - n * price
            if not success:
                slip = int(rng.integers(1, 9)) * _pick(rng, [-1, 1])
                if rng.random() < 0.6:
                    return f"{n} x ${price} = ${spent + slip}. ${bill} - ${spent + slip} = ${change - slip}.\n#### {change - slip}"
                return f"{_pick(rng, _HEDGES)}the change is about ${change + slip}.\n#### {change + slip}"
            return f"{n} x ${price} = ${spent}. ${bill} - ${spent} = ${change}.\n#### {change}"
        if tier == "easy" and len(numbers) >= 2:
            a, b = numbers[:2]
            op, value = ("-", a - b) if "minus" in prompt else ("+", a + b)
            if not success:
                slip = int(rng.integers(1, 5)) * _pick(rng, [-1, 1])
                return f"{a} {op} {b} = {value + slip}\n#### {value + slip}"
            return f"{a} {op} {b} = {value}\n#### {value}"
        result = int(rng.integers(2, 9999))
        if not success and rng.random() < 0.5:
            return f"{_pick(rng, _HEDGES)}the result is roughly {result}.5, though I may have made an error."
        return f"Working through it step by step, reducing at each stage.\n#### {result}"
    if task == "code":
        if not success and rng.random() < 0.5:
            return "```python\ndef solve(data:\n    result = [x for x in data if x\n    return result\n```"
        body = _pick(rng, ["return sorted(data)", "return [x for x in data if x]", "return sum(int(c) for c in str(data))"])
        return f"```python\ndef solve(data):\n    {body}\n```\nThis handles the cases described."
    text = _pick(rng, _WORDS)
    if (not success and rng.random() < 0.45) or (success and rng.random() < 0.08):
        return f"{_pick(rng, _HEDGES)}{_CONFIDENT[task].format(text=text)[0].lower()}{_CONFIDENT[task].format(text=text)[1:]}"
    return _CONFIDENT[task].format(text=text)


def generate_demo(n_prompts: int = 2400, seed: int = 7) -> pd.DataFrame:
    """The synthetic outcomes log: one row per (prompt, model), every model tried."""
    rng = np.random.default_rng(seed)
    answers = np.random.default_rng([seed, 1])  # a stream of its own: the outcomes do not depend on it
    rows = []
    start = pd.Timestamp("2026-09-01T00:00:00Z")
    seen: set[str] = set()
    i = 0
    while len(seen) < n_prompts:
        task = TASKS[i % len(TASKS)]
        i += 1
        tier = TIERS[int(rng.choice(3, p=TIER_SHARE))]
        text = _phrased(rng, _GENERATORS[task](rng, tier))
        difficulty = TIER_DIFFICULTY[tier] + rng.uniform(-0.08, 0.08)
        hardness = rng.normal(0.0, HARDNESS_SD)  # shared by all models: some prompts are just hard
        if text in seen:
            continue
        seen.add(text)
        in_tokens = math.ceil(len(text) / 4)
        prompt_id = f"demo-{len(seen):05d}"
        for model in MODELS:
            capability = CAPABILITY[model] + TASK_BONUS[model].get(task, 0.0)
            logit = STEEPNESS * (capability - difficulty) + MARGIN - hardness
            p = (1.0 - LAPSE[model]) / (1.0 + math.exp(-logit))
            if task == "summarisation":
                score = float(np.clip(p + rng.normal(0.0, 0.12), 0.0, 1.0))
            else:
                score = float(rng.random() < p)
            out_tokens = int(OUTPUT_TOKENS[task] * rng.uniform(0.6, 1.4))
            rows.append({
                "prompt_id": prompt_id, "prompt": text, "model": model, "task": task,
                "score": round(score, 4), "response": _answer(answers, text, task, tier, score >= 0.5),
                "input_tokens": in_tokens, "output_tokens": out_tokens,
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
