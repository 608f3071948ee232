"""Reading an answer: the plain signals response checks and the learned verifier use.

Everything here is a pure function of text, cheap (regular expressions and `ast`), and
the same at training and at serving time:

- `is_refusal`, `hedges`: the model declines, or qualifies its answer;
- `final_answer`: the answer a reply commits to, normalised (a GSM8K `#### 18`, a
  `\\boxed{}`, "the answer is (B)", else the last number), so two answers can be compared
  (`agree`); `ANSWER_FORMS` are the other ways of reading one (a choice letter, the last
  number, a code block, the last line, the whole text), among which training picks per pair
  of models the one whose agreement predicts success on the log;
- `arithmetic_errors`: worked arithmetic that does not hold (`13 - 4 = 8`, `<<9*2=19>>`),
  a strong sign that a reasoning answer went wrong;
- `code_blocks` and `code_parses`: fenced code, and whether the Python in it parses;
- `text_features`: all of the above as one vector (`TEXT_FEATURES` names it), what the
  learned verifier (router_ml.policy.verifier) reads besides the router's estimate.
"""

from __future__ import annotations

import ast
import math
import re

import numpy as np

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
NUMBER = re.compile(r"(?<![\w.])" + _NUMBER)
HEDGES = re.compile(
    r"\b(however|assum(?:e|es|ed|ing|ption)|approximately|roughly|perhaps|probably|might|unclear|not sure|uncertain|"
    r"cannot be determined|can't be determined|not enough information|estimate|rounded?|actually|it seems|"
    r"i think|i believe|wait)\b", re.I)
REFUSALS = re.compile(
    r"\b(i can(?:not|'t) (?:help|assist|answer|provide|do that|comply)|i am (?:unable|not able)|i'm (?:unable|not able)|"
    r"i (?:won't|will not) (?:help|assist|provide)|as an ai(?: language model)?|i apologi[sz]e, but|"
    r"i'm sorry, but i can)", re.I)
