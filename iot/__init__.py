"""SiteWatch iot package."""
