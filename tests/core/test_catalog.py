import numpy as np
import pytest

from router_ml.core.catalog import CostModel, catalog_from_dict, estimate_tokens, load_catalog
from router_ml.errors import CatalogError

YAML = """
default_output_tokens: 100
models:
  small: {input_price: 0.1, output_price: 0.4}
  large: {input_price: 2.0, output_price: 8.0, output_tokens: 300}
"""


def test_yaml_and_toml_give_the_same_catalog(tmp_path):
    (tmp_path / "c.yaml").write_text(YAML)
    (tmp_path / "c.toml").write_text(
        "default_output_tokens = 100\n[models.small]\ninput_price = 0.1\noutput_price = 0.4\n"
        "[models.large]\ninput_price = 2.0\noutput_price = 8.0\noutput_tokens = 300\n"
    )
    a, b = load_catalog(tmp_path / "c.yaml"), load_catalog(tmp_path / "c.toml")
    assert a.models == b.models
    assert list(a.models) == ["small", "large"]
    assert a.output_tokens("small") == 100 and a.output_tokens("large") == 300


def test_call_cost_uses_prices_per_million_tokens():
    catalog = catalog_from_dict({"models": {"m": {"input_price": 2.0, "output_price": 8.0}}, "default_output_tokens": 50})
    assert catalog.call_cost("m", 1000, 500) == pytest.approx((1000 * 2 + 500 * 8) / 1e6)
    assert catalog.call_cost("m", 1000) == pytest.approx((1000 * 2 + 50 * 8) / 1e6)


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"models": {}}, "expected 'models'"),
        ({"models": {"m": {"input_price": 1.0}}}, "missing ['output_price']"),
        ({"models": {"m": {"input_price": -1.0, "output_price": 1.0}}}, "models.m.input_price"),
        ({"models": {"m": {"input_price": "cheap", "output_price": 1.0}}}, "expected a number"),
        ({"models": {"m": {"input_price": 1.0, "output_price": 1.0, "ouput_tokens": 5}}}, "unknown keys ['ouput_tokens']"),
        ({"models": {"m": {"input_price": 1.0, "output_price": 1.0}}, "prices": 1}, "unknown top-level keys"),
        ({"models": {"m": {"input_price": 1.0, "output_price": float("nan")}}}, "finite"),
    ],
)
def test_bad_catalogs_name_the_key(data, fragment):
    with pytest.raises(CatalogError, match="cat.yaml") as err:
        catalog_from_dict(data, source="cat.yaml")
    assert fragment in str(err.value)


def test_unparseable_and_unknown_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unclosed\n")
    with pytest.raises(CatalogError, match="bad.yaml: not valid YAML"):
        load_catalog(bad)
    other = tmp_path / "cat.json"
    other.write_text("{}")
    with pytest.raises(CatalogError, match="expected a .yaml, .yml or .toml"):
        load_catalog(other)
    with pytest.raises(CatalogError, match="not found"):
        load_catalog(tmp_path / "missing.yaml")


def test_cost_model_prices_by_prompt_length_or_mean_cost():
    model = CostModel(models=["a", "b"], input_price=[1.0, None], output_price=[2.0, None],
                      output_tokens=[10, 0], mean_call_cost=[0.5, 0.25])
    costs = model.estimate(np.array([4, 400]))
    tokens = estimate_tokens(np.array([4, 400]))
    assert costs[:, 0] == pytest.approx((tokens * 1.0 + 10 * 2.0) / 1e6)
    assert costs[:, 1] == pytest.approx([0.25, 0.25])  # no prices: the mean logged cost per call
    assert CostModel.from_dict(model.to_dict()).estimate(np.array([40])) == pytest.approx(model.estimate(np.array([40])))
