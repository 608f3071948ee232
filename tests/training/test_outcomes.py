import json

import numpy as np
import pandas as pd
import pytest

from router_ml.core.catalog import catalog_from_dict
from router_ml.errors import CatalogError, OutcomesError
from router_ml.training.data.outcomes import data_hash, prompt_hash, read_outcomes, to_routing_data

ROWS = [
    {"prompt": "What is 2+2?", "model": "small", "score": 1.0},
    {"prompt": "What is 2+2?", "model": "large", "score": 1.0},
    {"prompt": "Prove Fermat's last theorem.", "model": "small", "score": 0.0},
    {"prompt": "Prove Fermat's last theorem.", "model": "large", "score": 0.7},
]
CATALOG = catalog_from_dict({"models": {"small": {"input_price": 0.1, "output_price": 0.2},
                                        "large": {"input_price": 1.0, "output_price": 4.0}},
                             "default_output_tokens": 100})


def write(tmp_path, rows, name="outcomes.csv"):
    path = tmp_path / name
    frame = pd.DataFrame(rows)
    if name.endswith(".csv"):
        frame.to_csv(path, index=False)
    elif name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        frame.to_parquet(path)
    return path


@pytest.mark.parametrize("name", ["o.csv", "o.jsonl", "o.parquet"])
def test_every_format_reads_to_the_same_table(tmp_path, name):
    table = read_outcomes(write(tmp_path, ROWS, name))
    assert table["model"].tolist() == ["small", "large", "small", "large"]
    assert table["success"].tolist() == [True, True, False, True]
    assert table["prompt_id"].iloc[0] == prompt_hash("What is 2+2?")
    assert data_hash(table) == data_hash(read_outcomes(write(tmp_path, ROWS, "ref.csv")))


def test_success_threshold_and_success_column(tmp_path):
    assert read_outcomes(write(tmp_path, ROWS), success_threshold=0.8)["success"].tolist() == [True, True, False, False]
    rows = [{"prompt": r["prompt"], "model": r["model"], "success": s} for r, s in zip(ROWS, ["yes", "True", "0", "false"])]
    table = read_outcomes(write(tmp_path, rows, "s.csv"))
    assert table["success"].tolist() == [True, True, False, False]
    assert table["score"].tolist() == [1.0, 1.0, 0.0, 0.0]


def test_rows_may_give_score_or_success(tmp_path):
    rows = [{**ROWS[0], "success": None}, {**ROWS[1], "score": None, "success": False},
            {**ROWS[2], "score": None, "success": True}, {**ROWS[3], "success": None}]
    for name in ("mixed.csv", "mixed.jsonl", "mixed.parquet"):
        table = read_outcomes(write(tmp_path, rows, name))
        assert table["success"].tolist() == [True, False, True, True]
        assert table["score"].tolist() == pytest.approx([1.0, 0.0, 1.0, 0.7])
    bad(tmp_path, [{**ROWS[0], "score": None, "success": None}], "success", name="neither.jsonl")


def bad(tmp_path, rows, fragment, name="bad.csv", **kwargs):
    path = write(tmp_path, rows, name)
    with pytest.raises(OutcomesError) as err:
        read_outcomes(path, **kwargs)
    message = str(err.value)
    assert str(path) in message and fragment in message, message
    return message


def test_missing_columns_are_listed(tmp_path):
    message = bad(tmp_path, [{"prompt": "x", "llm": "a", "score": 1}], "missing required columns ['model']")
    assert "found ['prompt', 'llm', 'score']" in message


def test_score_or_success_is_required(tmp_path):
    bad(tmp_path, [{"prompt": "x", "model": "a"}], "score or success")


def test_empty_prompt_names_the_row(tmp_path):
    rows = [dict(r) for r in ROWS]
    rows[2]["prompt"] = "   "
    assert "row 3" in bad(tmp_path, rows, "field 'prompt'")


def test_non_string_prompt_in_jsonl(tmp_path):
    rows = [dict(r) for r in ROWS]
    rows[1]["prompt"] = 42
    assert "line 2 (42)" in bad(tmp_path, rows, "a string with some content", name="bad.jsonl")


def test_prompts_of_only_control_or_zero_width_characters_are_named(tmp_path):
    rows = [dict(r) for r in ROWS]
    rows[1]["prompt"] = "\u200b\x00\ufeff"
    assert "row 2" in bad(tmp_path, rows, "not only whitespace, control or zero-width")


