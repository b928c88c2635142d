"""`sitewatch model ...`: train and evaluate change-detection checkpoints."""

from __future__ import annotations

import json
import logging
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from models.checkpoint import check_compatible
from models.crossval import crossval as run_crossval
from models.crossval import groups_of, merge_fold_files
from models.datasets import S2_ALL_BANDS, S2_BANDS, open_dataset, write_pair_npz
from models.errors import (
    CheckpointCorruptError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    ConfigError,
    DatasetError,
    InputShapeError,
    ModelError,
)
from models.evaluate import PairScore, evaluate_pairs
from models.inference import ChangeDetector
from models.train import load_config
from models.train import train as run_training

logger = logging.getLogger(__name__)

app = typer.Typer(help="Change-detection model: train, evaluate, cross-validate, export data.")

#: CLI exit code per error type (first match wins; ModelError last as the catch-all).
EXIT_CODES: dict[type[Exception], int] = {
    ConfigError: 2,
    DatasetError: 3,
    CheckpointNotFoundError: 4,
    CheckpointCorruptError: 5,
    CheckpointMismatchError: 6,
    InputShapeError: 6,
    ModelError: 1,
}


class DataFormat(StrEnum):
    """Labelled folder layouts."""

    oscd = "oscd"
    levir = "levir"
    dsifn = "dsifn"
    sztaki = "sztaki"
    sim = "sim"
    npz = "npz"


def _fail(exc: Exception) -> typer.Exit:
    code = next((c for t, c in EXIT_CODES.items() if isinstance(exc, t)), 1)
    Console(stderr=True).print(f"[red]error:[/red] {exc}")
    return typer.Exit(code)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
        force=True,
    )


