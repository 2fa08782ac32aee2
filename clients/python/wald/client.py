"""The blocking client: one Unix-socket connection to a wald daemon.

    with wald.connect() as c:
        seq = c.append(b"order 42 paid")      # durable when it returns
        seqs = c.append_many([b"a", b"b"])    # one write, one round trip
        for rec in c.read(1):
            print(rec.seq, rec.payload)

One Client per thread at a time. Errors are exceptions (wald.errors).
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional

from . import _frames
from .errors import DaemonGone, OutcomeUnknown, ProtocolError, RecordTooLarge, ServerFailed, WaldError, from_wire
from .proto import Body

_B = Body.Body
_CONTROL_IDS = 1 << 63  # reads, trims, holds, stats: ids above this; appends 1, 2, 3...


@dataclass
class Record:
    """A record of the log, with the metadata wald stamped on it (--stamp)."""

    seq: int
    payload: bytes
    time_ns: int = 0  # when the daemon received it, ns since the Unix epoch; 0: not stamped
    pid: Optional[int] = None  # the sender's credentials, when stamped
    uid: Optional[int] = None
    gid: Optional[int] = None


@dataclass
class Hold:
    name: str
    seq: int
    lag_bytes: int


@dataclass
class Stats:
    """The daemon's counters (StatsReply)."""

    uptime_us: int
    connections: int
    records: int
    bytes: int
    syncs: int
    durable_seq: int
    next_seq: int
    records_per_sync: _frames.Histogram
    sync_latency_us: _frames.Histogram
    ack_latency_us: _frames.Histogram
    rejected_frames: int
    backpressure_events: int
    first_seq: int
    holds: list[Hold] = field(default_factory=list)
    holds_invalidated: int = 0
    disk_budget_refusals: int = 0


def default_socket() -> str:
    """$WALD_SOCKET, else /run/wald/wald.sock if it exists, else ./wald.sock."""
    env = os.environ.get("WALD_SOCKET")
    if env:
        return env
    if os.path.exists("/run/wald/wald.sock"):
        return "/run/wald/wald.sock"
    return "./wald.sock"


