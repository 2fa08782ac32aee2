"""wald.aio against the real daemon: many tasks on one connection, follow
on an event loop that keeps running, errors as exceptions."""

import asyncio
import time

import pytest

import wald
import wald.aio


def test_64_concurrent_tasks_get_dense_seqs_for_their_own_records(daemon):
    async def main():
        async with await wald.aio.connect(daemon.socket) as c:
            async def task(k):
                return [(await c.append(b"t%d-%d" % (k, i)), i) for i in range(200)]

            results = await asyncio.gather(*(task(k) for k in range(64)))
            back = {r.seq: r.payload async for r in c.read(1)}
            return results, back

    results, back = asyncio.run(main())
    seqs = sorted(s for per_task in results for s, _ in per_task)
    assert seqs == list(range(1, 64 * 200 + 1))
    for k, per_task in enumerate(results):
        assert [s for s, _ in per_task] == sorted(s for s, _ in per_task)  # each task's in order
        for s, i in per_task:
            assert back[s] == b"t%d-%d" % (k, i)


def test_append_many_coalesces_and_returns_seqs_in_order(daemon):
    async def main():
        async with await wald.aio.connect(daemon.socket) as c:
            seqs = await c.append_many([b"x%d" % i for i in range(10_000)])
            s = await c.stats()
            return seqs, s

    seqs, s = asyncio.run(main())
    assert seqs == list(range(1, 10_001))
    assert s.records == 10_000


def test_follow_waits_without_blocking_the_loop(daemon):
    async def main():
        follower = await wald.aio.connect(daemon.socket)
        writer = await wald.aio.connect(daemon.socket)
        seen = []

        async def follow():
            async for r in follower.follow(1):
                seen.append(r.payload)
                if len(seen) == 3:
                    return

        task = asyncio.create_task(follow())
        ticks = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.2:  # the loop runs while the follower waits
            ticks += 1
            await asyncio.sleep(0.01)
        await writer.append_many([b"a", b"b", b"c"])
        await asyncio.wait_for(task, 10)
        await follower.close()
        await writer.close()
        return seen, ticks

    seen, ticks = asyncio.run(main())
    assert seen == [b"a", b"b", b"c"]
    assert ticks >= 10


def test_errors_reach_the_awaiting_task(make_daemon):
    d = make_daemon("--segment-size", "1MiB", "--max-record", "64KiB")

    async def main():
        async with await wald.aio.connect(d.socket) as c:
            with pytest.raises(wald.RecordTooLarge):
                await c.append(bytes(c.max_record_size + 1))
            await c.append_many([bytes(1000)] * 3000)
            released = await c.trim(2000)
            with pytest.raises(wald.Trimmed) as e:
                async for _ in c.read(1):
                    pass
            assert e.value.first_seq == released + 1
            assert await c.hold("h", released + 5) == released + 5
            await c.release("h")
            with pytest.raises(wald.NoSuchHold):
                await c.release("h")

    asyncio.run(main())


def test_daemon_killed_with_appends_in_flight_is_outcome_unknown(daemon):
    async def main():
        c = await wald.aio.connect(daemon.socket)
        tasks = [asyncio.create_task(c.append(bytes(1000))) for _ in range(20_000)]
        await asyncio.sleep(0.02)
        daemon.proc.kill()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await c.close()
        return results

    results = asyncio.run(main())
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors, "the kill came after every append was acked"
    assert all(isinstance(e, (wald.OutcomeUnknown, wald.DaemonGone)) for e in errors)
    oks = [r for r in results if not isinstance(r, BaseException)]
    assert len(set(oks)) == len(oks)  # never the same seq twice


# Review: an answer (an Error) for a control call its caller had given up on
# raised InvalidStateError in the reader task, and every later call hung.
def test_an_answer_for_an_abandoned_call_leaves_the_client_working(daemon):
    async def main():
        async with await wald.aio.connect(daemon.socket) as c:
            task = asyncio.create_task(c.hold("not a valid name!", 1))
            await asyncio.sleep(0)  # the Hold is written; its answer is awaited
            task.cancel()
            await asyncio.sleep(0.2)  # the daemon's InvalidRequest arrives
            return await asyncio.wait_for(c.append(b"still here"), 10)

    assert asyncio.run(main()) == 1
