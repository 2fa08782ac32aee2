"""The blocking client: one Unix-socket connection to a wald daemon.

    with wald.connect() as c:
        seq = c.append(b"order 42 paid")      # durable when it returns
        seqs = c.append_many([b"a", b"b"])    # one write, one round trip
        for rec in c.read(1):
            print(rec.seq, rec.payload)

One Client per thread at a time. Errors are exceptions (wald.errors).

An idempotent producer (connect(producer=True)) appends each record exactly
once even across a daemon restart: when the daemon goes away the client
reconnects (for up to reconnect_timeout seconds), resends what was in flight
(renumbered where the daemon's last number shows it is not in the log), and
returns the seqs the records really got (protocol/PROTOCOL.md, "Idempotent
producers").
"""

from __future__ import annotations

import os
import secrets
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional

from . import _frames
from .errors import (
    DaemonGone,
    OutcomeUnknown,
    ProtocolError,
    RecordTooLarge,
    ServerFailed,
    ShuttingDown,
    TooManyConnections,
    Unsupported,
    WaldError,
    from_wire,
)
from .proto import Body

_B = Body.Body
_CONTROL_IDS = 1 << 63  # reads, trims, holds, stats: ids above this; appends 1, 2, 3...
# Errors after which a daemon may be back (restarted, drained, less full).
_PASSING = (DaemonGone, ServerFailed, ShuttingDown, TooManyConnections)


def _passing(e: BaseException) -> bool:
    """Whether the daemon may be back after `e` (a socket timeout is the
    caller's own bound, not the daemon going away)."""
    return isinstance(e, _PASSING) and not getattr(e, "timed_out", False)


def _gone(what: str, e: OSError) -> DaemonGone:
    g = DaemonGone(f"{what}: {e}")
    g.timed_out = isinstance(e, TimeoutError)
    return g
_FIRST_PAUSE, _LONGEST_PAUSE = 0.005, 0.5  # seconds between reconnect attempts


