"""The key lifecycle state machine: ``next`` -> ``active`` -> ``retiring`` -> ``revoked``.

Rules (times are Unix seconds, ``max_age`` is the project's advertised ``jwks_max_age``):

* Graceful rotation promotes the ``next`` key only once it has been published for at least
  ``max_age`` (every verifier's cached JWKS then already holds it), to the sub-second and on
  every replica: times are whole seconds, so a key stored as published at ``t`` may have been
  committed at ``t + 0.99``; and a replica serves a new key only once it has synced. So the
  safe time is ``published_at + 1 + SYNC_MARGIN + max_age`` (:func:`activate_safe_at`), and a
  replica that has not confirmed its snapshot for ``SYNC_MARGIN`` seconds shortens the
  ``max-age`` it advertises to match (:meth:`jwkit.service.state.ProjectView.cache_max_age`).
  With ``max_age == 0`` nothing is cached and no wait is needed. The old active key becomes
  ``retiring`` and a fresh ``next`` key is pre-published at once.
* A ``retiring`` key leaves the JWKS only after the latest ``exp`` it may have signed (plus
  the clock-skew leeway) has passed. That ``max_exp`` is an upper bound recorded *before* any
  token reaches it: each replica reserves ``exp`` marks ahead of time (:func:`reserve_exp`,
  ``JWKIT_EXP_HEADROOM`` seconds beyond what it signs now, renewed in the background), and only
  while the key is still ``active``. A replica killed outright therefore loses nothing, and
  one that missed the rotation cannot sign past the recorded mark.
* Anything that would break a valid token raises :class:`Conflict` (HTTP 409) with the earliest
  safe time, unless ``emergency=True``.
* "Replace now" activates a new key at once and revokes the previous active key at once; it needs
  ``confirm_invalidate=True`` when an active key exists.
* Shared-secret (HS*) projects publish nothing: verifiers hold the secrets the admin API showed
  once. So no HS key is ever created behind the admin's back (rotation and the scheduler do not
  pre-publish a next key for them): an admin generates the next secret (``mode=next``, shown
  once), gives it to every verifier, and rotation promotes that pre-shared key when due. Without
  one, rotation is refused (even in an emergency: ``mode=replace`` is the way to swap a leaked
  secret at once).

Exactly one ``active`` key per project is guaranteed by a partial unique index; each transition
locks the project row first (``SELECT … FOR UPDATE``) so concurrent replicas serialise, and every
transition re-checks the state it found, which makes the scheduler's jobs idempotent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from jwkit.jose.jwk import JWK
from jwkit.service import keys as custody
from jwkit.service.domain import audit
from jwkit.service.domain.common import Conflict, NotFound, isoformat
from jwkit.service.domain.paging import Page, keyset_page
from jwkit.service.domain.projects import _check_alg, lock_project
from jwkit.service.store.models import Key, Project
from jwkit.service.vault import SealedKey, Vault

__all__ = [
    "ACTIVE",
    "NEXT",
    "PUBLISHED_STATES",
    "RETIRING",
    "REVOKED",
    "SYNC_MARGIN",
    "KeySchedule",
    "add_next_key",
    "bootstrap_keys",
    "generate_key",
    "key_to_json",
    "latest_key",
    "list_keys",
    "next_due_at",
    "open_key",
    "page_keys",
    "pre_shared",
    "raise_max_exp",
    "refresh_due",
    "replace_now",
    "reserve_exp",
    "revoke_key",
    "rotate",
    "run_due_transitions",
    "schedule",
]

NEXT, ACTIVE, RETIRING, REVOKED = "next", "active", "retiring", "revoked"
PUBLISHED_STATES = (NEXT, ACTIVE, RETIRING)
#: Seconds a replica may serve a snapshot it has not confirmed against the database (it syncs
#: every ``sync_interval``); also how long it may keep signing with a just-retired key.
SYNC_MARGIN = 5
DAY = 86400


def generate_key(
    session: Session, project: Project, vault: Vault, *, alg: str, state: str, now: int
) -> Key:
    """Create a key in ``state`` and add it to the session. Where its private part lives is
    the vault's business (:func:`jwkit.service.keys.generate`: sealed by the vault, or made in
    the configured key backend)."""
    made = custody.generate(vault, project.id, alg)
    public = None if made.public_jwk is None else json.dumps(made.public_jwk, sort_keys=True)
    key = Key(
        project_id=project.id,
        kid=made.kid,
        alg=alg,
        state=state,
        public_jwk=public,
        wrapped_dek=made.wrapped_dek,
        ciphertext=made.ciphertext,
        kek_id=made.kek_id,
        backend=made.backend,
        key_handle=made.handle,
        created_at=now,
        published_at=now if state in PUBLISHED_STATES else None,
        activated_at=now if state == ACTIVE else None,
    )
    session.add(key)
    session.flush()
    return key


def open_key(key: Key, vault: Vault) -> JWK:
    """Decrypt a stored private key (kept in memory by the caller, never logged)."""
    sealed = SealedKey(key.wrapped_dek, key.ciphertext, key.kek_id)
    return JWK.from_json(vault.open(sealed, project_id=key.project_id, kid=key.kid))


def _keys(session: Session, project_id: str, *, states: tuple[str, ...] | None = None) -> list[Key]:
    stmt = select(Key).where(Key.project_id == project_id)
    if states is not None:
        stmt = stmt.where(Key.state.in_(states))
    return list(session.execute(stmt.order_by(Key.created_at, Key.id)).scalars())


def list_keys(session: Session, project_id: str) -> list[Key]:
    return _keys(session, project_id)


def page_keys(
    session: Session,
    project_id: str,
    *,
    limit: int,
    cursor: str | None = None,
    newest_first: bool = False,
) -> Page[Key]:
    """The project's keys oldest (or newest) first, revoked ones included, one page
    (:mod:`.paging`)."""
    stmt = select(Key).where(Key.project_id == project_id)
    return keyset_page(
        session,
        stmt,
        "keys-newest" if newest_first else "keys",
        [Key.created_at, Key.id],
        limit=limit,
        cursor=cursor,
        descending=newest_first,
    )


def latest_key(session: Session, project_id: str) -> Key:
    keys = _keys(session, project_id, states=PUBLISHED_STATES)
    if not keys:
        raise NotFound("this project has no published key")
    return keys[-1]


def _find(keys: list[Key], state: str) -> Key | None:
    found = [k for k in keys if k.state == state]
    return found[-1] if found else None


def _event(session: Session, now: int, actor: str, action: str, key: Key, **detail: Any) -> None:
    audit.record(
        session,
        now=now,
        actor=actor,
        action=action,
        project_id=key.project_id,
        kid=key.kid,
        detail=detail or None,
    )


def retire_safe_at(key: Key, clock_skew: int) -> int:
    """When a retiring key may leave the JWKS without breaking a token it signed."""
    retired = key.retired_at or key.created_at
    return max(key.max_exp or 0, retired + SYNC_MARGIN) + clock_skew


def activate_safe_at(key: Key, project: Project) -> int:
    """When a next key has been in every cached JWKS long enough to start signing.

    ``published_at`` is truncated to the second (the commit may come up to a second later) and
    replicas may serve the older JWKS for up to ``SYNC_MARGIN`` seconds after it: both are
    added, unless ``jwks_max_age`` is 0 (nothing cached, nothing to wait for)."""
    return _safe_after_publication(key.published_at or key.created_at, project)


def _safe_after_publication(published: int, project: Project) -> int:
    if project.jwks_max_age <= 0:
        return published
    return published + 1 + SYNC_MARGIN + project.jwks_max_age


def _promote(
    session: Session,
    project: Project,
    vault: Vault,
    old: Key | None,
    new: Key,
    *,
    now: int,
    actor: str,
    old_state: str,
) -> None:
    if old is not None:
        old.state = old_state
        if old_state == RETIRING:
            old.retired_at = now
        else:
            old.retired_at = old.retired_at or now
            old.revoked_at = now
        session.flush()  # free the one-active slot before taking it
        _event(session, now, actor, f"key.{old_state}", old)
    new.state = ACTIVE
    new.activated_at = now
    new.published_at = new.published_at or now
    session.flush()
    _event(session, now, actor, "key.activated", new)


def pre_shared(project: Project) -> bool:
    """Whether the project verifies with shared secrets that only the admin can hand out."""
    return project.algorithm.startswith("HS")


def _ensure_next(
    session: Session,
    project: Project,
    vault: Vault,
    keys: list[Key],
    *,
    now: int,
    actor: str,
    handed_out: bool = False,
) -> Key | None:
    """Keep a next key pre-published; for HS* only when its secret is handed out now."""
    nxt = _find(keys, NEXT)
    if nxt is None and (handed_out or not pre_shared(project)):
        nxt = generate_key(session, project, vault, alg=project.algorithm, state=NEXT, now=now)
        _event(session, now, actor, "key.created", nxt, state=NEXT)
    return nxt


def bootstrap_keys(
    session: Session, project: Project, vault: Vault, *, now: int, actor: str
) -> Key:
    """A new project's first keys: one active key and one pre-published next key."""
    active = generate_key(session, project, vault, alg=project.algorithm, state=ACTIVE, now=now)
    _event(session, now, actor, "key.created", active, state=ACTIVE)
    _ensure_next(session, project, vault, [], now=now, actor=actor, handed_out=True)
    refresh_due(session, project, now=now)
    return active


