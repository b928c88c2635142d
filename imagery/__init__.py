"""SiteWatch imagery package."""
