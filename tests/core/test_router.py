import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import router_ml
from router_ml import Decision, PromptError, PromptTooLongError, load_router
from router_ml.core.prompts import has_content
from router_ml.errors import ConfigError

PROMPTS = [
    "What is 12 + 7? Give the exact answer.",
    "Implement a lock-free multi-producer queue in Rust. It must be thread-safe.",
    "Translate into French: \"Where is the train station?\"",
    "Name the 14th-century cartographer who first described the Catalan atlas, and cite a primary source.",
]


@pytest.fixture(scope="module")
def router(trained_router_dir):
    return load_router(trained_router_dir)


def test_decision_fields(router):
    d = router.route(PROMPTS[0])
    assert isinstance(d, Decision)
    assert d.model in router.models
    assert 0.0 <= d.confidence <= 1.0
    assert set(d.scores) == set(router.models) and d.confidence == d.scores[d.model]
    assert d.router_version == "test-router-1"
    assert d.quality_target == router.default_quality_target
    assert d.reason and d.estimated_cost == d.costs[d.model] > 0


def test_save_load_gives_identical_decisions(router, trained_router_dir):
    again = load_router(trained_router_dir)
    for target in (0.0, 0.3, None, 1.0):
        assert [d.to_dict() for d in router.route_batch(PROMPTS, target)] == [
            d.to_dict() for d in again.route_batch(PROMPTS, target)
        ]


def test_batch_matches_single_routes(router):
    batch = router.route_batch(PROMPTS, 0.6)
    single = [router.route(p, 0.6) for p in PROMPTS]
    assert [d.model for d in batch] == [d.model for d in single]
    # A batched matrix product may round differently in the last bits, nothing more.
    for b, s in zip(batch, single):
        assert b.scores == pytest.approx(s.scores, abs=1e-6)


def test_knob_ends_and_monotone_cost(router):
    cheapest = router.route_batch(PROMPTS, 0.0)
    assert all(d.model == min(d.costs, key=d.costs.get) for d in cheapest)
    best = router.route_batch(PROMPTS, 1.0)
    assert all(d.confidence == pytest.approx(max(d.scores.values())) for d in best)
    costs = [np.mean([d.estimated_cost for d in router.route_batch(PROMPTS, t)]) for t in np.linspace(0, 1, 11)]
    assert all(a <= b + 1e-15 for a, b in zip(costs, costs[1:]))


def test_sweeping_the_knob_embeds_each_prompt_once(trained_router_dir):
    router = load_router(trained_router_dir)
    calls = []
    inner = router.embedder.embedder
    original = inner.encode
    inner.encode = lambda texts, progress=False: calls.append(len(texts)) or original(texts)
    for target in np.linspace(0, 1, 21):
        router.route_batch(PROMPTS + PROMPTS[:1], target)
    assert calls == [len(PROMPTS)]


def test_embedding_cache_is_bounded(trained_router_dir):
    router = load_router(trained_router_dir, embedding_cache_size=2)
    router.route_batch(PROMPTS)
    assert len(router.embedder._cache) == 2


@pytest.mark.parametrize("prompt", ["", "   \n", None, 42])
def test_bad_prompts_are_named_errors(router, prompt):
    with pytest.raises(PromptError, match="prompt"):
        router.route(prompt)


def test_one_megabyte_prompt_is_refused_with_the_limit(router):
    with pytest.raises(PromptTooLongError, match="1,048,576 characters is over the limit of 500,000"):
        router.route("x" * (1 << 20))


def test_long_prompt_under_the_limit_routes(trained_router_dir):
    router = load_router(trained_router_dir, max_prompt_chars=2_000_000)
    d = router.route("word " * 200_000 + "What is 2 + 2?")
    assert d.model in router.models


def test_batch_errors_name_the_index(router):
    with pytest.raises(PromptError, match=r"prompts\[1\]"):
        router.route_batch(["fine", ""])
    with pytest.raises(PromptError, match="single string"):
        router.route_batch("not a list")
    assert router.route_batch([]) == []


@pytest.mark.parametrize("target", [-0.5, 2, "max"])
def test_bad_quality_target(router, target):
    with pytest.raises(ConfigError, match="quality_target"):
        router.route(PROMPTS[0], target)


def test_import_does_not_load_torch_or_mlflow():
    code = (
        "import sys, router_ml; "
        "heavy = [m for m in ('torch', 'mlflow', 'sentence_transformers', 'transformers', 'sklearn') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert router_ml.load_router is load_router


def test_decision_cache_returns_the_same_decision_and_is_bounded(trained_router_dir):
    router = load_router(trained_router_dir, decision_cache_size=2)
    first = router.route(PROMPTS[0])
    assert router.route(PROMPTS[0]) is first
    assert router.route(PROMPTS[0], 0.0) is not first  # another target, another entry
    router.route(PROMPTS[1])
    assert len(router._decisions) == 2 and router.route(PROMPTS[0]) is not first  # evicted
    off = load_router(trained_router_dir, decision_cache_size=0)
    assert off.route(PROMPTS[0]) is not off.route(PROMPTS[0])
    assert off.route(PROMPTS[0]).to_dict() == first.to_dict()


@given(prompt=st.text(min_size=1, max_size=200).filter(has_content),
       target=st.floats(0.0, 1.0) | st.sampled_from([0.0, 1.0]))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_decisions_follow_the_rule_in_the_numbers_they_report(router, prompt, target):
    """Whatever the prompt and target: the chosen model maximises scores - lam * costs / cost_scale
    in the reported numbers, its confidence is its score, and a likelier model named in the
    reason is dearer."""
    d = router.route(prompt, target)
    assert d.confidence == d.scores[d.model] and d.estimated_cost == d.costs[d.model]
    lam = router.schedule.lam_for(target)
    if np.isinf(lam):
        assert d.costs[d.model] == min(d.costs.values())
        return
    utility = {m: d.scores[m] - lam * d.costs[m] / router.cost_scale for m in router.models}
    assert utility[d.model] >= max(utility.values()) - 1e-6
    if "is likelier" in d.reason:
        named = d.reason.split(" is likelier")[0].split("; ")[-1]
        assert d.scores[named] > d.confidence and d.costs[named] > d.estimated_cost
    else:
        assert d.confidence >= max(d.scores.values()) - 1e-9
