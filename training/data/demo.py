"""A deterministic generator of a SYNTHETIC outcomes log, for the demo and for tests.

Nothing here was measured on a real model. The log imitates what a team's logs look
like: nine task families (chit-chat, mathematics, code, translation, factual questions,
summaries, logic puzzles, writing, analysis), each with easy, medium and hard prompts
whose wording shows their difficulty the way real prompts do ("hi!" and "what's 7 x 8?"
against a proof, a system design with its trade-offs, or a legal clause in Basque); the
prompts are built from many phrasings and topics (training/data/demo_prompts.py), so that a
router trained on them generalises to what a person types. Five models with different
strengths and prices:

    nano        cheap, fine on easy prompts
    coder       cheap code specialist (good on everyday code, not on hard systems), weak elsewhere
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
`answer(rng, prompt, task, tier, success)` writes one; the demo upstream
(training/data/demo_upstream.py) answers live requests with it.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from router_ml.core.catalog import Catalog, ModelPrice, write_catalog
from router_ml.core.files import atomic_write_text
from router_ml.training.data.demo_prompts import PROMPT_GENERATORS, TASK_SHARE, TASKS, TIER_SHARE

MODELS: dict[str, ModelPrice] = {
    "nano": ModelPrice(input_price=0.10, output_price=0.40, output_tokens=200, description="synthetic: cheap, easy prompts"),
    "coder": ModelPrice(input_price=0.20, output_price=0.80, output_tokens=300, description="synthetic: cheap code specialist"),
    "mini": ModelPrice(input_price=0.40, output_price=1.60, output_tokens=250, description="synthetic: mid-priced generalist"),
    "pro": ModelPrice(input_price=2.50, output_price=10.00, output_tokens=300, description="synthetic: expensive, strong"),
    "legacy-xl": ModelPrice(input_price=3.00, output_price=12.00, output_tokens=250, description="synthetic: priciest, no better than mini"),
}
TIERS = ("easy", "medium", "hard")
DEFAULT_PORT = 9000  # where `router-ml demo-upstream` listens unless told otherwise
CATALOG_FILE = "catalog-local.yaml"  # the demo catalog with endpoints on it
TIER_DIFFICULTY = {"easy": 0.1, "medium": 0.5, "hard": 0.9}
# Capability per model (difficulty it handles, 0..1) and its adjustments per task.
CAPABILITY = {"nano": 0.40, "coder": 0.25, "mini": 0.66, "pro": 0.90, "legacy-xl": 0.60}
TASK_BONUS = {
    "nano": {"chat": 0.10, "translation": 0.05, "factual": 0.05, "writing": 0.05, "code": -0.2, "logic": -0.1,
             "analysis": -0.05},
    "coder": {"code": 0.35, "math": 0.25, "logic": 0.2, "chat": 0.1, "translation": -0.1, "writing": -0.05},
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
OUTPUT_TOKENS = {"chat": 40, "math": 120, "code": 320, "translation": 80, "factual": 90, "summarisation": 140,
                 "logic": 200, "writing": 260, "analysis": 420}
LATENCY_MS_PER_TOKEN = {"nano": 4.0, "coder": 6.0, "mini": 9.0, "legacy-xl": 30.0, "pro": 25.0}

_PREFIXES = ("", "", "", "", "Quick question: ", "Please help: ", "Hi! ", "Hey, ", "Can you help? ", "For a work task: ",
             "For my homework: ", "I need help with this. ")
_SUFFIXES = ("", "", "", " Thanks!", " Thank you.", " Be concise.", " Answer carefully.", " Thanks in advance.")


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def _phrased(rng, task: str, text: str) -> str:
    """Users wrap the same request in different words; so does the demo (not greetings: they are the words)."""
    if task == "chat":
        return text
    prefix, suffix = _pick(rng, _PREFIXES), _pick(rng, _SUFFIXES)
    if prefix.endswith(", ") and rng.random() < 0.5:
        text = text[0].lower() + text[1:]
    return prefix + text + (suffix if text[-1] in ".?!\"" else "")


def success_probability(model: str, task: str, difficulty: float, hardness: float) -> float:
    """P(model succeeds) on a prompt of this task, difficulty (0..1) and shared hardness (logits)."""
    capability = CAPABILITY[model] + TASK_BONUS[model].get(task, 0.0)
    logit = STEEPNESS * (capability - difficulty) + MARGIN - hardness
    return (1.0 - LAPSE[model]) / (1.0 + math.exp(-logit))


# -- answers ------------------------------------------------------------------------------------

_NUMBERS = re.compile(r"\d+")
_HEDGES = ("I think ", "Perhaps ", "I'm not sure, but ", "Assuming the question means the usual thing, ")
_REFUSALS = ("I'm sorry, but I can't help with that request.",
             "As an AI language model, I cannot provide a complete answer to this.")
_CONFIDENT = {
    "chat": "{text}",
    "translation": "Here is the translation: \"{text}\"",
    "factual": "The answer is {text}.",
    "summarisation": "Summary: {text}",
    "logic": "Reasoning step by step from the clues, the answer is {text}.",
    "writing": "Here you go:\n\n{text}",
    "analysis": "In short: {text}. The main considerations follow, each with the evidence for and against.",
}
_WORDS = {
    "chat": ("Here's one: why did the scarecrow win an award? Because he was outstanding in his field.",
             "Sure, here are a few ideas you could try.", "Here's a fun fact: octopuses have three hearts."),
    "translation": ("Bonjour, où est la gare ?", "Muchas gracias.", "Ich hätte gern einen Kaffee.", "A presto!",
                    "Dziękuję bardzo.", "Het spijt me."),
    "factual": ("Lisbon", "Tokyo", "Ottawa", "1648", "Marie Curie", "eight", "the Pacific Ocean"),
    "summarisation": ("the launch slipped two weeks and the budget was approved", "the kitchen is closed on Friday",
                      "Ada owns the migration plan, due next week"),
    "logic": ("the third seat", "the baker", "yes", "Kofi", "the pilot", "17"),
    "writing": ("Soft rain on the roof / the kettle starts to murmur / Monday holds its breath",
                "Could you please send the files when you have a moment? Thank you.",
                "Dear hiring manager, I am writing to apply for the position ..."),
    "analysis": ("it depends on the time horizon and on who bears the cost", "the evidence is mixed but leans positive",
                 "the design trades consistency for availability"),
}


def answer(rng, prompt: str, task: str, tier: str, success: bool) -> str:
    """A templated answer to `prompt` that is right when `success` (see the module docstring)."""
    hard = tier == "hard"
    if not success and rng.random() < (0.25 if hard else 0.05):
        return _pick(rng, _REFUSALS)
    if task == "math":
        return _math_answer(rng, prompt, tier, success)
    if task == "code":
        if not success and rng.random() < 0.5:
            return "```python\ndef solve(data:\n    result = [x for x in data if x\n    return result\n```"
        body = _pick(rng, ["return sorted(data)", "return [x for x in data if x]", "return sum(int(c) for c in str(data))"])
        return f"```python\ndef solve(data):\n    {body}\n```\nThis handles the cases described."
    text = _chat_words(rng, prompt) if task == "chat" else _pick(rng, _WORDS[task])
    template = _CONFIDENT[task]
    if (not success and rng.random() < 0.45) or (success and rng.random() < 0.08):
        said = template.format(text=text)
        return f"{_pick(rng, _HEDGES)}{said[0].lower()}{said[1:]}"
    return template.format(text=text)


_GREETING = re.compile(r"^\W*(hi|hello|hey|yo|hiya|greetings|good (morning|afternoon|evening)|morning)\b", re.I)
_THANKS = re.compile(r"\b(thanks|thank you)\b", re.I)
_BYE = re.compile(r"\b(bye|good night|see you)\b", re.I)


def _chat_words(rng, prompt: str) -> str:
    """A chit-chat answer that fits the prompt's kind: a greeting, thanks, a goodbye, or the rest."""
    if _GREETING.search(prompt):
        return _pick(rng, ("Hello! I'm doing well, thanks for asking. How can I help?", "Hi there! What can I do for you?"))
    if _THANKS.search(prompt):
        return _pick(rng, ("You're welcome, happy to help.", "Anytime!"))
    if _BYE.search(prompt):
        return _pick(rng, ("Good night, sleep well!", "See you soon!"))
    return _pick(rng, _WORDS["chat"])