@dataclass(frozen=True, slots=True)
class RotationResult:
    active: str
    retiring: str | None
    next: str | None


def rotate(
    session: Session,
    project_id: str,
    vault: Vault,
    *,
    now: int,
    actor: str,
    emergency: bool = False,
) -> RotationResult:
    """Graceful rotation (see module docstring); ``emergency`` skips the publication wait."""
    project = lock_project(session, project_id)
    keys = _keys(session, project_id, states=PUBLISHED_STATES)
    active, nxt = _find(keys, ACTIVE), _find(keys, NEXT)
    if nxt is None and pre_shared(project):
        raise Conflict(
            f"this {project.algorithm} project has no pre-shared next secret: generate one "
            "(mode=next; its secret is shown once), give it to every verifier, then rotate; "
            "to swap a leaked secret at once, use mode=replace",
            code="no_next_secret",
        )
    if nxt is None:
        if active is not None and not emergency:
            raise Conflict(
                "no next key is pre-published; create one with mode=next first",
                code="no_next_key",
                earliest_safe_at=_safe_after_publication(now, project),
            )
        nxt = generate_key(session, project, vault, alg=project.algorithm, state=NEXT, now=now)
        _event(session, now, actor, "key.created", nxt, state=NEXT)
    elif active is not None and not emergency:
        safe_at = activate_safe_at(nxt, project)
        if now < safe_at:
            raise Conflict(
                "the next key has not been published for the advertised JWKS cache lifetime",
                code="rotation_too_early",
                earliest_safe_at=safe_at,
            )
    _promote(session, project, vault, active, nxt, now=now, actor=actor, old_state=RETIRING)
    if pre_shared(project):  # the next secret must be generated (and shown) by an admin
        refresh_due(session, project, now=now)
        return RotationResult(nxt.kid, active.kid if active else None, None)
    fresh = generate_key(session, project, vault, alg=project.algorithm, state=NEXT, now=now)
    _event(session, now, actor, "key.created", fresh, state=NEXT, emergency=emergency)
    refresh_due(session, project, now=now)
    return RotationResult(nxt.kid, active.kid if active else None, fresh.kid)


