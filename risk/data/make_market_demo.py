"""Regenerate market_demo.csv next to this script: ``python risk/data/make_market_demo.py``."""

from pathlib import Path

from risk.demo import demo_market_series, market_csv

if __name__ == "__main__":
    target = Path(__file__).resolve().parent / "market_demo.csv"
    target.write_text(market_csv(demo_market_series()), encoding="utf-8")