class Client:
    """A connection to wald. Use wald.connect() to make one."""

    def __init__(self, sock: socket.socket, client_name: str = "python"):
        self._sock = sock
        self._in = bytearray()
        self._next_id = 1
        self._control_id = _CONTROL_IDS
        self._broken: Optional[WaldError] = None
        self._reading: Optional[int] = None  # the request id of a read being iterated
        self._send(_frames.hello(client_name))
        self._welcome(_frames.hello_ack(self._next_frame(_frames.MAX_FRAME_SIZE)))

    def _welcome(self, h: "_frames.Welcome") -> None:
        self.log_id: bytes = h.log_id  # 16 bytes, fixed when the log was created
        self.durable_seq: int = h.durable_seq
        self.max_frame_size: int = h.max_frame_size
        self.max_record_size: int = h.max_record_size
        self.max_inflight: int = h.max_inflight
        self.server_version: str = h.server_version
        self.max_batch_records: int = h.max_batch_records  # 0: the daemon takes no AppendBatch

    # ---- connection ----

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self._broken = self._broken or DaemonGone("the client was closed")

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _fail(self, e: WaldError) -> WaldError:
        if self._broken is None:
            self._broken = e
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        return self._broken

    def _idle(self) -> None:
        """One call at a time: a read being iterated must end (or be closed)
        before another call, whose answers would otherwise pass its records."""
        if self._reading is not None:
            raise WaldError("a read is in progress on this client: finish or close it first, or use another client")

    def _send(self, frame: bytes) -> None:
        if self._broken is not None:
            raise self._broken
        try:
            self._sock.sendall(frame)
        except OSError as e:
            raise self._fail(DaemonGone(f"write to the daemon: {e}"))

    def _next_frame(self, limit: Optional[int] = None) -> _frames.Frame:
        """Reads until one whole frame is in, and decodes it."""
        if limit is None:
            limit = self.max_frame_size + _frames.RECORDS_CHUNK
        while True:
            if len(self._in) >= 4:
                n = struct.unpack_from("<I", self._in, 0)[0]
                if n > limit:
                    raise self._fail(ProtocolError(f"a frame of {n} bytes from the daemon, over {limit}"))
                if len(self._in) >= 4 + n:
                    body = bytes(self._in[4 : 4 + n])
                    del self._in[: 4 + n]
                    try:
                        return _frames.parse(body)
                    except ProtocolError as e:
                        raise self._fail(e)
                    except (struct.error, IndexError, ValueError) as e:
                        raise self._fail(ProtocolError(f"a malformed frame from the daemon: {e}"))
            if self._broken is not None:
                raise self._broken
            try:
                chunk = self._sock.recv(1 << 20)
            except OSError as e:
                raise self._fail(DaemonGone(f"read from the daemon: {e}"))
            if not chunk:
                raise self._fail(DaemonGone("the daemon closed the connection"))
            self._in += chunk

    def _error(self, f: _frames.Frame) -> tuple[int, WaldError]:
        t = f.body
        return t.u64(0), from_wire(t.u16(1), t.string(2), t.u64(3))

    def _raise_if_for(self, f: _frames.Frame, rid: int) -> None:
        """Raises the Error frame f if it answers request `rid`, or the
        connection (0: the daemon then closes it)."""
        erid, err = self._error(f)
        if erid == 0:
            raise self._fail(err)
        if erid == rid:
            raise err

    # ---- appends ----

    def append(self, payload: bytes) -> int:
        """Appends one record; returns its seq once it is durable."""
        return self.append_many([payload])[0]

    def append_many(self, payloads: Iterable[bytes]) -> list[int]:
        """Appends every payload with one write (AppendBatch frames where the
        daemon takes them, else pipelined Appends, within max_inflight at a
        time); returns their seqs, in order, once all are durable. Raises the
        first error, after the rest of its round trip is answered: the other
        records of the call, before or after the failed one, may be durable
        (read them back before retrying)."""
        self._idle()
        payloads = [bytes(p) for p in payloads]
        for p in payloads:
            if len(p) > self.max_record_size:
                raise RecordTooLarge(
                    f"record of {len(p)} bytes exceeds the daemon's max record size {self.max_record_size}"
                )
        seqs: list[int] = [0] * len(payloads)
        at = 0
        while at < len(payloads):
            # One window: frames for up to max_inflight records, then their acks.
            frames, pending, end = [], {}, at
            while end < len(payloads) and end - at < self.max_inflight:
                first, size = end, 0
                limit = min(self.max_batch_records, self.max_inflight - (end - at))
                while end < len(payloads) and end - first < max(limit, 1):
                    grown = size + len(payloads[end]) + _frames.BATCH_RECORD_OVERHEAD
                    if end > first and _frames.APPEND_OVERHEAD + grown > self.max_frame_size:
                        break
                    size, end = grown, end + 1
                rid = self._next_id
                self._next_id += 1
                pending[rid] = (first, end - first)
                if end - first == 1 or self.max_batch_records == 0:
                    frames.append(_frames.append(rid, payloads[first]))
                else:
                    frames.append(_frames.append_batch(rid, payloads[first:end]))
            try:
                self._send(b"".join(frames))
            except WaldError as e:  # part of the window may have reached the daemon
                raise OutcomeUnknown(f"{e.message}: appends in flight may or may not be in the log") from e
            self._await_acks(pending, seqs)
            at = end
        return seqs

    def _await_acks(self, pending: dict[int, tuple[int, int]], seqs: list[int]) -> None:
        first_error: Optional[WaldError] = None
        while pending:
            try:
                f = self._next_frame()
            except WaldError as e:
                raise OutcomeUnknown(f"{e.message}: appends in flight may or may not be in the log") from e
            if f.body_type == _B.Acks:
                try:
                    acks = [(rid, seq, 1) for rid, seq in f.body.structs(0, "<QQ")]
                    acks += f.body.structs(1, "<QQQ")
                except ProtocolError as e:
                    self._fail(e)
                    raise OutcomeUnknown(f"{e.message}: appends in flight may or may not be in the log") from e
                for rid, first, count in sorted(acks):  # request order, as PROTOCOL.md asks
                    self._take_ack(pending, seqs, rid, first, count)
            elif f.body_type == _B.Error:
                rid, err = self._error(f)
                if rid == 0:
                    self._fail(err)
                    raise OutcomeUnknown(f"{err.message}: appends in flight may or may not be in the log") from err
                if rid in pending:
                    del pending[rid]
                    if isinstance(err, ServerFailed):
                        err = OutcomeUnknown(f"{err.message}: this append may or may not be in the log")
                    first_error = first_error or err
            # Anything else (a reply to nothing this client asked) is ignored.
        if first_error is not None:
            raise first_error

    def _take_ack(self, pending, seqs, rid: int, first_seq: int, count: int) -> None:
        if rid not in pending or pending[rid][1] != count or first_seq == 0:
            raise self._fail(ProtocolError(f"an ack for unknown request {rid}"))
        at, n = pending.pop(rid)
        for k in range(n):
            seqs[at + k] = first_seq + k
        self.durable_seq = max(self.durable_seq, first_seq + count - 1)

    # ---- reads ----

    def read(self, from_seq: int = 1, max_records: Optional[int] = None) -> Iterator[Record]:
        """The durable records from `from_seq` on (at most `max_records`), in
        seq order. Raises Trimmed (first_seq) below the first seq held."""
        return self._read(from_seq, max_records or 0, follow=False)

    def follow(self, from_seq: int = 1) -> Iterator[Record]:
        """Every record from `from_seq` on, each as soon as it is durable;
        never ends on its own. Use a Client of its own: it ends with the
        connection (close it to stop)."""
        return self._read(from_seq, 0, follow=True)

    def _read(self, from_seq: int, max_records: int, follow: bool) -> Iterator[Record]:
        self._idle()
        self._control_id += 1
        rid = self._control_id
        self._send(_frames.read(rid, from_seq, max_records, follow))
        self._reading = rid
        finished = False
        try:
            while True:
                f = self._next_frame()
                if f.body_type == _B.Records and f.body.u64(0) == rid:
                    try:
                        records = [_record(t) for t in f.body.tables(1)]
                        done = bool(f.body.u8(2))
                    except ProtocolError as e:
                        raise self._fail(e)
                    yield from records
                    if done:
                        finished = True
                        return
                elif f.body_type == _B.Error:
                    try:
                        self._raise_if_for(f, rid)
                    except WaldError:
                        finished = True
                        raise
        finally:
            self._reading = None
            if not finished and self._broken is None:
                # Left early: the daemon stops streaming; frames already on
                # their way for this id are passed over by later calls.
                try:
                    self._send(_frames.cancel_read(rid))
                except WaldError:
                    pass

    # ---- retention and stats ----

    def _control(self, frame: bytes, rid: int, answer: int) -> _frames.Frame:
        self._idle()
        self._send(frame)
        while True:
            f = self._next_frame()
            if f.body_type == answer and f.body.u64(0) == rid:
                return f
            if f.body_type == _B.Error:
                self._raise_if_for(f, rid)

    def _id(self) -> int:
        self._control_id += 1
        return self._control_id

    def trim(self, up_to_seq: int) -> int:
        """Releases whole segments at or below `up_to_seq`, never past a hold;
        returns the seq released up to (durable across restarts)."""
        rid = self._id()
        return self._control(_frames.trim(rid, up_to_seq), rid, _B.TrimAck).body.u64(1)

    def hold(self, name: str, seq: int) -> int:
        """Creates or moves the hold `name`: nothing above `seq` is released.
        Returns the hold's seq as stored."""
        rid = self._id()
        return self._control(_frames.hold(rid, name, seq), rid, _B.HoldAck).body.u64(2)

    def release(self, name: str) -> None:
        """Drops the hold `name` (NoSuchHold if there is none)."""
        rid = self._id()
        self._control(_frames.release_hold(rid, name), rid, _B.HoldAck)

    def stats(self) -> Stats:
        """The daemon's counters and histograms."""
        rid = self._id()
        return _stats_of(self._control(_frames.stats_request(rid), rid, _B.StatsReply).body)