def replace_now(
    session: Session,
    project_id: str,
    vault: Vault,
    *,
    now: int,
    actor: str,
    alg: str | None = None,
    confirm_invalidate: bool = False,
) -> Key:
    """A new key is active at once; the previous active key is revoked at once."""
    project = lock_project(session, project_id)
    alg = alg or project.algorithm
    _check_alg(alg, "alg")
    keys = _keys(session, project_id, states=PUBLISHED_STATES)
    active = _find(keys, ACTIVE)
    if active is not None and not confirm_invalidate:
        raise Conflict(
            "replacing the active key invalidates every token it signed; "
            "send confirm_invalidate=true to proceed",
            code="confirmation_required",
        )
    new = generate_key(session, project, vault, alg=alg, state=NEXT, now=now)
    _event(session, now, actor, "key.created", new, state=ACTIVE, mode="replace")
    _promote(session, project, vault, active, new, now=now, actor=actor, old_state=REVOKED)
    _ensure_next(session, project, vault, keys, now=now, actor=actor)
    refresh_due(session, project, now=now)
    return new


def add_next_key(
    session: Session, project_id: str, vault: Vault, *, now: int, actor: str, alg: str | None = None
) -> Key:
    """Pre-publish a new next key (a previous next key, which never signed, is dropped)."""
    project = lock_project(session, project_id)
    alg = alg or project.algorithm
    _check_alg(alg, "alg")
    keys = _keys(session, project_id, states=PUBLISHED_STATES)
    for old in keys:
        if old.state == NEXT:
            old.state, old.revoked_at = REVOKED, now
            _event(session, now, actor, "key.revoked", old, reason="superseded next key")
    if _find(keys, ACTIVE) is None:
        key = generate_key(session, project, vault, alg=alg, state=ACTIVE, now=now)
        _event(session, now, actor, "key.created", key, state=ACTIVE)
    else:
        key = generate_key(session, project, vault, alg=alg, state=NEXT, now=now)
        _event(session, now, actor, "key.created", key, state=NEXT)
    refresh_due(session, project, now=now)
    return key


