"""Errors raised while reading, validating and transporting sensor readings."""

from __future__ import annotations


class IotError(Exception):
    """Root of all iot errors."""


class ReadingInvalidError(IotError, ValueError):
    """One reading failed validation; ``reasons`` lists every problem found in it."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__("; ".join(reasons))


class UnknownKindError(IotError, LookupError):
    """No reading kind is registered under this name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"unknown reading kind {name!r}")


class UnitInvalidError(IotError, ValueError):
    """A unit is not accepted for a reading kind."""


class BatchTooLargeError(IotError, ValueError):
    """A batch holds more readings than one request or message may carry."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"batch of {size} readings exceeds the limit of {limit}")


class CsvInvalidError(IotError, ValueError):
    """A readings CSV file cannot be read as a whole (missing columns, not text)."""


class BrokerUnavailableError(IotError, ConnectionError):
    """The MQTT broker cannot be reached or refused the connection."""


class SiteTimezoneError(IotError, ValueError):
    """A site's ``properties.timezone`` does not name a time zone."""

    def __init__(self, site_id: str, reason: str) -> None:
        self.site_id = site_id
        self.reason = reason
        super().__init__(f"site {site_id!r}: properties.timezone: {reason}")
