"""wald: a Python client for the wald write-ahead-log daemon.

    import wald
    with wald.connect() as c:             # $WALD_SOCKET, /run/wald/wald.sock or ./wald.sock
        seq = c.append(b"order 42 paid")  # returns once the record is durable

Written from protocol/PROTOCOL.md over the Unix socket, with the message
code flatc --python generates from protocol/wald.fbs (wald.proto, made at
build time: setup.py, or tests/conftest.py from the tree).
"""

import os as _os

# From the source tree the generated code is elsewhere: $WALD_PYTHON_GEN is
# a directory holding wald/proto/ (flatc --python -o DIR wald.fbs).
if _os.environ.get("WALD_PYTHON_GEN"):
    __path__.append(_os.path.join(_os.environ["WALD_PYTHON_GEN"], "wald"))  # noqa: F821

from . import errors as _errors  # noqa: E402
from .client import Client, Hold, Record, Stats, connect, default_socket  # noqa: E402
from .errors import (  # noqa: E402
    DaemonGone,
    DiskBudget,
    FrameTooLarge,
    InvalidRequest,
    NoSuchHold,
    NotPermitted,
    OutcomeUnknown,
    ProducerFenced,
    ProducerSeqGap,
    ProducerSeqStale,
    ProtocolError,
    ReadFailed,
    RecordTooLarge,
    SeqGap,
    ServerFailed,
    ShuttingDown,
    TooManyConnections,
    TooManyReads,
    Trimmed,
    Unsupported,
    UnsupportedVersion,
    WaldError,
)

__all__ = ["Client", "Hold", "Record", "Stats", "connect", "default_socket", *_errors.__all__]
