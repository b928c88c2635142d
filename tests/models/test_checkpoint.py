import json

import pytest
import torch

from models.checkpoint import check_compatible, load_card, load_checkpoint, save_checkpoint
from models.errors import CheckpointCorruptError, CheckpointMismatchError, CheckpointNotFoundError, ModelError
from models.inference import ChangeDetector
from tests.models.conftest import tiny_card


def test_checkpoint_round_trip_restores_weights_and_card(weights_dir):
    net, card = load_checkpoint("tiny", weights_dir=weights_dir)
    again, _ = load_checkpoint(weights_dir / "tiny.pt")
    for (k, v), (_, w) in zip(net.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(v, w), k
    assert card.bands == ["red", "green", "blue"]
    assert card.parameters == sum(p.numel() for p in net.parameters())
    assert len(card.weights_sha256) == 64
    raw = json.loads((weights_dir / "tiny.json").read_text())
    assert raw["normalization"]["mean"] == [0.35, 0.35, 0.35]


def test_loading_by_json_path_works(weights_dir):
    assert load_card(weights_dir / "tiny.json").name == "tiny"


def test_unknown_checkpoint_names_the_known_ones(weights_dir):
    with pytest.raises(CheckpointNotFoundError, match="known names: tiny"):
        load_checkpoint("nope", weights_dir=weights_dir)


def test_tampered_weights_are_refused(weights_dir):
    with (weights_dir / "tiny.pt").open("ab") as f:
        f.write(b"x")
    with pytest.raises(CheckpointCorruptError, match="sha256"):
        load_checkpoint("tiny", weights_dir=weights_dir)


def test_mismatched_bands_and_gsd_are_refused_with_both_reasons(weights_dir):
    with pytest.raises(CheckpointMismatchError) as info:
        ChangeDetector.load("tiny", weights_dir=weights_dir, bands=("B02", "B03", "B04"), gsd_m=10.0)
    message = str(info.value)
    assert "bands" in message
    assert "ground sample distance 10 m" in message
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, ModelError)


def test_matching_bands_and_gsd_within_tolerance_are_accepted():
    card = tiny_card(gsd_m=0.5)
    check_compatible(card, bands=["RED", "green", "blue"], gsd_m=0.9)
    with pytest.raises(CheckpointMismatchError):
        check_compatible(card, gsd_m=1.1)


def test_save_creates_the_directory(tmp_path):
    from models.cdnet import build_network

    card = tiny_card("made")
    path = save_checkpoint(build_network(card.architecture), card, tmp_path / "new" / "dir")
    assert path.is_file()
    assert path.with_suffix(".json").is_file()
