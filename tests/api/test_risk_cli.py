import json

import pytest
import typer
from typer.testing import CliRunner

from aoi.demo import DEMO_AS_OF, demo_portfolio
from api.cli import risk as risk_cli
from jobs.demo import load_demo_risk_inputs
from jobs.risk import score_portfolio
from jobs.settings import Settings
from store import repo, risk_repo
from store.risk_errors import AlertNotFoundError
from tests.jobs.risk_helpers import demo_progress


@pytest.fixture
def cli(engine, db_url, tmp_path):
    root = typer.Typer()

    @root.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = Settings(data_dir=tmp_path / "data", database_url=db_url)

    root.add_typer(risk_cli.app)
    runner = CliRunner()
    return lambda *args: runner.invoke(root, list(args), catch_exceptions=False)


def test_feeds_scores_and_alert_lifecycle_from_the_cli(cli, engine, tmp_path):
    repo.save_portfolio(engine, demo_portfolio())
    load_demo_risk_inputs(engine, DEMO_AS_OF)
    feed = tmp_path / "payments.csv"
    feed.write_text("loan_id,due_date,amount_due,paid_date,amount_paid\nL-de-rgb-hall,2026-12-01,10,,\nL-x,bad,1,,\n")
    result = cli("loans", "payments", str(feed))
    assert result.exit_code == 0
    assert "1 row(s) stored" in result.output
    assert "1 row(s) rejected" in result.output
    assert "row 3 (L-x): loan_id: unknown loan" in result.output
    assert "row 3" in cli("loans", "rejected").output
    score_portfolio(engine, as_of=DEMO_AS_OF, progress=demo_progress())
    rows = json.loads(cli("scores", "--json").stdout)
    assert {r["loan_id"]: r["band"] for r in rows}["L-es-sev-solar"] in ("A", "B")
    assert all({"score", "band", "top_drivers"} <= set(r) for r in rows)
    assert "L-de-rgb-hall" in cli("scores").output
    alerts = json.loads(cli("alerts", "--json").stdout)
    alert_id = next(a["id"] for a in alerts if a["rule_id"] == "repayment_overdue")
    assert cli("alerts", "ack", str(alert_id), "--note", "called", "--by", "ana").exit_code == 0
    assert risk_repo.get_alert(engine, alert_id).status == "acknowledged"
    assert cli("alerts", "resolve", str(alert_id), "--note", "paid", "--by", "ana").exit_code == 0
    assert alert_id not in {a["id"] for a in json.loads(cli("alerts", "--json").stdout)}
    assert alert_id in {a["id"] for a in json.loads(cli("alerts", "--json", "--all").stdout)}
    cases = json.loads(cli("cases", "--json").stdout)
    assert cases
    assert len(cases[0]["tasks"]) == 3
    assert cli("cases", "respond", str(cases[0]["id"]), "--plan", "restructuring", "--note", "n").exit_code == 0
    with pytest.raises(AlertNotFoundError):
        cli("alerts", "ack", "999999")


def test_market_import_from_the_cli(cli, tmp_path):
    f = tmp_path / "m.csv"
    f.write_text("region,indicator,date,value\nDE-BY,construction_output,2026-10-01,101.5\nDE-BY,,2026-10-01,x\n")
    result = cli("market", "import", str(f))
    assert "1 row(s) stored" in result.output
    assert "1 row(s) rejected" in result.output
