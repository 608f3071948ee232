"""Cheapest-successful labels: for each prompt, the cheapest model that succeeded.

Input is the prompt x model matrix of outcomes (success 1/0, NaN where the model was
not tried on that prompt) and the matching cost matrix (what each model costs, or
would cost, on that prompt). Two cases need a rule, and this module is where the rule
lives:

- **No model succeeded.** The prompt gets the label `NONE` (index `n_models`), but only
  when every model was tried: "all failed" is then a fact about the prompt. A router
  must still pick a model for such prompts; heads turn labels into per-model success
  probabilities (see `router_ml.core.heads.CheapestSuccessfulHead`), so the `NONE` class
  lowers every model's probability instead of pointing at one.
- **Only some models were tried.** Walk the models from cheapest to dearest. The
  first tried model that succeeded is the label, provided every cheaper model was also
  tried. If an untried model comes first, a cheaper success may have been missed, so
  the label is unknown: the prompt is *censored* (`CENSORED`, -1) and left out of the
  label classifier's training set. Its observed outcomes still train the per-model
  success head, which only needs (prompt, model) pairs.
"""

from __future__ import annotations

import numpy as np

CENSORED = -1


def cheapest_successful_labels(success: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """Label each row with the index of its cheapest successful model.

    success: (n_prompts, n_models) of 1.0 / 0.0, NaN where not tried.
    costs: (n_prompts, n_models) costs, finite everywhere (estimated where not tried).
    Returns int labels: a model index, `n_models` for "no model succeeded" (all tried,
    all failed), or `CENSORED` when an untried cheaper model makes the label unknown.
    Ties in cost go to the lower column index, so the result does not depend on sort
    stability.
    """
    success = np.asarray(success, dtype=float)
    costs = np.asarray(costs, dtype=float)
    if success.shape != costs.shape or success.ndim != 2:
        raise ValueError(f"success and costs must be 2-D and of one shape, found {success.shape} and {costs.shape}")
    if not np.isfinite(costs).all():
        raise ValueError("costs must be finite for every (prompt, model); estimate untried ones from the catalog")
    n, m = success.shape
    order = np.lexsort((np.broadcast_to(np.arange(m), (n, m)), costs), axis=1)
    ordered = np.take_along_axis(success, order, axis=1)
    tried = ~np.isnan(ordered)
    won = tried & (ordered >= 0.5)

    labels = np.full(n, m, dtype=np.int64)
    has_win = won.any(axis=1)
    first_win = np.where(has_win, won.argmax(axis=1), m)
    first_untried = np.where((~tried).any(axis=1), (~tried).argmax(axis=1), m)
    rows = np.arange(n)
    labels[has_win] = order[rows[has_win], first_win[has_win]]
    labels[first_untried < first_win] = CENSORED
    return labels


def label_names(labels: np.ndarray, models: list[str]) -> list[str]:
    """Readable names for labels, for reports: model names, 'none' and 'censored'."""
    names = list(models) + ["none"]
    return ["censored" if label == CENSORED else names[label] for label in labels]
