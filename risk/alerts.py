"""Early-warning alert rules, the watch-list case template and notification thresholds (pure).

A rule reads one feature of a loan's :class:`RiskInputs` (or the score's band) and is, for that
loan, ``fired``, ``clear`` or ``unknown`` (its input is missing). The caller keeps one
unresolved alert per ``dedupe_key``: a fired rule whose alert is still open does not fire
again, a clear rule resolves it, and an unknown rule leaves it as it is (missing data is not
good news).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from risk.errors import ScorecardInvalidError
from risk.records import RiskAssessment, RiskInputs, RuleOutcome

SEVERITIES = ("low", "medium", "high")
RESPONSE_PLANS = ("payment_plan", "restructuring", "collateral_action", "monitor")


def severity_rank(severity: str) -> int:
    """0 for low, 1 for medium, 2 for high."""
    return SEVERITIES.index(severity)


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One configured rule.

    Attributes:
        id: Rule id, part of the dedupe key.
        kind: "threshold" (on a feature) or "band" (on the score's band).
        feature: The feature a threshold rule reads.
        above: Fires when the feature is > this (when set).
        at_most: ... and <= this (when set), to split a feature into tiers.
        below: Fires when the feature is < this (when set).
        worst_band_from: A band rule fires when the band is this one or worse.
        severity: "low", "medium" or "high".
        title: Human summary; ``{value}`` and the thresholds may appear in it.
        evidence: Extra features attached as evidence.
        remind_borrower: Send the borrower a payment reminder when it opens.
    """

    id: str
    kind: str
    severity: str
    title: str
    feature: str = ""
    above: float | None = None
    at_most: float | None = None
    below: float | None = None
    worst_band_from: str = ""
    evidence: tuple[str, ...] = ()
    remind_borrower: bool = False


@dataclass(frozen=True, slots=True)
class TaskTemplate:
    """A task a new case gives one department."""

    department: str
    title: str
    due_days: int


@dataclass(frozen=True, slots=True)
class AlertConfig:
    """A versioned alert configuration (rules, case template, notification thresholds).

    Attributes:
        version: e.g. "alerts-v1".
        sha256: Hash of the text it was read from.
        rules: In evaluation order.
        case_severity: Alerts at or above this severity open a watch-list case.
        tasks: Tasks each new case gets.
        owners: Default owner per department.
        webhook_min_severity: Alerts at or above this are posted to the webhook.
        email_min_severity: Alerts at or above this are e-mailed to the officer in charge.
    """

    version: str
    sha256: str
    rules: tuple[AlertRule, ...]
    case_severity: str
    tasks: tuple[TaskTemplate, ...]
    owners: Mapping[str, str]
    webhook_min_severity: str
    email_min_severity: str

    def case_tasks(self, opened_on: date) -> list[tuple[str, str, str, date]]:
        """(department, title, owner, due date) of the tasks of a case opened on ``opened_on``."""
        return [
            (t.department, t.title, self.owners.get(t.department, t.department), opened_on + timedelta(days=t.due_days))
            for t in self.tasks
        ]


def parse_alert_config(doc: Any, *, text: str = "", source: str = "alerts") -> AlertConfig:
    """Validate an alert configuration document (parsed YAML).

    Raises:
        ScorecardInvalidError: listing every problem found.
    """
    problems: list[str] = []
    if not isinstance(doc, Mapping):
        raise ScorecardInvalidError(source, ["the document must be a mapping"])
    version = doc.get("version")
    if not isinstance(version, str) or not version:
        problems.append("version: a non-empty string is required")
    rules: list[AlertRule] = []
    ids: set[str] = set()
    for k, raw in enumerate(doc.get("rules") or []):
        rule = _rule(raw, f"rules[{k}]", problems)
        if rule is None:
            continue
        if rule.id in ids:
            problems.append(f"rules[{k}].id: duplicate id {rule.id!r}")
        ids.add(rule.id)
        rules.append(rule)
    if not rules:
        problems.append("rules: at least one rule is required")
    cases = doc.get("cases") or {}
    tasks = []
    for k, raw in enumerate(cases.get("tasks") or []):
        if not isinstance(raw, Mapping) or not raw.get("department") or not isinstance(raw.get("due_days"), int):
            problems.append(f"cases.tasks[{k}]: department, title and integer due_days are required")
            continue
        tasks.append(TaskTemplate(str(raw["department"]), str(raw.get("title", "")), int(raw["due_days"])))
    notify = doc.get("notifications") or {}
    levels = {
        "cases.open_at": cases.get("open_at", "high"),
        "notifications.webhook_min_severity": notify.get("webhook_min_severity", "low"),
        "notifications.email_min_severity": notify.get("email_min_severity", "medium"),
    }
    for where, level in levels.items():
        if level not in SEVERITIES:
            problems.append(f"{where}: one of {', '.join(SEVERITIES)}, got {level!r}")
    if problems:
        raise ScorecardInvalidError(source, problems)
    return AlertConfig(
        version=str(version),
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        rules=tuple(rules),
        case_severity=str(levels["cases.open_at"]),
        tasks=tuple(tasks),
        owners={str(k): str(v) for k, v in (cases.get("owners") or {}).items()},
        webhook_min_severity=str(levels["notifications.webhook_min_severity"]),
        email_min_severity=str(levels["notifications.email_min_severity"]),
    )


