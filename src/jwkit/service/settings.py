"""The key service's configuration: one typed object read from ``JWKIT_*`` variables and CLI flags.

Secrets (master key, admin token, admin password) are :class:`pydantic.SecretStr`, so their
``repr`` is masked and they never reach a log line by accident.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

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
    #: Answer plain JWKS, discovery and token requests straight from the HTTP parser
    #: (``service/http/wire.py``); ``false`` serves every request through the ASGI routes.
    fast_path: bool = True
    #: Move the heap into transparent huge pages once it is built (Linux 6.1+;
    #: ``service/hugepages.py``): fewer TLB misses when requests spread over many projects.
    huge_pages: bool = True
    #: Longest request line or header field accepted (bytes): longer is 414 or 431.
    max_header_line: int = Field(default=8192, ge=1024, le=1 << 20)
    #: Largest request head (request line and header fields) accepted (bytes): larger is 431.
    max_header_bytes: int = Field(default=32768, ge=1024, le=1 << 24)
    #: Seconds a connection may take to send a whole request head before it is closed.
    header_timeout: float = Field(default=10.0, gt=0, le=3600)
    #: Who may read ``/metrics``: ``public`` (anyone), ``admin`` (the admin token or a console
    #: session) or ``off`` (404).
    metrics: Literal["public", "admin", "off"] = "admin"
    #: Who may read the admin API's OpenAPI document and its docs page: as for ``metrics``.
    api_docs: Literal["public", "admin", "off"] = "admin"
    #: Proxies whose ``X-Forwarded-For``/``-Proto`` are believed (uvicorn's
    #: ``forwarded_allow_ips``: comma-separated addresses or networks, ``*`` for any). Empty
    #: (the default): no forwarded header is believed, the peer address is the client.
    forwarded_allow_ips: str = ""
    #: Console password checks (argon2, ~64 MiB each) running at once per worker process;
    #: a login beyond that is answered 503 with ``Retry-After`` instead of queued.
    login_concurrency: int = Field(default=2, ge=1, le=64)
    #: How long verifiers may cache a status list (its ``ttl`` claim and ``max-age``, seconds).
    status_list_ttl: int = Field(default=60, ge=1, le=86400)
    #: Most concurrent ``/events`` listeners per process; one more is answered 503.
    events_max_listeners: int = Field(default=1000, ge=0, le=100_000)
    #: Seconds between ``: ping`` comments on ``/events``.
    events_heartbeat: float = Field(default=15.0, gt=0, le=300)
    #: custody-byok: allow ``http://`` JWKS URLs when importing foreign keys (local tests
    #: only; https is required otherwise).
    foreign_jwks_allow_http: bool = False
    # custody-hsm (issue 15): where new signing keys are made (docs/custody.md).
    #: ``local`` (sealed in the database) or ``pkcs11`` (generated inside a PKCS#11 token).
    key_backend: Literal["local", "pkcs11"] = "local"
    #: The PKCS#11 module (shared library), e.g. ``/usr/lib/softhsm/libsofthsm2.so``.
    pkcs11_module: Path | None = None
    #: The token, by label or by slot id (one of them when the module has several tokens).
    pkcs11_token_label: str | None = None
    pkcs11_slot: int | None = Field(default=None, ge=0)
    #: The user PIN, from the environment or from a file (never a command-line flag).
    pkcs11_pin: SecretStr | None = None
    pkcs11_pin_file: Path | None = None
    #: Projects whose state (rendered documents, decrypted signing key) each worker keeps in
    #: memory, least recently used dropped first; the others are built on their first request.
    state_cache: int = Field(default=100_000, ge=1, le=10_000_000)
    # scale-sync (issue 18): a cheap change check between the syncs.
    #: Seconds between each replica's look at the change counters (one one-row read); a
    #: change found is applied at once (only the projects it names). The heavier sync work
    #: (expiry marks, foreign keys ended, status re-signing) keeps ``sync_interval``.
    change_check_interval: float = Field(default=0.2, gt=0, le=60)

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
