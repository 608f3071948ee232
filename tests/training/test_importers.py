import pandas as pd
import pytest

from router_ml.core.catalog import load_catalog
from router_ml.errors import ArtifactExistsError, ImportFormatError
from router_ml.training.data.importers import import_llmrouter, import_routellm, import_routerbench, run_import
from router_ml.training.data.outcomes import read_outcomes, validate_outcomes
from tests.support.data import shared_data

MIXTRAL, GPT4 = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"


def quiet(_):
    pass


def test_routellm_real_folder_with_contamination():
    mmlu = shared_data("routellm", "mmlu")
    frame = import_routellm(mmlu, contaminated=mmlu / "contaminated_prompts.jsonl", log=quiet)
    validate_outcomes(frame)
    assert sorted(frame["model"].unique()) == sorted([MIXTRAL, GPT4])
    assert frame["task"].nunique() == 57
    prompts = frame["prompt_id"].nunique()
    # 14,042 questions, 5 contaminated, 105 repeated texts kept once.
    assert prompts == 14042 - 5 - 105
    accuracy = frame.groupby("model")["success"].mean()
    assert accuracy[MIXTRAL] == pytest.approx(0.681, abs=0.005)
    assert accuracy[GPT4] == pytest.approx(0.806, abs=0.005)


def test_routellm_single_csv_and_call_costs(tmp_path):
    path = tmp_path / "mmlu_astronomy.csv"
    path.write_text(f"prompt,{MIXTRAL},{GPT4}\nWhat is a star?,True,True\nWhat is a quasar?,False,True\n")
    frame = import_routellm(path, call_costs={MIXTRAL: 0.0001, GPT4: 0.01}, log=quiet)
    assert frame["task"].unique().tolist() == ["astronomy"]
    assert frame.loc[frame["model"] == GPT4, "cost"].tolist() == [0.01, 0.01]
    with pytest.raises(ImportFormatError, match="missing"):
        import_routellm(path, call_costs={GPT4: 0.01}, log=quiet)


def test_routellm_bad_layouts(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("question,answer\nq,a\n")
    with pytest.raises(ImportFormatError, match="expected a 'prompt' column"):
        import_routellm(path, log=quiet)
    path.write_text(f"prompt,{MIXTRAL},{GPT4}\nq,True,perhaps\n")
    with pytest.raises(ImportFormatError, match=f"row 1, column '{GPT4}'"):
        import_routellm(path, log=quiet)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImportFormatError, match="no .csv files"):
        import_routellm(empty, log=quiet)


def test_llmrouter_real_files_with_prices_and_tasks(tmp_path):
    root = shared_data("llmrouter")
    result = run_import(
        "llmrouter", root / "dcrouter_preprocessed" / "test.json", tmp_path / "test.parquet",
        prices=root / "llm_candidates" / "default_llm.json",
        tasks=root / "query_data" / "default_query_test.jsonl",
        catalog_out=tmp_path / "catalog.yaml", log=quiet,
    )
    assert result["prompts"] == 500 and result["rows"] == 4500 and len(result["models"]) == 9
    frame = read_outcomes(tmp_path / "test.parquet")
    assert frame["task"].notna().all() and frame["task"].nunique() >= 10
    catalog = load_catalog(tmp_path / "catalog.yaml")
    assert catalog.models["gemma-2-9b-it"].input_price == 0.10
    assert catalog.models["llama-3.1-nemotron-51b-instruct"].output_price == 0.90


def test_llmrouter_bad_json(tmp_path):
    path = tmp_path / "train.json"
    path.write_text('[{"question": "q", "scores": 3}]')
    with pytest.raises(ImportFormatError, match="item 0"):
        import_llmrouter(path, log=quiet)
    path.write_text("[{")
    with pytest.raises(ImportFormatError, match="not valid JSON"):
        import_llmrouter(path, log=quiet)


@pytest.fixture()
def routerbench_sample():
    return shared_data("formats", "routerbench_wide_sample.csv")


