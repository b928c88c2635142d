"""Suite-wide fixtures and marker handling."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Real sample data (research-licensed labels): never bundled, only read when present.
SHARED_DATA = Path(os.environ.get("SITEWATCH_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("sample_data") and not SHARED_DATA.is_dir():
        pytest.skip(f"sample data not found at {SHARED_DATA}")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of ../shared/data (tests using it carry the sample_data marker)."""
    return SHARED_DATA
