import json

import numpy as np
import pytest
from typer.testing import CliRunner

from api.cli.model import app
from models.crossval import FoldResult, crossval, fold_config, groups_of, merge_fold_files
from models.datasets import open_dataset, write_pair_npz
from models.errors import ConfigError, DatasetError
from models.metrics import Confusion
from models.train import load_config, train
from tests.models.conftest import write_levir
from tests.models.test_train import _config


def test_npz_export_of_photos_is_lossless_and_keeps_name_bands_and_licence(tmp_path):
    levir = open_dataset("levir", write_levir(tmp_path / "levir"))
    for pair in levir:
        write_pair_npz(pair, levir, tmp_path / "npz")
    exported = open_dataset("npz", tmp_path / "npz")
    assert exported.names == levir.names
    assert (exported.bands, exported.gsd_m) == (levir.bands, levir.gsd_m)
    assert (exported.source_format, exported.licence) == ("levir", levir.licence)
    for a, b in zip(levir, exported, strict=True):
        np.testing.assert_array_equal(a.before, b.before)
        np.testing.assert_array_equal(a.after, b.after)
        np.testing.assert_array_equal(a.label, b.label)


def test_npz_export_rounds_sentinel2_to_its_quantum_only(tmp_path, oscd_dir):
    oscd = open_dataset("oscd", oscd_dir)
    pair = oscd[0]
    write_pair_npz(pair, oscd, tmp_path / "npz")
    back = open_dataset("npz", tmp_path / "npz", bands=oscd.bands)[0]
    # Resampled 20 m bands fall between DN steps; the copy is within half a quantum (5e-5).
    assert np.abs(back.before - pair.before).max() <= 5e-5 + 1e-7
    assert np.abs(back.after - pair.after).max() <= 5e-5 + 1e-7
    with pytest.raises(DatasetError, match="bands"):
        open_dataset("npz", tmp_path / "npz", bands=("B02",))


def test_npz_folder_without_pairs_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"no \.npz pair"):
        open_dataset("npz", tmp_path / "empty")


def test_fold_configs_hold_each_group_out_once_and_never_train_on_it(tmp_path):
    levir = write_levir(tmp_path / "levir", n=5)
    config = load_config(_config(tmp_path, levir))
    config.data[0].train = [f"tile_{i}" for i in range(5)]
    config.data[0].val = []
    groups = groups_of(config, 0)
    assert groups == [f"tile_{i}" for i in range(5)]
    tested = []
    for k in range(5):
        spec = fold_config(config, 0, k, groups).data[0]
        assert spec.test == [groups[k]]
        assert spec.val == [groups[(k + 1) % 5], groups[(k + 2) % 5]]
        assert not set(spec.train) & (set(spec.val) | set(spec.test))
        assert len(spec.train) == 2
        tested += spec.test
    assert sorted(tested) == groups
    with pytest.raises(ConfigError, match="val_groups"):
        fold_config(config, 0, 0, groups, val_groups=4)


def test_crossval_scores_every_held_out_group_and_pools_counts(tmp_path):
    levir = write_levir(tmp_path / "levir", n=4)
    config = load_config(_config(tmp_path, levir, epochs=1, steps_per_epoch=2))
    config.data[0].train, config.data[0].val, config.data[0].test = ["tile_0", "tile_1"], ["tile_2"], ["tile_3"]
    report = crossval(config, 0, [0, 3])
    assert [f.test for f in report.folds] == ["tile_0", "tile_3"]
    summary = report.summary()
    pooled = report.folds[0].model + report.folds[1].model
    assert summary["f1"] == pytest.approx(pooled.scores()["f1"])
    # Every labelled pixel of the two held-out 32x32 tiles is counted exactly once.
    assert pooled.tp + pooled.fp + pooled.fn + pooled.tn == 2 * 32 * 32
    # Fold results survive a JSON round trip, so separate processes can be pooled afterwards.
    for f in report.folds:
        (tmp_path / f"fold-{f.fold}.json").write_text(json.dumps(f.to_dict()))
    merged = merge_fold_files(sorted(tmp_path.glob("fold-*.json")))
    assert merged.summary()["f1"] == pytest.approx(summary["f1"])


def test_fold_result_round_trip_keeps_counts():
    f = FoldResult(2, "a", "b+c", 0.4, 7, Confusion(1, 2, 3, 4), Confusion(4, 3, 2, 1), None)
    back = FoldResult.from_dict(json.loads(json.dumps(f.to_dict())))
    assert back == f


def test_time_limit_stops_training_and_keeps_the_best_epoch(tmp_path):
    levir = write_levir(tmp_path / "levir")
    config = load_config(_config(tmp_path, levir, epochs=50, time_limit_s=0.001))
    result = train(config, resume=False, show_progress=False, save=False)
    assert result.card.training["stopped"] == "time_limit"
    assert result.card.training["epochs_run"] < 50
    assert result.network is not None


def test_cli_export_then_crossval_merge(tmp_path):
    levir = write_levir(tmp_path / "levir", n=4)
    runner = CliRunner()
    out = runner.invoke(app, ["export", "--format", "levir", "--data", str(levir), "--out", str(tmp_path / "npz")])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output.strip().splitlines()[-1])["pairs"] == 4
    cfg = _config(
        tmp_path,
        tmp_path / "npz",
        data=[
            {
                "format": "npz",
                "root": str(tmp_path / "npz"),
                "train": ["tile_0", "tile_3"],
                "val": ["tile_1"],
                "test": ["tile_2"],
            }
        ],
        epochs=1,
        steps_per_epoch=2,
    )
    folds = tmp_path / "folds"
    res = runner.invoke(
        app, ["crossval", "--config", str(cfg), "--fold", "1", "--val-groups", "1", "--out", str(folds)]
    )
    assert res.exit_code == 0, res.output
    assert (folds / "fold-1.json").is_file()
    merged = runner.invoke(app, ["crossval", "--config", str(cfg), "--merge", "--out", str(folds)])
    assert merged.exit_code == 0, merged.output
    line = json.loads(merged.output.strip().splitlines()[-1])
    assert line["pairs"] == 1
    assert 0.0 <= line["f1"] <= 1.0
