import copy
import math

import numpy as np
import pytest
import yaml

from risk.config import DEFAULT_CONFIG_DIR, read_scorecard
from risk.errors import ConfigVersionNotFoundError, ScorecardInvalidError
from risk.records import RiskInputs
from risk.scorecard import MISSING_BIN, NOT_APPLICABLE_BIN, assess, parse_scorecard, score_columns


def _doc():
    return yaml.safe_load((DEFAULT_CONFIG_DIR / "scorecard-v1.yaml").read_text())


def test_digitize_bins_include_left_edge_exclude_right(card):
    dpd = next(d for d in card.drivers if d.name == "days_past_due")
    x = np.array([0.0, 1.0, 29.9, 30.0, 89.0, 90.0, 400.0])
    book = score_columns(card, {"days_past_due": x})
    j = [d.name for d in card.drivers].index("days_past_due")
    assert book.bins[:, j].tolist() == [0, 1, 1, 2, 3, 4, 4]
    assert book.points[:, j].tolist() == [dpd.points[b] for b in [0, 1, 1, 2, 3, 4, 4]]


def test_missing_input_scores_no_better_than_median_bin_and_lowers_confidence(card):
    known = {d.feature: np.array([np.nan, np.nan]) for d in card.drivers}
    known["days_past_due"] = np.array([0.0, np.nan])
    book = score_columns(card, known)
    j = [d.name for d in card.drivers].index("days_past_due")
    assert book.bins[1, j] == MISSING_BIN
    assert book.points[1, j] <= np.median(card.drivers[j].points)
    assert book.points[1, j] < book.points[0, j]
    assert book.confidence[1] < book.confidence[0]
    assert book.score[1] < book.score[0]


def test_every_shipped_driver_treats_missing_as_neutral_to_cautious(card):
    for drv in card.drivers:
        assert drv.missing_points <= float(np.median(drv.points)), drv.name
        assert drv.missing_points < drv.best_points, drv.name


def test_not_applicable_uses_configured_points_and_keeps_confidence(card):
    x = {"activity_index": np.array([np.nan]), "silence_hours": np.array([np.nan])}
    na = {"activity_index": np.array([True]), "silence_hours": np.array([True])}
    book_na = score_columns(card, x, na)
    book_missing = score_columns(card, x)
    j = [d.feature for d in card.drivers].index("activity_index")
    assert book_na.bins[0, j] == NOT_APPLICABLE_BIN
    assert book_na.points[0, j] == card.drivers[j].not_applicable_points
    assert book_na.confidence[0] > book_missing.confidence[0]


def test_score_maps_to_pd_by_points_to_double_odds(card):
    p0 = card.pd_for(card.target_score)
    assert p0 == pytest.approx(1 / (1 + card.target_odds))
    odds = lambda p: (1 - p) / p  # noqa: E731
    assert odds(card.pd_for(card.target_score + card.pdo)) == pytest.approx(2 * card.target_odds)


def test_bands_follow_min_scores(card):
    x = {d.feature: np.full(1, np.nan) for d in card.drivers}
    book = score_columns(card, x)
    mins = {b.name: b.min_score for b in card.bands}
    band = card.bands[int(book.band[0])]
    assert band.min_score is None or book.score[0] >= band.min_score
    better = [b for b in card.bands if b.min_score is not None and b.min_score > book.score[0]]
    assert all(mins[b.name] > book.score[0] for b in better)


def test_vectorised_scores_equal_one_by_one(card, demo_inputs):
    items = list(demo_inputs.values())
    together = assess(card, items)
    alone = [assess(card, [i])[0] for i in items]
    assert together == alone


def test_inputs_round_trip_through_json_and_rescore_identically(card, demo_inputs):
    for item in demo_inputs.values():
        back = RiskInputs.from_json(copy.deepcopy(item.to_json()))
        assert back == item
        assert assess(card, [back]) == assess(card, [item])


def test_bad_config_lists_every_problem():
    doc = _doc()
    doc["drivers"][0]["points"] = [1, 2]  # wrong length
    doc["drivers"][1]["missing_points"] = 999  # better than the median bin
    doc["scale"]["pdo"] = -1
    with pytest.raises(ScorecardInvalidError) as err:
        parse_scorecard(doc)
    text = str(err.value)
    assert "days_past_due" in text
    assert "paid_ratio_12m" in text
    assert "pdo" in text
    assert len(err.value.problems) == 3


def test_unknown_version_is_a_lookup_error():
    with pytest.raises(ConfigVersionNotFoundError):
        read_scorecard("scorecard-v99")
    with pytest.raises(LookupError):
        read_scorecard("../etc/passwd")


def test_top_drivers_are_the_largest_shortfalls(card, demo_inputs):
    a = assess(card, [demo_inputs["late"]])[0]
    shortfall = {c.driver: c.shortfall for c in a.contributions}
    assert list(a.top_drivers) == sorted(a.top_drivers, key=lambda d: -shortfall[d])
    assert all(shortfall[d] >= max(card.min_shortfall, 1e-9) for d in a.top_drivers)
    assert math.isclose(a.score, card.base_points + sum(c.points for c in a.contributions))


def test_columns_from_stored_json_equal_columns_from_records(demo_inputs_with_activity):
    from risk.scorecard import feature_columns, feature_columns_from_json

    items = list(demo_inputs_with_activity.values())
    cols, masks = feature_columns(items)
    cols_json, masks_json = feature_columns_from_json([i.to_json() for i in items])
    assert cols.keys() == cols_json.keys()
    assert masks.keys() == masks_json.keys()
    for k in cols:
        np.testing.assert_array_equal(cols[k], cols_json[k])
    for k in masks:
        np.testing.assert_array_equal(masks[k], masks_json[k])
