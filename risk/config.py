"""Read the versioned scorecard and alert configurations and the message templates (file I/O).

Files live in one folder (the package's ``risk/config`` unless another is given):
``scorecard-v<N>.yaml``, ``alerts-v<N>.yaml`` and ``templates/<name>-v<N>.txt``. A version is the
file's stem, e.g. "scorecard-v1"; without a version the highest ``N`` is read.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from risk.alerts import AlertConfig, parse_alert_config
from risk.errors import ConfigVersionNotFoundError, ScorecardInvalidError
from risk.scorecard import Scorecard, parse_scorecard

#: The configuration shipped with the package.
DEFAULT_CONFIG_DIR = Path(__file__).resolve().parent / "config"

_VERSION = re.compile(r"-v(\d+)$")


def _path(kind: str, version: str | None, config_dir: Path | None, suffix: str) -> Path:
    folder = config_dir or DEFAULT_CONFIG_DIR
    if version is not None:
        if not version.startswith(f"{kind}-v") or "/" in version or "\\" in version:
            raise ConfigVersionNotFoundError(f"{version!r} is not a {kind} version (expected {kind}-v<N>)")
        path = folder / f"{version}{suffix}"
        if not path.is_file():
            raise ConfigVersionNotFoundError(f"no {kind} configuration {version!r} in {folder}")
        return path
    found = [(int(m.group(1)), p) for p in folder.glob(f"{kind}-v*{suffix}") if (m := _VERSION.search(p.stem))]
    if not found:
        raise ConfigVersionNotFoundError(f"no {kind} configuration in {folder}")
    return max(found)[1]


def _yaml(path: Path) -> tuple[object, str]:
    text = path.read_text(encoding="utf-8")
    try:
        return yaml.safe_load(text), text
    except yaml.YAMLError as exc:
        raise ScorecardInvalidError(str(path), [f"not valid YAML: {exc}"]) from exc


def read_scorecard(version: str | None = None, *, config_dir: Path | None = None) -> Scorecard:
    """Read and validate a scorecard configuration.

    Raises:
        ConfigVersionNotFoundError: no file for that version.
        ScorecardInvalidError: the file is malformed, or its ``version`` differs from its name.
    """
    path = _path("scorecard", version, config_dir, ".yaml")
    doc, text = _yaml(path)
    card = parse_scorecard(doc, text=text, source=str(path))
    if card.version != path.stem:
        raise ScorecardInvalidError(str(path), [f"version {card.version!r} does not match the file name"])
    return card


def read_alert_config(version: str | None = None, *, config_dir: Path | None = None) -> AlertConfig:
    """Read and validate an alert configuration.

    Raises:
        ConfigVersionNotFoundError: no file for that version.
        ScorecardInvalidError: the file is malformed, or its ``version`` differs from its name.
    """
    path = _path("alerts", version, config_dir, ".yaml")
    doc, text = _yaml(path)
    config = parse_alert_config(doc, text=text, source=str(path))
    if config.version != path.stem:
        raise ScorecardInvalidError(str(path), [f"version {config.version!r} does not match the file name"])
    return config


def read_template(name: str, version: str | None = None, *, config_dir: Path | None = None) -> str:
    """The text of a message template, e.g. ``read_template("payment_reminder")``.

    Raises:
        ConfigVersionNotFoundError: no such template.
    """
    folder = (config_dir or DEFAULT_CONFIG_DIR) / "templates"
    return _path(name, version, folder, ".txt").read_text(encoding="utf-8")
