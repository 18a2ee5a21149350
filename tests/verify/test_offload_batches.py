"""OffloadPool hands the checks of one loop iteration to its workers in batches (issue 16).

The loop's wake-ups are counted by a real event loop whose ``call_soon_threadsafe`` (the only
way a worker hands results back) keeps a count; the rest is observed from the results each
caller gets.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from jwkit import JWK, ExpiredToken, InvalidAudience, InvalidSignature
from jwkit.verify import Verifier
from jwkit.verify.offload import CHUNK, OffloadPool
from tests.verify.conftest import AUDIENCE, ISSUER, make_key, token_for

T = TypeVar("T")


class CountingLoop(asyncio.SelectorEventLoop):
    """A real selector loop that counts the callbacks other threads hand it."""

    def __init__(self) -> None:
        super().__init__()
        self.wakeups = 0

    def call_soon_threadsafe(self, callback: Any, *args: Any, context: Any = None) -> Any:
        self.wakeups += 1
        return super().call_soon_threadsafe(callback, *args, context=context)


def _run(main: Callable[[], Coroutine[Any, Any, T]]) -> tuple[T, int]:
    """``main()`` on a fresh counting loop: its result and the loop's cross-thread wake-ups."""
    loop = CountingLoop()
    try:
        return loop.run_until_complete(main()), loop.wakeups
    finally:
        loop.close()


def _verifier(key: JWK, pool: OffloadPool, **options: Any) -> Verifier:
    public = key if key.kty == "oct" else key.public()
    return Verifier(public, issuer=ISSUER, audience=AUDIENCE, offload=pool, **options)


def _forged(key: JWK) -> str:
    good = token_for(key, {"jti": "forged"})
    other = token_for(key, {"jti": "other"})
    return good.rsplit(".", 1)[0] + "." + other.rsplit(".", 1)[1]


def _started(pool: OffloadPool) -> None:
    """Start the pool's workers and wait until each waits for a job."""

    async def one() -> bool:
        return await pool.run(lambda a, b: True, b"", b"")

    asyncio.run(one())
    deadline = time.monotonic() + 30
    while pool._idle < pool.workers and time.monotonic() < deadline:
        time.sleep(0.001)


def test_one_wakeup_brings_back_a_whole_batch() -> None:
    pool = OffloadPool(1, name="batch-one")
    try:
        _started(pool)
        count = CHUNK // 2  # less than a full job: collected until the iteration ends
        ran_on: list[int] = []

        def check(signing_input: bytes, signature: bytes) -> bool:
            ran_on.append(threading.get_ident())
            return signing_input == signature

        async def main() -> list[bool]:
            pending = [pool.run(check, b"%d" % n, b"%d" % (n % 2 * n)) for n in range(count)]
            return list(await asyncio.gather(*pending))

        results, wakeups = _run(main)
        assert results == [n % 2 == 1 or n == 0 for n in range(count)]
        assert len(set(ran_on)) == 1 and threading.get_ident() not in ran_on
        assert wakeups == 1  # one job, one call_soon_threadsafe
    finally:
        pool.close()


def test_a_batch_is_split_across_the_idle_workers() -> None:
    pool = OffloadPool(2, name="batch-split")
    both = threading.Barrier(2, timeout=30)  # broken unless two workers check at once
    try:
        _started(pool)

        def check(signing_input: bytes, signature: bytes) -> bool:
            both.wait()
            return True

        async def main() -> list[bool]:
            return list(await asyncio.gather(pool.run(check, b"", b""), pool.run(check, b"", b"")))

        results, wakeups = _run(main)
        assert results == [True, True]
        assert wakeups <= 2
    finally:
        pool.close()


def test_a_full_job_leaves_before_the_loop_iteration_ends() -> None:
    pool = OffloadPool(1, name="batch-full")
    ran = threading.Event()
    try:
        _started(pool)

        def check(signing_input: bytes, signature: bytes) -> bool:
            ran.set()
            return True

        async def main() -> tuple[bool, list[bool]]:
            pending = [pool.run(check, b"", b"") for _ in range(CHUNK)]
            # Still in the same iteration (this blocks the loop): the worker has the job.
            ran_meanwhile = ran.wait(30)
            return ran_meanwhile, list(await asyncio.gather(*pending))

        (ran_meanwhile, results), wakeups = _run(main)
        assert ran_meanwhile
        assert results == [True] * CHUNK and wakeups == 1
    finally:
        pool.close()


def test_a_mixed_batch_gives_each_caller_its_own_result_or_error() -> None:
    es = make_key("ES256", "k1")
    pool = OffloadPool(2, name="batch-mixed")
    try:
        verifier = _verifier(es, pool, token_cache=False)
        now = int(time.time())
        cases: list[tuple[str, Any]] = []
        for n in range(CHUNK + 5):  # a full job and a remainder, both mixed
            kind = n % 4
            if kind == 0:
                cases.append((token_for(es, {"jti": f"good-{n}"}), f"good-{n}"))
            elif kind == 1:
                cases.append((_forged(es), InvalidSignature))
            elif kind == 2:
                expired = {"jti": f"old-{n}", "iat": now - 100, "exp": now - 50}
                cases.append((token_for(es, expired), ExpiredToken))
            else:
                cases.append((token_for(es, {"aud": "api://other"}), InvalidAudience))

        async def main() -> list[Any]:
            calls = [verifier.verify_async(token) for token, _ in cases]
            return list(await asyncio.gather(*calls, return_exceptions=True))

        results, wakeups = _run(main)
        for (_, expected), got in zip(cases, results, strict=True):
            if isinstance(expected, str):
                assert got["jti"] == expected
            else:
                assert type(got) is expected
        assert wakeups <= 3  # batched: far fewer wake-ups than tokens
    finally:
        pool.close()