def test_lone_surrogates_in_a_log_are_replaced_and_counted(tmp_path):
    path = tmp_path / "s.jsonl"
    lines = [json.dumps(r) for r in ROWS]
    lines[0] = lines[0].replace("What is 2+2?", "What is 2+2? \\ud800")  # the JSON escape of a lone surrogate
    path.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="1 characters no encoder takes .lone surrogates. were replaced"):
        table = read_outcomes(path)
    assert table["prompt"].iloc[0] == "What is 2+2? \ufffd"


@pytest.mark.parametrize("value", [1.5, -0.1])
def test_score_outside_unit_interval(tmp_path, value):
    rows = [dict(r) for r in ROWS]
    rows[3]["score"] = value
    assert f"row 4 ({value})" in bad(tmp_path, rows, "field 'score': expected a number in [0, 1]")


def test_non_numeric_score(tmp_path):
    rows = [dict(r) for r in ROWS]
    rows[0]["score"] = "great"
    assert "row 1" in bad(tmp_path, rows, "field 'score'")


@pytest.mark.parametrize("value", [-0.01, float("nan")])
def test_negative_or_nan_cost(tmp_path, value):
    rows = [dict(r, cost=0.001) for r in ROWS]
    rows[1]["cost"] = value
    where = "line 2" if value != value else "row 2"  # JSON Lines errors name the file's line
    assert where in bad(tmp_path, rows, "field 'cost'", name="bad.jsonl" if value != value else "bad.csv")


def test_bad_success_value(tmp_path):
    rows = [{"prompt": r["prompt"], "model": r["model"], "success": "maybe"} for r in ROWS]
    bad(tmp_path, rows, "field 'success'")


def test_fractional_token_count(tmp_path):
    rows = [dict(r, input_tokens=10) for r in ROWS]
    rows[0]["input_tokens"] = 10.5
    bad(tmp_path, rows, "field 'input_tokens'")


def test_duplicate_rows_error_or_average(tmp_path):
    rows = ROWS + [{"prompt": "What is 2+2?", "model": "small", "score": 0.0}]
    message = bad(tmp_path, rows, "repeat a (prompt, model) pair")
    assert "rows [1, 5]" in message and "--duplicates mean" in message
    table = read_outcomes(write(tmp_path, rows, "dup.csv"), duplicates="mean")
    merged = table[(table["prompt"] == "What is 2+2?") & (table["model"] == "small")]
    assert len(table) == 4 and merged["score"].item() == 0.5


def test_prompt_id_reused_for_different_text(tmp_path):
    rows = [dict(r, prompt_id="p1") for r in ROWS]
    bad(tmp_path, rows, "'p1' is used for different prompt texts")


def test_empty_and_header_only_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(OutcomesError, match="empty.csv: the file is empty"):
        read_outcomes(empty)
    header = tmp_path / "header.csv"
    header.write_text("prompt,model,score\n")
    with pytest.raises(OutcomesError, match="header.csv: no rows"):
        read_outcomes(header)


def test_truncated_parquet(tmp_path):
    good = write(tmp_path, ROWS, "good.parquet")
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(OutcomesError, match="cut.parquet: cannot be read as PARQUET"):
        read_outcomes(cut)


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(OutcomesError, match="expected a .csv, .jsonl"):
        read_outcomes(tmp_path / "o.xlsx")
    with pytest.raises(OutcomesError, match="file not found"):
        read_outcomes(tmp_path / "o.csv")


def test_column_map_renames_and_checks(tmp_path):
    rows = [{"question": r["prompt"], "llm": r["model"], "score": r["score"]} for r in ROWS]
    path = write(tmp_path, rows)
    assert len(read_outcomes(path, column_map={"question": "prompt", "llm": "model"})) == 4
    with pytest.raises(OutcomesError, match="--map names columns \\['q'\\]"):
        read_outcomes(path, column_map={"q": "prompt"})