@app.command()
def train(
    config: Annotated[Path, typer.Option("--config", exists=True, dir_okay=False, help="YAML or JSON training config")],
    resume: Annotated[bool, typer.Option(help="Continue from the run's last checkpoint when present")] = True,
    progress: Annotated[bool, typer.Option(help="Show a progress bar")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Train a checkpoint from a config; prints the card's metrics as JSON on the last line."""
    _setup_logging(verbose)
    try:
        result = run_training(load_config(config), resume=resume, show_progress=progress)
    except ModelError as exc:
        raise _fail(exc) from exc
    metrics = {k: {m: v for m, v in s.items() if m != "per_pair"} for k, s in result.card.metrics.items()}
    print(json.dumps({"weights": str(result.weights), "threshold": result.card.threshold, "metrics": metrics}))


@app.command()
def evaluate(
    data_format: Annotated[DataFormat, typer.Option("--format", help="Folder layout")],
    data: Annotated[Path, typer.Option("--data", exists=True, file_okay=False, help="Labelled folder")],
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="Checkpoint name (s2, vhr-rgb) or path")] = "s2",
    as_json: Annotated[bool, typer.Option("--json", help="Only the JSON summary (and per-pair JSON lines)")] = False,
    gsd_m: Annotated[float | None, typer.Option(help="Override the data set's ground sample distance, m")] = None,
    threads: Annotated[int, typer.Option(min=1, help="Torch CPU threads")] = 2,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Score a checkpoint and the CVA baseline on every labelled pair of a folder.

    The last line printed is JSON: precision, recall, f1, iou, pairs, baseline_precision,
    baseline_recall, baseline_f1 (pixel-pooled over the folder; threshold from the card).
    """
    _setup_logging(verbose)
    try:
        detector = ChangeDetector.load(checkpoint, threads=threads)
        # Sentinel-2 folders are read in the checkpoint's band order; any other checkpoint is
        # refused below by check_compatible (the folder's default bands will not match).
        s2_card = {b.upper() for b in detector.bands} <= set(S2_ALL_BANDS)
        dataset = open_dataset(data_format.value, data, bands=detector.bands if s2_card else None)
        check_compatible(detector.card, bands=dataset.bands, gsd_m=gsd_m or dataset.gsd_m)
        table = Table("pair", "F1", "IoU", "precision", "recall", "baseline F1", title=f"{checkpoint} on {data}")

        def show(score: PairScore) -> None:
            s, b = score.model.scores(), score.baseline.scores()
            if as_json:
                print(json.dumps({"pair": score.name, **{k: round(v, 4) for k, v in s.items()}}))
            else:
                table.add_row(
                    score.name, *(f"{s[k]:.3f}" for k in ("f1", "iou", "precision", "recall")), f"{b['f1']:.3f}"
                )

        report = evaluate_pairs(detector, dataset, on_pair=show)
    except ModelError as exc:
        raise _fail(exc) from exc
    summary: dict[str, Any] = report.summary()
    summary.update(checkpoint=detector.card.name, format=data_format.value)
    if not as_json:
        Console().print(table)
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()}))


@app.command()
def crossval(
    config: Annotated[Path, typer.Option("--config", exists=True, dir_okay=False, help="YAML or JSON training config")],
    data_index: Annotated[int, typer.Option("--data-index", min=0, help="Which data set of the config to fold")] = 0,
    fold: Annotated[list[int] | None, typer.Option("--fold", help="Run only these folds (repeatable)")] = None,
    val_groups: Annotated[
        int, typer.Option("--val-groups", min=1, help="Groups pooled to pick each fold's threshold")
    ] = 2,
    out: Annotated[Path | None, typer.Option("--out", help="Write one JSON file per fold here")] = None,
    merge: Annotated[bool, typer.Option("--merge", help="Only pool the fold files already under --out")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Leave-one-group-out cross-validation (e.g. one OSCD city per fold); last line: pooled JSON.

    Fold k tests on group k, picks its threshold on group k+1 and trains on the rest. Folds can run
    in separate processes (``--fold K --out DIR``) and be pooled afterwards (``--merge --out DIR``).
    """
    _setup_logging(verbose)
    try:
        cfg = load_config(config)
        if merge:
            if out is None:
                raise ConfigError(["--merge: needs --out, the folder of fold files"])
            report = merge_fold_files(sorted(out.glob("fold-*.json")), str(config))
        else:
            folds = fold if fold else list(range(len(groups_of(cfg, data_index))))
            report = run_crossval(cfg, data_index, folds, val_groups=val_groups, show_progress=False)
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                for f in report.folds:
                    (out / f"fold-{f.fold}.json").write_text(json.dumps(f.to_dict(), indent=1))
    except ModelError as exc:
        raise _fail(exc) from exc
    summary = report.summary()
    table = Table(
        "held out", "val", "F1", "precision", "recall", "threshold", "CVA F1", title=f"cross-validation of {config}"
    )
    for g in summary["per_group"]:
        table.add_row(
            g["test"], g["val"], *(f"{g[k]:.3f}" for k in ("f1", "precision", "recall", "threshold", "baseline_f1"))
        )
    Console(stderr=True).print(table)
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items() if k != "per_group"}))


@app.command()
def export(
    data_format: Annotated[DataFormat, typer.Option("--format", help="Folder layout to read")],
    data: Annotated[Path, typer.Option("--data", exists=True, file_okay=False, help="Labelled folder")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write one .npz per pair into")],
    bands: Annotated[str, typer.Option(help="Sentinel-2 bands, comma-separated (oscd and sim only)")] = ",".join(
        S2_BANDS
    ),
) -> None:
    """Decode every pair of a labelled folder once into ``.npz`` files (``--format npz`` reads them).

    Training from the export needs only numpy and torch (no GDAL), e.g. on a GPU machine.
    """
    try:
        s2 = data_format.value in ("oscd", "sim")
        dataset = open_dataset(data_format.value, data, bands=tuple(bands.split(",")) if s2 else None)
        for pair in dataset:
            path = write_pair_npz(pair, dataset, out)
            Console(stderr=True).print(f"{pair.name}: {pair.before.shape} -> {path}")
    except ModelError as exc:
        raise _fail(exc) from exc
    print(json.dumps({"pairs": len(dataset), "out": str(out), "bands": list(dataset.bands), "gsd_m": dataset.gsd_m}))
