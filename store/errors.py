"""Errors raised by the storage layer."""


class StoreError(Exception):
    """Root of all store errors."""


class SchemaOutdatedError(StoreError, RuntimeError):
    """The database schema is behind the code: run `sitewatch db upgrade`."""


class DatabaseUnavailableError(StoreError, ConnectionError):
    """The database cannot be reached."""
