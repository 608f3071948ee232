"""The answer format an agreement verifier reads is learned from the log (training/fit/verifier.py)."""

import math

import numpy as np

from router_ml.core.catalog import CostModel
from router_ml.core.decision import QualitySchedule
from router_ml.policy.verifier import Verifier
from router_ml.training.data.outcomes import RoutingData
from router_ml.training.fit.verifier import fit_verifier

WRONG = ("sorted(ys)", "sorted(zs)", "sortie(xs)", "resort(xs)", "sorted(sx)", "sorted(xx)")  # as long as the right one


def answer(k: int, right: bool, rng) -> str:
    """A code answer whose numbers (and last line) are the same right or wrong: only the code tells them apart."""
    body = "sorted(xs)" if right else WRONG[rng.integers(len(WRONG))]
    return f"Here it is:\n```python\ndef f(xs):\n    return {body}[{k}]\n```\nChecked on 3 examples."


def test_agreement_reads_the_answers_in_the_form_that_predicts_success():
    n, rng = 600, np.random.default_rng(0)
    right = rng.random((n, 3)) < [0.5, 0.6, 0.95]
    responses = np.array([[answer(i % 5, right[i, j], rng) for j in range(3)] for i in range(n)], dtype=object)
    scores = right.astype(float)
    costs = np.tile([1.0, 2.0, 20.0], (n, 1))
    cost_model = CostModel(["a", "b", "c"], [1.0, 2.0, 20.0], [1.0, 2.0, 20.0], [100] * 3, [None] * 3)
    data = RoutingData([str(i) for i in range(n)], [f"Write f number {i}." for i in range(n)], [None] * n,
                       ["a", "b", "c"], scores.copy(), scores, costs, cost_model, responses=responses)
    oof = np.tile([0.5, 0.6, 0.95], (n, 1))
    schedule = QualitySchedule(targets=(0.0, 0.5, 1.0), lams=(math.inf, 5.0, 0.0))
    spec, arrays = fit_verifier(data, oof, np.arange(n) % 5, schedule, 20.0, costs, 0.5, log=lambda _: None)

    [pair] = [e for e in spec["entries"] if e["after"] is not None and e["model"] == "b"]
    assert pair["after"] == "a" and pair["answer_form"] in ("code", "text")
    losses = pair["validation"]["answer_forms"]
    assert losses[pair["answer_form"]] < losses["final"] - 0.05  # "final" reads the 3 of every answer: no signal
    # The stored verifier reads the answers the same way when serving.
    verifier = Verifier(spec, arrays, ["a", "b", "c"])
    good, bad = answer(2, True, rng), answer(2, False, rng)
    agreeing = verifier.score("b", "Write f.", good, 0.6, (("a", good),))
    disagreeing = verifier.score("b", "Write f.", good, 0.6, (("a", bad),))
    assert agreeing > disagreeing + 0.2


def test_the_form_is_judged_nested_so_the_luckiest_of_several_useless_forms_is_not_kept():
    from router_ml.training.fit.verifier import _log_loss, _nested_form_loss

    rng = np.random.default_rng(3)
    n = 400
    y = (rng.random(n) < 0.6).astype(float)
    folds = np.arange(n) % 5
    # Six forms that know nothing: the best of them on all folds beats the honest constant by luck alone.
    useless = {f"f{i}": np.clip(0.6 + rng.normal(0, 0.08, n), 0.01, 0.99) for i in range(6)}
    luckiest = min(_log_loss(p, y) for p in useless.values())
    nested = _nested_form_loss(useless, y, folds)
    assert luckiest < nested  # choosing on the folds that score it flatters the winner
    # One form that knows: chosen on every fold, so the nested loss is its own.
    knowing = {**useless, "code": np.where(y == 1, 0.8, 0.2)}
    assert _nested_form_loss(knowing, y, folds) == _log_loss(knowing["code"], y)
