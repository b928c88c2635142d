"""SiteWatch jobs package."""
