import json

import pytest
import yaml
from typer.testing import CliRunner

from api.cli.model import app
from models.checkpoint import WEIGHTS_DIR
from tests.conftest import SHARED_DATA
from tests.models.conftest import TINY_ARCH

runner = CliRunner()


def test_evaluate_prints_json_summary_last(levir_dir, weights_dir):
    result = runner.invoke(
        app, ["evaluate", "--format", "levir", "--data", str(levir_dir), "--checkpoint", str(weights_dir / "tiny.pt")]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    for key in ("precision", "recall", "f1", "iou", "pairs", "baseline_f1", "baseline_precision", "baseline_recall"):
        assert key in summary
    assert summary["pairs"] == 3
    # The CVA baseline finds the planted squares.
    assert summary["baseline_f1"] > 0.9


def test_evaluate_json_mode_prints_one_line_per_pair_then_summary(levir_dir, weights_dir):
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--format",
            "levir",
            "--data",
            str(levir_dir),
            "--checkpoint",
            str(weights_dir / "tiny.pt"),
            "--json",
        ],
    )
    lines = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [line.get("pair") for line in lines[:3]] == ["tile_0", "tile_1", "tile_2"]
    assert lines[-1]["pairs"] == 3


def test_evaluate_refuses_checkpoint_for_other_bands(oscd_dir, weights_dir):
    result = runner.invoke(
        app, ["evaluate", "--format", "oscd", "--data", str(oscd_dir), "--checkpoint", str(weights_dir / "tiny.json")]
    )
    assert result.exit_code == 6
    assert "does not fit" in result.output


def test_evaluate_unknown_checkpoint_exits_4(levir_dir):
    result = runner.invoke(app, ["evaluate", "--format", "levir", "--data", str(levir_dir), "--checkpoint", "nope"])
    assert result.exit_code == 4


def test_train_command_trains_from_config(tmp_path, levir_dir):
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "cli-tiny",
                "bands": ["red", "green", "blue"],
                "gsd_m": 0.5,
                "architecture": {"name": TINY_ARCH.name, "params": TINY_ARCH.params},
                "data": [{"format": "levir", "root": str(levir_dir), "train": ["tile_0"], "val": ["tile_1"]}],
                "patch_size": 32,
                "batch_size": 2,
                "steps_per_epoch": 2,
                "epochs": 1,
                "output_dir": str(tmp_path / "w"),
                "run_dir": str(tmp_path / "r"),
            }
        )
    )
    result = runner.invoke(app, ["train", "--config", str(config), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["metrics"]["levir:val"]["pairs"] == 1
    assert (tmp_path / "w" / "cli-tiny.json").is_file()


def test_train_command_reports_config_problems(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"name": "x"}))
    result = runner.invoke(app, ["train", "--config", str(config)])
    assert result.exit_code == 2
    assert "bands: required" in result.output


@pytest.mark.sample_data
@pytest.mark.skipif(not (WEIGHTS_DIR / "vhr-rgb.pt").is_file(), reason="vhr-rgb checkpoint not shipped")
def test_shipped_vhr_checkpoint_evaluates_on_shared_levir():
    result = runner.invoke(
        app,
        ["evaluate", "--format", "levir", "--data", str(SHARED_DATA / "levir_cd_samples"), "--checkpoint", "vhr-rgb"],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["pairs"] == 7
    assert summary["f1"] > summary["baseline_f1"]
