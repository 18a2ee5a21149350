"""``jwkit db upgrade``, ``jwkit audit verify``, ``jwkit keys rewrap``, settings masking."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from jwkit.cli import main
from jwkit.service.domain import keys, projects
from jwkit.service.runtime import Service
from jwkit.service.settings import Settings
from jwkit.service.vault import VaultError

from .conftest import (
    ADMIN_PASSWORD,
    ADMIN_TOKEN,
    FakeClock,
    ServerProcess,
    free_port,
    make_settings,
)


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
    result = CliRunner().invoke(main, ["serve", "--port", str(free_port())])
    assert result.exit_code == 3
    assert "cannot be opened with this master key" in result.output
    monkeypatch.setenv("JWKIT_MASTER_KEY", "not-a-key")
    assert CliRunner().invoke(main, ["serve"]).exit_code == 3


MAINTENANCE = [
    ["audit", "verify"],
    ["keys", "rewrap", "--generate"],
    ["admin", "reset-credentials"],
]


@pytest.mark.parametrize("args", MAINTENANCE, ids=" ".join)
def test_maintenance_commands_refuse_where_there_is_no_service(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("JWKIT_HOME", "JWKIT_MASTER_KEY", "JWKIT_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 3, result.output
    assert "no jwkit service state" in result.output
    assert "jwkit serve" in result.output and "JWKIT_HOME" in result.output
    assert "Traceback" not in result.output and result.exception is not None
    assert list(tmp_path.iterdir()) == []  # no fresh ./.jwkit, no master key


@pytest.mark.parametrize("args", MAINTENANCE, ids=" ".join)
def test_maintenance_commands_refuse_a_database_that_is_not_jwkit(
    args: list[str], env: Path
) -> None:
    env.mkdir(mode=0o700)
    conn = sqlite3.connect(env / "jwkit.db")
    conn.execute("CREATE TABLE other (x)")
    conn.commit()
    conn.close()
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 3, result.output
    assert "holds no jwkit service database" in result.output
    assert not (env / "master.key").exists() and not (env / "master.key.new").exists()


def test_db_upgrade_creates_a_private_home(env: Path) -> None:
    assert CliRunner().invoke(main, ["db", "upgrade"]).exit_code == 0
    assert env.stat().st_mode & 0o777 == 0o700


def test_reset_credentials_replaces_token_password_and_sessions(env: Path) -> None:
    from jwkit.service.domain import admins

    _populate(env)
    svc = Service.open(make_settings(env))
    try:
        with svc.write() as s:
            admins.create_session(s, "admin", now=svc.clock(), ttl=60)
    finally:
        svc.close()
    result = CliRunner().invoke(main, ["admin", "reset-credentials"])
    assert result.exit_code == 0, result.output
    token = result.output.split("admin API token:")[1].split()[0]
    password = result.output.split("console login:")[1].split("/")[1].split()[0]
    svc = Service.open(make_settings(env, admin_token=None, admin_password=None))
    try:
        assert svc.generated is None  # nothing missing: the reset stored both
        with svc.read() as s:
            assert admins.token_hashes(s) == {admins.hash_token(token): "admin"}
            assert admins.verify_password(s, "admin", password)
            assert not admins.verify_password(s, "admin", ADMIN_PASSWORD)
            sessions = s.execute(sqlite_count("console_sessions")).scalar_one()
        assert sessions == 0
    finally:
        svc.close()
    assert CliRunner().invoke(main, ["audit", "verify"]).exit_code == 0


def sqlite_count(table: str) -> Any:
    from sqlalchemy import text

    return text(f"SELECT count(*) FROM {table}")


def _bare_env(home: Path) -> dict[str, str]:
    """A server environment with no configured admin credentials (first-start mode)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWKIT_")}
    env.update(JWKIT_HOME=str(home / ".jwkit"), JWKIT_LOG_LEVEL="warning")
    return env


