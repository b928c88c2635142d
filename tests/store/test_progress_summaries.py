"""The newest progress summary per site, chosen in SQL, on both backends."""

from dataclasses import replace
from datetime import timedelta

from aoi.demo import DEMO_AS_OF, demo_portfolio
from risk.demo import synthetic_progress
from store import progress_repo, repo


def _save(engine, summary) -> None:
    progress_repo.save_progress(
        engine, summary=summary, points=[], observations=[], records=[], inputs={"method": summary.method}
    )


def _stored_book(engine) -> dict[str, float]:
    """Six demo sites; five with several summaries, one without. Returns the newest observed_pct per site."""
    portfolio = demo_portfolio()
    repo.save_portfolio(engine, portfolio)
    newest: dict[str, float] = {}
    for k, site in enumerate(sorted(portfolio.sites, key=lambda s: s.id)[:5]):
        base = synthetic_progress(site)
        assert base is not None
        # an older day, then the current day twice: a second method computed later wins the tie on as_of
        _save(engine, replace(base, as_of=DEMO_AS_OF - timedelta(days=30), observed_pct=1.0 + k))
        _save(engine, replace(base, observed_pct=2.0 + k, method="baseline:a"))
        _save(engine, replace(base, observed_pct=3.0 + k, method="baseline:b"))
        # an older day stored last must not win: as-of day comes before computation time
        _save(engine, replace(base, as_of=DEMO_AS_OF - timedelta(days=60), observed_pct=4.0 + k))
        newest[site.id] = 3.0 + k
    return newest


def test_latest_summaries_picks_newest_day_then_newest_computation(engine):
    newest = _stored_book(engine)
    got = progress_repo.latest_summaries(engine)
    assert {s: v.observed_pct for s, v in got.items()} == newest
    assert all(v.as_of == DEMO_AS_OF and v.method == "baseline:b" for v in got.values())
    # the same choice as the one-site read the API's progress endpoint uses
    for site_id, summary in got.items():
        latest = progress_repo.latest_progress(engine, site_id)
        assert latest is not None
        assert latest[0] == summary


def test_latest_summary_page_walks_sites_in_id_order_with_a_cursor_and_scope(engine):
    newest = _stored_book(engine)
    ids = sorted(newest)
    first = progress_repo.latest_summary_page(engine, limit=2)
    assert [s.site_id for s in first] == ids[:2]
    rest = progress_repo.latest_summary_page(engine, after_site_id=first[-1].site_id, limit=10)
    assert [s.site_id for s in rest] == ids[2:]
    scoped = progress_repo.latest_summary_page(engine, site_ids=[ids[3], ids[0], "no-such-site"])
    assert [s.site_id for s in scoped] == [ids[0], ids[3]]
    assert progress_repo.latest_summary_page(engine, site_ids=[]) == []
    assert progress_repo.latest_summary_page(engine, after_site_id=ids[-1]) == []


def test_summaries_stored_before_stall_check_existed_still_load():
    site = demo_portfolio().sites[0]
    base = replace(synthetic_progress(site), stall_check="insufficient")
    raw = progress_repo.summary_to_json(base)
    assert progress_repo.summary_from_json(raw).stall_check == "insufficient"
    del raw["stall_check"]  # a row written by an older release
    assert progress_repo.summary_from_json(raw).stall_check is None
