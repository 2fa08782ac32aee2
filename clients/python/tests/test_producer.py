"""Idempotent producers and reconnecting reads from Python, against the real
wald binary killed and restarted under them."""

import signal
import threading
import time

import wald


def test_a_producer_id_given_again_continues_its_numbers(daemon):
    with wald.connect(daemon.socket, producer=True, producer_id=0xABC) as c:
        assert c.append_many([b"a", b"b", b"c"]) == [1, 2, 3]
        assert c.producer_seq == 3
    with wald.connect(daemon.socket, producer=True, producer_id=0xABC) as c:
        assert c.producer_seq == 3  # HelloAck: the daemon's last number for it
        assert c.append(b"d") == 4
        recs = list(c.read(1))
    assert [(r.producer_id, r.producer_seq) for r in recs] == [(0xABC, 1), (0xABC, 2), (0xABC, 3), (0xABC, 4)]


def test_a_producer_across_sigkill_restarts_writes_each_record_once_at_the_seq_returned(daemon):
    got = {}  # payload -> seq
    errors = []
    stop = threading.Event()

    def produce():
        try:
            with wald.connect(daemon.socket, producer=True, reconnect_timeout=60) as c:
                i = 0
                while not stop.is_set():
                    batch = [b"p%d" % k for k in range(i, i + 200)]
                    for p, s in zip(batch, c.append_many(batch)):
                        got[p] = s
                    i += 200
        except wald.WaldError as e:
            errors.append(e)

    t = threading.Thread(target=produce)
    t.start()
    for _ in range(10):
        before = len(got)
        deadline = time.time() + 30
        while len(got) == before and time.time() < deadline and not errors:
            time.sleep(0.005)
        daemon.stop(signal.SIGKILL)
        daemon.start()
    time.sleep(0.1)
    stop.set()
    t.join(60)
    assert not errors, errors
    with wald.connect(daemon.socket) as c:
        log = list(c.read(1))
    payloads = [r.payload for r in log]
    assert len(payloads) == len(set(payloads)), "a record is in the log twice"
    at = {r.payload: r.seq for r in log}
    assert all(at.get(p) == s for p, s in got.items()), "a returned seq does not hold its record"
    assert set(at) == set(got)  # every append_many returned, so everything sent is in


def test_a_follow_resumes_after_a_restart_from_the_record_after_the_last_it_yielded(daemon):
    with wald.connect(daemon.socket) as c:
        c.append_many([b"r%d" % i for i in range(50)])
    c = wald.connect(daemon.socket, reconnect_timeout=30)
    seen = []
    for rec in c.follow(1):
        seen.append(rec.seq)
        if len(seen) == 50:
            daemon.stop(signal.SIGTERM)
            daemon.start()
            with wald.connect(daemon.socket) as w:
                w.append_many([b"r%d" % i for i in range(50, 100)])
        if len(seen) == 100:
            break
    c.close()
    assert seen == list(range(1, 101))
    assert c.reconnects == 1


def test_without_reconnect_a_plain_client_still_sees_the_daemon_go(daemon):
    c = wald.connect(daemon.socket)
    daemon.stop(signal.SIGKILL)
    try:
        c.append(b"x")
        raise AssertionError("append to a dead daemon succeeded")
    except (wald.OutcomeUnknown, wald.DaemonGone):
        pass
    daemon.start()


def test_a_producer_whose_daemon_restarted_while_it_was_idle_reads_and_appends_on(daemon):
    with wald.connect(daemon.socket, producer=True) as c:
        assert c.append_many([b"a", b"b"]) == [1, 2]
        daemon.stop(signal.SIGKILL)
        daemon.start()
        assert [r.payload for r in c.read(1)] == [b"a", b"b"]  # its first write finds the old socket dead
        assert c.reconnects == 1
        assert c.append(b"c") == 3
        assert [(r.producer_id, r.producer_seq) for r in c.read(3)] == [(c.producer_id, 3)]


def test_a_socket_timeout_is_the_callers_bound_not_a_reason_to_reconnect(daemon):
    c = wald.connect(daemon.socket, timeout=0.3, reconnect_timeout=5)
    start = time.monotonic()
    try:
        for _ in c.follow(1):  # an empty log: nothing comes
            pass
        raise AssertionError("follow on an empty log ended")
    except wald.DaemonGone:
        pass
    assert time.monotonic() - start < 3
    assert c.reconnects == 0
    c.close()


def test_an_asyncio_producer_across_sigkill_restarts_writes_each_record_once_at_the_seq_returned(daemon):
    import asyncio

    import wald.aio

    got = {}  # payload -> seq

    async def main():
        async with await wald.aio.connect(daemon.socket, producer=True, reconnect_timeout=60) as c:
            stop = asyncio.Event()

            async def task(k):
                i = 0
                while not stop.is_set():
                    p = b"t%d-%d" % (k, i)
                    got[p] = await c.append(p)
                    i += 1

            tasks = [asyncio.create_task(task(k)) for k in range(64)]
            loop = asyncio.get_running_loop()
            for _ in range(10):
                before = len(got)
                while len(got) == before:
                    await asyncio.sleep(0.005)
                await loop.run_in_executor(None, lambda: (daemon.stop(signal.SIGKILL), daemon.start()))
            await asyncio.sleep(0.1)
            stop.set()
            await asyncio.gather(*tasks)
            return c.reconnects, [r async for r in c.read(1)]

    reconnects, log = asyncio.run(asyncio.wait_for(main(), 120))
    payloads = [r.payload for r in log]
    assert len(payloads) == len(set(payloads)), "a record is in the log twice"
    at = {r.payload: r.seq for r in log}
    assert all(at.get(p) == s for p, s in got.items()), "a returned seq does not hold its record"
    assert set(at) == set(got)
    assert reconnects >= 10


def test_an_asyncio_follow_resumes_after_a_restart(daemon):
    import asyncio

    import wald.aio

    with wald.connect(daemon.socket) as c:
        c.append_many([b"r%d" % i for i in range(50)])

    async def main():
        c = await wald.aio.connect(daemon.socket, reconnect_timeout=30)
        seen = []
        loop = asyncio.get_running_loop()
        async for rec in c.follow(1):
            seen.append(rec.seq)
            if len(seen) == 50:
                await loop.run_in_executor(None, lambda: (daemon.stop(signal.SIGTERM), daemon.start()))
                with wald.connect(daemon.socket) as w:
                    w.append_many([b"r%d" % i for i in range(50, 100)])
            if len(seen) == 100:
                break
        await c.close()
        return seen, c.reconnects

    seen, reconnects = asyncio.run(asyncio.wait_for(main(), 60))
    assert seen == list(range(1, 101))
    assert reconnects == 1