def test_busy_port_loses_no_credentials_and_reset_recovers_them(tmp_path: Path) -> None:
    env = _bare_env(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        refused = subprocess.run(
            [sys.executable, "-m", "jwkit.cli", "serve", "--port", str(port)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert refused.returncode == 3, refused.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in refused.stderr
    assert "--port" in refused.stderr
    assert "token" not in refused.stdout + refused.stderr
    assert not (tmp_path / ".jwkit" / "jwkit.db").exists()  # nothing was generated

    first = ServerProcess(tmp_path, env).start()  # the real first start, on a free port
    try:
        assert "admin API token:" in first.log()
    finally:
        first.stop()
    reset = subprocess.run(
        [sys.executable, "-m", "jwkit.cli", "admin", "reset-credentials"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    token = reset.stdout.split("admin API token:")[1].split()[0]
    again = ServerProcess(tmp_path, env).start()
    try:
        assert "jwkit admin reset-credentials" in again.log()  # the hint, on a later start
        answer = httpx.get(
            f"{again.url}/api/v1/projects", timeout=10, headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 200
    finally:
        again.stop()


def test_weak_configured_credentials_are_named(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("JWKIT_PORT", "JWKIT_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JWKIT_ADMIN_TOKEN", "secret")
    monkeypatch.setenv("JWKIT_ADMIN_PASSWORD", "admin")
    monkeypatch.setenv("JWKIT_MASTER_KEY", "not-a-key")  # stop right after the warnings
    result = CliRunner().invoke(main, ["serve", "--port", str(free_port())])
    assert result.exit_code == 3
    assert "JWKIT_ADMIN_TOKEN is weak" in result.output
    assert "JWKIT_ADMIN_PASSWORD is weak" in result.output
    monkeypatch.setenv("JWKIT_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("JWKIT_ADMIN_PASSWORD", ADMIN_PASSWORD)
    assert "weak" not in CliRunner().invoke(main, ["serve"]).output


# -- jwkit admin against a real `jwkit serve` ---------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    from tests.support.serve import server_env

    home = tmp_path_factory.mktemp("admin-cli")
    env = server_env(home, admin_token=ADMIN_TOKEN, admin_password=ADMIN_PASSWORD)
    server = ServerProcess(home, env).start()
    yield server
    server.stop()


def _admin(live: ServerProcess, *args: str) -> Any:
    return CliRunner().invoke(main, ["admin", "--url", live.url, "--token", ADMIN_TOKEN, *args])


def _project(live: ServerProcess) -> dict[str, Any]:
    result = _admin(live, "--json", "projects", "create", "cli", "--token-ttl", "15m")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    return data


def test_admin_help_names_the_environment_and_every_command_has_help() -> None:
    import click

    text = CliRunner().invoke(main, ["admin", "--help"]).output
    assert "JWKIT_ADMIN_TOKEN" in text and "JWKIT_ADMIN_URL" in text

    def walk(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
        yield path, command
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk(sub, f"{path} {name}")

    missing = [path for path, cmd in walk(main, "jwkit") if not (cmd.help or "").strip()]
    assert missing == []


def test_admin_without_a_token_says_where_to_get_one(
    live: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JWKIT_ADMIN_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["admin", "--url", live.url, "projects", "list"])
    assert result.exit_code == 3
    assert "JWKIT_ADMIN_TOKEN" in result.output and "reset-credentials" in result.output


def test_mint_takes_durations_and_scopes(live: ServerProcess) -> None:
    from jwkit.jose import jwt as jose_jwt

    project = _project(live)
    result = _admin(live, "tokens", "mint", project["id"], "--sub", "u1", "--ttl", "15m",
                    "--scope", "read:orders", "--scope", "write:orders read:orders")  # fmt: skip
    assert result.exit_code == 0, result.output
    _, claims = jose_jwt.decode_unverified(result.output.strip())
    assert claims["exp"] - claims["iat"] == 900
    assert claims["scope"] == "read:orders write:orders"
    # RFC 9068 §2.2: every claim it requires, on a minted token too
    assert {"iss", "exp", "aud", "sub", "client_id", "iat", "jti"} <= set(claims)
    assert claims["client_id"] == "admin"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--ttl", "2d"], "ttl must not exceed 86400"),
        (["--ttl", "90d"], "ttl must be at most 2592000 seconds (30 days)"),
        (["--scope", 'say"hi'], "a scope is 1 to 100 printable ASCII characters"),
    ],
)
def test_mint_refusals_are_plain_and_said_once(
    live: ServerProcess, args: list[str], expected: str
) -> None:
    project = _project(live)
    result = _admin(live, "tokens", "mint", project["id"], "--sub", "u", *args)
    assert result.exit_code == 1
    assert expected in result.output
    assert result.output.count(expected) == 1, result.output
    assert "should" not in result.output and "Input" not in result.output


def test_mint_refuses_a_bad_duration_before_sending(live: ServerProcess) -> None:
    result = _admin(live, "tokens", "mint", "p", "--sub", "u", "--ttl", "soon")
    assert result.exit_code == 2 and "not a duration like 90s, 15m" in result.output


def test_generate_next_does_not_silently_revoke_the_next_key(live: ServerProcess) -> None:
    project = _project(live)
    pid = project["id"]
    before = json.loads(_admin(live, "--json", "keys", "list", pid).output)["keys"]
    old_next = next(k["kid"] for k in before if k["state"] == "next")
    refused = _admin(live, "keys", "generate", pid)
    assert refused.exit_code == 1
    assert old_next in refused.output and "--replace-next" in refused.output
    kept = json.loads(_admin(live, "--json", "keys", "list", pid).output)["keys"]
    assert {k["kid"]: k["state"] for k in kept}[old_next] == "next"
    done = _admin(live, "keys", "generate", pid, "--replace-next")
    assert done.exit_code == 0, done.output
    after = json.loads(_admin(live, "--json", "keys", "list", pid).output)["keys"]
    assert {k["kid"]: k["state"] for k in after}[old_next] == "revoked"


def test_lifecycle_refusals_name_the_cli_flags(live: ServerProcess) -> None:
    project = _project(live)
    pid = project["id"]
    replace = _admin(live, "keys", "generate", pid, "--mode", "replace")
    assert replace.exit_code == 1
    assert "--confirm-invalidate" in replace.output
    assert "confirm_invalidate=true" not in replace.output
    # "--": a thumbprint kid starts with "-" one time in 64 (the command's help says so)
    revoke = _admin(live, "keys", "revoke", pid, "--", project["active_kid"])
    assert revoke.exit_code == 1 and "key_is_active" in revoke.output
    assert "--emergency" in revoke.output and "rotate first" in revoke.output
    assert "safe" not in revoke.output  # rotating is possible then; revoking is not safe


def test_admin_lists_gather_every_page_or_show_one(live: ServerProcess) -> None:
    """``projects list`` (and ``keys``/``clients list``) follow ``next_cursor`` through every
    page of the admin API unless ``--limit`` asks for one page; ``--search`` finds by name
    prefix or id; a bad ``--cursor`` is the API's plain refusal."""
    from tests.support.scale_api import seed_projects

    seeded = seed_projects(
        f"sqlite:///{live.home / '.jwkit' / 'jwkit.db'}", 2100, name="cli-{:05d}"
    )
    listed = json.loads(_admin(live, "--json", "projects", "list").output)
    ids = [p["id"] for p in listed["projects"]]
    assert ids[: len(seeded)] == seeded and listed["next_cursor"] is None  # 3 pages of 1000
    page = _admin(live, "projects", "list", "--limit", "2")
    assert page.exit_code == 0, page.output
    assert "cli-00001" in page.output and "cli-00003" not in page.output
    cursor = page.output.strip().splitlines()[-1].removeprefix("more: --cursor ")
    after = json.loads(
        _admin(live, "--json", "projects", "list", "--limit", "2", "--cursor", cursor).output
    )
    assert [p["name"] for p in after["projects"]] == ["cli-00003", "cli-00004"]
    found = json.loads(_admin(live, "--json", "projects", "list", "--search", "CLI-0200").output)
    assert [p["name"] for p in found["projects"]] == [f"cli-{i:05d}" for i in range(2000, 2010)]
    bad = _admin(live, "projects", "list", "--cursor", "nope")
    assert bad.exit_code != 0 and "cursor" in bad.output
    pid = _project(live)["id"]
    keys_page = json.loads(_admin(live, "--json", "keys", "list", pid, "--limit", "1").output)
    assert len(keys_page["keys"]) == 1 and keys_page["next_cursor"]
    assert len(json.loads(_admin(live, "--json", "keys", "list", pid).output)["keys"]) == 2
