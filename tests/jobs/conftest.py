"""A small simulated archive shared by the pipeline tests (simulated once per session)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from aoi.demo import demo_portfolio
from aoi.model import Site
from imagery.archive import write_archive

#: Two fates with opposite stories keep the archive small but the assertions sharp.
FATES = ("on_track", "stalled")
AS_OF = date(2026, 11, 1)


@pytest.fixture(scope="session")
def sim_sites() -> list[Site]:
    return [s for s in demo_portfolio().sites if s.properties["fate"] in FATES]


@pytest.fixture(scope="session")
def sim_archive(tmp_path_factory: pytest.TempPathFactory, sim_sites: list[Site]) -> Path:
    root = tmp_path_factory.mktemp("archive")
    write_archive(root, sim_sites, date(2025, 3, 1), AS_OF, seed=11)
    return root
