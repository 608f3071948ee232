"""The one truncation rule every embedder backend calls (router_ml.core.embedders.truncation),
on a whitespace tokenizer whose offsets are easy to check by hand."""

import re

import pytest

from router_ml.core.embedders import truncation as cut
from router_ml.errors import ConfigError


def word_offsets(text):
    return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def words(n, prefix="w"):
    return " ".join(f"{prefix}{i}" for i in range(n))


def test_short_texts_are_kept_whole():
    texts = ["a b c", words(10)]
    assert cut.truncate(texts, 10, "tail", word_offsets) == texts


@pytest.mark.parametrize("truncation, expected", [
    ("head", words(10)),
    ("tail", " ".join(f"w{i}" for i in range(20, 30))),
])
def test_head_and_tail_keep_that_many_tokens_of_the_original_text(truncation, expected):
    assert cut.truncate([words(30)], 10, truncation, word_offsets) == [expected]


def test_head_tail_keeps_a_quarter_of_the_budget_from_the_start_and_the_rest_from_the_end():
    [kept] = cut.truncate([words(100)], 20, "head_tail", word_offsets)
    assert kept.split() == [f"w{i}" for i in range(5)] + [f"w{i}" for i in range(85, 100)]


def test_head_tail_caps_the_head_at_64_tokens():
    [kept] = cut.truncate([words(1000)], 400, "head_tail", word_offsets)
    tokens = kept.split()
    assert tokens[:64] == [f"w{i}" for i in range(64)] and tokens[64] == f"w{1000 - 336}" and len(tokens) == 400


def test_the_cut_keeps_the_original_spacing_inside_the_kept_span():
    text = "intro\n\nQ:  what   is 2+2?"
    assert cut.truncate([text], 3, "tail", word_offsets) == ["what   is 2+2?"]


def test_huge_texts_are_bounded_before_tokenizing():
    seen = []

    def counting_offsets(text):
        seen.append(len(text))
        return word_offsets(text)

    huge = words(200_000)
    [kept] = cut.truncate([huge], 10, "tail", counting_offsets)
    assert kept == " ".join(f"w{i}" for i in range(199_990, 200_000))
    assert seen and max(seen) <= 10 * cut.CHARS_PER_TOKEN_BOUND


def test_unknown_truncation_is_a_named_error():
    with pytest.raises(ConfigError, match="truncation"):
        cut.check_truncation("middle")
