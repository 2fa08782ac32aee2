"""Frames of wald's wire protocol (protocol/PROTOCOL.md): building the
client's messages with the FlatBuffers builders flatc generates
(wald.proto, made at build time), and reading the server's with a reader
that checks every offset and length against the frame first. The
flatbuffers Python package has no verifier: a bad frame from the server
raises ProtocolError here, never reads out of range or loops."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Optional

import flatbuffers

from .errors import ProtocolError, from_wire
from .proto import Append, AppendBatch, Body, CancelRead, Hello, Hold, Message, Read, ReleaseHold, StatsRequest, Trim

PROTOCOL_VERSION = 1
PREFIX = 4
# Bytes an Append or AppendBatch frame needs beyond its payloads, and per
# record of an AppendBatch (its entry in sizes): PROTOCOL.md.
APPEND_OVERHEAD = 128
BATCH_RECORD_OVERHEAD = 4
# A Records frame carries up to this much beyond max_frame_size.
RECORDS_CHUNK = 256 << 10
# The largest max_frame_size a server may announce.
MAX_FRAME_SIZE = (16 << 20) + APPEND_OVERHEAD


def _message(builder: flatbuffers.Builder, body_type: int, body: int) -> bytes:
    Message.MessageStart(builder)
    Message.MessageAddBodyType(builder, body_type)
    Message.MessageAddBody(builder, body)
    builder.FinishSizePrefixed(Message.MessageEnd(builder))
    return bytes(builder.Output())


def hello(client_name: str, producer_id: int = 0) -> bytes:
    """producer_id != 0: the connection is that idempotent producer."""
    b = flatbuffers.Builder(64)
    name = b.CreateString(client_name)
    Hello.HelloStart(b)
    Hello.HelloAddProtocolVersion(b, PROTOCOL_VERSION)
    Hello.HelloAddClientName(b, name)
    if producer_id:
        Hello.HelloAddProducerId(b, producer_id)
    return _message(b, Body.Body.Hello, Hello.HelloEnd(b))


def append(request_id: int, payload: bytes, producer_seq: int = 0) -> bytes:
    """producer_seq != 0: a producer's number for it."""
    b = flatbuffers.Builder(len(payload) + 64)
    data = b.CreateByteVector(payload)
    Append.AppendStart(b)
    Append.AppendAddRequestId(b, request_id)
    Append.AppendAddPayload(b, data)
    if producer_seq:
        Append.AppendAddProducerSeq(b, producer_seq)
    return _message(b, Body.Body.Append, Append.AppendEnd(b))


def append_batch(request_id: int, payloads: list[bytes], producer_seq: int = 0) -> bytes:
    """producer_seq != 0: a producer's number for the first record."""
    joined = b"".join(payloads)
    b = flatbuffers.Builder(len(joined) + 4 * len(payloads) + 64)
    data = b.CreateByteVector(joined)
    AppendBatch.AppendBatchStartSizesVector(b, len(payloads))
    for p in reversed(payloads):  # FlatBuffers builds back to front
        b.PrependUint32(len(p))
    sizes = b.EndVector()
    AppendBatch.AppendBatchStart(b)
    AppendBatch.AppendBatchAddRequestId(b, request_id)
    AppendBatch.AppendBatchAddSizes(b, sizes)
    AppendBatch.AppendBatchAddData(b, data)
    if producer_seq:
        AppendBatch.AppendBatchAddProducerSeq(b, producer_seq)
    return _message(b, Body.Body.AppendBatch, AppendBatch.AppendBatchEnd(b))


def read(request_id: int, from_seq: int, max_records: int, follow: bool) -> bytes:
    b = flatbuffers.Builder(64)
    Read.ReadStart(b)
    Read.ReadAddRequestId(b, request_id)
    Read.ReadAddFromSeq(b, from_seq)
    Read.ReadAddMaxRecords(b, max_records)
    Read.ReadAddFollow(b, follow)
    return _message(b, Body.Body.Read, Read.ReadEnd(b))