@dataclass
class Record:
    """A record of the log, with the metadata wald stamped on it (--stamp)."""

    seq: int
    payload: bytes
    time_ns: int = 0  # when the daemon received it, ns since the Unix epoch; 0: not stamped
    pid: Optional[int] = None  # the sender's credentials, when stamped
    uid: Optional[int] = None
    gid: Optional[int] = None
    producer_id: int = 0  # an idempotent producer's id and its number for the record; 0: none
    producer_seq: int = 0


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
    producers: int = 0
    producer_duplicates: int = 0


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

    def __init__(
        self,
        sock: socket.socket,
        client_name: str = "python",
        *,
        path: Optional[str] = None,
        timeout: Optional[float] = None,
        producer_id: int = 0,
        reconnect_timeout: float = 0.0,
    ):
        self._sock = sock
        self._in = bytearray()
        self._next_id = 1
        self._control_id = _CONTROL_IDS
        self._broken: Optional[WaldError] = None
        self._reading: Optional[int] = None  # the request id of a read being iterated
        self._name, self._path, self._timeout = client_name, path, timeout
        self.producer_id: int = producer_id  # 0: not a producer
        self.reconnect_timeout: float = reconnect_timeout if path else 0.0
        self.reconnects: int = 0
        self._closed_by_us = False  # close() was called: no reconnecting
        self._send(_frames.hello(client_name, producer_id))
        w = _frames.hello_ack(self._next_frame(_frames.MAX_FRAME_SIZE))
        if producer_id and w.producer_depth == 0:
            raise Unsupported("this wald daemon has no idempotent producers (it is older than them)")
        self._welcome(w)
        self.producer_seq: int = w.producer_seq  # the last number used (a producer's)
        self._acked_pseq = 0  # the highest number acked

    def _welcome(self, h: "_frames.Welcome") -> None:
        self.log_id: bytes = h.log_id  # 16 bytes, fixed when the log was created
        self.durable_seq: int = h.durable_seq
        self.max_frame_size: int = h.max_frame_size
        self.max_record_size: int = h.max_record_size
        self.max_inflight: int = h.max_inflight
        self.server_version: str = h.server_version
        self.max_batch_records: int = h.max_batch_records  # 0: the daemon takes no AppendBatch
        self._hello_pseq: int = h.producer_seq

    def _revive(self) -> None:
        """Before a call: a connection that broke while idle is dialed again
        (if reconnecting is on), and a producer's numbering goes on from the
        daemon's last number."""
        if self._broken is not None and _passing(self._broken) and self._can_reconnect():
            self._reconnect(self._broken)
            self._renumber()

    def _send_request(self, frame: bytes) -> None:
        """Sends a request that may go again: a Read, a StatsRequest, a Trim,
        a Hold (not an append). If the connection turns out to be gone, and
        reconnecting is on, it is sent on a new one."""
        while True:
            try:
                self._send(frame)
                return
            except WaldError as e:
                if not _passing(e) or not self._can_reconnect():
                    raise
                self._reconnect(e)
                self._renumber()

    def _renumber(self) -> None:
        """After a reconnect with nothing in flight: numbers above the
        daemon's last are not in the log (refused ones, a tail a restart
        lost), so the next is its last + 1; a daemon that knows nothing of
        the producer lets it go on above every number used."""
        if self.producer_id and self._hello_pseq:
            self.producer_seq = self._hello_pseq
            self._acked_pseq = min(self._acked_pseq, self._hello_pseq)
        elif self.producer_id:
            self._acked_pseq = 0

    def _can_reconnect(self) -> bool:
        return self.reconnect_timeout > 0 and self._path is not None and not self._closed_by_us

    def _reconnect(self, why: WaldError) -> None:
        """Dials the daemon again, with a growing pause, until it answers
        Hello for the same log or reconnect_timeout passes (then raises)."""
        deadline = time.monotonic() + self.reconnect_timeout
        pause, last = _FIRST_PAUSE, why
        while True:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            self._in = bytearray()
            self._broken = None
            try:
                # Every step within the deadline, whatever the caller's timeout.
                left = max(deadline - time.monotonic(), 0.001)
                self._sock = _dial(self._path, min(left, self._timeout) if self._timeout else left)
                self._send(_frames.hello(self._name, self.producer_id))
                w = _frames.hello_ack(self._next_frame(_frames.MAX_FRAME_SIZE))
                self._sock.settimeout(self._timeout)
                if w.log_id != self.log_id:
                    raise ProtocolError("the daemon at the socket now serves another log; nothing is resent there")
                if self.producer_id and w.producer_depth == 0:
                    raise Unsupported("this wald daemon has no idempotent producers (it is older than them)")
                self._welcome(w)
                self.reconnects += 1
                return
            except _PASSING as e:  # a timeout here too: the deadline decides
                last = e
            except WaldError as e:
                self._broken = None
                raise self._fail(e)
            left = deadline - time.monotonic()
            if left <= 0:
                self._broken = None
                raise self._fail(
                    DaemonGone(
                        f"{why.message}; wald was not back within {self.reconnect_timeout} s "
                        f"(reconnect_timeout): {last.message}"
                    )
                )
            time.sleep(min(pause, left))
            pause = min(pause * 2, _LONGEST_PAUSE)

    # ---- connection ----

    def close(self) -> None:
        self._closed_by_us = True
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
            raise self._fail(_gone("write to the daemon", e))

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
                raise self._fail(_gone("read from the daemon", e))
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
        (read them back before retrying). A producer that loses the daemon
        reconnects and resends instead (see the module's doc)."""
        self._idle()
        self._revive()
        payloads = [bytes(p) for p in payloads]
        for p in payloads:
            if len(p) > self.max_record_size:
                raise RecordTooLarge(
                    f"record of {len(p)} bytes exceeds the daemon's max record size {self.max_record_size}"
                )
        seqs: list[int] = [0] * len(payloads)
        pseqs: list[int] = [0] * len(payloads)  # a producer's numbers
        resent: set[int] = set()  # indices resent as repeats after a reconnect
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
                if self.producer_id:
                    for k in range(first, end):
                        self.producer_seq += 1
                        pseqs[k] = self.producer_seq
                rid = self._next_id
                self._next_id += 1
                pending[rid] = (first, end - first)
                if end - first == 1 or self.max_batch_records == 0:
                    frames.append(_frames.append(rid, payloads[first], pseqs[first]))
                else:
                    frames.append(_frames.append_batch(rid, payloads[first:end], pseqs[first]))
            try:
                self._send(b"".join(frames))
            except WaldError as e:  # part of the window may have reached the daemon
                pending = self._resend(e, pending, payloads, pseqs, resent)
            self._await_acks(pending, seqs, payloads, pseqs, resent)
            at = end
        return seqs

    def _resend(self, why: WaldError, pending, payloads, pseqs, resent) -> dict[int, tuple[int, int]]:
        """The connection broke with `pending` unanswered: reconnects and, for
        a producer, sends each of them again as an Append (new request ids)
        and returns them; raises OutcomeUnknown if it cannot."""
        while True:
            if not _passing(why) or not self._can_reconnect():
                self._fail(why)
                raise OutcomeUnknown(f"{why.message}: appends in flight may or may not be in the log") from why
            try:
                self._reconnect(why)  # raises past reconnect_timeout
            except WaldError as e:
                raise OutcomeUnknown(f"{e.message}: appends in flight may or may not be in the log") from e
            if not self.producer_id:
                raise OutcomeUnknown(
                    f"{why.message}: appends in flight may or may not be in the log (reconnected; only a producer "
                    "can resend them)"
                ) from why
            last = self._hello_pseq
            if last < self._acked_pseq:
                self._renumber()
                raise OutcomeUnknown(
                    f"wald no longer knows this producer (its last number {last} is below the {self._acked_pseq} "
                    "acked): appends in flight are not resent, and may or may not be in the log"
                )
            # At or below the daemon's last number: maybe in the log, resent
            # as it was. Above it: not in the log, numbered from it.
            n, frames, again = last, [], {}
            for k in sorted(k for first, count in pending.values() for k in range(first, first + count)):
                if len(payloads[k]) > self.max_record_size:  # the daemon came back with a lower --max-record
                    raise OutcomeUnknown(
                        f"record {k} is over the restarted daemon's max record size {self.max_record_size}: "
                        "records in flight may or may not be in the log"
                    )
                if pseqs[k] <= last:
                    resent.add(k)
                else:
                    n += 1
                    pseqs[k] = n
                rid = self._next_id
                self._next_id += 1
                again[rid] = (k, 1)
                frames.append(_frames.append(rid, payloads[k], pseqs[k]))
            self.producer_seq = n
            try:
                self._send(b"".join(frames))
                return again
            except WaldError as e:
                why, pending = e, again

    def _await_acks(self, pending, seqs, payloads, pseqs, resent) -> None:
        first_error: Optional[WaldError] = None
        while pending:
            try:
                f = self._next_frame()
            except WaldError as e:
                pending = self._resend(e, pending, payloads, pseqs, resent)
                continue
            if f.body_type == _B.Acks:
                try:
                    acks = [(rid, seq, 1) for rid, seq in f.body.structs(0, "<QQ")]
                    acks += f.body.structs(1, "<QQQ")
                except ProtocolError as e:
                    self._fail(e)
                    raise OutcomeUnknown(f"{e.message}: appends in flight may or may not be in the log") from e
                for rid, first, count in sorted(acks):  # request order, as PROTOCOL.md asks
                    self._take_ack(pending, seqs, pseqs, rid, first, count)
            elif f.body_type == _B.Error:
                rid, err = self._error(f)
                if rid == 0:
                    self._fail(err)
                    pending = self._resend(err, pending, payloads, pseqs, resent)
                    continue
                if rid in pending:
                    if isinstance(err, ServerFailed) and self.producer_id and self._can_reconnect():
                        continue  # resent once the daemon is back: it answers with the seq if it is there
                    at, _ = pending.pop(rid)
                    if isinstance(err, ServerFailed) or at in resent:
                        err = OutcomeUnknown(f"{err.message}: this append may or may not be in the log")
                    first_error = first_error or err
            # Anything else (a reply to nothing this client asked) is ignored.
        if first_error is not None:
            raise first_error

    def _take_ack(self, pending, seqs, pseqs, rid: int, first_seq: int, count: int) -> None:
        if rid not in pending or pending[rid][1] != count or first_seq == 0:
            raise self._fail(ProtocolError(f"an ack for unknown request {rid}"))
        at, n = pending.pop(rid)
        for k in range(n):
            seqs[at + k] = first_seq + k
            self._acked_pseq = max(self._acked_pseq, pseqs[at + k])
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
        self._revive()
        self._control_id += 1
        rid = self._control_id
        self._send_request(_frames.read(rid, from_seq, max_records, follow))
        self._reading = rid
        finished = False
        next_seq, left = from_seq, max_records  # where it resumes after a reconnect
        try:
            while True:
                try:
                    f = self._next_frame()
                except _PASSING as e:
                    if not _passing(e) or not self._can_reconnect():
                        raise
                    self._reconnect(e)
                    self._renumber()
                    if max_records and left == 0:  # it had all it asked for
                        finished = True
                        return
                    self._send(_frames.read(rid, next_seq, left, follow))
                    continue
                if f.body_type == _B.Records and f.body.u64(0) == rid:
                    try:
                        records = [_record(t) for t in f.body.tables(1)]
                        done = bool(f.body.u8(2))
                    except ProtocolError as e:
                        raise self._fail(e)
                    for rec in records:
                        next_seq = rec.seq + 1
                        if max_records:
                            left -= 1
                        yield rec
                    if done:
                        finished = True
                        return
                elif f.body_type == _B.Error:
                    erid, err = self._error(f)
                    if erid == 0 and _passing(err) and self._can_reconnect():
                        self._fail(err)
                        self._reconnect(err)
                        self._renumber()
                        if max_records and left == 0:
                            finished = True
                            return
                        self._send(_frames.read(rid, next_seq, left, follow))
                        continue
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
        self._revive()
        self._send_request(frame)
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
    rec.producer_id, rec.producer_seq = t.u64(4), t.u64(5)
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
        disk_budget_refusals=t.u64(16), producers=t.u64(17), producer_duplicates=t.u64(18),
    )  # fmt: skip