def _record(t: _frames._Table) -> Record:
    """A Records frame's Record table."""
    rec = Record(t.u64(0), t.bytes_(1), t.u64(2))
    producer = t.struct(3, "<III")  # absent: not stamped
    if producer is not None:
        rec.pid, rec.uid, rec.gid = producer
    return rec


def _stats_of(t: _frames._Table) -> Stats:
    """A StatsReply table as Stats."""
    H = _frames.Histogram.of
    return Stats(
        uptime_us=t.u64(1), connections=t.u64(2), records=t.u64(3), bytes=t.u64(4), syncs=t.u64(5),
        durable_seq=t.u64(6), next_seq=t.u64(7), records_per_sync=H(t.table(8)),
        sync_latency_us=H(t.table(9)), ack_latency_us=H(t.table(10)), rejected_frames=t.u64(11),
        backpressure_events=t.u64(12), first_seq=t.u64(13),
        holds=[Hold(h.string(0), h.u64(1), h.u64(2)) for h in t.tables(14)], holds_invalidated=t.u64(15),
        disk_budget_refusals=t.u64(16),
    )  # fmt: skip


def connect(path: Optional[str] = None, client_name: str = "python", timeout: Optional[float] = None) -> Client:
    """Connects to the daemon at `path` (default: default_socket()).
    `timeout` (seconds) bounds each socket operation; None waits forever."""
    path = path or default_socket()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        if os.path.isdir(path):
            raise DaemonGone(f"cannot connect to wald at {path}: it is a directory, not wald's socket") from e
        raise DaemonGone(f"cannot connect to wald at {path}: {e.strerror or e}") from e
    try:
        return Client(sock, client_name)
    except BaseException:
        sock.close()
        raise
