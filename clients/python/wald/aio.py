"""The asyncio client: the same verbs as wald.Client, never blocking the
event loop (the reason wald exists: WAL writes on a busy async runtime).

    async with await wald.aio.connect() as c:
        seq = await c.append(b"order 42 paid")   # durable when it returns
        seqs = await asyncio.gather(*(c.append(p) for p in payloads))
        async for rec in c.read(1, max_records=10):
            ...

Appends made in the same turn of the loop (by one task or many) go to the
daemon together, in AppendBatch frames, each with its own seq; at most
max_inflight records are in flight, the rest wait their turn. One
connection serves any number of tasks.

connect(producer=True) makes an idempotent producer, as wald.connect does:
when the daemon goes away the client reconnects (within reconnect_timeout
seconds), resends what was in flight, and each append returns the seq its
record really got. A plain connection with a reconnect_timeout reconnects
too: reads and follows resume after the last record received.
"""

from __future__ import annotations

import asyncio
import struct
import time
from typing import AsyncIterator, Iterable, Optional

from . import _frames
from .client import _FIRST_PAUSE, _LONGEST_PAUSE, Client, Hold, Record, Stats, _passing, _producer_options, _record
from .client import _stats_of, default_socket
from .errors import (
    DaemonGone,
    OutcomeUnknown,
    ProtocolError,
    RecordTooLarge,
    ServerFailed,
    Unsupported,
    WaldError,
    from_wire,
)
from .proto import Body

_B = Body.Body
_CONTROL_IDS = 1 << 63
_DONE = object()  # in a read's queue: it is complete (it had all it asked for before a reconnect)


