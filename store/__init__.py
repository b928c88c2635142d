"""SiteWatch store package."""
