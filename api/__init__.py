"""SiteWatch api package."""
