"""Prompts as the router accepts them: the one normalisation every prompt goes through.

Wherever a prompt enters (the Python API, the CLI, the HTTP service, the gateway, the
outcomes logs of training and import), it passes `normalize_prompt`:

- **Unencodable code points are replaced, not crashed on.** A Python string can hold a
  lone surrogate (JSON allows the escape `"\\ud800"`, and clients send it); no UTF-8
  encoder, tokenizer, hash or database takes it. Each is replaced by U+FFFD and counted.
- **A prompt needs content.** Only whitespace, control or zero-width characters (and
  replacement characters) is not a prompt: a `PromptError`, never a guess.
- **A size limit**, when the caller has one (`PromptTooLongError`).

`prompt_sha256` is how logs identify a prompt without keeping its text; `keyed_digest`
the same with a per-deployment secret (HMAC-SHA256), so that a guessable prompt cannot be
recovered by hashing candidates.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

from router_ml.errors import PromptError, PromptTooLongError

_SURROGATES = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def replace_unencodable(text: str) -> tuple[str, int]:
    """`text` with every code point UTF-8 cannot encode (lone surrogates) replaced by U+FFFD,
    and how many were replaced."""
    try:
        text.encode("utf-8")
        return text, 0
    except UnicodeEncodeError:
        return _SURROGATES.subn(REPLACEMENT, text)


def has_content(text: str) -> bool:
    """True when `text` holds something besides whitespace, control, format (zero-width) or
    replacement characters."""
    for char in text:
        if char.isspace() or char == REPLACEMENT:
            continue
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            continue
        return True
    return False


def normalize_prompt(prompt, where: str = "prompt", max_chars: int | None = None) -> tuple[str, int]:
    """(the prompt as the router sees it, how many characters were replaced), or a PromptError
    naming `where`."""
    if not isinstance(prompt, str):
        raise PromptError(f"{where}: expected a string, found {type(prompt).__name__}")
    if max_chars is not None and len(prompt) > max_chars:
        raise PromptTooLongError(f"{where}: {len(prompt):,} characters is over the limit of {max_chars:,}; "
                                 "pass max_prompt_chars= to load_router to raise it")
    text, replaced = replace_unencodable(prompt)
    if not has_content(text):
        raise PromptError(f"{where}: expected a prompt with some content, found only whitespace, control or "
                          f"zero-width characters ({text[:20]!r})")
    return text, replaced


def clean_json(value, replaced: list[int] | None = None):
    """A JSON-like value with lone surrogates replaced in every string (keys included); the
    number replaced is added to `replaced[0]` when given."""
    if isinstance(value, str):
        text, n = replace_unencodable(value)
        if n and replaced is not None:
            replaced[0] += n
        return text
    if isinstance(value, dict):
        return {clean_json(k, replaced): clean_json(v, replaced) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(v, replaced) for v in value]
    return value


def prompt_sha256(prompt: str) -> str:
    """How logs identify a prompt without keeping its text (the audit log's `prompt_sha256`)."""
    return hashlib.sha256(replace_unencodable(prompt)[0].encode("utf-8")).hexdigest()


def keyed_digest(text: str, key: bytes | None) -> str:
    """HMAC-SHA256 of `text` under `key` (plain sha256 without a key), hex."""
    data = replace_unencodable(text)[0].encode("utf-8")
    if key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.new(key, data, hashlib.sha256).hexdigest()
