"""SiteWatch models package."""
