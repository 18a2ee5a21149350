"""SQLAlchemy 2 models. Times are integer Unix seconds (UTC), identical on SQLite and PostgreSQL
(except the login lockout's, which are float seconds).

Invariant enforced by the database: at most one ``active`` key per project, through a partial
unique index (``WHERE state = 'active'``) that both SQLite and PostgreSQL support.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AdminCredential",
    "AuditEvent",
    "Base",
    "Client",
    "ConsoleSession",
    "ForeignPublicKey",
    "IssuedBatch",
    "Key",
    "LoginFailure",
    "Project",
    "ProjectChange",
    "Revocation",
    "ServiceState",
    "StatusList",
    "TokenStatus",
]


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    audience: Mapped[str] = mapped_column(String(500))
    algorithm: Mapped[str] = mapped_column(String(16))
    token_ttl: Mapped[int] = mapped_column(Integer)
    max_token_ttl: Mapped[int] = mapped_column(Integer)
    jwks_max_age: Mapped[int] = mapped_column(Integer)
    rotation_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    #: Whether issued access tokens carry a Token Status List ``status`` claim.
    token_status: Mapped[bool] = mapped_column(Boolean, default=False)
    # -- branch dpop (migration 0005_dpop): the token endpoint requires a DPoP proof.
    dpop_required: Mapped[bool] = mapped_column(Boolean, default=False)
    # -- scale-state (issue 18): when the scheduler next has work here (NULL: none) ------
    next_due_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)


# -- scale-state (issue 18): which project each change touched ------------------------------
class ProjectChange(Base):
    """One row per project ever changed (kept after a delete), with the change ``version`` of
    its latest change: a replica at version ``V`` rebuilds the projects of ``version > V``.
    ``project_id = '*'`` stands for changes that touch no project (admin credentials)."""

    __tablename__ = "project_changes"

    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, index=True)


class Key(Base):
    __tablename__ = "keys"
    __table_args__ = (
        UniqueConstraint("project_id", "kid", name="uq_keys_project_kid"),
        Index(
            "uq_keys_one_active",
            "project_id",
            unique=True,
            sqlite_where=text("state = 'active'"),
            postgresql_where=text("state = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    kid: Mapped[str] = mapped_column(String(128))
    alg: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[str | None] = mapped_column(Text, nullable=True)
    wrapped_dek: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    kek_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[int] = mapped_column(BigInteger)
    published_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    activated_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    retired_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_exp: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # custody-hsm (issue 15): where the private key lives (service/keys). ``local`` keys are
    # sealed in wrapped_dek/ciphertext; others leave those empty and are found again by
    # key_handle (the PKCS#11 label); destroyed_at: when a revoked key left its backend.
    backend: Mapped[str] = mapped_column(String(16), default="local", server_default="local")
    key_handle: Mapped[str | None] = mapped_column(String(256), nullable=True)
    destroyed_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)


class AuditEvent(Base):
    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    kid: Mapped[str | None] = mapped_column(String(128), nullable=True)
    detail: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class ServiceState(Base):
    """One row (id=1): the change counter replicas poll, and the audit chain's head."""

    __tablename__ = "service_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    audit_seq: Mapped[int] = mapped_column(BigInteger)
    audit_head: Mapped[str] = mapped_column(String(64))
    #: Bumped by every change of a token status (revocations, issuance records that a
    #: revocation rule caught); replicas rebuild only the lists whose ``status_seq`` moved.
    status_version: Mapped[int] = mapped_column(BigInteger, default=0)


class AdminCredential(Base):
    """Hashes only: SHA-256 of admin API tokens, argon2id of console passwords."""

    __tablename__ = "admin_credentials"

    username: Mapped[str] = mapped_column(String(100), primary_key=True)
    token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)


class ConsoleSession(Base):
    """Console sessions; the id is stored only as its SHA-256."""

    __tablename__ = "console_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(100))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)


class LoginFailure(Base):
    """Failed console logins per (client address, SHA-256 of the lower-cased user name), shared
    by every worker and replica (:mod:`jwkit.service.domain.logins`). Times are float seconds."""

    __tablename__ = "login_failures"

    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    locked_until: Mapped[float] = mapped_column(Float)
    last_failure: Mapped[float] = mapped_column(Float, index=True)


