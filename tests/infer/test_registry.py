"""The scan picks the committed model that fits the raster (#19): profile from bands, storage type and pixel size;
a missing model and a mismatched --model are one line with the fix; `minewatch info` lists every committed model."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner

from minewatch.cli import cli
from minewatch.errors import UserError
from minewatch.infer.registry import (
    MODELS_ENV,
    RasterLook,
    check_model_fits,
    choose_model,
    committed_models,
    guess_profile,
    raster_look,
)


def write(path, count, dtype, gsd, names=None, alpha=False):
    data = np.full((count, 64, 64), 100, dtype=dtype)
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=count, dtype=dtype, crs="EPSG:32633",
                       transform=Affine(gsd, 0, 500000, 0, -gsd, 5000000), nodata=0) as dst:
        dst.write(data)
        if names:
            dst.descriptions = tuple(names)
        if alpha:
            dst.colorinterp = [rasterio.enums.ColorInterp.red, rasterio.enums.ColorInterp.green,
                               rasterio.enums.ColorInterp.blue, rasterio.enums.ColorInterp.alpha]
    return path


@pytest.mark.parametrize("look, profile", [
    (RasterLook(3, ("red", "green", "blue"), "uint8", 0.2), "drone"),
    (RasterLook(4, ("red", "green", "blue", "nir"), "uint16", 0.5), "satellite"),
    (RasterLook(4, ("blue", "green", "red", "nir"), "float64", 1.0), "satellite"),  # named NIR, any order
    (RasterLook(4, (None,) * 4, "uint16", 0.5), "satellite"),  # unnamed 16-bit RGBN
    (RasterLook(4, (None,) * 4, "uint8", 0.5), "satellite"),  # 8-bit RGBN at satellite pixel size
    (RasterLook(4, (None,) * 4, "uint8", 0.05), "drone"),  # an orthomosaic's extra band
    (RasterLook(3, (None,) * 3, "uint16", 0.5), "drone"),  # RGB only: the model that reads RGB
    (RasterLook(3, ("nir08", "swir16", "swir22"), "uint16", 20.0), "drone"),  # refused later, by band name
])
def test_profile_from_the_header(look, profile):
    assert guess_profile(look)[0] == profile


def test_alpha_is_not_a_band(tmp_path):
    rgba = write(tmp_path / "rgba.tif", 4, "uint8", 0.1, alpha=True)
    look = raster_look(rgba)
    assert look.count == 3 and guess_profile(look)[0] == "drone"


def test_choice_and_its_refusals(tmp_path, monkeypatch):
    from minewatch.infer.predictor import default_model_path

    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(default_model_path(), models / "minewatch-drone.onnx")
    monkeypatch.setenv(MODELS_ENV, str(models))
    drone = write(tmp_path / "drone.tif", 3, "uint8", 0.2, ["red", "green", "blue"])
    sat = write(tmp_path / "sat.tif", 4, "uint16", 0.5, ["red", "green", "blue", "nir"])
    assert committed_models() == {"drone": models / "minewatch-drone.onnx", "satellite": None}
    choice = choose_model(drone)
    assert choice.profile == "drone" and choice.path == models / "minewatch-drone.onnx"
    with pytest.raises(UserError, match=r"no committed satellite model.*NIR band.*--profile drone") as err:
        choose_model(sat)
    assert "make model-satellite" in err.value.one_line()
    assert choose_model(sat, profile="drone").profile == "drone"  # --profile insists
    with pytest.raises(UserError, match="looks like satellite imagery.*trained on drone imagery") as err:
        check_model_fits(sat, "drone", "minewatch-drone.onnx", profile=None, bands=None)
    assert "--profile drone" in err.value.one_line() and "--bands" in err.value.one_line()
    check_model_fits(sat, "drone", "minewatch-drone.onnx", profile="drone", bands=None)
    check_model_fits(drone, "drone", "minewatch-drone.onnx", profile=None, bands=None)
    # the CLI: one line, exit 2, the make target; a drone raster scans with the drone model it names
    res = CliRunner().invoke(cli, ["scan", str(sat), "-o", str(tmp_path / "s.geojson")])
    assert res.exit_code == 2 and "no committed satellite model" in res.output and "make model-satellite" in res.output
    res = CliRunner().invoke(cli, ["scan", str(drone), "-o", str(tmp_path / "d.geojson"), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "minewatch-drone.onnx" in res.output and "chosen for the raster: the drone model" in res.output
    res = CliRunner().invoke(cli, ["scan", str(sat), "-o", str(tmp_path / "s.geojson"), "--model",
                                   str(models / "minewatch-drone.onnx")])
    assert res.exit_code == 2 and "looks like satellite imagery" in res.output


def test_info_lists_every_committed_model(tmp_path, monkeypatch):
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    res = CliRunner().invoke(cli, ["info"])
    assert res.exit_code == 0, res.output
    assert "drone: none committed" in res.output and "satellite: none committed" in res.output
    assert "make model-satellite" in res.output


def test_each_committed_model_is_chosen_for_its_imagery(tmp_path, monkeypatch):
    """The package's own models: one per sensor profile, each chosen for its kind of raster without --model, each
    with the card that names its exact file (a model replaced without its card fails here)."""
    import hashlib

    from minewatch.infer.model_file import read_model_meta
    from minewatch.train.model_card import card_path

    monkeypatch.delenv(MODELS_ENV, raising=False)
    models = committed_models()
    assert models["drone"] is not None and models["satellite"] is not None
    drone = write(tmp_path / "drone.tif", 3, "uint8", 0.2, ["red", "green", "blue"])
    sat = write(tmp_path / "sat.tif", 4, "uint16", 0.5, ["red", "green", "blue", "nir"])
    for profile, raster in (("drone", drone), ("satellite", sat)):
        path = models[profile]
        assert read_model_meta(path).profile == profile
        assert choose_model(raster).path == path
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest in card_path(path, profile).read_text(encoding="utf-8")