def _producer_options(
    producer: bool, producer_id: Optional[int], reconnect_timeout: Optional[float]
) -> tuple[int, float]:
    """connect()'s producer id (0: not a producer; a random one if asked for
    none) and reconnect timeout (None: 30 s for a producer, else 0)."""
    pid = 0
    if producer:
        pid = producer_id or 0
        while pid == 0:
            pid = secrets.randbits(64)
    if reconnect_timeout is None:
        reconnect_timeout = 30.0 if producer else 0.0
    return pid, reconnect_timeout


def _dial(path: str, timeout: Optional[float]) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        if os.path.isdir(path):
            raise DaemonGone(f"cannot connect to wald at {path}: it is a directory, not wald's socket") from e
        raise DaemonGone(f"cannot connect to wald at {path}: {e.strerror or e}") from e
    return sock


def connect(
    path: Optional[str] = None,
    client_name: str = "python",
    timeout: Optional[float] = None,
    *,
    producer: bool = False,
    producer_id: Optional[int] = None,
    reconnect_timeout: Optional[float] = None,
) -> Client:
    """Connects to the daemon at `path` (default: default_socket()).
    `timeout` (seconds) bounds each socket operation; None waits forever.

    producer: an idempotent producer (producer_id: a random one if None; give
    the same one after your application restarts to go on as that producer).
    reconnect_timeout: seconds to keep reconnecting when the daemon goes away
    (None: 30 for a producer, 0 -- never -- otherwise); a read resumes after
    the last record it yielded, a producer resends what was in flight."""
    path = path or default_socket()
    producer_id, reconnect_timeout = _producer_options(producer, producer_id, reconnect_timeout)
    sock = _dial(path, timeout)
    try:
        return Client(
            sock,
            client_name,
            path=path,
            timeout=timeout,
            producer_id=producer_id,
            reconnect_timeout=reconnect_timeout,
        )
    except BaseException:
        sock.close()
        raise