def trim(request_id: int, up_to_seq: int) -> bytes:
    b = flatbuffers.Builder(64)
    Trim.TrimStart(b)
    Trim.TrimAddRequestId(b, request_id)
    Trim.TrimAddUpToSeq(b, up_to_seq)
    return _message(b, Body.Body.Trim, Trim.TrimEnd(b))


def hold(request_id: int, name: str, seq: int) -> bytes:
    b = flatbuffers.Builder(128)
    n = b.CreateString(name)
    Hold.HoldStart(b)
    Hold.HoldAddRequestId(b, request_id)
    Hold.HoldAddName(b, n)
    Hold.HoldAddSeq(b, seq)
    return _message(b, Body.Body.Hold, Hold.HoldEnd(b))


def release_hold(request_id: int, name: str) -> bytes:
    b = flatbuffers.Builder(128)
    n = b.CreateString(name)
    ReleaseHold.ReleaseHoldStart(b)
    ReleaseHold.ReleaseHoldAddRequestId(b, request_id)
    ReleaseHold.ReleaseHoldAddName(b, n)
    return _message(b, Body.Body.ReleaseHold, ReleaseHold.ReleaseHoldEnd(b))


def cancel_read(request_id: int) -> bytes:
    b = flatbuffers.Builder(32)
    CancelRead.CancelReadStart(b)
    CancelRead.CancelReadAddRequestId(b, request_id)
    return _message(b, Body.Body.CancelRead, CancelRead.CancelReadEnd(b))


def stats_request(request_id: int) -> bytes:
    b = flatbuffers.Builder(32)
    StatsRequest.StatsRequestStart(b)
    StatsRequest.StatsRequestAddRequestId(b, request_id)
    return _message(b, Body.Body.StatsRequest, StatsRequest.StatsRequestEnd(b))


# ---- Reading: a table reader that checks before it reads ----


class _Table:
    """A FlatBuffers table at `pos` of `buf`, its vtable checked to lie in
    the buffer. Field i's slot is vtable entry i."""

    __slots__ = ("buf", "pos", "vt", "vt_len", "obj_len")

    def __init__(self, buf: memoryview, pos: int):
        n = len(buf)
        if pos < 0 or pos + 4 > n:
            raise ProtocolError("table outside the frame")
        vt = pos - struct.unpack_from("<i", buf, pos)[0]
        if vt < 0 or vt + 4 > n:
            raise ProtocolError("vtable outside the frame")
        vt_len, obj_len = struct.unpack_from("<HH", buf, vt)
        if vt_len < 4 or vt_len % 2 or vt + vt_len > n or obj_len < 4 or pos + obj_len > n:
            raise ProtocolError("malformed vtable")
        self.buf, self.pos, self.vt, self.vt_len, self.obj_len = buf, pos, vt, vt_len, obj_len

    def _field(self, i: int, size: int) -> int:
        """The field's position, or 0 if absent; checked to fit the table."""
        slot = 4 + 2 * i
        if slot + 2 > self.vt_len:
            return 0
        off = struct.unpack_from("<H", self.buf, self.vt + slot)[0]
        if off == 0:
            return 0
        if off + size > self.obj_len:
            raise ProtocolError("field outside its table")
        return self.pos + off

    def scalar(self, i: int, fmt: str, default=0):
        at = self._field(i, struct.calcsize(fmt))
        return struct.unpack_from(fmt, self.buf, at)[0] if at else default

    def u8(self, i: int) -> int:
        return self.scalar(i, "<B")

    def u16(self, i: int) -> int:
        return self.scalar(i, "<H")

    def u32(self, i: int) -> int:
        return self.scalar(i, "<I")

    def u64(self, i: int) -> int:
        return self.scalar(i, "<Q")

    def _target(self, i: int) -> int:
        """Where field i's offset points, or 0 if absent."""
        at = self._field(i, 4)
        if not at:
            return 0
        target = at + struct.unpack_from("<I", self.buf, at)[0]
        if target + 4 > len(self.buf):
            raise ProtocolError("offset outside the frame")
        return target

    def _vector(self, i: int, elem: int) -> tuple[int, int]:
        """(start, count) of vector field i with elements of `elem` bytes."""
        at = self._target(i)
        if not at:
            return 0, 0
        count = struct.unpack_from("<I", self.buf, at)[0]
        start = at + 4
        if start + count * elem > len(self.buf):
            raise ProtocolError("vector outside the frame")
        return start, count

    def bytes_(self, i: int) -> bytes:
        start, count = self._vector(i, 1)
        return bytes(self.buf[start : start + count])

    def string(self, i: int) -> str:
        return self.bytes_(i).decode("utf-8", errors="replace")

    def structs(self, i: int, fmt: str) -> list[tuple]:
        size = struct.calcsize(fmt)
        start, count = self._vector(i, size)
        return [struct.unpack_from(fmt, self.buf, start + k * size) for k in range(count)]

    def struct(self, i: int, fmt: str) -> Optional[tuple]:
        """An inline struct field, or None if absent."""
        at = self._field(i, struct.calcsize(fmt))
        return struct.unpack_from(fmt, self.buf, at) if at else None

    def table(self, i: int) -> Optional["_Table"]:
        at = self._target(i)
        return _Table(self.buf, at) if at else None

    def tables(self, i: int) -> list["_Table"]:
        start, count = self._vector(i, 4)
        out = []
        for k in range(count):
            at = start + 4 * k
            out.append(_Table(self.buf, at + struct.unpack_from("<I", self.buf, at)[0]))
        return out