def test_costs_prefer_logged_then_tokens_then_estimate(tmp_path):
    logged = read_outcomes(write(tmp_path, [dict(r, cost=0.5) for r in ROWS], "logged.csv"))
    assert np.all(to_routing_data(logged).costs == 0.5)

    tokens = read_outcomes(write(tmp_path, [dict(r, input_tokens=1000, output_tokens=10) for r in ROWS], "tok.csv"))
    data = to_routing_data(tokens, CATALOG)
    small = data.models.index("small")
    assert data.costs[0, small] == pytest.approx((1000 * 0.1 + 10 * 0.2) / 1e6)

    estimated = to_routing_data(read_outcomes(write(tmp_path, ROWS, "est.csv")), CATALOG)
    prompt_tokens = np.ceil(len("What is 2+2?") / 4)
    assert estimated.costs[0, small] == pytest.approx((prompt_tokens * 0.1 + 100 * 0.2) / 1e6)
    assert estimated.models == ["small", "large"]  # cheapest first


def test_one_pricing_rule_with_the_catalog_or_with_the_routers_prices(tmp_path):
    """Logged token counts are priced the same whether the prices come from a catalog (training,
    `evaluate --catalog`) or from the router that carries them (`evaluate`, `replay`)."""
    tokens = read_outcomes(write(tmp_path, [dict(r, input_tokens=1000, output_tokens=10) for r in ROWS], "tok.csv"))
    with_catalog = to_routing_data(tokens, CATALOG)
    with_router_prices = to_routing_data(tokens, None, cost_model=with_catalog.cost_model)
    np.testing.assert_allclose(with_router_prices.costs, with_catalog.costs)
    assert "catalog prices" in with_catalog.pricing and "router's prices" in with_router_prices.pricing
    small = with_catalog.models.index("small")
    assert with_router_prices.costs[0, small] == pytest.approx((1000 * 0.1 + 10 * 0.2) / 1e6)


def test_no_cost_information_says_how_to_fix(tmp_path):
    table = read_outcomes(write(tmp_path, ROWS))
    with pytest.raises(CatalogError, match="no cost information.*--catalog"):
        to_routing_data(table, None, "o.csv")


def test_models_missing_from_catalog_or_unused(tmp_path):
    table = read_outcomes(write(tmp_path, ROWS + [{"prompt": "hi", "model": "mystery", "score": 1.0}]))
    with pytest.raises(CatalogError, match=r"models \['mystery'\] are not in the catalog"):
        to_routing_data(table, CATALOG, "o.csv")
    big = catalog_from_dict({"models": {**{m: {"input_price": 1, "output_price": 1} for m in ["small", "large", "unused"]}}})
    with pytest.warns(UserWarning, match=r"\['unused'\] have no outcomes"):
        to_routing_data(read_outcomes(write(tmp_path, ROWS, "ok.csv")), big, "o.csv")


def test_partial_logs_keep_nan_for_untried(tmp_path):
    table = read_outcomes(write(tmp_path, ROWS[:3]))
    data = to_routing_data(table, CATALOG)
    assert np.isnan(data.scores).sum() == 1
    assert np.isfinite(data.costs).all()  # untried pairs are priced by estimate
    assert data.complete.tolist() == [True, False]


def test_response_column_is_kept_and_checked(tmp_path):
    rows = [{**r, "response": f"answer {i}"} for i, r in enumerate(ROWS)]
    rows[1]["response"] = None
    out = read_outcomes(write(tmp_path, rows, "outcomes.jsonl"))
    assert out["response"].tolist() == ["answer 0", "", "answer 2", "answer 3"]
    assert (read_outcomes(write(tmp_path, ROWS))["response"] == "").all()  # absent: empty
    rows[2]["response"] = {"text": "not a string"}
    with pytest.raises(OutcomesError, match="response"):
        read_outcomes(write(tmp_path, rows, "bad.jsonl"))


@pytest.mark.parametrize("name", ["outcomes.csv", "outcomes.parquet"])
def test_a_task_logged_for_some_prompts_only_is_none_for_the_rest(tmp_path, name):
    """Seen in retraining: audit rows without a task next to offline rows with one gave NaN
    tasks (pandas 3 string columns), and the per-task report failed sorting floats with strings."""
    rows = [dict(r, task="math" if "2+2" in r["prompt"] else None) for r in ROWS]
    frame = read_outcomes(write(tmp_path, rows, name))
    assert frame["task"].tolist() == ["math", "math", None, None]
    assert to_routing_data(frame, CATALOG, "t").tasks == ["math", None]