class AsyncClient:
    """A connection to wald for asyncio code. Use wald.aio.connect()."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        path: Optional[str] = None,
        producer_id: int = 0,
        reconnect_timeout: float = 0.0,
    ):
        self._reader, self._writer = reader, writer
        self._next_id = 1
        self._control_id = _CONTROL_IDS
        # request id -> its appends: (future, payload, producer number, resent as a repeat)
        self._acks: dict[int, list[tuple[asyncio.Future, bytes, int, bool]]] = {}
        self._path = path
        self.producer_id: int = producer_id  # 0: not a producer
        self.producer_seq: int = 0  # the last number used
        self._acked_pseq = 0
        self.reconnect_timeout: float = reconnect_timeout if path else 0.0
        self.reconnects: int = 0
        self._closed_by_us = False
        self._reconnecting = False
        self._read_pos: dict[int, list[int]] = {}  # read request id -> [next seq, records left (or -1), follow]
        self._replies: dict[int, asyncio.Future] = {}  # control request id -> its answer frame
        self._reads: dict[int, asyncio.Queue] = {}  # read request id -> frames for it
        self._queued: list[tuple[bytes, asyncio.Future]] = []  # appends not yet written
        self._flush_scheduled = False
        self._broken: Optional[WaldError] = None
        self._pump: Optional[asyncio.Task] = None
        self._window = asyncio.Semaphore(1)  # max_inflight records, from HelloAck

    async def _handshake(self, client_name: str) -> None:
        self._name = client_name
        self._writer.write(_frames.hello(client_name, self.producer_id))
        w = _frames.hello_ack(await self._frame(_frames.MAX_FRAME_SIZE))
        if self.producer_id and w.producer_depth == 0:
            raise Unsupported("this wald daemon has no idempotent producers (it is older than them)")
        Client._welcome(self, w)
        self.producer_seq = w.producer_seq
        self._window = asyncio.Semaphore(self.max_inflight)
        self._pump = asyncio.get_running_loop().create_task(self._run())

    # ---- connection ----

    async def close(self) -> None:
        self._closed_by_us = True
        self._fail(DaemonGone("the client was closed"))
        if self._pump is not None:
            self._pump.cancel()
            try:
                await self._pump
            except (asyncio.CancelledError, Exception):
                pass
        try:
            await self._writer.wait_closed()
        except Exception:
            pass

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def _fail(self, e: WaldError) -> None:
        """Ends the connection: appends in flight get OutcomeUnknown, the rest
        of the waiters `e`."""
        if self._broken is not None:
            return
        self._broken = e
        self._writer.close()
        unknown = OutcomeUnknown(f"{e.message}: this append may or may not be in the log")
        for entries in self._acks.values():
            for fut, *_ in entries:
                self._window.release()  # tasks waiting for room wake and see _broken
                if not fut.done():
                    fut.set_exception(unknown)
        for _, fut in self._queued:
            self._window.release()
            if not fut.done():
                fut.set_exception(e)
        for fut in self._replies.values():
            if not fut.done():
                fut.set_exception(e)
        for q in self._reads.values():
            q.put_nowait(e)
        self._acks.clear()
        self._queued.clear()
        self._replies.clear()

    async def _frame(self, limit: Optional[int] = None) -> _frames.Frame:
        if limit is None:
            limit = self.max_frame_size + _frames.RECORDS_CHUNK
        try:
            head = await self._reader.readexactly(4)
            n = struct.unpack("<I", head)[0]
            if n > limit:
                raise ProtocolError(f"a frame of {n} bytes from the daemon, over {limit}")
            body = await self._reader.readexactly(n)
        except asyncio.IncompleteReadError:
            raise DaemonGone("the daemon closed the connection") from None
        except OSError as e:
            raise DaemonGone(f"read from the daemon: {e}") from None
        try:
            return _frames.parse(body)
        except (struct.error, IndexError, ValueError) as e:
            raise ProtocolError(f"a malformed frame from the daemon: {e}") from None

    async def _run(self) -> None:
        """Reads frames and hands each to whoever waits for it; reconnects
        (reconnect_timeout) when the daemon goes away."""
        while True:
            try:
                while True:
                    self._dispatch(await self._frame())
            except WaldError as e:
                if not _passing(e) or self.reconnect_timeout <= 0 or self._closed_by_us:
                    self._fail(e)
                    return
                try:
                    await self._reconnect(e)
                except WaldError as gone:
                    self._fail(gone)
                    return
            except asyncio.CancelledError:
                raise

    async def _reconnect(self, why: WaldError) -> None:
        """Dials again until the daemon answers Hello for the same log, then
        sends what the old connection left unanswered (see the module's doc);
        raises past reconnect_timeout."""
        self._writer.close()
        self._reconnecting = True  # appends made meanwhile stay queued
        deadline = time.monotonic() + self.reconnect_timeout
        pause, last = _FIRST_PAUSE, why
        while True:
            left = deadline - time.monotonic()
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_unix_connection(self._path, limit=_frames.MAX_FRAME_SIZE * 2), max(left, 0.001)
                )
                self._reader, self._writer = reader, writer
                writer.write(_frames.hello(self._name, self.producer_id))
                w = _frames.hello_ack(await asyncio.wait_for(self._frame(_frames.MAX_FRAME_SIZE), max(left, 0.001)))
                if w.log_id != self.log_id:
                    raise ProtocolError("the daemon at the socket now serves another log; nothing is resent there")
                if self.producer_id and w.producer_depth == 0:
                    raise Unsupported("this wald daemon has no idempotent producers (it is older than them)")
                break
            except (OSError, asyncio.TimeoutError) as e:
                last = DaemonGone(f"cannot connect to wald at {self._path}: {e}")
            except WaldError as e:
                if not _passing(e):
                    raise
                last = e
            if time.monotonic() >= deadline:
                raise DaemonGone(
                    f"{why.message}; wald was not back within {self.reconnect_timeout} s (reconnect_timeout): "
                    f"{last.message}"
                )
            await asyncio.sleep(min(pause, max(deadline - time.monotonic(), 0)))
            pause = min(pause * 2, _LONGEST_PAUSE)
        Client._welcome(self, w)
        self.reconnects += 1
        self._reconnecting = False
        self._resend(why)
        if self._queued and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _resend(self, why: WaldError) -> None:
        """After a reconnect: appends in flight (a producer's: renumbered
        where the daemon's last number shows they are not in the log, none
        if it forgot the producer; a plain connection's: outcome unknown),
        the reads from where they were, and control requests failed."""
        entries = [e for rid in sorted(self._acks) for e in self._acks[rid]]
        self._acks.clear()
        unknown = OutcomeUnknown(f"{why.message}: this append may or may not be in the log")
        last = self._hello_pseq
        if not self.producer_id or last < self._acked_pseq:
            if self.producer_id:
                unknown = OutcomeUnknown(
                    f"wald no longer knows this producer (its last number {last} is below the "
                    f"{self._acked_pseq} acked): appends in flight are not resent"
                )
                if last:
                    self.producer_seq = last
                self._acked_pseq = last
            for fut, *_ in entries:
                self._window.release()
                if not fut.done():
                    fut.set_exception(unknown)
            entries = []
        frames, n = [], last
        for fut, payload, pseq, _ in entries:
            resent = pseq <= last
            if not resent:
                n += 1
                pseq = n
            rid = self._next_id
            self._next_id += 1
            self._acks[rid] = [(fut, payload, pseq, resent)]
            frames.append(_frames.append(rid, payload, pseq))
        if self.producer_id and entries:
            self.producer_seq = n
        elif self.producer_id and last:
            self.producer_seq = last
        for rid, (next_seq, left, follow) in self._read_pos.items():
            if left == 0:  # it has every record it asked for
                self._reads[rid].put_nowait(_DONE)
            else:
                frames.append(_frames.read(rid, next_seq, max(left, 0), bool(follow)))
        gone = DaemonGone(f"{why.message}: the connection broke before the answer; the request may or may not "
                          "have been applied")
        for fut in self._replies.values():
            if not fut.done():
                fut.set_exception(gone)
        self._replies.clear()
        self._writer.write(b"".join(frames))

    def _dispatch(self, f: _frames.Frame) -> None:
        t = f.body
        if f.body_type == _B.Acks:
            acks = [(rid, seq, 1) for rid, seq in t.structs(0, "<QQ")] + t.structs(1, "<QQQ")
            for rid, first, count in sorted(acks):  # request order, as PROTOCOL.md asks
                self._complete(rid, first, count)
        elif f.body_type == _B.Error:
            rid = t.u64(0)
            err = from_wire(t.u16(1), t.string(2), t.u64(3))
            if rid == 0:
                raise err
            if rid in self._acks:
                if isinstance(err, ServerFailed) and self.producer_id and self.reconnect_timeout > 0:
                    return  # resent once the daemon is back: it answers with the seq if it is there
                entries = self._acks.pop(rid)
                if isinstance(err, ServerFailed) or any(resent for *_, resent in entries):
                    err = OutcomeUnknown(f"{err.message}: this append may or may not be in the log")
                for fut, *_ in entries:
                    self._window.release()
                    if not fut.done():
                        fut.set_exception(err)
            elif rid in self._reads:
                self._reads[rid].put_nowait(err)
            elif rid in self._replies:
                fut = self._replies.pop(rid)
                if not fut.done():  # its caller may have given up (a timeout)
                    fut.set_exception(err)
        elif f.body_type == _B.Records:
            q = self._reads.get(t.u64(0))
            if q is not None:
                pos = self._read_pos.get(t.u64(0))
                if pos is not None:  # where it resumes after a reconnect
                    seqs = [r.u64(0) for r in t.tables(1)]
                    if seqs:
                        pos[0] = seqs[-1] + 1
                        if pos[1] > 0:
                            pos[1] = max(pos[1] - len(seqs), 0)
                q.put_nowait(f)
        elif f.body_type in (_B.TrimAck, _B.HoldAck, _B.StatsReply):
            fut = self._replies.pop(t.u64(0), None)
            if fut is not None and not fut.done():
                fut.set_result(f)

    def _complete(self, rid: int, first_seq: int, count: int) -> None:
        entries = self._acks.get(rid)
        if entries is None or len(entries) != count or first_seq == 0:
            raise ProtocolError(f"an ack for unknown request {rid}")  # _fail fails what waits
        del self._acks[rid]
        for k, (fut, _, pseq, _) in enumerate(entries):
            self._window.release()
            self._acked_pseq = max(self._acked_pseq, pseq)
            if not fut.done():
                fut.set_result(first_seq + k)
        self.durable_seq = max(self.durable_seq, first_seq + count - 1)

    # ---- appends ----

    async def append(self, payload: bytes) -> int:
        """Appends one record; returns its seq once it is durable."""
        if self._broken is not None:
            raise self._broken
        if len(payload) > self.max_record_size:
            raise RecordTooLarge(
                f"record of {len(payload)} bytes exceeds the daemon's max record size {self.max_record_size}"
            )
        await self._window.acquire()
        if self._broken is not None:
            self._window.release()
            raise self._broken
        fut = asyncio.get_running_loop().create_future()
        self._queued.append((bytes(payload), fut))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return await fut

    async def append_many(self, payloads: Iterable[bytes]) -> list[int]:
        """Appends every payload; returns their seqs once all are durable.
        Raises the first error (records before it may be durable)."""
        return list(await asyncio.gather(*(self.append(p) for p in payloads)))

    def _flush(self) -> None:
        """Writes what this turn of the loop queued: AppendBatch frames where
        the daemon takes them, within its frame and batch limits."""
        self._flush_scheduled = False
        if self._reconnecting:
            return  # flushed once the new connection is up
        queued, self._queued = self._queued, []
        if not queued or self._broken is not None:
            return
        frames = []
        at = 0
        while at < len(queued):
            end, size = at, 0
            while end < len(queued) and end - at < max(self.max_batch_records, 1):
                grown = size + len(queued[end][0]) + _frames.BATCH_RECORD_OVERHEAD
                if end > at and _frames.APPEND_OVERHEAD + grown > self.max_frame_size:
                    break
                size, end = grown, end + 1
            rid = self._next_id
            self._next_id += 1
            first_pseq = self.producer_seq + 1 if self.producer_id else 0
            entries = []
            for p, fut in queued[at:end]:
                pseq = 0
                if self.producer_id:
                    self.producer_seq += 1
                    pseq = self.producer_seq
                entries.append((fut, p, pseq, False))
            self._acks[rid] = entries
            if end - at == 1 or self.max_batch_records == 0:
                frames.append(_frames.append(rid, queued[at][0], first_pseq))
            else:
                frames.append(_frames.append_batch(rid, [p for p, _ in queued[at:end]], first_pseq))
            at = end
        self._writer.write(b"".join(frames))  # buffered: the loop writes it, never blocks

    # ---- reads ----

    def read(self, from_seq: int = 1, max_records: Optional[int] = None) -> AsyncIterator[Record]:
        """The durable records from `from_seq` on (at most `max_records`)."""
        return self._read(from_seq, max_records or 0, follow=False)

    def follow(self, from_seq: int = 1) -> AsyncIterator[Record]:
        """Every record from `from_seq` on, as soon as it is durable; ends
        only with the connection (use a client of its own, and close it)."""
        return self._read(from_seq, 0, follow=True)

    async def _read(self, from_seq: int, max_records: int, follow: bool) -> AsyncIterator[Record]:
        if self._broken is not None:
            raise self._broken
        self._control_id += 1
        rid = self._control_id
        q: asyncio.Queue = asyncio.Queue()
        self._reads[rid] = q
        self._read_pos[rid] = [from_seq, max_records if max_records else -1, int(follow)]
        self._writer.write(_frames.read(rid, from_seq, max_records, follow))
        finished = False
        try:
            while True:
                item = await q.get()
                if item is _DONE:
                    finished = True
                    return
                if isinstance(item, WaldError):
                    finished = True
                    raise item
                try:
                    records = [_record(t) for t in item.body.tables(1)]
                    done = bool(item.body.u8(2))
                except ProtocolError as e:
                    self._fail(e)
                    raise
                for rec in records:
                    yield rec
                if done:
                    finished = True
                    return
        finally:
            # Left early (the caller stopped iterating): the daemon stops
            # streaming; what is still on its way for this id is ignored.
            self._reads.pop(rid, None)
            self._read_pos.pop(rid, None)
            if not finished and self._broken is None:
                self._writer.write(_frames.cancel_read(rid))

    # ---- retention and stats ----

    async def _control(self, build, answer: int) -> _frames.Frame:
        if self._broken is not None:
            raise self._broken
        self._control_id += 1
        rid = self._control_id
        fut = asyncio.get_running_loop().create_future()
        self._replies[rid] = fut
        self._writer.write(build(rid))
        f = await fut
        if f.body_type != answer:
            raise ProtocolError("an answer of the wrong type")
        return f

    async def trim(self, up_to_seq: int) -> int:
        f = await self._control(lambda rid: _frames.trim(rid, up_to_seq), _B.TrimAck)
        return f.body.u64(1)

    async def hold(self, name: str, seq: int) -> int:
        f = await self._control(lambda rid: _frames.hold(rid, name, seq), _B.HoldAck)
        return f.body.u64(2)

    async def release(self, name: str) -> None:
        await self._control(lambda rid: _frames.release_hold(rid, name), _B.HoldAck)

    async def stats(self) -> Stats:
        return _stats_of((await self._control(_frames.stats_request, _B.StatsReply)).body)


async def connect(
    path: Optional[str] = None,
    client_name: str = "python-asyncio",
    *,
    producer: bool = False,
    producer_id: Optional[int] = None,
    reconnect_timeout: Optional[float] = None,
) -> AsyncClient:
    """Connects to the daemon at `path` (default: wald.default_socket()).
    producer, producer_id, reconnect_timeout: as for wald.connect()."""
    path = path or default_socket()
    producer_id, reconnect_timeout = _producer_options(producer, producer_id, reconnect_timeout)
    try:
        reader, writer = await asyncio.open_unix_connection(path, limit=_frames.MAX_FRAME_SIZE * 2)
    except OSError as e:
        raise DaemonGone(f"cannot connect to wald at {path}: {e.strerror or e}") from e
    c = AsyncClient(reader, writer, path=path, producer_id=producer_id, reconnect_timeout=reconnect_timeout)
    try:
        await c._handshake(client_name)
    except BaseException:
        writer.close()
        raise
    return c


__all__ = ["AsyncClient", "connect", "Hold", "Record", "Stats"]
