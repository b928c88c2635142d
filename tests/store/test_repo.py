from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, text

import store
from aoi import SceneRecord, SiteNotFoundError
from aoi.demo import demo_portfolio
from store import repo


def test_portfolio_round_trips_exactly(engine):
    portfolio = demo_portfolio()
    summary = repo.save_portfolio(engine, portfolio, actor="test")
    assert (summary.sites_created, summary.loans_created) == (6, 6)
    back = repo.load_portfolio(engine)
    assert {s.id: s for s in back.sites} == {s.id: s for s in portfolio.sites}
    assert {ln.id: ln for ln in back.loans} == {ln.id: ln for ln in portfolio.loans}


def test_saving_twice_updates_instead_of_duplicating(engine):
    portfolio = demo_portfolio()
    repo.save_portfolio(engine, portfolio)
    summary = repo.save_portfolio(engine, portfolio)
    assert (summary.sites_created, summary.sites_updated) == (0, 6)
    assert len(repo.list_sites(engine)) == 6
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM phases")).scalar() == 24


def test_filters_by_bbox_region_text_and_scope(engine):
    repo.save_portfolio(engine, demo_portfolio())
    europe = repo.list_sites(engine, bbox_wgs84=(-10.0, 35.0, 20.0, 55.0))
    assert {s.id for s in europe} == {"es-sev-solar", "de-rgb-hall"}
    assert [s.id for s in repo.list_sites(engine, region="KE-22")] == ["ke-nbo-housing"]
    assert {s.id for s in repo.list_sites(engine, text="SOLAR")} == {"es-sev-solar", "au-bne-solar"}
    assert repo.list_sites(engine, site_ids=[]) == []
    assert [s.id for s in repo.list_sites(engine, site_ids=["br-cps-warehouse"], region="BR-SP")] == [
        "br-cps-warehouse"
    ]


def test_missing_site_raises_lookup_error(engine):
    with pytest.raises(SiteNotFoundError) as info:
        repo.get_site(engine, "nope")
    assert isinstance(info.value, LookupError)


def test_delete_site_removes_phases_and_is_audited(engine):
    repo.save_portfolio(engine, demo_portfolio())
    repo.delete_site(engine, "au-bne-solar", actor="alice")
    assert "au-bne-solar" not in {s.id for s in repo.list_sites(engine)}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM phases WHERE site_id='au-bne-solar'")).scalar() == 0
    entry = repo.audit_entries(engine, entity_id="au-bne-solar")[0]
    assert (entry["actor"], entry["action"]) == ("alice", "delete")


def test_scene_records_are_upserted_by_identity(engine):
    repo.save_portfolio(engine, demo_portfolio())
    when = datetime(2026, 5, 1, 10, 30, tzinfo=UTC)
    rec = SceneRecord("es-sev-solar", "local", "S2A_1", when, 80.0, 0.1, False, "cloud 80% > 60%")
    repo.save_scene_records(engine, [rec])
    repo.save_scene_records(engine, [rec])
    got = repo.list_scene_records(engine, "es-sev-solar")
    assert got == [rec]
    assert got[0].acquired_at_utc.tzinfo is not None


def test_naive_datetimes_are_refused(engine):
    repo.save_portfolio(engine, demo_portfolio())
    rec = SceneRecord("es-sev-solar", "local", "S2A_1", datetime(2026, 5, 1), 1.0, 1.0, True)
    with pytest.raises(Exception, match="naive datetime"):
        repo.save_scene_records(engine, [rec])


def test_migrations_reach_head_and_postgis_has_spatial_indexes(engine):
    assert store.schema_is_current(engine)
    if engine.dialect.name == "postgresql":
        names = {ix["name"] for ix in inspect(engine).get_indexes("sites")}
        assert "ix_sites_boundary_gist" in names
        with engine.connect() as conn:
            assert conn.execute(text("SELECT PostGIS_Version()")).scalar()
