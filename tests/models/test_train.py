import json

import numpy as np
import pytest
import torch
import yaml

from models.cdnet import build_network
from models.checkpoint import load_checkpoint
from models.errors import ConfigError
from models.train import _mode, bce_dice_loss, load_config, lr_factor, train
from tests.models.conftest import TINY_ARCH, planted_pair, write_levir


def _config(tmp_path, levir, **overrides):
    raw = {
        "name": "tiny-train",
        "bands": ["red", "green", "blue"],
        "gsd_m": 0.5,
        "architecture": {"name": TINY_ARCH.name, "params": TINY_ARCH.params},
        "data": [{"format": "levir", "root": str(levir), "train": ["tile_0", "tile_1"], "val": ["tile_2"]}],
        "patch_size": 32,
        "batch_size": 4,
        "steps_per_epoch": 5,
        "epochs": 2,
        "warmup_steps": 2,
        "lr": 0.01,
        "output_dir": str(tmp_path / "weights"),
        "run_dir": str(tmp_path / "runs"),
        **overrides,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_few_optimiser_steps_reduce_the_loss(pairs):
    torch.manual_seed(0)
    net = build_network(TINY_ARCH.__class__(TINY_ARCH.name, {**TINY_ARCH.params, "in_channels": 3}))
    before = torch.from_numpy(np.stack([p.before for p in pairs]) - 0.35) / 0.1
    after = torch.from_numpy(np.stack([p.after for p in pairs]) - 0.35) / 0.1
    label = torch.from_numpy(np.stack([p.label for p in pairs])[:, None].astype(np.float32))
    valid = torch.ones_like(label)
    optimizer = torch.optim.AdamW(net.parameters(), lr=0.01)
    losses = []
    for _ in range(30):
        loss = bce_dice_loss(net(before, after), label, valid)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.75 * losses[0]


def test_loss_ignores_invalid_pixels():
    logits = torch.zeros(1, 1, 4, 4)
    target = torch.ones(1, 1, 4, 4)
    valid = torch.zeros(1, 1, 4, 4)
    valid[..., 0, 0] = 1
    target_changed = target.clone()
    target_changed[..., 1:, :] = 0
    assert torch.isclose(bce_dice_loss(logits, target, valid), bce_dice_loss(logits, target_changed, valid))


def test_learning_rate_warms_up_then_decays_to_zero():
    assert lr_factor(0, 10, 100) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100) == pytest.approx(1.0)
    assert lr_factor(55, 10, 100) == pytest.approx(0.5)
    assert lr_factor(100, 10, 100) == pytest.approx(0.0)


def test_config_errors_are_collected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "x",
                "bands": ["red"],
                "data": [{"format": "nope", "train": ["a"], "val": ["a"]}],
                "patch_size": 30,
                "colour": 1,
            }
        )
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    for fragment in ("gsd_m: required", "format", "root: required", "more than one split", "colour", "patch_size"):
        assert fragment in text


def test_normalization_mode_is_checked_and_old_switch_still_means_per_image(tmp_path):
    levir = tmp_path / "levir"
    assert load_config(_config(tmp_path, levir, normalization="reference")).normalization == "reference"
    old = load_config(_config(tmp_path, levir, per_image_normalization=True))
    assert _mode(old) == "per_image"
    with pytest.raises(ConfigError, match="not one of"):
        load_config(_config(tmp_path, levir, normalization="global"))
    with pytest.raises(ConfigError, match="contradicts"):
        load_config(_config(tmp_path, levir, normalization="reference", per_image_normalization=True))


def test_tiny_training_run_writes_a_checkpoint_with_card(tmp_path):
    levir = write_levir(tmp_path / "levir")
    config = load_config(_config(tmp_path, levir, normalization="reference"))
    result = train(config, resume=False, show_progress=False)
    assert result.weights.is_file()
    assert result.weights.stat().st_size < 2_000_000
    card = json.loads(result.weights.with_suffix(".json").read_text())
    assert card["metrics"]["levir:val"]["pairs"] == 1
    assert "baseline_f1" in card["metrics"]["levir:val"]
    assert card["training"]["seed"] == 0
    assert "non-commercial" in card["training_data"][0]["licence"]
    assert len(card["normalization"]["mean"]) == 3
    assert card["normalization"]["mode"] == "reference"
    assert [h["epoch"] for h in result.history] == [0, 1]
    _net, loaded = load_checkpoint(result.weights)
    assert loaded.threshold == result.card.threshold


def test_interrupted_run_resumes_from_its_last_epoch(tmp_path):
    levir = write_levir(tmp_path / "levir")
    first = train(load_config(_config(tmp_path, levir), {"epochs": 1}), resume=False, show_progress=False, save=False)
    resumed = train(load_config(_config(tmp_path, levir)), resume=True, show_progress=False, save=False)
    assert [h["epoch"] for h in resumed.history] == [0, 1]
    assert resumed.history[0] == first.history[0]


@pytest.mark.slow
def test_longer_training_learns_planted_squares(tmp_path):
    levir = tmp_path / "levir"
    for i in range(6):
        pair, _ = planted_pair(f"tile_{i}", size=64, seed=20 + i, square=12)
        from tests.models.conftest import _png

        _png(levir / "A" / f"tile_{i}.png", (pair.before.transpose(1, 2, 0) * 255).astype(np.uint8))
        _png(levir / "B" / f"tile_{i}.png", (pair.after.transpose(1, 2, 0) * 255).astype(np.uint8))
        _png(levir / "label" / f"tile_{i}.png", pair.label * 255)
    path = _config(
        tmp_path,
        levir,
        data=[
            {
                "format": "levir",
                "root": str(levir),
                "train": ["tile_0", "tile_1", "tile_2", "tile_3"],
                "val": ["tile_4"],
                "test": ["tile_5"],
            }
        ],
        epochs=6,
        steps_per_epoch=25,
        patch_size=48,
        batch_size=8,
    )
    result = train(load_config(path), resume=False, show_progress=False)
    assert result.card.metrics["levir:test"]["f1"] > 0.8


def test_split_patterns_select_pairs_and_unmatched_patterns_fail(tmp_path):
    levir = write_levir(tmp_path / "levir", n=4)
    path = _config(
        tmp_path,
        levir,
        data=[{"format": "levir", "root": str(levir), "train": ["tile_[01]"], "val": ["tile_2"], "sample_weight": 2}],
        epochs=1,
        steps_per_epoch=1,
    )
    config = load_config(path)
    assert config.data[0].sample_weight == 2.0
    result = train(config, resume=False, show_progress=False, save=False)
    assert result.card.training_data[0]["train"] == ["tile_[01]"]
    bad = _config(
        tmp_path, levir, data=[{"format": "levir", "root": str(levir), "train": ["nope*"], "val": ["tile_2"]}]
    )
    with pytest.raises(ConfigError, match="no pair matches"):
        train(load_config(bad), resume=False, show_progress=False, save=False)


def test_yaml_numeric_looking_pair_names_stay_strings(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\nbands: [red]\ngsd_m: 1\ndata:\n  - {format: dsifn, root: ., train: [0_2], val: [1_1]}\n")
    assert load_config(path).data[0].train == ["0_2"]
