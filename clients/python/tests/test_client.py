"""The Python client against the real wald binary on a temp dir and socket
($WALD_BINARY), and against a fake server for frames wald never sends."""

import os
import random
import socket
import struct
import threading
import time

import pytest

import wald
from wald import _frames


def test_random_payloads_round_trip_with_their_seqs(daemon):
    rng = random.Random(7)
    with wald.connect(daemon.socket) as c:
        sizes = [0, 1, c.max_record_size] + [rng.randrange(0, 70000) for _ in range(50)]
        sent = {}
        for size in sizes:
            p = rng.randbytes(size)
            sent[c.append(p)] = p
        assert sorted(sent) == list(range(1, len(sizes) + 1))
        got = {r.seq: r.payload for r in c.read(1)}
    assert got == sent


def test_append_many_of_100k_records_gets_dense_seqs(daemon):
    with wald.connect(daemon.socket) as c:
        c.append(b"first")
        payloads = [b"r%d" % i for i in range(100_000)]
        seqs = c.append_many(payloads)
        assert seqs == list(range(2, 100_002))
        back = list(c.read(2, max_records=100_000))
    assert [r.payload for r in back] == payloads
    assert back[0].pid == os.getpid() and back[0].time_ns > 0


def test_read_stops_at_max_records_and_follow_sees_new_records(daemon):
    with wald.connect(daemon.socket) as c:
        c.append_many([b"a", b"b", b"c"])
        assert [r.seq for r in c.read(1, max_records=2)] == [1, 2]
        follower = wald.connect(daemon.socket)
        seen = []

        def follow():
            for r in follower.follow(2):
                seen.append((r.seq, r.payload))
                if len(seen) == 4:
                    return

        t = threading.Thread(target=follow)
        t.start()
        time.sleep(0.1)
        c.append_many([b"d", b"e"])
        t.join(10)
        follower.close()
    assert seen == [(2, b"b"), (3, b"c"), (4, b"d"), (5, b"e")]


def test_a_read_below_a_trim_raises_trimmed_with_the_first_seq(make_daemon):
    d = make_daemon("--segment-size", "1MiB", "--max-record", "64KiB")
    with wald.connect(d.socket) as c:
        c.append_many([bytes(1000)] * 3000)  # 3 MB: several segments
        released = c.trim(2000)
        assert 0 < released <= 2000
        with pytest.raises(wald.Trimmed) as e:
            list(c.read(1))
        assert e.value.first_seq == released + 1
        assert next(iter(c.read(released + 1))).seq == released + 1


def test_record_too_large_keeps_the_connection(daemon):
    with wald.connect(daemon.socket) as c:
        with pytest.raises(wald.RecordTooLarge):
            c.append(bytes(c.max_record_size + 1))
        # The daemon's own check too: the frame goes out past the client's.
        c.max_record_size += 1
        with pytest.raises(wald.RecordTooLarge):
            c.append(bytes(c.max_record_size))
        assert c.append(b"still here") == 1


def test_holds_and_stats(daemon):
    with wald.connect(daemon.socket) as c:
        c.append_many([b"x"] * 10)
        assert c.hold("backup", 4) == 4
        s = c.stats()
        assert s.records == 10 and s.durable_seq == 10
        assert [(h.name, h.seq) for h in s.holds] == [("backup", 4)]
        assert s.records_per_sync.count >= 1 and len(s.ack_latency_us.counts) > 0
        c.release("backup")
        with pytest.raises(wald.NoSuchHold):
            c.release("backup")


def test_daemon_killed_mid_append_is_outcome_unknown_never_a_wrong_seq(daemon):
    c = wald.connect(daemon.socket)
    killer = threading.Timer(0.05, daemon.proc.kill)
    killer.start()
    with pytest.raises(wald.OutcomeUnknown):
        for _ in range(1000):
            c.append_many([bytes(1000)] * 4096)
    killer.join()
    with pytest.raises(wald.WaldError):
        c.append(b"after")


def test_connecting_to_no_daemon_says_it_is_gone(tmp_path):
    with pytest.raises(wald.DaemonGone):
        wald.connect(str(tmp_path / "none.sock"))
    with pytest.raises(wald.DaemonGone, match="directory"):
        wald.connect(str(tmp_path))


# ---- a fake server: frames wald never sends ----


def hello_ack():
    import flatbuffers
    from wald.proto import Body, HelloAck, Message

    b = flatbuffers.Builder(64)
    log_id = b.CreateByteVector(bytes(range(16)))
    HelloAck.HelloAckStart(b)
    HelloAck.HelloAckAddProtocolVersion(b, 1)
    HelloAck.HelloAckAddLogId(b, log_id)
    HelloAck.HelloAckAddMaxFrameSize(b, 4096 + 128)
    HelloAck.HelloAckAddMaxRecordSize(b, 4096)
    HelloAck.HelloAckAddMaxInflight(b, 16)
    body = HelloAck.HelloAckEnd(b)
    Message.MessageStart(b)
    Message.MessageAddBodyType(b, Body.Body.HelloAck)
    Message.MessageAddBody(b, body)
    b.FinishSizePrefixed(Message.MessageEnd(b))
    return bytes(b.Output())


@pytest.mark.parametrize(
    "reply",
    [
        struct.pack("<I", 8) + struct.pack("<II", 0xFFFF, 0),  # root offset past the end
        struct.pack("<I", 12) + struct.pack("<III", 4, 0x7FFFFFF0, 0),  # vtable far outside
        struct.pack("<I", 0x7FFFFFFF),  # a length over the frame limit
    ],
)
def test_a_malformed_frame_from_the_server_raises_never_hangs(tmp_path, reply):
    path = str(tmp_path / "fake.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        conn.recv(4096)  # Hello
        conn.sendall(hello_ack())
        conn.recv(4096)  # the Append
        conn.sendall(reply)
        time.sleep(1)
        conn.close()

    t = threading.Thread(target=serve)
    t.start()
    c = wald.connect(path, timeout=5)
    with pytest.raises(wald.OutcomeUnknown) as e:
        c.append(b"x")
    assert isinstance(e.value.__cause__, wald.ProtocolError)
    t.join()
    srv.close()


def test_frames_built_here_parse_back():
    f = _frames.parse(_frames.append_batch(9, [b"ab", b"", b"cde"])[4:])
    assert f.body_type == wald.proto.Body.Body.AppendBatch
    assert f.body.u64(0) == 9
    assert [v[0] for v in f.body.structs(1, "<I")] == [2, 0, 3]
    assert f.body.bytes_(2) == b"abcde"


# Review: a call made while a read was being iterated took the read's
# frames as its own and dropped them (records lost, then a hang); a read
# left early kept the daemon streaming.
def test_a_call_during_a_read_raises_and_a_read_left_early_is_cancelled(daemon):
    with wald.connect(daemon.socket) as c:
        c.append_many([b"r%d" % i for i in range(5)])
        it = c.read(1)
        assert next(it).seq == 1
        with pytest.raises(wald.WaldError, match="in progress"):
            c.stats()
        it.close()  # CancelRead
        follow = c.follow(1)
        assert next(follow).seq == 1
        follow.close()
        assert c.append(b"after") == 6
        assert [r.seq for r in c.read(1)] == [1, 2, 3, 4, 5, 6]