@dataclass
class Frame:
    """One decoded server message: its body type and its table."""

    body_type: int
    body: _Table


def parse(buf: bytes | bytearray | memoryview) -> Frame:
    """Decodes one frame's FlatBuffer (the bytes after the length prefix)."""
    view = memoryview(buf)
    if len(view) < 8:
        raise ProtocolError("frame too short")
    root = struct.unpack_from("<I", view, 0)[0]
    msg = _Table(view, root)
    body_type = msg.u8(0)
    body = msg.table(1)
    if body_type == 0 or body is None:
        raise ProtocolError("a frame without a body")
    return Frame(body_type, body)


@dataclass
class Histogram:
    """A StatsReply histogram: bucket lower bounds and counts."""

    bounds: list[int] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    count: int = 0
    sum: int = 0

    @staticmethod
    def of(t: Optional[_Table]) -> "Histogram":
        if t is None:
            return Histogram()
        return Histogram([v[0] for v in t.structs(0, "<Q")], [v[0] for v in t.structs(1, "<Q")], t.u64(2), t.u64(3))


@dataclass
class Welcome:
    """The daemon's HelloAck."""

    log_id: bytes
    durable_seq: int
    max_frame_size: int
    max_record_size: int
    max_inflight: int
    server_version: str
    max_batch_records: int
    producer_seq: int = 0  # Hello's producer: its highest number in the log (0: none)
    producer_depth: int = 0  # 0: the daemon has no idempotent producers


def hello_ack(f: Frame) -> Welcome:
    """The answer to Hello: a HelloAck, checked, or the daemon's Error raised."""
    if f.body_type == Body.Body.Error:
        raise from_wire(f.body.u16(1), f.body.string(2))
    if f.body_type != Body.Body.HelloAck:
        raise ProtocolError("expected HelloAck")
    t = f.body
    if t.u32(0) != PROTOCOL_VERSION:
        raise ProtocolError(f"the daemon speaks protocol {t.u32(0)}, not {PROTOCOL_VERSION}")
    w = Welcome(t.bytes_(1), t.u64(2), t.u32(3), t.u32(4), max(1, t.u32(5)), t.string(6), t.u32(7), t.u64(8), t.u32(9))
    if len(w.log_id) != 16 or w.max_frame_size > MAX_FRAME_SIZE or w.max_record_size > w.max_frame_size:
        raise ProtocolError("malformed HelloAck")
    return w