def _math_answer(rng, prompt: str, tier: str, success: bool) -> str:
    numbers = [int(n) for n in _NUMBERS.findall(prompt)]
    if tier == "hard":
        if not success and rng.random() < 0.45:
            return (f"{_pick(rng, _HEDGES)}the idea is to argue by contradiction, but I could not close the last step; "
                    "the result is probably true as stated.")
        return ("Proof. Suppose the contrary and take a minimal counterexample. By the hypothesis each step below "
                "follows from the previous one, and the case analysis is exhaustive. Hence the claim holds. QED")
    if len(numbers) >= 2:
        a, b = numbers[:2]
        op, value = ("-", a - b) if ("minus" in prompt or " - " in prompt) else ("x", a * b) if (
            "times" in prompt or " x " in prompt or "*" in prompt) else ("+", a + b)
        if "change" in prompt and len(numbers) >= 3:
            n, price, bill = numbers[:3]
            a, b, op, value = bill, n * price, "-", bill - n * price
        if not success:
            slip = int(rng.integers(1, 9)) * _pick(rng, [-1, 1])
            if rng.random() < 0.6:
                return f"{a} {op} {b} = {value + slip}\n#### {value + slip}"
            return f"{_pick(rng, _HEDGES)}the answer is about {value + slip}.\n#### {value + slip}"
        return f"{a} {op} {b} = {value}\n#### {value}"
    result = int(rng.integers(2, 9999))
    if not success and rng.random() < 0.5:
        return f"{_pick(rng, _HEDGES)}the result is roughly {result}.5, though I may have made an error."
    return f"Working through it step by step.\n#### {result}"


