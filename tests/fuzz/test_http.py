"""Fuzz the HTTP front of a real ``jwkit serve`` with raw bytes over sockets.

Bounded in the suite; ``make fuzz`` sets ``JWKIT_FUZZ_SECONDS`` for a long run. See
:mod:`tests.fuzz.http` for what is sent and what must hold.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from .http import Finding, LiveService, exchange, requests

#: A long run's budget in seconds (``make fuzz``); unset in the suite.
LONG = int(os.environ.get("JWKIT_FUZZ_SECONDS", "0"))
EXAMPLES = 150


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    service = LiveService.start(Path(tmp_path_factory.mktemp("fuzz-http")))
    try:
        yield service
    finally:
        service.stop()


@pytest.mark.timeout(600 + LONG)
def test_raw_requests_get_well_formed_answers_no_5xx_no_hang(live: LiveService) -> None:
    count = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(raw=requests(live))
    def run(raw: bytes) -> None:
        nonlocal count
        count += 1
        try:
            exchange(live.server.port, raw)
        except Finding as finding:
            raise Finding(f"{finding} (sent {raw!r})") from None

    end = time.monotonic() + LONG
    run()
    while time.monotonic() < end:
        run()
    print(f"http fuzz: {count} exchanges")
    assert live.healthy(), live.server.log()[-2000:]
    log = live.server.log()
    assert "Traceback" not in log, log[-4000:]


# -- the checker is not blind ------------------------------------------------------------------

GOOD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nok", "shorter"),
        (b"HTTP/1.1 200 OK\r\n\r\nok", "framing"),
        (b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n", "header line"),
        (GOOD + b"garbage", "status line"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nokXX", "CRLF"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\nok", "repeated"),
    ],
)
def test_malformed_answers_are_findings(data: bytes, words: str) -> None:
    from .http import Finding, parse_answers

    with pytest.raises(Finding, match=words):
        parse_answers(data, heads=0)


def test_well_formed_answers_parse() -> None:
    from .http import parse_answers

    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n"
    answers = parse_answers(GOOD + chunked + b"HTTP/1.1 304 Not Modified\r\n\r\n", heads=0)
    assert [(a.status, a.body) for a in answers] == [(200, b"ok"), (200, b"ok"), (304, b"")]
    assert [a.body for a in parse_answers(head + GOOD, heads=1)] == [b"", b"ok"]
    # A HEAD anywhere in a pipeline (the long run's only finding was this checker's bug).
    assert [a.body for a in parse_answers(GOOD + head, heads=1)] == [b"ok", b""]
    with pytest.raises(Finding, match="shorter"):
        parse_answers(GOOD + head, heads=0)


def test_an_event_stream_the_client_ended_is_well_formed_but_only_last() -> None:
    from .http import _open_stream, parse_answers

    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    for tail in (b"", b"1c\r\nretry: 1000\n", b"8\r\n: ping\n\n\r\n", b"8\r\n: ping\n\n\r\n8\r"):
        answers = parse_answers(head + tail, heads=0)
        assert [a.status for a in answers] == [200] and _open_stream(tail, 0)
    for bad in (b"8\r\n: ping\n\nXX", b"zz\r\n", b"8\r\n: ping\n\n\r\n" + GOOD):
        with pytest.raises(Finding):
            parse_answers(head + bad, heads=0)