MARKERS = re.compile(r"(####|\\boxed\{|\bthe (?:final )?answer is\b|\banswer:)", re.I)
FENCE = re.compile(r"```([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)
_OPERAND = r"\$?\s?" + _NUMBER
EQUATION = re.compile(r"(?<![\w.])((?:" + _OPERAND + r"\s*[-+*/x×÷]\s*)+" + _OPERAND + r")\s*=\s*\$?\s*(" + _NUMBER + ")")
CALCULATOR = re.compile(r"<<([^=<>]{1,200})=([^<>]{1,50})>>")  # GSM8K's calculator annotations
_SAFE_EXPRESSION = re.compile(r"[\d\s.+\-*/()]+")
LETTER = re.compile(r"(?:answer is|answer:|option)\s*\(?([A-J])\)?\b|^\s*\(?([A-J])\)?[.):]?\s*$", re.I | re.M)


def _number(text: str) -> float:
    return float(text.replace(",", "").replace("$", ""))


def is_refusal(text: str) -> bool:
    """The answer declines the task ("I can't help with that", "As an AI language model ...")."""
    return REFUSALS.search(text) is not None


def hedges(text: str) -> int:
    """How many hedging words the answer uses ("however", "assume", "approximately", ...)."""
    return len(HEDGES.findall(text))


def _eval_arithmetic(expression: str) -> float:
    """The value of a plain arithmetic expression (numbers, + - * / and brackets), safely."""
    tree = ast.parse(expression, mode="eval")

    def value(node) -> float:
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = value(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            a, b = value(node.left), value(node.right)
            if isinstance(node.op, ast.Div):
                return a / b if b else math.nan
            return a + b if isinstance(node.op, ast.Add) else a - b if isinstance(node.op, ast.Sub) else a * b
        raise ValueError("not plain arithmetic")

    return value(tree)


def arithmetic_errors(text: str) -> tuple[int, int]:
    """(wrong, checked): worked arithmetic in the answer that does not hold, of all that could be checked.

    Checks chains like `16 - 3 - 4 = 9` or `9 * $2 = $18` (usual precedence) and
    calculator annotations `<<expression=value>>`, with 1 % tolerance (answers round).
    """
    wrong = checked = 0
    for expression, claimed in EQUATION.findall(_blank_annotations(text)):  # annotations are checked below
        plain = expression.replace("$", "").replace(",", "").replace("×", "*").replace("x", "*").replace("÷", "/")
        try:
            got, claimed_value = _eval_arithmetic(plain), _number(claimed)
        except (ValueError, SyntaxError, OverflowError, RecursionError):
            continue
        checked += 1
        wrong += not math.isclose(got, claimed_value, rel_tol=0.01, abs_tol=0.01)
    for expression, claimed in CALCULATOR.findall(text):
        if not _SAFE_EXPRESSION.fullmatch(expression):
            continue
        try:
            got, claimed_value = _eval_arithmetic(expression.replace(",", "")), _number(claimed.strip())
        except (ValueError, SyntaxError, OverflowError, RecursionError):
            continue
        checked += 1
        wrong += not math.isclose(got, claimed_value, rel_tol=0.01, abs_tol=0.01)
    return wrong, checked


def _worked_results(text: str) -> list[str]:
    """The results of worked equations and calculator annotations, normalised, in the order they appear."""
    found = [(m.start(), m.group(2)) for m in CALCULATOR.finditer(text)]
    found += [(m.start(), m.group(2)) for m in EQUATION.finditer(_blank_annotations(text))]
    return [_normal_number(value.strip()) for _, value in sorted(found)]


def _blank_annotations(text: str) -> str:
    """The text with calculator annotations blanked out (same length: positions still match)."""
    return CALCULATOR.sub(lambda m: " " * len(m.group(0)), text)


def final_answer(text: str) -> str | None:
    """The answer a reply commits to, normalised for comparison; None when it commits to nothing.

    In order: a GSM8K `#### value`, a `\\boxed{value}`, "the answer is (C)" or a lone
    letter line, else the last number. Numbers lose thousands separators, currency and
    trailing zeros (`1,200.0` -> `1200`).
    """
    for pattern in (r"####\s*\$?\s*(" + _NUMBER + ")", r"\\boxed\{\s*\$?(" + _NUMBER + r")\s*\}"):
        found = re.search(pattern, text)
        if found:
            return _normal_number(found.group(1))
    letter = LETTER.search(text)
    if letter:
        return (letter.group(1) or letter.group(2)).upper()
    numbers = NUMBER.findall(text)
    return _normal_number(numbers[-1]) if numbers else None


def _normal_number(text: str) -> str:
    try:
        value = _number(text)
    except ValueError:
        return text
    if math.isfinite(value) and value == int(value):
        return str(int(value))
    return f"{value:.6g}"


def _letter(text: str) -> str | None:
    found = LETTER.search(text)
    return (found.group(1) or found.group(2)).upper() if found else None


def _last_number(text: str) -> str | None:
    numbers = NUMBER.findall(text)
    return _normal_number(numbers[-1]) if numbers else None


def _code(text: str) -> str | None:
    blocks = code_blocks(text)
    return " ".join(blocks[0][1].split()) if blocks else None


_MARKUP = re.compile(r"[*_`#>]+")


def _last_line(text: str) -> str | None:
    lines = [_MARKUP.sub("", raw).strip().lstrip("-•").rstrip(".!?;:,").strip().lower() for raw in text.splitlines()]
    lines = [line for line in lines if line]
    return lines[-1] if lines else None


def _whole(text: str) -> str | None:
    words = text.lower().split()
    return " ".join(words) if words else None


# What two answers are compared on: each form reads one kind of answer (the learned verifier
# picks, per pair of models, the form whose agreement predicts success best on the log).
ANSWER_FORMS = {
    "final": final_answer,  # a marked answer (####, \boxed{}, "the answer is"), a choice letter, else the last number
    "letter": _letter,  # the multiple-choice letter
    "number": _last_number,  # the last number
    "code": _code,  # the first fenced code block, whitespace collapsed
    "line": _last_line,  # the last line with text, lower case, markup, a bullet and end punctuation dropped
    "text": _whole,  # the whole answer, lower case, whitespace collapsed
}


def answer_in_form(text: str, form: str = "final") -> str | None:
    """The answer `text` commits to, read in `form` (ANSWER_FORMS); None when it has none in that form."""
    try:
        read = ANSWER_FORMS[form]
    except KeyError:
        raise ValueError(f"answer form {form!r}: expected one of {sorted(ANSWER_FORMS)}") from None
    return read(text or "")


def agree(a: str, b: str, form: str = "final") -> bool | None:
    """Do two answers commit to the same answer, read in `form`? None when either has none."""
    fa, fb = answer_in_form(a, form), answer_in_form(b, form)
    if fa is None or fb is None:
        return None
    return fa == fb


def code_blocks(text: str) -> list[tuple[str, str]]:
    """Fenced code blocks as (language, code)."""
    return [(lang.lower(), code) for lang, code in FENCE.findall(text)]


def code_parses(text: str) -> bool | None:
    """Does every fenced Python block (```python, ```py or unlabelled) parse? None: no such block."""
    blocks = [code for lang, code in code_blocks(text) if lang in ("", "python", "py", "python3")]
    if not blocks:
        return None
    for code in blocks:
        try:
            ast.parse(code)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return False
    return True


TEXT_FEATURES = (
    "log_chars",  # log(1 + characters of the answer)
    "log_length_ratio",  # log(1 + answer chars) - log(1 + prompt chars)
    "hedges",  # hedging words
    "refusal",  # the answer declines
    "marker",  # an explicit final-answer marker (####, \boxed{}, "the answer is")
    "log_numbers",  # log(1 + numbers in the answer)
    "arithmetic_wrong",  # worked arithmetic that does not hold
    "arithmetic_any_wrong",  # 1 if any does
    "no_final_answer",  # commits to no answer
    "final_not_integer",  # the final answer is a number with a fraction
    "final_copied",  # the final answer is a number that appears in the prompt
    "log_lines",  # log(1 + lines)
    "log_prompt_numbers",  # log(1 + numbers in the prompt)
    "has_code",  # fenced code present
    "code_error",  # fenced Python that does not parse
    "prompt_numbers_used",  # share of the prompt's numbers that the answer uses (1 when it has none)
    "prompt_number_unused",  # 1 if some number of the prompt is not in the answer
    "log_equations",  # log(1 + worked equations and calculator annotations)
    "final_is_last_result",  # the final answer is the result of the last worked equation
    "final_in_results",  # the final answer is the result of some worked equation
)


def text_features(prompt: str, text: str) -> np.ndarray:
    """The answer's TEXT_FEATURES, as float64."""
    chars = len(text)
    wrong, _ = arithmetic_errors(text)
    final = final_answer(text)
    final_value = None
    if final is not None:
        try:
            final_value = float(final)
        except ValueError:
            pass
    prompt_numbers = {_normal_number(n) for n in NUMBER.findall(prompt)}
    answer_numbers = {_normal_number(n) for n in NUMBER.findall(text)}
    used = len(prompt_numbers & answer_numbers) / len(prompt_numbers) if prompt_numbers else 1.0
    results = _worked_results(text)
    parses = code_parses(text)
    return np.array([
        math.log1p(chars),
        math.log1p(chars) - math.log1p(len(prompt)),
        hedges(text),
        float(is_refusal(text)),
        float(MARKERS.search(text) is not None),
        math.log1p(len(NUMBER.findall(text))),
        wrong,
        float(wrong > 0),
        float(final is None),
        float(final_value is not None and math.isfinite(final_value) and final_value != int(final_value)),
        float(final_value is not None and final in prompt_numbers),
        math.log1p(text.count("\n")),
        math.log1p(len(prompt_numbers)),
        float(bool(code_blocks(text))),
        float(parses is False),
        used,
        float(used < 1.0),
        math.log1p(len(results)),
        float(bool(results) and final == results[-1]),
        float(final is not None and final in results),
    ], dtype=np.float64)
