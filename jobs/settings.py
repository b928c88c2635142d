"""Runtime configuration, read once at the front doors and passed down as plain values."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """SiteWatch configuration from ``SITEWATCH_*`` environment variables and an optional ``.env``.

    Every field is documented in README.md (Configuration).
    """

    model_config = SettingsConfigDict(env_prefix="SITEWATCH_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Root of the database file, scene cache and archives")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite file in data_dir")
    imagery_provider: Literal["local", "stac", "sentinelhub"] = "local"
    archive_dir: Path | None = Field(None, description="Local STAC archive; default data_dir/archive")
    stac_url: str | None = None
    stac_collection: str = "sentinel-2-l2a"
    sentinelhub_client_id: str | None = None
    sentinelhub_client_secret: str | None = None
    sentinelhub_base_url: str = "https://services.sentinel-hub.com"
    max_cloud_pct: float = Field(60.0, ge=0, le=100, description="Scenes cloudier than this over the site are skipped")
    # s2 by default: on the development seeds of bench/progress.py (101-603) it measured 0.09-0.14 pp
    # less progress error than the spectral-index estimator; on held-out seeds the two tie (README).
    checkpoint: str | None = Field(
        "s2", description="Change-detection checkpoint for progress; empty = spectral-index estimator"
    )
    torch_threads: int = Field(2, ge=1)
    stall_days: int = Field(
        28, ge=1, description="No observed progress for this long, while the plan expects some, flags a stall"
    )
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    api_workers: int = Field(1, ge=1)
    cors_origins: list[str] = Field(default_factory=list)
    api_rate_per_s: float = Field(20.0, gt=0, description="Requests per second each API key may sustain")
    api_rate_burst: int = Field(200, ge=1, description="Requests an API key may make at once before throttling")
    api_max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Largest request body accepted")
    mqtt_url: str | None = Field(None, description="e.g. mqtt://127.0.0.1:1883; none = HTTP and files only")
    smtp_host: str | None = Field(None, description="SMTP relay for officer alerts and borrower reminders")
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_sender: str = "sitewatch@localhost"
    webhook_url: str | None = Field(None, description="Risk engine endpoint for signed alert webhooks")
    webhook_secret: str | None = Field(None, description="HMAC-SHA256 secret shared with the webhook receiver")
    officer_email: str | None = Field(None, description="Officer in charge when a loan names none")
    dask_address: str | None = Field(
        None, description="Dask scheduler of refreshes, e.g. tcp://HOST:8786; none = this machine"
    )
    refresh_cadence_days: float = Field(5.0, gt=0, description="Days between two scheduled refreshes of a site")
    refresh_jitter: float = Field(
        1.0, ge=0, le=1, description="Share of the cadence over which sites' refresh times are spread"
    )
    job_lease_s: float = Field(
        1800.0,
        gt=0,
        description="A running job that has not renewed its lock row for this long is dead (SQLite locks)",
    )
    job_queued_timeout_s: float = Field(
        12 * 3600.0, gt=0, description="A job still queued this long after it was created is abandoned"
    )
    scene_max_read_attempts: int = Field(
        3, ge=1, description="Refreshes that fail to read a scene before it is rejected until an operator clears it"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = False

    @field_validator("checkpoint")
    @classmethod
    def _none_means_no_checkpoint(cls, value: str | None) -> str | None:
        """``SITEWATCH_CHECKPOINT=`` or ``=none`` selects the spectral-index estimator."""
        return None if value is None or value.strip().lower() in ("", "none") else value

    @model_validator(mode="after")
    def _provider_needs_its_settings(self) -> Self:
        if self.imagery_provider == "stac" and not self.stac_url:
            raise ValueError("SITEWATCH_STAC_URL is required when SITEWATCH_IMAGERY_PROVIDER=stac")
        if self.imagery_provider == "sentinelhub" and not (
            self.sentinelhub_client_id and self.sentinelhub_client_secret
        ):
            raise ValueError(
                "SITEWATCH_SENTINELHUB_CLIENT_ID and SITEWATCH_SENTINELHUB_CLIENT_SECRET are required "
                "when SITEWATCH_IMAGERY_PROVIDER=sentinelhub"
            )
        if self.dask_address is not None and "://" not in self.dask_address:
            raise ValueError(
                f"SITEWATCH_DASK_ADDRESS must be a scheduler address such as tcp://HOST:8786, not {self.dask_address!r}"
            )
        if self.webhook_url and not self.webhook_secret:
            raise ValueError(
                "SITEWATCH_WEBHOOK_SECRET is required when SITEWATCH_WEBHOOK_URL is set (webhooks are signed)"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file under the data directory."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'sitewatch.db').resolve()}"

    @property
    def resolved_archive_dir(self) -> Path:
        """The local imagery archive directory."""
        return self.archive_dir or self.data_dir / "archive"

    @property
    def cache_dir(self) -> Path:
        """Where fetched scenes are cached, one COG per provider, scene and site grid."""
        return self.data_dir / "cache"
