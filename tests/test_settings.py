from pathlib import Path

import pytest

from config import Settings
from config.choices import Metric
from config.settings import settings_table


def test_defaults_use_the_embedded_database():
    settings = Settings.from_env({"LOOKALIKE_DATA_DIR": "somewhere"})
    url = settings.resolved_database_url
    assert url.startswith("sqlite:///") and "somewhere/lookalike.db" in url
    assert settings.resolved_model_path == Path("somewhere/model.keras")
    defaults = (settings.backbone, settings.top_k, settings.metric, settings.scope)
    assert defaults == ("resnet50", 30, "euclidean", "category")


def test_environment_overrides():
    settings = Settings.from_env({"LOOKALIKE_DATABASE_URL": "mysql+mysqlconnector://u:p@db/x", "LOOKALIKE_TOP_K": "12",
                                  "LOOKALIKE_METRIC": "cosine", "LOOKALIKE_MODEL_PATH": "m/model.keras"})
    assert settings.resolved_database_url == "mysql+mysqlconnector://u:p@db/x"
    assert settings.top_k == 12 and settings.metric == "cosine"
    assert settings.resolved_model_path == Path("m/model.keras")


@pytest.mark.parametrize("env, message", [({"LOOKALIKE_TOP_K": "many"}, "LOOKALIKE_TOP_K"),
                                          ({"LOOKALIKE_SCOPE": "galaxy"}, "category, all")])
def test_bad_values_are_named(env, message):
    with pytest.raises(ValueError, match=message):
        Settings.from_env(env)


@pytest.mark.parametrize("env, message", [({"LOOKALIKE_RATE_LIMIT": "lots"}, "LOOKALIKE_RATE_LIMIT must be a rate"),
                                          ({"LOOKALIKE_NARROW_TAU": "high"}, "LOOKALIKE_NARROW_TAU must be a number"),
                                          ({"LOOKALIKE_NARROW_TAU": "1.5"}, "less than or equal to 1"),
                                          ({"LOOKALIKE_MERGE_WEIGHT": "-1"}, "greater than or equal to 0"),
                                          ({"LOOKALIKE_BATCH_SIZE": "0"}, "SIZE is invalid .*or equal to 1"),
                                          ({"LOOKALIKE_ALLOW_PRIVATE_URLS": "maybe"}, "must be true or false")])
def test_every_kind_of_bad_value_is_named(env, message):
    with pytest.raises(ValueError, match=message):
        Settings.from_env(env)


def test_every_setting_has_its_variable_and_an_empty_one_keeps_the_default():
    settings = Settings.from_env({"LOOKALIKE_TOP_K": "", "LOOKALIKE_ALLOW_PRIVATE_URLS": "yes",
                                  "LOOKALIKE_DATA_DIR": "d", "LOOKALIKE_TRACE_TTL_SECONDS": "60"})
    assert settings == Settings(allow_private_urls=True, data_dir=Path("d"), trace_ttl_seconds=60)
    assert Settings(metric="cosine").metric is Metric.COSINE


def test_a_hand_built_settings_is_validated_too():
    with pytest.raises(ValueError, match="must be one of onnx, keras"):
        Settings(runtime="tensorrt")


def test_the_readme_table_is_the_declaration():
    """The README lists every variable with its default and meaning as ``config/settings.py`` declares them."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert settings_table() in readme, "run `python -m config` and paste its table into the README"
