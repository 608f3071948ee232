import numpy as np
import pytest

from router_ml import load_router
from router_ml.core.catalog import load_catalog
from router_ml.errors import ConfigError
from router_ml.training.data.demo_prompts import TASKS
from router_ml.training.data.outcomes import RoutingData, read_outcomes, to_routing_data
from router_ml.training.evaluate.evaluation import evaluate_router, format_report, sw_ranking_win_rate, training_side
from router_ml.training.fit.pipeline import TrainConfig, train


@pytest.fixture(scope="module")
def router(trained_router_dir):
    return load_router(trained_router_dir)


@pytest.fixture(scope="module")
def holdout(demo_files):
    return to_routing_data(read_outcomes(demo_files["holdout"]), load_catalog(demo_files["catalog"]))


def test_report_has_every_section(router, holdout, demo_files):
    training = training_side(router, log=lambda _: None)
    assert training is not None and len(training) == 240  # 300 prompts, 20 % held out
    report = evaluate_router(router, holdout, training=training)
    assert report["prompts"] == 75 and report["noisy"]
    # Every router the project ships as a baseline; SW ranking through the policy with five models.
    assert set(report["baselines"]["learned"]) == {"knn", "mlp", "sw_ranking", "per_model", "blend"}
    for baseline in report["baselines"]["learned"].values():
        assert {"aiq", "gap_closed", "cost_to_match_best", "quality_at_best_cost", "ece"} <= set(baseline["metrics"])
        assert len(baseline["curve"]) > 10 and "choices" not in baseline
    # The router against each, paired on the same prompts: the difference lies inside its interval.
    assert set(report["versus_baselines"]) == set(report["baselines"]["learned"])
    for versus in report["versus_baselines"].values():
        for metric in ("aiq", "gap_closed"):
            v = versus[metric]
            assert v["lower"] <= v["difference"] <= v["upper"] and v["prompts"] == 75
            assert v["difference"] == pytest.approx(v["first"] - v["second"])
    assert report["baselines"]["random_mixing"]["gap_closed"] == 0.0
    held_out = read_outcomes(demo_files["holdout"])
    assert set(report["tasks"]) == set(held_out["task"]) and set(report["tasks"]) <= set(TASKS)  # the demo's families
    assert sum(t["prompts"] for t in report["tasks"].values()) == 75
    assert sum(report["default"]["share"].values()) == pytest.approx(1.0)
    text = format_report(report)
    assert "kNN k=25" in text and "MLP" in text and "only 75 prompts: noisy" in text
    assert "vs SW ranking (RouteLLM)" in text and "paired bootstrap interval" in text


def test_training_prompts_are_dropped(router, demo_files):
    everything = to_routing_data(read_outcomes(demo_files["outcomes"]), load_catalog(demo_files["catalog"]))
    training = training_side(router, log=lambda _: None)
    report = evaluate_router(router, everything, training=training, baselines=())
    assert report["prompts_skipped_in_training"] == 240
    assert report["prompts"] == 60
    assert report["baselines"]["learned"] == {}


def test_changed_training_file_skips_learned_baselines(tmp_path, demo_files):
    import shutil

    from router_ml.training.fit.pipeline import TrainConfig, train

    outcomes = tmp_path / "o.csv"
    shutil.copy(demo_files["outcomes"], outcomes)
    out = tmp_path / "r"
    train(TrainConfig(outcomes=str(outcomes), catalog=str(demo_files["catalog"]), out=str(out), embedder_kind="hashing",
                      folds=2, strategy="knn", mlflow=False, cache_dir=str(tmp_path / "c"), baselines=()),
          log=lambda _: None, progress=False)
    outcomes.write_text(outcomes.read_text().replace(",1.0,", ",0.0,", 5))
    notes = []
    assert training_side(load_router(out), log=notes.append) is None
    assert "changed since training" in notes[0]


def test_unknown_and_missing_models_are_named(router, holdout):
    renamed = RoutingData(holdout.prompt_ids, holdout.prompts, holdout.tasks,
                          [m if m != "nano" else "nano-2" for m in holdout.models],
                          holdout.scores, holdout.success, holdout.costs, holdout.cost_model)
    with pytest.raises(ConfigError, match=r"models \['nano-2'\] are not among the router's models"):
        evaluate_router(router, renamed)
    fewer = RoutingData(holdout.prompt_ids, holdout.prompts, holdout.tasks, holdout.models[:4],
                        holdout.scores[:, :4], holdout.success[:, :4], holdout.costs[:, :4], holdout.cost_model)
    with pytest.raises(ConfigError, match="no outcomes for models"):
        evaluate_router(router, fewer)


def test_prompts_missing_outcomes_are_skipped_or_refused(router, holdout):
    partial = holdout.subset(np.arange(len(holdout)))
    partial.scores[:10, 0] = np.nan
    report = evaluate_router(router, partial, baselines=())
    assert report["prompts_skipped_incomplete"] == 10 and report["prompts"] == 65
    partial.scores[:, 0] = np.nan
    with pytest.raises(ConfigError, match="no prompt left to evaluate"):
        evaluate_router(router, partial)


def test_a_sweep_of_one_point_is_refused(router, holdout):
    with pytest.raises(ConfigError, match="at least 2 distinct targets"):
        evaluate_router(router, holdout, targets=[0.5, 0.5])


def test_sw_ranking_by_hand():
    # Two training prompts: on the one like the query the strong model won, on the other it lost.
    train = RoutingData(["a", "b"], ["x", "y"], [None, None], ["weak", "strong"],
                        np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([[0.0, 1.0], [1.0, 0.0]]),
                        np.ones((2, 2)), None)
    X_train = np.array([[1.0, 0.0], [0.0, 1.0]])
    win = sw_ranking_win_rate(X_train, train, np.array([[1.0, 0.0]]), strong=1)
    # weights 10*10^(1/1) = 100 for the similar battle, 10*10^0 = 10 for the orthogonal one
    assert win[0] == pytest.approx(100 / 110)


@pytest.fixture(scope="module")
def two_model_router(tmp_path_factory, demo_files):
    out = tmp_path_factory.mktemp("two") / "r"
    train(TrainConfig(outcomes=str(demo_files["outcomes"]), catalog=str(demo_files["catalog"]), out=str(out),
                      models=["nano", "pro"], embedder_kind="hashing", folds=3, mlflow=False, baselines=(),
                      cache_dir=str(tmp_path_factory.mktemp("c"))), log=lambda _: None, progress=False)
    return load_router(out)


def test_two_model_report_has_routellm_metrics(two_model_router, demo_files):
    data = to_routing_data(read_outcomes(demo_files["holdout"]), load_catalog(demo_files["catalog"]))
    frame = read_outcomes(demo_files["holdout"])
    data = to_routing_data(frame[frame["model"].isin(["nano", "pro"])], load_catalog(demo_files["catalog"]))
    report = evaluate_router(two_model_router, data, training=training_side(two_model_router, log=lambda _: None))
    assert report["strong_model"] == "pro"
    assert {"apgr", "cpt50", "cpt80"} <= set(report["metrics"])
    assert "sw_ranking" in report["baselines"]["learned"]
    assert all("strong_share" in p for p in report["curve"])
    shares = [p["strong_share"] for p in sorted(report["curve"], key=lambda p: p["quality_target"])]
    assert shares[0] == 0.0 and shares == sorted(shares)