def test_an_exception_in_one_check_stays_with_its_caller() -> None:
    pool = OffloadPool(1, name="batch-raises")

    def check(signing_input: bytes, signature: bytes) -> bool:
        if signing_input == b"boom":
            raise ZeroDivisionError("only this one")
        return signing_input == signature

    async def main() -> list[Any]:
        inputs = [b"a", b"boom", b"c", b"boom", b"e"]
        pending = [pool.run(check, i, b"a") for i in inputs]
        return list(await asyncio.gather(*pending, return_exceptions=True))

    try:
        results, _ = _run(main)
    finally:
        pool.close()
    assert results[0] is True and results[2] is False and results[4] is False
    for failed in (results[1], results[3]):
        assert isinstance(failed, ZeroDivisionError) and str(failed) == "only this one"


def test_a_cancelled_caller_leaves_the_rest_of_its_batch_answered() -> None:
    pool = OffloadPool(1, name="batch-cancel")
    release = threading.Event()
    started = threading.Event()

    def slow(signing_input: bytes, signature: bytes) -> bool:
        started.set()
        return release.wait(30) and signing_input == signature

    async def main() -> list[Any]:
        async def one(n: int) -> bool:
            return await pool.run(slow, b"%d" % n, b"%d" % n)

        tasks = [asyncio.ensure_future(one(n)) for n in range(6)]
        assert await asyncio.to_thread(started.wait, 30)  # the batch is in the worker
        tasks[2].cancel()
        await asyncio.sleep(0)
        release.set()
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    try:
        results, _ = _run(main)
    finally:
        release.set()
        pool.close()
    assert isinstance(results[2], asyncio.CancelledError)
    assert [r for n, r in enumerate(results) if n != 2] == [True] * 5


def test_with_every_worker_busy_a_whole_batch_is_checked_in_place() -> None:
    es = make_key("ES256", "k1")
    pool = OffloadPool(1, name="batch-busy")
    held = threading.Event()
    release = threading.Event()

    def hold(signing_input: bytes, signature: bytes) -> bool:
        held.set()
        return release.wait(30)

    try:
        verifier = _verifier(es, pool, token_cache=False)
        tokens = [token_for(es, {"jti": str(n)}) for n in range(CHUNK + 3)]

        async def main() -> tuple[list[str], bool]:
            blocker = pool.run(hold, b"", b"")
            assert await asyncio.to_thread(held.wait, 30)  # the only worker is now busy
            claims = await asyncio.gather(*(verifier.verify_async(t) for t in tokens))
            answered_while_held = not release.is_set()
            release.set()
            assert await blocker is True
            return [c["jti"] for c in claims], answered_while_held

        (jtis, answered_while_held), _ = _run(main)
        assert jtis == [str(n) for n in range(CHUNK + 3)]
        assert answered_while_held
    finally:
        release.set()
        pool.close()


def test_cache_hits_and_hmac_never_wake_the_loop_from_a_worker() -> None:
    es = make_key("ES256", "k1")
    pool = OffloadPool(2, name="batch-nohop")
    try:
        cached = _verifier(es, pool)
        token = token_for(es)

        async def first() -> None:
            await cached.verify_async(token)

        _, wakeups = _run(first)
        assert wakeups == 1  # the one uncached check

        async def hits() -> None:
            for _ in range(20):
                assert (await cached.verify_async(token))["sub"] == "user-1"

        _, wakeups = _run(hits)
        assert wakeups == 0

        secret = JWK.from_secret(b"s" * 32, "HS256", kid="h")
        hmac = _verifier(secret, pool, token_cache=False, algorithms=["HS256"])
        tokens = [token_for(secret, {"jti": str(n)}) for n in range(CHUNK + 1)]

        async def macs() -> list[Any]:
            return list(await asyncio.gather(*(hmac.verify_async(t) for t in tokens)))

        claims, wakeups = _run(macs)
        assert [c["jti"] for c in claims] == [str(n) for n in range(CHUNK + 1)]
        assert wakeups == 0
    finally:
        pool.close()


def test_a_pool_closed_with_a_batch_still_collecting_fails_it_rather_than_hang() -> None:
    pool = OffloadPool(1, name="batch-closed")
    _started(pool)

    async def main() -> list[Any]:
        pending: list[Awaitable[bool]] = [pool.run(lambda a, b: True, b"", b"") for _ in range(3)]
        pool.close()  # before this iteration ends: the batch was never handed out
        return list(await asyncio.gather(*pending, return_exceptions=True))

    results, _ = _run(main)
    assert len(results) == 3
    for result in results:
        assert isinstance(result, RuntimeError) and "closed" in str(result)


def test_batches_of_several_loops_at_once_stay_apart() -> None:
    loops = 2
    es = make_key("ES256", "k1")
    pool = OffloadPool(2, name="batch-loops")
    try:
        verifier = _verifier(es, pool, token_cache=False)
        per_loop = {
            n: [token_for(es, {"jti": f"{n}-{i}"}) for i in range(2 * CHUNK + 3)]
            for n in range(loops)
        }
        seen: dict[int, list[str]] = {}

        def work(n: int) -> None:
            async def main() -> list[Any]:
                return list(await asyncio.gather(*(verifier.verify_async(t) for t in per_loop[n])))

            seen[n] = [c["jti"] for c in asyncio.run(main())]

        threads = [threading.Thread(target=work, args=(n,)) for n in per_loop]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert seen == {n: [f"{n}-{i}" for i in range(2 * CHUNK + 3)] for n in per_loop}
    finally:
        pool.close()
