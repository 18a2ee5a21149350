"""The key service's configuration: one typed object read from ``JWKIT_*`` variables and CLI flags.

Secrets (master key, admin token, admin password) are :class:`pydantic.SecretStr`, so their
``repr`` is masked and they never reach a log line by accident.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Everything the service needs to run; every field maps to ``JWKIT_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="JWKIT_", extra="ignore", frozen=True)

    home: Path = Path(".jwkit")
    database_url: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    master_key: SecretStr | None = None
    admin_token: SecretStr | None = None
    admin_password: SecretStr | None = None
    #: How often each replica polls the database for key/client changes (seconds).
    sync_interval: float = Field(default=1.0, gt=0, le=60)
    #: How often the rotation/retirement scheduler runs (seconds); 0 disables it.
    scheduler_interval: float = Field(default=10.0, ge=0)
    #: How far ahead (seconds) each replica records the latest token expiry a key may sign:
    #: a retiring key stays published up to this long after its last token could expire,
    #: and during a database outage tokens keep being issued for at least half of it.
    exp_headroom: int = Field(default=600, ge=10, le=7 * 86400)
    #: Deadline of any one database call (seconds); past it the admin API answers 503.
    db_timeout: float = Field(default=5.0, ge=1, le=300)
    #: Leeway for clocks of verifiers that differ from ours (seconds).
    clock_skew: int = Field(default=60, ge=0, le=3600)
    #: Lifetime of console sessions (seconds).
    session_ttl: int = Field(default=8 * 3600, ge=60)
    log_level: str = "info"

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        value = value.rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("public_url must start with http:// or https://")
        return value

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL: ``JWKIT_DATABASE_URL`` or SQLite at ``{home}/jwkit.db``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'jwkit.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")
