"""The long fuzz run (``make fuzz``): atheris (libFuzzer, coverage-guided) on every in-process
target of :mod:`tests.fuzz.targets`, then the HTTP target (:mod:`tests.fuzz.http`) and the
public endpoints' fuzzers (``public``: ``test_public.py``, ``test_revocation_public.py``)
through hypothesis against a real ``jwkit serve``.

    python -m tests.fuzz.run [--seconds N] [TARGET ...]      # all targets, N seconds each
    python -m tests.fuzz.run --worker TARGET [libFuzzer flags]  # one atheris process

Corpora live in ``.fuzz/corpus/<target>`` (seeded from :func:`tests.fuzz.targets.seeds`, kept
between runs), anything that crashed in ``.fuzz/findings/``. The last lines printed are a
summary (executions, coverage, findings) for ``docs/reliability.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".fuzz"


def _worker(target: str, flags: list[str]) -> None:
    import atheris  # the long run only: not needed by the suite

    with atheris.instrument_imports(include=["jwkit"]):
        from tests.fuzz import targets

    function = targets.TARGETS[target]
    atheris.Setup([sys.argv[0], *flags], function)
    atheris.Fuzz()


def _seed(target: str) -> Path:
    from tests.fuzz.targets import seeds

    corpus = WORK / "corpus" / target
    corpus.mkdir(parents=True, exist_ok=True)
    for data in seeds()[target]:
        (corpus / ("seed-" + hashlib.sha1(data).hexdigest()[:16])).write_bytes(data)
    return corpus


def _dictionary(target: str) -> Path:
    """The target's words in libFuzzer's dictionary format (one quoted, escaped word a line)."""
    from tests.fuzz.targets import DICTIONARY

    path = WORK / f"{target}.dict"
    lines = ['"' + "".join(f"\\x{b:02x}" for b in word) + '"' for word in DICTIONARY[target]]
    path.write_text("\n".join(lines) + "\n")
    return path


def _run_atheris(target: str, seconds: int) -> dict[str, object]:
    corpus = _seed(target)
    findings = WORK / "findings"
    findings.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "tests.fuzz.run", "--worker", target,
        f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=2048", "-max_len=4096",
        "-print_final_stats=1", f"-artifact_prefix={findings}/{target}-",
        f"-dict={_dictionary(target)}", str(corpus),
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    log = done.stdout + done.stderr
    (WORK / f"{target}.log").write_text(log)
    execs = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
    cov = re.findall(r"cov: (\d+) ft: (\d+)", log)
    crashed = done.returncode != 0
    return {
        "target": target,
        "engine": "atheris",
        "seconds": round(time.monotonic() - started),
        "executions": int(execs.group(1)) if execs else None,
        "coverage": f"cov {cov[-1][0]} ft {cov[-1][1]}" if cov else "?",
        "corpus": sum(1 for _ in corpus.iterdir()),
        "findings": "see " + str(WORK / f"{target}.log") if crashed else 0,
    }


def _run_http(seconds: int) -> dict[str, object]:
    started = time.monotonic()
    command = [
        sys.executable, "-m", "pytest", "tests/fuzz/test_http.py", "-q", "-s",
        "-p", "no:cacheprovider", "--timeout", str(seconds + 600), "-x",
    ]  # fmt: skip
    env_seconds = {"JWKIT_FUZZ_SECONDS": str(seconds)}

    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, check=False,
        env={**os.environ, **env_seconds},
    )  # fmt: skip
    log = done.stdout + done.stderr
    (WORK / "http.log").write_text(log)
    execs = re.findall(r"http fuzz: (\d+) exchanges", log)
    return {
        "target": "http",
        "engine": "hypothesis",
        "seconds": round(time.monotonic() - started),
        "executions": sum(int(n) for n in execs) if execs else None,
        "coverage": "-",
        "corpus": "-",
        "findings": "see " + str(WORK / "http.log") if done.returncode else 0,
    }


def _run_public(seconds: int) -> dict[str, object]:
    """The public endpoints' hypothesis fuzzers (token endpoint, documents, token status), with
    as many examples as about ``seconds`` allows (about 50 a second on a busy machine)."""
    started = time.monotonic()
    examples = max(120, seconds * 50)
    command = [
        sys.executable, "-m", "pytest", "tests/fuzz/test_public.py",
        "tests/fuzz/test_revocation_public.py", "-q", "-p", "no:cacheprovider",
        "--timeout", str(seconds * 10 + 600), "-x",
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, check=False,
        env={**os.environ, "JWKIT_PUBLIC_FUZZ_EXAMPLES": str(examples)},
    )  # fmt: skip
    log = done.stdout + done.stderr
    (WORK / "public.log").write_text(log)
    return {
        "target": "public",
        "engine": "hypothesis",
        "seconds": round(time.monotonic() - started),
        "executions": f"{examples} examples x 5 fuzzers",
        "coverage": "-",
        "corpus": "-",
        "findings": "see " + str(WORK / "public.log") if done.returncode else 0,
    }


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        _worker(sys.argv[2], sys.argv[3:])
        return 0
    from tests.fuzz.targets import TARGETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=300, help="per target")
    parser.add_argument("targets", nargs="*", default=[*TARGETS, "http", "public"])
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    results = []
    for target in args.targets:
        runner = {"http": _run_http, "public": _run_public}.get(target)
        result = runner(args.seconds) if runner else _run_atheris(target, args.seconds)
        results.append(result)
        print(" ".join(f"{k}={v}" for k, v in result.items()), flush=True)
    failed = [r["target"] for r in results if r["findings"]]
    print("fuzz: " + (f"FINDINGS in {', '.join(map(str, failed))}" if failed else "no findings"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
