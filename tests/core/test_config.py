from pathlib import Path

import pytest
from pydantic import Field

from minewatch.config import StrictModel, load_config, resolve_config
from minewatch.errors import UserError


class Inner(StrictModel):
    learning_rate: float = Field(0.1, gt=0)


class Outer(StrictModel):
    epochs: int = 3
    optim: Inner = Inner()


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_valid_config_loads(tmp_path):
    cfg = load_config(write(tmp_path, "epochs: 5\noptim:\n  learning_rate: 0.01\n"), Outer)
    assert cfg.epochs == 5 and cfg.optim.learning_rate == 0.01


def test_mistyped_key_names_the_nearest_valid_one(tmp_path):
    with pytest.raises(UserError) as err:
        load_config(write(tmp_path, "epochz: 5\n"), Outer)
    assert "epochz" in str(err.value) and "did you mean 'epochs'" in str(err.value)


def test_nested_mistyped_key(tmp_path):
    with pytest.raises(UserError) as err:
        load_config(write(tmp_path, "optim:\n  learning_rat: 0.01\n"), Outer)
    assert "optim.learning_rat" in str(err.value) and "learning_rate" in str(err.value)


def test_bad_value_and_bad_yaml(tmp_path):
    with pytest.raises(UserError, match="optim.learning_rate"):
        load_config(write(tmp_path, "optim:\n  learning_rate: -1\n"), Outer)
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(write(tmp_path, "epochs: [1,\n"), Outer)
    with pytest.raises(UserError, match="no such file"):
        load_config(tmp_path / "missing.yaml", Outer)


def test_builtin_profiles_resolve():
    from minewatch.datasets.profiles import available_profiles, load_profile

    assert {"drone", "satellite"} <= set(available_profiles())
    assert load_profile("satellite").optical.bands == ("red", "green", "blue", "nir")
    with pytest.raises(UserError, match="unknown sensor profile"):
        load_profile("hyperspectral")
    assert resolve_config("drone", "profiles").name == "drone.yaml"
