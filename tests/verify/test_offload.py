"""verify_async runs asymmetric signature checks on worker threads (issue 16), and only those.

Where a check ran is observed from outside: a real executor passed in records the thread each
job ran on; the shared pool's worker threads show up in ``threading.enumerate()``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from jwkit import JWK, InvalidSignature
from jwkit.verify import Verifier
from jwkit.verify.offload import OffloadPool, default_pool, default_workers
from tests.verify.conftest import AUDIENCE, ISSUER, make_key, token_for


class RecordingExecutor(ThreadPoolExecutor):
    """A real thread pool that remembers the thread every job ran on."""

    def __init__(self) -> None:
        super().__init__(2, thread_name_prefix="recording")
        self.ran_on: list[int] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        def job() -> Any:
            self.ran_on.append(threading.get_ident())
            return fn(*args, **kwargs)

        return super().submit(job)


def _verifier(key: JWK, offload: Any, **options: Any) -> Verifier:
    public = key if key.kty == "oct" else key.public()
    return Verifier(public, issuer=ISSUER, audience=AUDIENCE, offload=offload, **options)


async def _verify_all(verifier: Verifier, tokens: list[str]) -> list[Any]:
    return await asyncio.gather(*(verifier.verify_async(t) for t in tokens))


@pytest.mark.parametrize("alg", ["ES256", "ES512", "RS256", "PS256", "EdDSA"])
def test_asymmetric_checks_run_on_the_executor(alg: str) -> None:
    key = make_key(alg, "k1")
    with RecordingExecutor() as executor:
        verifier = _verifier(key, executor, token_cache=False)
        tokens = [token_for(key, {"jti": str(n)}) for n in range(6)]

        async def main() -> tuple[list[Any], int]:
            return await _verify_all(verifier, tokens), threading.get_ident()

        claims, loop_thread = asyncio.run(main())
    assert [c["jti"] for c in claims] == [str(n) for n in range(6)]
    assert len(executor.ran_on) == 6
    assert loop_thread not in executor.ran_on


def test_cache_hits_hmac_and_sync_verify_never_leave_the_calling_thread() -> None:
    es = make_key("ES256", "k1")
    with RecordingExecutor() as executor:
        cached = _verifier(es, executor)
        token = token_for(es)

        async def twice() -> None:
            await cached.verify_async(token)
            await cached.verify_async(token)  # a hit
            await cached.verify_async(token)

        asyncio.run(twice())
        assert len(executor.ran_on) == 1  # only the first, uncached verification

        secret = JWK.from_secret(b"s" * 32, "HS256", kid="h")
        hmac = _verifier(secret, executor, token_cache=False, algorithms=["HS256"])
        asyncio.run(_verify_all(hmac, [token_for(secret), token_for(secret, {"jti": "2"})]))
        assert len(executor.ran_on) == 1

        sync = _verifier(es, executor, token_cache=False)
        sync.verify(token_for(es, {"jti": "sync"}))
        assert len(executor.ran_on) == 1


def test_offload_false_keeps_the_check_on_the_loop() -> None:
    es = make_key("ES256", "k1")
    pool = OffloadPool(1, name="never-used")
    try:
        verifier = _verifier(es, False, token_cache=False)
        asyncio.run(_verify_all(verifier, [token_for(es)]))
        assert not [t for t in threading.enumerate() if t.name.startswith("never-used")]
    finally:
        pool.close()


def test_the_default_is_a_shared_pool_with_a_thread_per_cpu() -> None:
    es = make_key("ES256", "k1")
    verifier = Verifier(es.public(), issuer=ISSUER, audience=AUDIENCE, token_cache=False)
    asyncio.run(_verify_all(verifier, [token_for(es)]))
    pool = default_pool()
    names = {t.name for t in threading.enumerate()}
    assert {f"{pool.name}-{n}" for n in range(default_workers())} <= names
    other = Verifier(es.public(), issuer=ISSUER, audience=AUDIENCE, token_cache=False)
    assert other._offload is pool


def test_refusals_from_a_worker_are_the_same_typed_errors() -> None:
    es = make_key("ES256", "k1")
    pool = OffloadPool(2, name="refusals")
    try:
        verifier = _verifier(es, pool, token_cache=False)
        good = token_for(es)
        forged = good.rsplit(".", 1)[0] + "." + token_for(es, {"jti": "x"}).rsplit(".", 1)[1]

        async def main() -> None:
            with pytest.raises(InvalidSignature, match="signature verification failed"):
                await verifier.verify_async(forged)
            assert (await verifier.verify_async(good))["sub"] == "user-1"

        asyncio.run(main())
    finally:
        pool.close()


def test_a_pool_serves_several_loops_and_many_tasks() -> None:
    es = make_key("ES256", "k1")
    pool = OffloadPool(2, name="loops")
    try:
        verifier = _verifier(es, pool, token_cache=False)
        tokens = [token_for(es, {"jti": str(n)}) for n in range(40)]
        for _ in range(2):  # a new loop each time
            claims = asyncio.run(_verify_all(verifier, tokens))
            assert [c["jti"] for c in claims] == [str(n) for n in range(40)]
        # Another loop in another thread at the same time as this one.
        other: list[Any] = []
        thread = threading.Thread(
            target=lambda: other.extend(asyncio.run(_verify_all(verifier, tokens)))
        )
        thread.start()
        mine = asyncio.run(_verify_all(verifier, tokens))
        thread.join(30)
        assert len(other) == len(mine) == 40
    finally:
        pool.close()


def test_a_cancelled_task_leaves_the_pool_working() -> None:
    es = make_key("ES256", "k1")
    pool = OffloadPool(1, name="cancel")
    release = threading.Event()
    try:
        verifier = _verifier(es, pool, token_cache=False)

        async def main() -> None:
            async def waits() -> bool:
                return await pool.run(lambda a, b: release.wait(30), b"", b"")

            task = asyncio.ensure_future(waits())
            await asyncio.sleep(0)  # the job is queued, the task awaits its result
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            release.set()  # the worker finishes a job nobody awaits any more
            tokens = [token_for(es, {"jti": str(n)}) for n in range(8)]
            claims = await _verify_all(verifier, tokens)
            assert [c["jti"] for c in claims] == [str(n) for n in range(8)]

        asyncio.run(main())
    finally:
        release.set()
        pool.close()


def test_a_worker_exception_reaches_the_awaiting_task() -> None:
    pool = OffloadPool(1, name="raises")

    def boom(signing_input: bytes, signature: bytes) -> bool:
        raise ZeroDivisionError("from the worker")

    async def main() -> None:
        with pytest.raises(ZeroDivisionError, match="from the worker"):
            await pool.run(boom, b"", b"")
        assert await pool.run(lambda a, b: a == b, b"x", b"x") is True

    try:
        asyncio.run(main())
    finally:
        pool.close()


def test_option_mistakes() -> None:
    es = make_key("ES256", "k1")
    with pytest.raises(TypeError, match="offload must be"):
        _verifier(es, "yes")
    with pytest.raises(ValueError, match="positive"):
        OffloadPool(0)
    pool = OffloadPool(1, name="closed")
    pool.close()

    async def main() -> None:
        with pytest.raises(RuntimeError, match="closed"):
            await pool.run(lambda a, b: True, b"", b"")

    asyncio.run(main())


def test_with_every_worker_busy_the_loop_checks_in_place() -> None:
    es = make_key("ES256", "k1")
    pool = OffloadPool(1, name="busy")
    held = threading.Event()
    release = threading.Event()

    def hold(signing_input: bytes, signature: bytes) -> bool:
        held.set()
        return release.wait(30)

    try:
        verifier = _verifier(es, pool, token_cache=False)

        async def main() -> None:
            blocker = pool.run(hold, b"", b"")
            assert await asyncio.to_thread(held.wait, 30)  # the only worker is now busy
            # Answered although the worker is still held: checked on the loop's thread.
            assert (await verifier.verify_async(token_for(es)))["sub"] == "user-1"
            assert not release.is_set()
            release.set()
            assert await blocker is True

        asyncio.run(main())
    finally:
        release.set()
        pool.close()


def test_one_verifier_shared_by_threads_answers_each_its_own_token() -> None:
    es = make_key("ES256", "k1")
    verifier = _verifier(es, False, token_cache=False)
    per_thread = {n: [token_for(es, {"jti": f"{n}-{i}"}) for i in range(30)] for n in range(4)}
    seen: dict[int, list[str]] = {}

    def work(n: int) -> None:
        seen[n] = [verifier.verify(t)["jti"] for t in per_thread[n]]

    threads = [threading.Thread(target=work, args=(n,)) for n in per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert seen == {n: [f"{n}-{i}" for i in range(30)] for n in per_thread}