class StatusList(Base):
    """One Token Status List of a project (draft-ietf-oauth-status-list), served at
    ``{issuer}/statuslists/{number}``. Replicas reserve blocks of indices by advancing
    ``next_index``; a full list is recycled only after ``reuse_after`` (every token that held
    one of its indices expired, plus clock skew and the list's cache lifetime)."""

    __tablename__ = "status_lists"
    __table_args__ = (UniqueConstraint("project_id", "number", name="uq_status_lists_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    next_index: Mapped[int] = mapped_column(Integer)
    reuse_after: Mapped[int] = mapped_column(BigInteger)
    status_seq: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)


class IssuedBatch(Base):
    """The issuance records of tokens with a status that one replica wrote together and that
    share a project, list, ``sub``, ``sid``, ``client_id`` and ``rules_seen``: what a revocation
    by ``sub``, ``sid``, ``client_id`` or ``jti`` matches (see
    :mod:`jwkit.service.domain.issued`). ``idxs``, ``exps`` and ``issued`` (milliseconds after
    ``first_ms``) are unsigned 32-bit little-endian arrays, ``jtis`` the token ids separated by
    spaces, all in one order. ``rules_seen`` is the highest revocation id the issuing replica
    knew when it signed: a matching revocation with a higher id applies when the batch is
    written (see :mod:`jwkit.service.domain.revocation`)."""

    __tablename__ = "issued_batches"
    __table_args__ = (
        Index("ix_issued_batches_sub", "project_id", "sub"),
        # Partial: most tokens have no sid. No index on client_id: a client's tokens have it
        # as their sub. A jti names its list and index (tokens.new_jti).
        Index(
            "ix_issued_batches_sid",
            "project_id",
            "sid",
            sqlite_where=text("sid IS NOT NULL"),
            postgresql_where=text("sid IS NOT NULL"),
        ),
        Index("ix_issued_batches_list", "list_id", "first_idx"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    project_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("projects.id", ondelete="CASCADE")
    )
    list_id: Mapped[int] = mapped_column(Integer, ForeignKey("status_lists.id", ondelete="CASCADE"))
    sub: Mapped[str] = mapped_column(String(255))
    sid: Mapped[str | None] = mapped_column(String(128), nullable=True)
    client_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rules_seen: Mapped[int] = mapped_column(BigInteger)
    first_idx: Mapped[int] = mapped_column(Integer)
    last_idx: Mapped[int] = mapped_column(Integer)
    first_ms: Mapped[int] = mapped_column(BigInteger)
    last_ms: Mapped[int] = mapped_column(BigInteger)
    exp: Mapped[int] = mapped_column(BigInteger)  # the latest of its tokens
    count: Mapped[int] = mapped_column(Integer)
    idxs: Mapped[bytes] = mapped_column(LargeBinary)
    exps: Mapped[bytes] = mapped_column(LargeBinary)
    issued: Mapped[bytes] = mapped_column(LargeBinary)
    jtis: Mapped[str] = mapped_column(Text)


class TokenStatus(Base):
    """The status of one token with a status other than VALID (a token without a row is
    VALID), by its list and index; ``exp`` is the token's, so a list is built from its live
    entries only."""

    __tablename__ = "token_statuses"
    __table_args__ = ({"sqlite_with_rowid": False},)

    list_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("status_lists.id", ondelete="CASCADE"), primary_key=True
    )
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[int] = mapped_column(BigInteger)
    exp: Mapped[int] = mapped_column(BigInteger)


class Revocation(Base):
    """One revocation request: every live token of the project whose ``kind`` (``jti``,
    ``sub``, ``sid``, ``client_id``) equals ``value`` got ``status`` (``invalid``,
    ``suspended``, or ``valid`` to lift a suspension). Ids grow in commit order per project
    (the project row is locked while one is written)."""

    __tablename__ = "revocations"
    __table_args__ = (Index("ix_revocations_project", "project_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("projects.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(Integer)
    effective_by: Mapped[int] = mapped_column(BigInteger)


# -- custody-byok: foreign public keys (migration from another issuer) --------------------------
class ForeignPublicKey(Base):
    """Another issuer's public key, published in the project's JWKS until ``until`` (then
    gone from it, whether or not the row was removed). Public members only: no private key
    material is ever stored here (:mod:`jwkit.service.domain.foreign`)."""

    __tablename__ = "foreign_keys"
    __table_args__ = (UniqueConstraint("project_id", "kid", name="uq_foreign_keys_project_kid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    kid: Mapped[str] = mapped_column(String(128))
    thumbprint: Mapped[str] = mapped_column(String(64))
    public_jwk: Mapped[str] = mapped_column(Text)
    #: Where the key came from: the JWKS URL, or ``"body"`` for a JWKS sent in the request.
    source: Mapped[str] = mapped_column(String(2048))
    created_at: Mapped[int] = mapped_column(BigInteger)
    until: Mapped[int] = mapped_column(BigInteger)


# -- scale-api: the admin lists' keyset pages (domain/paging.py) read these indexes in order,
# so a page costs the same at the first project and the hundred-thousandth (0007_scale_api).
Index("ix_projects_created", Project.created_at, Project.id)
Index("ix_clients_project_created", Client.project_id, Client.created_at, Client.id)
Index("ix_audit_events_project_seq", AuditEvent.project_id, AuditEvent.seq)
# A name search is a range on lower(name) (code point order: COLLATE "C" on PostgreSQL).
Index("ix_projects_name", func.lower(Project.name).collate("C")).ddl_if(dialect="postgresql")
Index("ix_projects_name", func.lower(Project.name)).ddl_if(dialect="sqlite")
