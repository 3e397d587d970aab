"""Which failures clear by themselves and which never will: the one classification every stage
uses to choose between retrying a batch and dead-lettering one message.

Three verdicts:

- ``TRANSIENT``: the world is briefly wrong (broker away, database restarting, a lock taken).
  Retry the batch after a back-off; never dead-letter, never commit past it.
- ``DATA``: this message can never succeed, however often it is retried (a value PostgreSQL
  refuses, a record larger than the broker takes). Find the one message, dead-letter it with the
  reason, commit the rest.
- ``FATAL``: the code, the schema or the configuration is wrong, or this instance was fenced.
  No message is to blame, so none is dead-lettered: the process ends and the orchestrator
  restarts it (``common.guard`` quarantines a message that keeps killing it).

PostgreSQL, by SQLSTATE (class = first two characters):

======================  =====================================================  ===========
SQLSTATE                meaning                                                verdict
======================  =====================================================  ===========
08xxx                   connection exception                                   TRANSIENT
40001, 40P01, 40003     serialization failure, deadlock, completion unknown    TRANSIENT
53xxx                   insufficient resources (disk full, out of memory, ...)  TRANSIENT
55P03, 55006            lock not available, object in use                      TRANSIENT
57014, 57P01-57P05      statement timeout / cancel, admin or crash shutdown    TRANSIENT
58xxx, 25P03            system / I/O error, idle-in-transaction timeout        TRANSIENT
none (client side)      ``OperationalError``: cannot connect, connection lost  TRANSIENT
22xxx                   data exception (NUL in text, out of range, bad date)   DATA
23xxx                   integrity constraint violation                         DATA
54xxx                   program limit exceeded (index row too large, ...)      DATA
none (client side)      ``DataError`` (a value psycopg cannot send)            DATA
42xxx, 0Axxx, 3Dxxx...  syntax, undefined table or column, privilege, ...      FATAL
anything else           (the code's or the schema's fault)                     FATAL
======================  =====================================================  ===========

Kafka, by error code:

=========================================================  ================================
code                                                       verdict
=========================================================  ================================
MSG_SIZE_TOO_LARGE, RECORD_LIST_TOO_LARGE, INVALID_RECORD,  DATA
INVALID_TIMESTAMP, _KEY/_VALUE_SERIALIZATION
a fatal error (fenced by a newer instance)                 FATAL
retriable, abortable, _TIMED_OUT, _TRANSPORT,              TRANSIENT
_ALL_BROKERS_DOWN, _MSG_TIMED_OUT, REQUEST_TIMED_OUT,
NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE / LOAD_IN_PROGRESS
anything else                                              FATAL
=========================================================  ================================

Python exceptions a message's own content can raise while it is decoded, validated or
transformed (``MESSAGE_FAULTS``: ``ValueError`` and ``UnicodeError``, ``ArithmeticError`` and
``OverflowError``, ``RecursionError``, msgspec's decode errors) are DATA when they come out of a
handler; anything else from a handler (``TypeError``, ``KeyError``, ...) is a bug: FATAL.
"""

from __future__ import annotations

import enum

import msgspec
import psycopg
from confluent_kafka import KafkaError, KafkaException

from common.errors import InvalidEvent, TransientError


class Verdict(enum.Enum):
    TRANSIENT = "transient"
    DATA = "data"
    FATAL = "fatal"


_PG_TRANSIENT_CLASSES = ("08", "53", "58")
_PG_TRANSIENT_CODES = frozenset(
    {"40001", "40P01", "40003", "55P03", "55006", "57014", "25P03"}
    | {f"57P0{i}" for i in range(1, 6)}
)
_PG_DATA_CLASSES = ("22", "23", "54")

_KAFKA_DATA = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_TIMESTAMP,
        KafkaError._KEY_SERIALIZATION,
        KafkaError._VALUE_SERIALIZATION,
    }
)
_KAFKA_TRANSIENT = frozenset(
    {
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._MSG_TIMED_OUT,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    }
)

MESSAGE_FAULTS: tuple[type[BaseException], ...] = (
    ValueError,  # UnicodeError and msgspec.ValidationError are ValueErrors
    ArithmeticError,  # OverflowError: a date past year 9999, a number too large for Avro's long
    RecursionError,  # nesting deeper than the interpreter's stack
    msgspec.MsgspecError,
)


def classify(exc: BaseException) -> Verdict:
    if isinstance(exc, TransientError):
        return Verdict.TRANSIENT
    if isinstance(exc, InvalidEvent):
        return Verdict.DATA
    if isinstance(exc, psycopg.Error):
        return _postgres(exc)
    if isinstance(exc, KafkaException):
        err = exc.args[0] if exc.args else None
        return kafka_verdict(err) if isinstance(err, KafkaError) else Verdict.FATAL
    return Verdict.FATAL


def _postgres(exc: psycopg.Error) -> Verdict:
    state = exc.sqlstate
    if state is None:  # raised by psycopg itself, before or after talking to the server
        if isinstance(exc, psycopg.DataError):
            return Verdict.DATA
        if isinstance(exc, psycopg.OperationalError):
            return Verdict.TRANSIENT
        return Verdict.FATAL
    if state in _PG_TRANSIENT_CODES or state.startswith(_PG_TRANSIENT_CLASSES):
        return Verdict.TRANSIENT
    if state.startswith(_PG_DATA_CLASSES):
        return Verdict.DATA
    return Verdict.FATAL


def kafka_verdict(err: KafkaError) -> Verdict:
    if err.fatal():
        return Verdict.FATAL
    if err.code() in _KAFKA_DATA:
        return Verdict.DATA
    if err.retriable() or err.txn_requires_abort() or err.code() in _KAFKA_TRANSIENT:
        return Verdict.TRANSIENT
    return Verdict.FATAL


def is_transient(exc: BaseException) -> bool:
    return classify(exc) is Verdict.TRANSIENT


def as_invalid(exc: BaseException) -> InvalidEvent | None:
    """The dead-letter reason for an error that is the message's fault; None for any other."""
    if isinstance(exc, InvalidEvent):
        return exc
    if isinstance(exc, psycopg.Error) and classify(exc) is Verdict.DATA:
        state = f" [{exc.sqlstate}]" if exc.sqlstate else ""
        return InvalidEvent("rejected_by_database", _first_line(exc) + state)
    if isinstance(exc, KafkaException) and classify(exc) is Verdict.DATA:
        err = exc.args[0]
        return InvalidEvent("rejected_by_broker", f"{err.name()}: {err.str()}")
    return None


def from_handler(exc: BaseException) -> InvalidEvent | None:
    """What a handler's exception means: the message's fault (a dead letter) or None (a bug or
    a fault of the world, for the caller to raise)."""
    invalid = as_invalid(exc)
    if invalid is not None:
        return invalid
    if isinstance(exc, MESSAGE_FAULTS):
        return InvalidEvent("unprocessable", f"{type(exc).__name__}: {_first_line(exc)}"[:2000])
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
