"""SiteWatch risk package."""
