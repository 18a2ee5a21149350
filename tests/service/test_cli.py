"""``jwkit db upgrade``, ``jwkit audit verify``, ``jwkit keys rewrap``, settings masking."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from jwkit.cli import main
from jwkit.service.domain import keys, projects
from jwkit.service.runtime import Service
from jwkit.service.settings import Settings
from jwkit.service.vault import VaultError

from .conftest import ADMIN_PASSWORD, ADMIN_TOKEN, FakeClock, make_settings


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    for name in ("JWKIT_MASTER_KEY", "JWKIT_DATABASE_URL", "JWKIT_ADMIN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JWKIT_HOME", str(home))
    return home


def _populate(home: Path) -> str:
    clock = FakeClock()
    svc = Service.open(make_settings(home), clock=clock)
    try:
        with svc.write() as s:
            p = projects.create_project(s, projects.ProjectSpec(name="x"), now=clock(), actor="t")
            keys.bootstrap_keys(s, p, svc.vault, now=clock(), actor="t")
            return p.id
    finally:
        svc.close()


def test_db_upgrade_creates_the_schema(env: Path) -> None:
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    conn = sqlite3.connect(env / "jwkit.db")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.close()
    assert {"projects", "keys", "clients", "audit_events", "alembic_version"} <= tables
    assert mode == "wal"
    assert CliRunner().invoke(main, ["db", "upgrade"]).exit_code == 0


def test_audit_verify_detects_tampering(env: Path) -> None:
    _populate(env)
    ok = CliRunner().invoke(main, ["audit", "verify"])
    assert ok.exit_code == 0 and "intact" in ok.output
    conn = sqlite3.connect(env / "jwkit.db")
    conn.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3")
    conn.commit()
    conn.close()
    bad = CliRunner().invoke(main, ["audit", "verify"])
    assert bad.exit_code == 1 and "entry 3" in bad.output


def test_audit_verify_detects_deleted_tail(env: Path) -> None:
    _populate(env)
    conn = sqlite3.connect(env / "jwkit.db")
    conn.execute("DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events)")
    conn.commit()
    conn.close()
    assert CliRunner().invoke(main, ["audit", "verify"]).exit_code == 1


def test_rewrap_with_generated_key_file(env: Path) -> None:
    pid = _populate(env)
    old_key = (env / "master.key").read_text()
    result = CliRunner().invoke(main, ["keys", "rewrap", "--generate"])
    assert result.exit_code == 0, result.output
    assert "rewrapped 2 keys" in result.output
    assert (env / "master.key").read_text() != old_key
    assert not (env / "master.key.new").exists()
    svc = Service.open(make_settings(env))  # opens every key with the new master key
    try:
        assert svc.state.projects[pid].signer is not None
    finally:
        svc.close()
    again = CliRunner().invoke(main, ["keys", "rewrap", "--generate"])
    assert again.exit_code == 0


def test_rewrap_to_an_explicit_key(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWKIT_MASTER_KEY", "22" * 32)
    pid = _populate(env)
    result = CliRunner().invoke(main, ["keys", "rewrap", "--new-key", "33" * 32])
    assert result.exit_code == 0, result.output
    with pytest.raises(VaultError, match="cannot be opened"):
        Service.open(make_settings(env, master_key="22" * 32))
    svc = Service.open(make_settings(env, master_key="33" * 32))
    try:
        assert svc.state.projects[pid].signer is not None
    finally:
        svc.close()
    wrong = CliRunner().invoke(main, ["keys", "rewrap", "--new-key", "44" * 32])
    assert wrong.exit_code == 1  # the current (env) key no longer opens them; nothing changed
    usage = CliRunner().invoke(main, ["keys", "rewrap"])
    assert usage.exit_code == 3


def test_settings_mask_secrets(tmp_path: Path) -> None:
    s = make_settings(tmp_path, master_key="55" * 32)
    text = repr(s) + str(s) + s.model_dump_json()
    for secret in (ADMIN_TOKEN, ADMIN_PASSWORD, "55" * 32):
        assert secret not in text
    assert s.resolved_database_url == f"sqlite:///{(tmp_path / 'jwkit.db').resolve()}"
    with pytest.raises(ValueError):
        Settings(public_url="ftp://x")


def test_first_start_generates_credentials_once(tmp_path: Path, monkeypatch: Any) -> None:
    for name in ("JWKIT_ADMIN_TOKEN", "JWKIT_ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(home=tmp_path)
    first = Service.open(settings)
    first.close()
    assert first.generated is not None and first.generated.token and first.generated.password
    second = Service.open(settings)
    second.close()
    assert second.generated is None
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("jwkit.db"))
    assert first.generated.token.encode() not in raw
    assert first.generated.password.encode() not in raw


def test_serve_refuses_a_wrong_master_key(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _populate(env)  # keys sealed under the key file
    for name in ("JWKIT_PORT", "JWKIT_PUBLIC_URL"):  # serve exports its flags; undo after
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JWKIT_MASTER_KEY", "66" * 32)
    result = CliRunner().invoke(main, ["serve", "--port", "1"])
    assert result.exit_code == 3
    assert "cannot be opened with this master key" in result.output
    monkeypatch.setenv("JWKIT_MASTER_KEY", "not-a-key")
    assert CliRunner().invoke(main, ["serve"]).exit_code == 3