def revoke_key(
    session: Session,
    project_id: str,
    kid: str,
    vault: Vault,
    *,
    now: int,
    actor: str,
    clock_skew: int,
    emergency: bool = False,
) -> Key:
    """Take a key out of the JWKS. Idempotent for an already revoked key."""
    project = lock_project(session, project_id)
    key = session.execute(
        select(Key).where(Key.project_id == project_id, Key.kid == kid)
    ).scalar_one_or_none()
    if key is None:
        raise NotFound(f"no key {kid!r} in this project")
    if key.state == REVOKED:
        return key
    keys = _keys(session, project_id, states=PUBLISHED_STATES)
    if key.state == RETIRING:
        safe_at = retire_safe_at(key, clock_skew)
        if now < safe_at and not emergency:
            raise Conflict(
                "tokens signed by this key may still be valid",
                code="key_still_in_use",
                earliest_safe_at=safe_at,
            )
        key.state, key.revoked_at = REVOKED, now
        _event(session, now, actor, "key.revoked", key, emergency=emergency)
    elif key.state == NEXT:
        key.state, key.revoked_at = REVOKED, now
        _event(session, now, actor, "key.revoked", key)
        session.flush()
        _ensure_next(session, project, vault, [], now=now, actor=actor)
    else:  # active
        if not emergency:
            # No earliest_safe_at: no time makes revoking the *active* key safe. Rotating
            # first is the way, and revoking is safe once the retiring key's tokens expired.
            nxt = _find(keys, NEXT)
            when = activate_safe_at(nxt, project) if nxt is not None else None
            rotate = f" (possible from {isoformat(when)})" if when and when > now else ""
            raise Conflict(
                f"the active key signs tokens now; rotate first{rotate}, then revoke "
                "it once its tokens have expired, or use emergency=true",
                code="key_is_active",
            )
        nxt = _find(keys, NEXT)
        if nxt is None and pre_shared(project):
            raise Conflict(
                "no pre-shared next secret to take over; replace the secret at once "
                "with mode=replace instead",
                code="no_next_secret",
            )
        if nxt is None:
            nxt = generate_key(session, project, vault, alg=project.algorithm, state=NEXT, now=now)
        _promote(session, project, vault, key, nxt, now=now, actor=actor, old_state=REVOKED)
        remaining = [k for k in keys if k.state == NEXT]
        _ensure_next(session, project, vault, remaining, now=now, actor=actor)
    refresh_due(session, project, now=now, clock_skew=clock_skew)
    return key


def reserve_exp(session: Session, key_id: int, exp: int) -> bool:
    """Record, before signing, that ``key_id`` may sign tokens expiring up to ``exp``.

    Only an ``active`` key takes a reservation (the row lock orders it against a concurrent
    rotation), so a retiring key's ``max_exp`` never moves once its successor signs. Returns
    whether the key is still active (its ``max_exp`` is then at least ``exp``)."""
    result = session.execute(
        update(Key)
        .where(Key.id == key_id, Key.state == ACTIVE)
        .values(max_exp=case((Key.max_exp > exp, Key.max_exp), else_=exp))
    )
    return bool(getattr(result, "rowcount", 0))


def raise_max_exp(session: Session, key_id: int, exp: int) -> None:
    """Record that ``key_id`` signed a token expiring at ``exp`` (monotonic, no version bump)."""
    session.execute(
        update(Key)
        .where(Key.id == key_id, (Key.max_exp.is_(None)) | (Key.max_exp < exp))
        .values(max_exp=exp)
    )


