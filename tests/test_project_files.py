"""The project's own promises: docs and conda env stay in step with the code."""

import re
import tomllib
from pathlib import Path

import yaml

from jobs.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text()
    missing = [n for n in Settings.model_fields if f"`SITEWATCH_{n.upper()}`" not in readme]
    assert not missing, f"README configuration table lacks: {missing}"


def test_readme_opens_with_the_two_commands():
    head = (ROOT / "README.md").read_text().split("## ")[0]
    assert "make demo" in head
    assert "make test" in head


def test_environment_yml_pins_match_pyproject():
    pins = {}
    for dep in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        m = re.match(r"([A-Za-z0-9_.-]+)(\[[^\]]+\])?==(.+)", dep)
        assert m, f"unpinned dependency {dep}"
        pins[m.group(1).lower()] = m.group(3)
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda: dict[str, str] = {}
    for item in env["dependencies"]:
        if isinstance(item, str) and "=" in item:
            name, version = item.split("=", 1)
            conda[name.lower()] = version
        elif isinstance(item, dict):
            for p in item["pip"]:
                if "==" in p:
                    name, version = p.split("==")
                    conda[name.lower()] = version
    mismatched = {n: (v, conda[n]) for n, v in pins.items() if n in conda and conda[n] != v}
    assert not mismatched, mismatched
    absent = sorted(set(pins) - set(conda))
    assert not absent, f"environment.yml lacks {absent}"
