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
"""

from __future__ import annotations

import asyncio
import struct
from typing import AsyncIterator, Iterable, Optional

from . import _frames
from .client import Client, Hold, Record, Stats, _record, _stats_of, default_socket
from .errors import DaemonGone, OutcomeUnknown, ProtocolError, RecordTooLarge, ServerFailed, WaldError, from_wire
from .proto import Body

_B = Body.Body
_CONTROL_IDS = 1 << 63


class AsyncClient:
    """A connection to wald for asyncio code. Use wald.aio.connect()."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._reader, self._writer = reader, writer
        self._next_id = 1
        self._control_id = _CONTROL_IDS
        self._acks: dict[int, list[asyncio.Future]] = {}  # request id -> its appends' futures
        self._replies: dict[int, asyncio.Future] = {}  # control request id -> its answer frame
        self._reads: dict[int, asyncio.Queue] = {}  # read request id -> frames for it
        self._queued: list[tuple[bytes, asyncio.Future]] = []  # appends not yet written
        self._flush_scheduled = False
        self._broken: Optional[WaldError] = None
        self._pump: Optional[asyncio.Task] = None
        self._window = asyncio.Semaphore(1)  # max_inflight records, from HelloAck

    async def _handshake(self, client_name: str) -> None:
        self._writer.write(_frames.hello(client_name))
        Client._welcome(self, _frames.hello_ack(await self._frame(_frames.MAX_FRAME_SIZE)))
        self._window = asyncio.Semaphore(self.max_inflight)
        self._pump = asyncio.get_running_loop().create_task(self._run())

    # ---- connection ----

    async def close(self) -> None:
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
        for futures in self._acks.values():
            for fut in futures:
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
        """Reads frames and hands each to whoever waits for it."""
        try:
            while True:
                self._dispatch(await self._frame())
        except WaldError as e:
            self._fail(e)
        except asyncio.CancelledError:
            raise

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
                if isinstance(err, ServerFailed):
                    err = OutcomeUnknown(f"{err.message}: this append may or may not be in the log")
                for fut in self._acks.pop(rid):
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
                q.put_nowait(f)
        elif f.body_type in (_B.TrimAck, _B.HoldAck, _B.StatsReply):
            fut = self._replies.pop(t.u64(0), None)
            if fut is not None and not fut.done():
                fut.set_result(f)

    def _complete(self, rid: int, first_seq: int, count: int) -> None:
        futures = self._acks.get(rid)
        if futures is None or len(futures) != count or first_seq == 0:
            raise ProtocolError(f"an ack for unknown request {rid}")  # _fail fails what waits
        del self._acks[rid]
        for k, fut in enumerate(futures):
            self._window.release()
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
            self._acks[rid] = [fut for _, fut in queued[at:end]]
            if end - at == 1 or self.max_batch_records == 0:
                frames.append(_frames.append(rid, queued[at][0]))
            else:
                frames.append(_frames.append_batch(rid, [p for p, _ in queued[at:end]]))
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
        self._writer.write(_frames.read(rid, from_seq, max_records, follow))
        finished = False
        try:
            while True:
                item = await q.get()
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


async def connect(path: Optional[str] = None, client_name: str = "python-asyncio") -> AsyncClient:
    """Connects to the daemon at `path` (default: wald.default_socket())."""
    path = path or default_socket()
    try:
        reader, writer = await asyncio.open_unix_connection(path, limit=_frames.MAX_FRAME_SIZE * 2)
    except OSError as e:
        raise DaemonGone(f"cannot connect to wald at {path}: {e.strerror or e}") from e
    c = AsyncClient(reader, writer)
    try:
        await c._handshake(client_name)
    except BaseException:
        writer.close()
        raise
    return c


__all__ = ["AsyncClient", "connect", "Hold", "Record", "Stats"]