@dataclass(frozen=True, slots=True)
class KeySchedule:
    kid: str
    state: str
    activates_at: int | None
    retires_at: int | None


def schedule(project: Project, keys: list[Key], clock_skew: int) -> list[KeySchedule]:
    """When each published key is expected to change state (automatic policy + safety rules)."""
    active = _find(keys, ACTIVE)
    rotation_at: int | None = None
    if project.rotation_days and active is not None:
        rotation_at = (active.activated_at or active.created_at) + project.rotation_days * DAY
    out = []
    for key in keys:
        if key.state == ACTIVE:
            out.append(KeySchedule(key.kid, key.state, key.activated_at, rotation_at))
        elif key.state == NEXT:
            activates = None
            if rotation_at is not None:
                activates = max(rotation_at, activate_safe_at(key, project))
            out.append(KeySchedule(key.kid, key.state, activates, None))
        elif key.state == RETIRING:
            out.append(
                KeySchedule(key.kid, key.state, key.activated_at, retire_safe_at(key, clock_skew))
            )
    return out


def run_due_transitions(
    session: Session, project_id: str, vault: Vault, *, now: int, clock_skew: int
) -> list[str]:
    """The scheduler's job for one project: revoke retiring keys past their safe time, rotate
    when the policy says so and it is safe, keep a next key pre-published. Idempotent."""
    actor = "scheduler"
    project = lock_project(session, project_id)
    keys = _keys(session, project_id, states=PUBLISHED_STATES)
    done: list[str] = []
    for key in keys:
        if key.state == RETIRING and now >= retire_safe_at(key, clock_skew):
            key.state, key.revoked_at = REVOKED, now
            _event(session, now, actor, "key.revoked", key, reason="retirement complete")
            done.append(f"revoked {key.kid}")
    active, nxt = _find(keys, ACTIVE), _find(keys, NEXT)
    if active is not None and nxt is None:
        nxt = _ensure_next(session, project, vault, keys, now=now, actor=actor)
        if nxt is not None:
            done.append(f"pre-published {nxt.kid}")
    elif active is not None and nxt is not None and project.rotation_days:
        due = (active.activated_at or active.created_at) + project.rotation_days * DAY
        if now >= max(due, activate_safe_at(nxt, project)):
            session.flush()
            result = rotate(session, project_id, vault, now=now, actor=actor)
            done.append(f"rotated to {result.active}")
    refresh_due(session, project, now=now, clock_skew=clock_skew)
    return done


def next_due_at(project: Project, keys: list[Key], *, now: int, clock_skew: int) -> int | None:
    """When :func:`run_due_transitions` next has work for the project (``None``: never, until
    something changes). Never later than the real time: waking early only costs one pass
    that finds nothing (e.g. a retiring key whose ``max_exp`` rose meanwhile)."""
    due: list[int] = [retire_safe_at(k, clock_skew) for k in keys if k.state == RETIRING]
    active, nxt = _find(keys, ACTIVE), _find(keys, NEXT)
    if active is not None and nxt is None and not pre_shared(project):
        due.append(now)
    elif active is not None and nxt is not None and project.rotation_days:
        rotation_at = (active.activated_at or active.created_at) + project.rotation_days * DAY
        due.append(max(rotation_at, activate_safe_at(nxt, project)))
    return min(due) if due else None


def refresh_due(session: Session, project: Project, *, now: int, clock_skew: int = 0) -> None:
    """Store :func:`next_due_at` on the project row (every key transition ends here). Without
    the clock-skew setting (0) a retiring key is due early, never late."""
    session.flush()
    keys = _keys(session, project.id, states=PUBLISHED_STATES)
    project.next_due_at = next_due_at(project, keys, now=now, clock_skew=clock_skew)


def key_to_json(key: Key) -> dict[str, Any]:
    return {
        "kid": key.kid,
        "alg": key.alg,
        "state": key.state,
        "public_jwk": json.loads(key.public_jwk) if key.public_jwk else None,
        "created_at": isoformat(key.created_at),
        "published_at": isoformat(key.published_at),
        "activated_at": isoformat(key.activated_at),
        "retired_at": isoformat(key.retired_at),
        "revoked_at": isoformat(key.revoked_at),
        "max_exp": isoformat(key.max_exp),
        "backend": key.backend or "local",  # where the private key lives (service/keys)
    }
