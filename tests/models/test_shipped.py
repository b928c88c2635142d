"""The checkpoints shipped in models/weights: small, self-describing, loadable, refusing wrong imagery."""

import json

import numpy as np
import pytest

from models.checkpoint import WEIGHTS_DIR, load_card, sha256_of
from models.errors import CheckpointMismatchError
from models.inference import ChangeDetector

SHIPPED = [name for name in ("s2", "vhr-rgb") if (WEIGHTS_DIR / f"{name}.pt").is_file()]
pytestmark = pytest.mark.skipif(not SHIPPED, reason="no shipped checkpoints")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_is_small_and_its_card_is_complete(name):
    weights = WEIGHTS_DIR / f"{name}.pt"
    assert weights.stat().st_size < 2_000_000
    card = load_card(name)
    assert card.weights_sha256 == sha256_of(weights)
    assert card.parameters < 500_000
    raw = json.loads(weights.with_suffix(".json").read_text())
    for key in ("architecture", "bands", "gsd_m", "normalization", "threshold", "training_data", "training", "metrics"):
        assert raw[key] not in (None, "", [], {}), key
    assert all(entry["licence"] for entry in raw["training_data"])
    assert "command" in raw["training"]
    assert "seed" in raw["training"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_predicts_on_its_own_bands(name):
    card = load_card(name)
    detector = ChangeDetector.load(name, bands=card.bands, gsd_m=card.gsd_m, threads=1)
    rng = np.random.default_rng(0)
    before = rng.uniform(0.05, 0.3, (len(card.bands), 48, 48)).astype(np.float32)
    probability = detector.predict(before, before.copy())
    assert probability.shape == (48, 48)
    assert np.nanmax(probability) < 0.99


@pytest.mark.skipif("s2" not in SHIPPED, reason="s2 not shipped")
def test_s2_checkpoint_refuses_rgb_photos_and_20m_imagery():
    with pytest.raises(CheckpointMismatchError, match="bands"):
        ChangeDetector.load("s2", bands=("red", "green", "blue"))
    with pytest.raises(CheckpointMismatchError, match="ground sample distance"):
        ChangeDetector.load("s2", bands=("B02", "B03", "B04", "B08", "B11", "B12"), gsd_m=20.0)
