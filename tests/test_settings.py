from pathlib import Path

import pytest

from config import Settings


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