def test_routerbench_csv_parquet_and_pickle_agree(routerbench_sample, tmp_path):
    from_csv = import_routerbench(routerbench_sample, log=quiet)
    validate_outcomes(from_csv)
    assert from_csv["prompt"].iloc[0] == "What is 17 * 23?"  # the list literal is unwrapped
    assert from_csv["task"].iloc[0] == "demo-math"
    assert from_csv["cost"].notna().all() and from_csv["model"].nunique() == 3
    wide = pd.read_csv(routerbench_sample)
    wide.to_parquet(tmp_path / "rb.parquet")
    wide.to_pickle(tmp_path / "rb.pkl")
    pd.testing.assert_frame_equal(from_csv, import_routerbench(tmp_path / "rb.parquet", log=quiet))
    with pytest.warns(UserWarning, match="pickle runs code"):
        from_pickle = import_routerbench(tmp_path / "rb.pkl", log=quiet)
    pd.testing.assert_frame_equal(from_csv, from_pickle)


def test_routerbench_without_cost_columns(tmp_path):
    path = tmp_path / "rb.csv"
    path.write_text("sample_id,prompt,eval_name,a,b\n1,q,t,1,0\n")
    with pytest.raises(ImportFormatError, match="total_cost"):
        import_routerbench(path, log=quiet)


def test_import_refuses_to_overwrite(routerbench_sample, tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("precious")
    with pytest.raises(ArtifactExistsError):
        run_import("routerbench", routerbench_sample, out, log=quiet)
    assert out.read_text() == "precious"
    run_import("routerbench", routerbench_sample, out, overwrite=True, log=quiet)
    assert len(read_outcomes(out)) == 12


def test_routellm_gsm8k_keeps_each_models_answer(tmp_path):
    path = tmp_path / "gsm8k_responses.csv"
    pd.DataFrame({"prompt": ["What is 2+3?", "What is 7*6?"], MIXTRAL: [True, False], GPT4: [True, True],
                  f"{MIXTRAL}_response": ["2+3=5 #### 5", None], f"{GPT4}_response": ["#### 5", "#### 42"]}).to_csv(
        path, index=False)
    frame = import_routellm(path, log=quiet)
    out = validate_outcomes(frame)
    assert sorted(frame["model"].unique()) == sorted([MIXTRAL, GPT4])  # answer columns are not models
    assert frame["task"].unique().tolist() == ["gsm8k"]
    answers = out.set_index(["prompt", "model"])["response"]
    assert answers[("What is 2+3?", MIXTRAL)] == "2+3=5 #### 5"
    assert answers[("What is 7*6?", MIXTRAL)] == ""  # not logged
    assert answers[("What is 7*6?", GPT4)] == "#### 42"


def test_routellm_real_gsm8k_has_answers():
    gsm8k = shared_data("routellm", "gsm8k")
    frame = import_routellm(gsm8k / "gsm8k_responses.csv", contaminated=gsm8k / "contaminated_prompts.jsonl", log=quiet)
    out = validate_outcomes(frame)
    assert sorted(out["model"].unique()) == sorted([MIXTRAL, GPT4])
    assert (out["response"].str.len() > 0).mean() > 0.99
    assert out.groupby("model")["success"].mean()[GPT4] == pytest.approx(0.857, abs=0.01)


def test_routerbench_keeps_answers_and_unwraps_list_literals(routerbench_sample, tmp_path):
    frame = import_routerbench(routerbench_sample, log=quiet)
    assert (validate_outcomes(frame)["response"] == "(response text)").all()
    wide = pd.read_csv(routerbench_sample)
    wide["gpt-4-1106-preview|model_response"] = "['391']"
    wide.to_csv(tmp_path / "rb.csv", index=False)
    out = import_routerbench(tmp_path / "rb.csv", log=quiet)
    assert set(out.loc[out["model"] == "gpt-4-1106-preview", "response"]) == {"391"}
