"""Domain: sites, plans, loans, portfolios and the records shared across capabilities. Pure code."""

from aoi.errors import AoiError, LoanNotFoundError, PortfolioInvalidError, Problem, SiteNotFoundError
from aoi.model import Loan, Milestone, Phase, Plan, Portfolio, ScheduledAmount, Site
from aoi.records import SceneRecord

__all__ = [
    "AoiError",
    "Loan",
    "LoanNotFoundError",
    "Milestone",
    "Phase",
    "Plan",
    "Portfolio",
    "PortfolioInvalidError",
    "Problem",
    "SceneRecord",
    "ScheduledAmount",
    "Site",
    "SiteNotFoundError",
]
