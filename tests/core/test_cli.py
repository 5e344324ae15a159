"""The CLI as a user meets it: help, exit codes, one-line errors, no torch on the scan path."""

import subprocess
import sys

import pytest
from click.testing import CliRunner

from minewatch.cli import cli

COMMANDS = ["synth", "tiles", "train", "export", "scan", "evaluate", "demo", "card", "info"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command):
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output and f"minewatch {command}" in result.output


def test_bad_input_is_one_line_exit_2_without_traceback(tmp_path):
    result = CliRunner().invoke(cli, ["tiles", str(tmp_path / "missing.tif"), "-o", str(tmp_path / "t.gpkg")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "missing.tif" in lines[0] and "Fix:" in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "t.gpkg").exists()


def test_debug_shows_the_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "minewatch", "tiles", str(tmp_path / "x.tif"), "-o",
                           str(tmp_path / "t.gpkg"), "--debug"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" in proc.stderr


def test_info_lists_versions():
    result = CliRunner().invoke(cli, ["info"])
    assert result.exit_code == 0 and "rasterio" in result.output and "onnxruntime" in result.output


POISON = "import sys; sys.modules['torch'] = None; "


def test_scan_path_imports_without_torch():
    code = POISON + (
        "import minewatch.datasets.scene, minewatch.datasets.tiling, minewatch.datasets.labels, "
        "minewatch.infer.scan, minewatch.infer.predictor, minewatch.infer.sites, minewatch.infer.writers, "
        "minewatch.infer.evaluate; print('ok')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_scan_help_runs_without_torch():
    code = POISON + "sys.argv = ['minewatch', 'scan', '--help']; from minewatch.cli import main; main()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "--model" in proc.stdout


def test_train_without_torch_says_what_to_install(tmp_path):
    code = POISON + "sys.argv = ['minewatch', 'train', '--config', 'smoke']; from minewatch.cli import main; main()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert "minewatch[train]" in proc.stderr
