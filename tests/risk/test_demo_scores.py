from risk.alerts import evaluate_rules
from risk.scorecard import assess

PROGRESS = {"progress_deviation", "schedule_slip", "stall"}


def _fired(alert_config, card, inputs):
    a = assess(card, [inputs])[0]
    outcomes = evaluate_rules(alert_config, inputs, a, band_order=[b.name for b in card.bands])
    return {o.rule_id for o in outcomes if o.state == "fired"}


def test_on_track_and_ahead_score_well(card, demo_inputs, demo_inputs_with_activity):
    for inputs in (demo_inputs, demo_inputs_with_activity):
        for fate in ("on_track", "ahead", "finished"):
            assert assess(card, [inputs[fate]])[0].band in ("A", "B"), fate


def test_late_and_stalled_score_worse_with_progress_among_top_drivers(card, demo_inputs):
    good = assess(card, [demo_inputs["on_track"]])[0]
    for fate in ("late", "stalled"):
        a = assess(card, [demo_inputs[fate]])[0]
        assert a.score < good.score - 100
        assert a.band in ("D", "E")
        assert PROGRESS & set(a.top_drivers), (fate, a.top_drivers)


def test_stalled_site_silence_is_a_top_driver_when_sensors_are_given(card, demo_inputs_with_activity):
    a = assess(card, [demo_inputs_with_activity["stalled"]])[0]
    assert "site_silence" in a.top_drivers
    assert a.missing == ()


def test_missing_activity_is_shown_and_lowers_confidence(card, demo_inputs, demo_inputs_with_activity):
    without = assess(card, [demo_inputs["on_track"]])[0]
    with_ = assess(card, [demo_inputs_with_activity["on_track"]])[0]
    assert set(without.missing) == {"activity", "site_silence"}
    assert without.confidence < with_.confidence
    assert without.score < with_.score  # missing is not good news


def test_finished_site_activity_is_not_applicable(card, demo_inputs_with_activity):
    a = assess(card, [demo_inputs_with_activity["finished"]])[0]
    status = {c.driver: c.status for c in a.contributions}
    assert status["activity"] == status["site_silence"] == "not_applicable"
    assert a.confidence == 1.0


def test_demo_repayment_behaviour_follows_the_fates(demo_inputs):
    rep = {fate: i.repayment for fate, i in demo_inputs.items()}
    assert rep["late"].days_past_due > 30
    assert rep["stalled"].partial_payments_12m >= 1
    assert rep["stalled"].days_past_due == 0
    assert rep["cancelled"].days_past_due > 90
    assert rep["cancelled"].paid_ratio_12m == 0
    for fate in ("on_track", "ahead", "finished"):
        assert rep[fate].days_past_due == 0, fate
        assert rep[fate].paid_ratio_12m == 1.0, fate


def test_overdue_borrower_fires_the_high_repayment_alert(card, alert_config, demo_inputs):
    assert "repayment_overdue" in _fired(alert_config, card, demo_inputs["late"])
    assert "repayment_overdue" not in _fired(alert_config, card, demo_inputs["on_track"])
    assert _fired(alert_config, card, demo_inputs["on_track"]) == set()
    assert {"stall", "partial_payments"} <= _fired(alert_config, card, demo_inputs["stalled"])
    assert {"money_ahead_of_progress", "regional_drop"} <= _fired(alert_config, card, demo_inputs["cancelled"])