# -- the log --------------------------------------------------------------------------------------

def generate_demo(n_prompts: int = 2400, seed: int = 7) -> pd.DataFrame:
    """The synthetic outcomes log: one row per (prompt, model), every model tried."""
    rng = np.random.default_rng(seed)
    answers = np.random.default_rng([seed, 1])  # a stream of its own: the outcomes do not depend on it
    task_p = np.array([TASK_SHARE[t] for t in TASKS])
    task_p = task_p / task_p.sum()
    rows = []
    start = pd.Timestamp("2026-09-01T00:00:00Z")
    seen: set[str] = set()
    while len(seen) < n_prompts:
        task = TASKS[int(rng.choice(len(TASKS), p=task_p))]
        tier = TIERS[int(rng.choice(3, p=TIER_SHARE[task]))]
        text = _phrased(rng, task, PROMPT_GENERATORS[task](rng, tier))
        difficulty = TIER_DIFFICULTY[tier] + rng.uniform(-0.08, 0.08)
        hardness = rng.normal(0.0, HARDNESS_SD)  # shared by all models: some prompts are just hard
        if text in seen:
            continue
        seen.add(text)
        in_tokens = math.ceil(len(text) / 4)
        prompt_id = f"demo-{len(seen):05d}"
        for model in MODELS:
            p = success_probability(model, task, difficulty, hardness)
            if task == "summarisation":
                score = float(np.clip(p + rng.normal(0.0, 0.12), 0.0, 1.0))
            else:
                score = float(rng.random() < p)
            out_tokens = int(OUTPUT_TOKENS[task] * rng.uniform(0.6, 1.4))
            rows.append({
                "prompt_id": prompt_id, "prompt": text, "model": model, "task": task,
                "score": round(score, 4), "response": answer(answers, text, task, tier, score >= 0.5),
                "input_tokens": in_tokens, "output_tokens": out_tokens,
                "latency_ms": round(LATENCY_MS_PER_TOKEN[model] * out_tokens + rng.uniform(80, 300), 1),
                "timestamp": (start + pd.Timedelta(minutes=len(rows) * 3)).isoformat(),
            })
    return pd.DataFrame(rows)


def demo_catalog() -> Catalog:
    return Catalog(models=dict(MODELS), default_output_tokens=256, source="demo catalog")


def write_demo(out_dir: str | Path, n_prompts: int = 2400, seed: int = 7) -> dict[str, Path]:
    """Write outcomes.csv, a disjoint holdout.csv (a quarter as many prompts), catalog.yaml and
    catalog-local.yaml (the same with each model's endpoint on `router-ml demo-upstream`)."""
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
    local = out_dir / CATALOG_FILE
    atomic_write_text(local, local_catalog_text())
    return {"outcomes": outcomes, "holdout": holdout, "catalog": catalog, "local_catalog": local}


def local_catalog_text(port: int = DEFAULT_PORT) -> str:
    """The demo catalog with each model's endpoint on the demo upstream (no key needed)."""
    import yaml

    models = {}
    for name, price in MODELS.items():
        models[name] = {"input_price": price.input_price, "output_price": price.output_price,
                        "output_tokens": price.output_tokens, "description": price.description,
                        "base_url": f"http://127.0.0.1:{port}/v1"}
    data = {"default_output_tokens": 256, "models": models,
            "aliases": {"gpt-4o-mini": {"model": "nano", "description": "an app's cheap model name, always nano"},
                        "gpt-4o": {"up_to": "mini", "description": "routed among models no dearer than mini"}}}
    return ("# The demo catalog with every model's endpoint on `router-ml demo-upstream` (synthetic answers, no key):\n"
            f"#   router-ml demo-upstream --port {port}\n"
            f"#   router-ml serve --router models/demo --catalog data/demo/{CATALOG_FILE}\n"
            "# Prices in USD per million tokens. See data/README.md for the format.\n"
            + yaml.safe_dump(data, sort_keys=False))