def _opt(raw: Mapping[str, Any], key: str, where: str, problems: list[str]) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        problems.append(f"{where}.{key}: a finite number is required, got {value!r}")
        return None
    return float(value)


def _rule(raw: Any, where: str, problems: list[str]) -> AlertRule | None:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("id"), str):
        problems.append(f"{where}: a mapping with a string id is required")
        return None
    where = f"{where} ({raw['id']})"
    kind = raw.get("kind", "threshold")
    severity = raw.get("severity")
    if severity not in SEVERITIES:
        problems.append(f"{where}.severity: one of {', '.join(SEVERITIES)}, got {severity!r}")
    rule = AlertRule(
        id=raw["id"],
        kind=str(kind),
        severity=str(severity),
        title=str(raw.get("title", raw["id"])),
        feature=str(raw.get("feature", "")),
        above=_opt(raw, "above", where, problems),
        at_most=_opt(raw, "at_most", where, problems),
        below=_opt(raw, "below", where, problems),
        worst_band_from=str(raw.get("worst_band_from", "")),
        evidence=tuple(str(e) for e in raw.get("evidence") or ()),
        remind_borrower=bool(raw.get("remind_borrower", False)),
    )
    if kind == "threshold":
        if not rule.feature:
            problems.append(f"{where}.feature: required for a threshold rule")
        if rule.above is None and rule.below is None:
            problems.append(f"{where}: a threshold rule needs 'above' or 'below'")
    elif kind == "band":
        if not rule.worst_band_from:
            problems.append(f"{where}.worst_band_from: required for a band rule")
    else:
        problems.append(f"{where}.kind: 'threshold' or 'band', got {kind!r}")
    return rule


def _fires(rule: AlertRule, x: float) -> bool:
    return (
        (rule.above is None or x > rule.above)
        and (rule.at_most is None or x <= rule.at_most)
        and (rule.below is None or x < rule.below)
    )


def _title(rule: AlertRule, value: float | None, band: str) -> str:
    try:
        return rule.title.format(value=value, above=rule.above, below=rule.below, band=band)
    except (KeyError, IndexError, ValueError, TypeError):  # a format spec meeting None, a typo
        return rule.title


def evaluate_rules(
    config: AlertConfig, inputs: RiskInputs, assessment: RiskAssessment, *, band_order: Sequence[str]
) -> list[RuleOutcome]:
    """Evaluate every rule for one loan.

    Args:
        config: The alert configuration.
        inputs: The loan's inputs.
        assessment: Its score (for band rules and as evidence).
        band_order: Band names, best first (from the scorecard).

    Returns:
        One outcome per rule, in configuration order.
    """
    features = inputs.features()
    out: list[RuleOutcome] = []
    for rule in config.rules:
        evidence: dict[str, Any] = {
            "as_of": inputs.as_of.isoformat(),
            "score": round(assessment.score, 1),
            "band": assessment.band,
            "config_version": assessment.config_version,
        }
        if rule.kind == "band":
            value: float | None = float(band_order.index(assessment.band))
            state = "fired" if band_order.index(assessment.band) >= band_order.index(rule.worst_band_from) else "clear"
            evidence["worst_band_from"] = rule.worst_band_from
            evidence["top_drivers"] = list(assessment.top_drivers)
        else:
            value = features.get(rule.feature)
            state = "unknown" if value is None else "fired" if _fires(rule, value) else "clear"
            evidence[rule.feature] = value
            limits = (("above", rule.above), ("at_most", rule.at_most), ("below", rule.below))
            evidence.update({k: v for k, v in limits if v is not None})
        for name in rule.evidence:
            evidence[name] = features.get(name)
        if rule.evidence and "oldest_unpaid_due" in rule.evidence:
            due = inputs.repayment.oldest_unpaid_due
            evidence["oldest_unpaid_due"] = due.isoformat() if due else None
        title = _title(rule, value, assessment.band)
        out.append(
            RuleOutcome(
                rule_id=rule.id,
                loan_id=inputs.loan_id,
                state=state,
                dedupe_key=f"{inputs.loan_id}:{rule.id}",
                severity=rule.severity,
                title=title,
                evidence=evidence,
                remind_borrower=rule.remind_borrower,
            )
        )
    return out
