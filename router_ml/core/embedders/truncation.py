"""How a prompt longer than the model's window is cut: one implementation for every backend.

MiniLM sees 256 tokens (254 after [CLS] and [SEP]). Few-shot prompts put the real
question at the end, so cutting the head keeps the examples and loses the question.

- `tail` (the default) keeps the last tokens;
- `head_tail` keeps the first 64 and the last 190 (instructions and question);
- `head` is sentence-transformers' own behaviour.

The default was chosen by measurement: `benchmarks/truncation.py` writes the comparison.
The cut is made on the original text at token boundaries (from the tokenizer's offsets),
so the kept text is re-tokenized exactly as the user wrote it. A backend supplies only
`offsets(text) -> [(start, end), ...]` for its own tokenizer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from router_ml.errors import ConfigError

TRUNCATIONS = ("head", "tail", "head_tail")
DEFAULT_TRUNCATION = "tail"
HEAD_TAIL_HEAD_TOKENS = 64
# Before tokenizing, very long texts are cut to this many characters per kept token at
# each kept end: no real token is longer, and it bounds the tokenizer's work on a
# 500 kB prompt to a few kB.
CHARS_PER_TOKEN_BOUND = 32

Offsets = Callable[[str], Sequence[tuple[int, int]]]


def check_truncation(truncation: str) -> str:
    if truncation not in TRUNCATIONS:
        raise ConfigError(f"truncation: expected one of {TRUNCATIONS}, found {truncation!r}")
    return truncation


def cut_spans(offsets: Sequence[tuple[int, int]], budget: int, truncation: str) -> list[tuple[int, int | None]]:
    """Character spans of the text to keep, given its token offsets and a token budget."""
    if truncation == "head":
        return [(0, offsets[budget - 1][1])]
    if truncation == "tail":
        return [(offsets[-budget][0], None)]
    head = min(HEAD_TAIL_HEAD_TOKENS, budget // 4)
    return [(0, offsets[head - 1][1]), (offsets[-(budget - head)][0], None)]


def truncate(texts: list[str], budget: int, truncation: str, offsets: Offsets) -> list[str]:
    """Each text cut to at most `budget` tokens (as `offsets` counts them) by `truncation`."""
    limit = budget * CHARS_PER_TOKEN_BOUND
    out = []
    for text in texts:
        if len(text) > 2 * limit:
            if truncation == "head_tail":
                text = text[:limit] + " " + text[-limit:]
            else:
                text = text[:limit] if truncation == "head" else text[-limit:]
        if len(text) <= budget:  # a token spans at least one character
            out.append(text)
            continue
        spans = offsets(text)
        if len(spans) <= budget:
            out.append(text)
            continue
        out.append(" ".join(text[start:end] for start, end in cut_spans(spans, budget, truncation)))
    return out
