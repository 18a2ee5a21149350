"""The release a stranger installs: the sdist and the wheel built from it (as ``make dist``
does) install into a fresh virtual environment and work there, with nothing from ``src/``.

The fresh environment gets the wheel alone (``--no-deps``); its dependencies come from the test
environment's site-packages, added as a plain path so that the editable install's ``.pth``
pointer to ``src/`` is never read. Every file under ``src/jwkit`` must be in the wheel, so a
template, a static asset, a migration or ``py.typed`` left out of the build fails here.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import time
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.serve import free_port, server_env

pytestmark = pytest.mark.release

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "jwkit"


def source_version() -> str:
    """The version as written in its one place, read without importing jwkit."""
    tree = ast.parse((SRC / "_version.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "__version__":
            assert isinstance(node.value, ast.Constant)
            return str(node.value.value)
    raise AssertionError("no __version__ in src/jwkit/_version.py")


def source_files() -> set[str]:
    """Every file of the package as the wheel names it (``jwkit/...``), caches aside."""
    return {
        "jwkit/" + path.relative_to(SRC).as_posix()
        for path in SRC.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


@dataclass(frozen=True)
class Dist:
    wheel: Path
    sdist: Path


@dataclass(frozen=True)
class Installed:
    root: Path
    python: Path
    jwkit: Path

    def run(self, *args: str, cwd: Path) -> str:
        env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
        done = subprocess.run(
            args, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """The sdist, and the wheel built from the unpacked sdist (``python -m build``'s way).

    ``JWKIT_DIST_DIR`` names a folder that ``make dist`` filled, to test those very files."""
    given = os.environ.get("JWKIT_DIST_DIR")
    if given:
        out = Path(given)
    else:
        out = tmp_path_factory.mktemp("dist")
        done = subprocess.run(
            [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    version = source_version()
    wheels = list(out.glob(f"jwkit-{version}-*.whl"))
    sdists = list(out.glob(f"jwkit-{version}.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return Dist(wheels[0], sdists[0])


@pytest.fixture(scope="module")
def installed(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("venv")
    venv.create(root, with_pip=False)
    python = root / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "--quiet", "--disable-pip-version-check", str(dist.wheel)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    Path(purelib, "_jwkit_test_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return Installed(root, python, root / "bin" / "jwkit")


def test_wheel_and_sdist_carry_every_package_file(dist: Dist) -> None:
    expected = source_files()
    # What is not Python is what a build most easily leaves behind: name each kind.
    data = {name for name in expected if not name.endswith(".py")}
    assert "jwkit/py.typed" in data
    assert any(n.startswith("jwkit/service/http/console/templates/") for n in data)
    assert any(n.endswith(".css") for n in data) and any(n.endswith(".js") for n in data)
    migrations = {n for n in expected if n.startswith("jwkit/service/store/migrations/versions/")}
    assert migrations, "no migrations found in the source tree"

    with zipfile.ZipFile(dist.wheel) as wheel:
        in_wheel = {n for n in wheel.namelist() if n.startswith("jwkit/")}
        metadata = wheel.read(f"jwkit-{source_version()}.dist-info/METADATA").decode()
    assert sorted(data - in_wheel) == []
    assert sorted(migrations - in_wheel) == []
    assert sorted(expected - in_wheel) == []
    assert sorted(in_wheel - expected) == []  # nothing stray (caches, build leftovers)
    assert f"\nVersion: {source_version()}\n" in metadata

    with tarfile.open(dist.sdist) as sdist:
        prefix = f"jwkit-{source_version()}/src/"
        in_sdist = {n.removeprefix(prefix) for n in sdist.getnames() if n.startswith(prefix)}
    assert sorted(expected - in_sdist) == []


def test_installed_wheel_is_the_one_imported(installed: Installed, tmp_path: Path) -> None:
    out = installed.run(
        str(installed.python), "-c",
        "import json, importlib.metadata as m, jwkit; print(json.dumps("
        "{'file': jwkit.__file__, 'version': jwkit.__version__, 'dist': m.version('jwkit')}))",
        cwd=tmp_path,
    )  # fmt: skip
    seen = json.loads(out)
    assert Path(seen["file"]).is_relative_to(installed.root)
    assert seen["version"] == seen["dist"] == source_version()


def test_version_is_one_number(installed: Installed, tmp_path: Path) -> None:
    out = installed.run(str(installed.jwkit), "--version", cwd=tmp_path)
    assert out.strip() == f"jwkit, version {source_version()}"


def test_sign_and_verify_round_trip(installed: Installed, tmp_path: Path) -> None:
    script = """
import time, jwkit
from jwkit import JWK, jwt
key = JWK.generate("ES256")
now = int(time.time())
token = jwt.encode({"iss": "https://i.example", "aud": "api", "sub": "s", "exp": now + 60}, key)
claims = jwt.decode(token, key.public(), algorithms=["ES256"], issuer="https://i.example",
                    audience="api")
assert claims["sub"] == "s"
head, body, sig = token.split(".")
forged = ".".join((head, body, ("A" if sig[0] != "A" else "B") + sig[1:]))
try:
    jwt.decode(forged, key.public(), algorithms=["ES256"], issuer="https://i.example",
               audience="api")
except jwkit.InvalidToken as exc:
    print(exc.code)
"""
    assert installed.run(str(installed.python), "-c", script, cwd=tmp_path).strip() == (
        "invalid_signature"
    )
    assert "verified claims:" in installed.run(str(installed.jwkit), "demo", cwd=tmp_path)


def test_serve_starts_from_the_wheel(installed: Installed, tmp_path: Path) -> None:
    port = free_port()
    env = server_env(tmp_path, admin_token="t" * 43, admin_password="release-smoke-password")
    env.pop("PYTHONPATH", None)
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(installed.jwkit), "serve", "--port", str(port)],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        ready = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = httpx.get(f"{base}/readyz", timeout=1)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)  # polling a starting process: there is no event to wait on
        assert ready is not None and ready.status_code == 200, log_path.read_text()
        # The console's template, its static assets and the migrated database come from the
        # installed wheel.
        login = httpx.get(f"{base}/console/login", timeout=5)
        assert login.status_code == 200 and "<form" in login.text
        css = httpx.get(f"{base}/console/static/console.css", timeout=5)
        assert css.status_code == 200
        assert css.content == (SRC / "service/http/console/static/console.css").read_bytes()
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_mypy_checks_the_oldest_python_claimed() -> None:
    import tomllib  # here: ruff (target py310) and py311 would sort it differently at the top

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    requires = project["project"]["requires-python"]
    assert requires.startswith(">=")
    oldest = requires.removeprefix(">=")
    assert project["tool"]["mypy"]["python_version"] == oldest
    assert f"Programming Language :: Python :: {oldest}" in project["project"]["classifiers"]
    assert f"jwkit needs Python {oldest} or newer." in (ROOT / "docs" / "index.md").read_text()
    assert "version" not in project["project"]  # the version lives in src/jwkit/_version.py only
    assert project["project"]["dynamic"] == ["version"]
