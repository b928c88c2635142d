"""Save and load change-detection checkpoints: a ``.pt`` state dict plus a JSON card beside it.

The card (``<name>.json``) records what a reviewer or a caller needs to trust and to use the
weights: architecture and hyperparameters, bands, ground sample distance, normalisation,
threshold, training data with their licences, the training command and seed, metrics on every
evaluation set, and the sha256 of the weights file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.cdnet import ArchitectureSpec, build_network, count_parameters
from models.errors import CheckpointCorruptError, CheckpointMismatchError, CheckpointNotFoundError
from models.normalization import Normalization

logger = logging.getLogger(__name__)

#: Packaged checkpoints (``s2``, ``vhr-rgb``).
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(slots=True)
class ModelCard:
    """Metadata written beside the weights as ``<name>.json``.

    Attributes:
        name: Checkpoint name (file stem).
        architecture: Network name and hyperparameters, enough to rebuild it.
        bands: Input band names, in channel order.
        gsd_m: Ground sample distance of the training imagery, metres.
        gsd_tolerance: Imagery whose GSD is within a factor of this of ``gsd_m`` is accepted.
        normalization: Per-band z-score applied to reflectance before the network.
        parameters: Trainable parameter count.
        threshold: Probability threshold for the change class, chosen on validation pairs.
        training_data: One entry per data set: format, pairs used for training / validation, licence.
        training: Command, config, seed, epochs, wall time.
        metrics: ``{evaluation set: {precision, recall, f1, iou, pairs, baseline_*}}``.
        weights_sha256: sha256 of the ``.pt`` file.
    """

    name: str
    architecture: ArchitectureSpec
    bands: list[str]
    gsd_m: float
    normalization: Normalization
    gsd_tolerance: float = 1.25
    parameters: int = 0
    threshold: float = 0.5
    training_data: list[dict[str, Any]] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    weights_sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = asdict(self)
        d["architecture"] = {"name": self.architecture.name, "params": self.architecture.params}
        d["normalization"] = self.normalization.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelCard:
        """Inverse of ``to_dict``."""
        d = dict(d)
        d["architecture"] = ArchitectureSpec(d["architecture"]["name"], dict(d["architecture"].get("params", {})))
        d["normalization"] = Normalization.from_dict(d["normalization"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(net: nn.Module, card: ModelCard, directory: Path = WEIGHTS_DIR) -> Path:
    """Write ``<directory>/<card.name>.pt`` and ``.json``; fills in parameter count and sha256.

    Returns:
        Path of the ``.pt`` file.
    """
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / f"{card.name}.pt"
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    torch.save(state, weights)
    card.parameters = count_parameters(net)
    card.weights_sha256 = sha256_of(weights)
    (directory / f"{card.name}.json").write_text(json.dumps(card.to_dict(), indent=2) + "\n")
    logger.info("saved checkpoint %s (%d parameters)", weights, card.parameters)
    return weights


def resolve_checkpoint(name_or_path: str | Path, weights_dir: Path | None = None) -> tuple[Path, Path]:
    """``(weights .pt, card .json)`` for a name under ``weights_dir`` or a path to either file.

    Raises:
        CheckpointNotFoundError: Neither a matching file nor a known name.
    """
    candidate = Path(name_or_path)
    if candidate.suffix in (".pt", ".json") and candidate.exists():
        base = candidate.with_suffix("")
    else:
        base = (weights_dir or WEIGHTS_DIR) / str(name_or_path)
    weights, card = base.with_suffix(".pt"), base.with_suffix(".json")
    if not weights.is_file() or not card.is_file():
        known = sorted(p.stem for p in (weights_dir or WEIGHTS_DIR).glob("*.json"))
        raise CheckpointNotFoundError(
            f"checkpoint {str(name_or_path)!r} not found (need {weights.name} and {card.name} in {weights.parent}); "
            f"known names: {', '.join(known) or 'none'}"
        )
    return weights, card


def load_card(name_or_path: str | Path, weights_dir: Path | None = None) -> ModelCard:
    """Read only the card of a checkpoint."""
    _, card_path = resolve_checkpoint(name_or_path, weights_dir)
    try:
        return ModelCard.from_dict(json.loads(card_path.read_text()))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointCorruptError(f"{card_path}: unreadable card: {exc}") from exc


def load_checkpoint(name_or_path: str | Path, weights_dir: Path | None = None) -> tuple[nn.Module, ModelCard]:
    """Rebuild the network of a checkpoint and load its weights (CPU tensors, eval mode).

    Raises:
        CheckpointNotFoundError: No such checkpoint.
        CheckpointCorruptError: sha256 mismatch or unreadable card / weights.
    """
    weights, _ = resolve_checkpoint(name_or_path, weights_dir)
    card = load_card(name_or_path, weights_dir)
    actual = sha256_of(weights)
    if card.weights_sha256 and actual != card.weights_sha256:
        raise CheckpointCorruptError(
            f"{weights}: sha256 {actual[:12]}... does not match the card ({card.weights_sha256[:12]}...)"
        )
    try:
        net = build_network(card.architecture)
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except (RuntimeError, ValueError) as exc:
        raise CheckpointCorruptError(f"{weights}: cannot load into {card.architecture.name}: {exc}") from exc
    return net.eval(), card


def check_compatible(
    card: ModelCard, *, bands: tuple[str, ...] | list[str] | None = None, gsd_m: float | None = None
) -> None:
    """Refuse imagery whose bands or ground sample distance differ from the checkpoint's.

    Args:
        card: The checkpoint card.
        bands: Imagery band names in channel order (case-insensitive), or None to skip.
        gsd_m: Imagery ground sample distance in metres, or None to skip.

    Raises:
        CheckpointMismatchError: Listing every mismatch.
    """
    problems = []
    if bands is not None and [b.upper() for b in bands] != [b.upper() for b in card.bands]:
        problems.append(f"bands {', '.join(bands)} != checkpoint bands {', '.join(card.bands)}")
    if gsd_m is not None:
        low, high = card.gsd_m / card.gsd_tolerance, card.gsd_m * card.gsd_tolerance
        if not low <= gsd_m <= high:
            problems.append(
                f"ground sample distance {gsd_m:g} m outside {low:g}-{high:g} m "
                f"(checkpoint trained at {card.gsd_m:g} m)"
            )
    if problems:
        raise CheckpointMismatchError(f"checkpoint {card.name!r} does not fit the imagery: " + "; ".join(problems))
