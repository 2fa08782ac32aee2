"""wald's errors as exceptions, one per protocol ErrorCode (PROTOCOL.md)
and one per way a connection can end."""

from __future__ import annotations

from typing import Optional


class WaldError(Exception):
    """Base of every wald error. `code` is the protocol's ErrorCode name
    (or a client-side reason); `first_seq` is set where the protocol gives one."""

    code = "Error"

    def __init__(self, message: str = "", first_seq: Optional[int] = None):
        super().__init__(message or self.code)
        self.message = message or self.code
        self.first_seq = first_seq


class ProtocolError(WaldError):
    """A malformed frame or a message out of place (either side)."""

    code = "ProtocolError"


class UnsupportedVersion(WaldError):
    code = "UnsupportedVersion"


class FrameTooLarge(WaldError):
    code = "FrameTooLarge"


class RecordTooLarge(WaldError):
    """The payload is over the daemon's max_record_size; nothing was appended
    and the connection stays usable."""

    code = "RecordTooLarge"


class NotPermitted(WaldError):
    code = "NotPermitted"


class ServerFailed(WaldError):
    """The daemon hit an I/O error and stopped (fail-stop)."""

    code = "ServerFailed"


class ShuttingDown(WaldError):
    code = "ShuttingDown"


class Unsupported(WaldError):
    code = "Unsupported"


class Trimmed(WaldError):
    """A read below the first seq the log still holds: `first_seq`."""

    code = "Trimmed"


class SeqGap(WaldError):
    """A read reached seqs a salvage retired; `first_seq` is the next that exists."""

    code = "SeqGap"


class TooManyReads(WaldError):
    code = "TooManyReads"


class TooManyConnections(WaldError):
    code = "TooManyConnections"


class NoSuchHold(WaldError):
    code = "NoSuchHold"


class InvalidRequest(WaldError):
    code = "InvalidRequest"


class DiskBudget(WaldError):
    """The log is at the daemon's --max-disk; nothing was appended."""

    code = "DiskBudget"


class ReadFailed(WaldError):
    """A read could not read the log (damage found while reading, an I/O
    error). The log is unchanged and the connection stays usable."""

    code = "ReadFailed"


class ProducerSeqGap(WaldError):
    """A producer's append numbered past its next one (another client with
    the same producer id?); nothing was appended. first_seq: the number the
    daemon expected."""

    code = "ProducerSeqGap"


class ProducerSeqStale(WaldError):
    """A producer's repeat too old for the daemon to answer; nothing was
    appended under it."""

    code = "ProducerSeqStale"


class ProducerFenced(WaldError):
    """A newer connection with the same producer id took the producer over;
    nothing was appended."""

    code = "ProducerFenced"


class OutcomeUnknown(WaldError):
    """The connection broke (or the daemon failed) with this append in
    flight: it may or may not be in the log."""

    code = "OutcomeUnknown"


class DaemonGone(WaldError):
    """No daemon at the socket, or it closed the connection."""

    code = "DaemonGone"


# ErrorCode values (protocol/wald.fbs) to exceptions.
BY_CODE = {
    1: ProtocolError,
    2: UnsupportedVersion,
    3: FrameTooLarge,
    4: RecordTooLarge,
    5: NotPermitted,
    6: ServerFailed,
    7: ShuttingDown,
    8: Unsupported,
    9: Trimmed,
    10: SeqGap,
    11: TooManyReads,
    12: TooManyConnections,
    13: NoSuchHold,
    14: InvalidRequest,
    15: DiskBudget,
    16: ReadFailed,
    17: ProducerSeqGap,
    18: ProducerSeqStale,
    19: ProducerFenced,
}


def from_wire(code: int, message: str, first_seq: int = 0) -> WaldError:
    cls = BY_CODE.get(code, WaldError)
    return cls(message, first_seq or None)


__all__ = [cls.__name__ for cls in (WaldError, OutcomeUnknown, DaemonGone, *BY_CODE.values())]
