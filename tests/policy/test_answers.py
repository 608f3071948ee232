"""Reading answers (router_ml.policy.answers) and the response checks built on it."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_ml.errors import PolicyError
from router_ml.policy.answers import (
    ANSWER_FORMS,
    TEXT_FEATURES,
    agree,
    answer_in_form,
    arithmetic_errors,
    code_parses,
    final_answer,
    hedges,
    is_refusal,
    text_features,
)
from router_ml.policy.checks import AnswerContext
from router_ml.policy.file import policy_from_dict


def test_worked_arithmetic_is_checked_with_precedence_currency_and_calculator_notes():
    assert arithmetic_errors("16 - 3 - 4 = 9, and 9 * $2 = $18. So 2 + 3 * 4 = 14. <<9*2=18>>") == (0, 4)
    assert arithmetic_errors("13 - 4 = 8 and <<5/2=3>> and 1,200 + 300 = 1,500") == (2, 3)
    assert arithmetic_errors("no sums here, only 3 apples and 4 pears") == (0, 0)


@pytest.mark.parametrize("text, expected", [
    ("so she has 9 left.\n#### 18", "18"),
    ("The answer is \\boxed{1,200.0}", "1200"),
    ("Therefore the answer is (C).", "C"),
    ("B", "B"),
    ("The total is 12.50 dollars", "12.5"),
    ("I cannot say.", None),
])
def test_final_answers_are_normalised(text, expected):
    assert final_answer(text) == expected


def test_agreement_refusal_hedges_and_code():
    assert agree("... #### 42", "the answer is 42.0") is True
    assert agree("#### 41", "#### 42") is False and agree("no idea", "#### 1") is None
    assert is_refusal("I'm sorry, but I can't help with that.") and not is_refusal("Sorry for the delay: 4.")
    assert hedges("However, assuming it rains, it is approximately 4.") == 3
    assert code_parses("```python\ndef f(x):\n    return x\n```") is True
    assert code_parses("```\ndef f(x:\n```") is False
    assert code_parses("```js\nconst x = {;\n```") is None and code_parses("plain text") is None


@settings(max_examples=200, deadline=None)
@given(prompt=st.text(max_size=300), text=st.text(max_size=600))
def test_text_features_never_fail_and_have_their_names(prompt, text):
    features = text_features(prompt, text)
    assert features.shape == (len(TEXT_FEATURES),) and np.isfinite(features).all()


def test_new_checks_from_a_policy_file():
    models = ["a", "b"]

    def check(spec):
        return policy_from_dict({"cascade": {"steps": ["a", "b"], "escalate_if": {"check": spec}}}, models,
                                "p.yaml").cascade.check

    assert check({"no_refusal": True})("Paris.") and not check({"no_refusal": True})("As an AI language model, I cannot")
    assert check({"max_hedges": 1})("However, 4.") and not check({"max_hedges": 1})("However, assume roughly 4.")
    assert check({"answer_format": "####"})("#### 4") and not check({"answer_format": "####"})("4")
    assert check({"answer_format": {"regex": "^ANSWER: [A-D]$"}})("ANSWER: C")
    assert check({"python_parses": True})("```python\nx = 1\n```") and not check({"python_parses": True})("x = 1")
    schema = check({"json_schema": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}})
    assert schema('{"city": "Oslo"}') and not schema('{"town": "Oslo"}') and not schema("Oslo")
    both = check([{"no_refusal": True}, {"min_chars": 3}])
    assert both("Paris") and not both("ok")
    verdict = both.verdict("ok")
    assert verdict.failed == "min_chars"


@pytest.mark.parametrize("spec, message", [
    ({"no_refusal": "yes"}, "no_refusal: expected true"),
    ({"answer_format": 3}, "answer_format: expected a marker"),
    ({"json_schema": {"type": "nonsense"}}, "not a valid JSON schema"),
    ({"verifier": 1.5}, "check.verifier"),
    ([], "at least one check"),
    ({"spelling": True}, "expected exactly one of"),
])
def test_bad_checks_name_the_file_and_line(spec, message):
    with pytest.raises(PolicyError, match=message) as raised:
        policy_from_dict({"cascade": {"steps": ["a", "b"], "escalate_if": {"check": spec}, "__line__": 3},
                          "__line__": 1}, ["a", "b"], "p.yaml")
    assert "p.yaml:" in str(raised.value)


def test_a_verifier_check_needs_a_verifier_and_reads_the_context():
    policy = policy_from_dict({"cascade": {"steps": ["a", "b"], "escalate_if": {"check": {"verifier": 0.6}}}},
                              ["a", "b"])
    assert policy.needs_verifier
    with pytest.raises(PolicyError, match="no learned verifier"):
        policy.cascade.check.verdict(AnswerContext("4", "2+2?", "a", estimate=0.5))

    class Fixed:
        def score(self, model, prompt, text, estimate, earlier):
            return 0.7 if text == "good" else 0.2

    ok = policy.cascade.check.verdict(AnswerContext("good", "q", "a", 0.5, (), Fixed()))
    bad = policy.cascade.check.verdict(AnswerContext("bad", "q", "a", 0.5, (), Fixed()))
    assert ok.passed and ok.score == 0.7 and not bad.passed and bad.failed == "verifier"


def test_gsm8k_style_annotations_count_once_and_in_order():
    from router_ml.policy.answers import _worked_results

    text = "She sells 9 * $2 = $<<9*2=18>>18. Then 18 + 2 = 20.\n#### 20"
    assert arithmetic_errors(text) == (0, 3)  # 9 * 2 = 18 (written out), the annotation, 18 + 2 = 20
    assert _worked_results(text) == ["18", "18", "20"]
    features = dict(zip(TEXT_FEATURES, text_features("Janet sells 9 eggs at $2", text)))
    assert features["final_is_last_result"] == 1.0 and features["prompt_numbers_used"] == 1.0


def test_answer_forms_read_one_answer_each_way_and_agreement_follows_the_form():
    text = "Let me check.\n```python\ndef f(xs):\n    return sorted(xs)[2]\n```\n**The answer is (C).**"
    assert {form: answer_in_form(text, form) for form in ANSWER_FORMS} == {
        "final": "C", "letter": "C", "number": "2", "code": "def f(xs): return sorted(xs)[2]",
        "line": "the answer is (c)", "text": " ".join(text.lower().split())}
    other = text.replace("sorted", "reversed")
    assert agree(text, other) is True and agree(text, other, "code") is False
    assert agree("no code here", text, "code") is None  # one has no answer in that form
    assert answer_in_form("", "line") is None and answer_in_form("   ", "text") is None
    with pytest.raises(ValueError, match="answer form 'xml'"):
        answer_in_form(text, "xml")
