"""Every row of the fault table in ``common.faults``."""

from __future__ import annotations

import msgspec
import psycopg
import pytest
from confluent_kafka import KafkaError, KafkaException
from psycopg import errors as pg

from common.errors import InvalidEvent, TransientError
from common.faults import Verdict, as_invalid, classify, from_handler
from common.runloop import is_transient

POSTGRES = [
    (pg.AdminShutdown, Verdict.TRANSIENT),  # 57P01
    (pg.CrashShutdown, Verdict.TRANSIENT),  # 57P02
    (pg.CannotConnectNow, Verdict.TRANSIENT),  # 57P03
    (pg.ConnectionFailure, Verdict.TRANSIENT),  # 08006
    (pg.SqlclientUnableToEstablishSqlconnection, Verdict.TRANSIENT),  # 08001
    (pg.SerializationFailure, Verdict.TRANSIENT),  # 40001
    (pg.DeadlockDetected, Verdict.TRANSIENT),  # 40P01
    (pg.DiskFull, Verdict.TRANSIENT),  # 53100
    (pg.OutOfMemory, Verdict.TRANSIENT),  # 53200
    (pg.TooManyConnections, Verdict.TRANSIENT),  # 53300
    (pg.LockNotAvailable, Verdict.TRANSIENT),  # 55P03
    (pg.QueryCanceled, Verdict.TRANSIENT),  # 57014: statement timeout
    (pg.IoError, Verdict.TRANSIENT),  # 58030
    (pg.IdleInTransactionSessionTimeout, Verdict.TRANSIENT),  # 25P03
    (pg.UntranslatableCharacter, Verdict.DATA),  # 22P05
    (pg.NumericValueOutOfRange, Verdict.DATA),  # 22003
    (pg.DatetimeFieldOverflow, Verdict.DATA),  # 22008
    (pg.CharacterNotInRepertoire, Verdict.DATA),  # 22021: NUL in text
    (pg.UniqueViolation, Verdict.DATA),  # 23505
    (pg.NotNullViolation, Verdict.DATA),  # 23502
    (pg.CheckViolation, Verdict.DATA),  # 23514
    (pg.ProgramLimitExceeded, Verdict.DATA),  # 54000: index row requires 20032 bytes
    (pg.StatementTooComplex, Verdict.DATA),  # 54001
    (pg.TooManyArguments, Verdict.DATA),  # 54023
    (pg.UndefinedTable, Verdict.FATAL),  # 42P01
    (pg.UndefinedColumn, Verdict.FATAL),  # 42703
    (pg.SyntaxError, Verdict.FATAL),  # 42601
    (pg.InsufficientPrivilege, Verdict.FATAL),  # 42501
    (pg.FeatureNotSupported, Verdict.FATAL),  # 0A000
    (pg.InvalidCatalogName, Verdict.FATAL),  # 3D000
    (pg.InternalError_, Verdict.FATAL),  # XX000
]


@pytest.mark.parametrize(("cls", "verdict"), POSTGRES, ids=lambda x: getattr(x, "sqlstate", x))
def test_postgres_by_sqlstate(cls: type[psycopg.Error], verdict: Verdict) -> None:
    exc = cls("x")
    assert classify(exc) is verdict
    assert is_transient(exc) == (verdict is Verdict.TRANSIENT)
    assert (as_invalid(exc) is not None) == (verdict is Verdict.DATA)


def test_the_index_row_too_large_is_a_dead_letter_not_a_retry() -> None:
    # The errors table's retry-forever: an OperationalError by class, a dead letter by SQLSTATE.
    exc = pg.ProgramLimitExceeded("index row requires 20032 bytes, maximum size is 8191")
    assert isinstance(exc, psycopg.OperationalError)
    invalid = as_invalid(exc)
    assert invalid is not None and invalid.reason == "rejected_by_database"
    assert "54000" in invalid.detail and "20032" in invalid.detail


def test_client_side_postgres_errors() -> None:
    # No SQLSTATE: psycopg itself could not connect, or could not send the value.
    assert classify(psycopg.OperationalError("connection refused")) is Verdict.TRANSIENT
    assert classify(psycopg.DataError("text cannot contain NUL (0x00) bytes")) is Verdict.DATA
    assert classify(psycopg.InterfaceError("the connection is closed")) is Verdict.FATAL
    assert classify(psycopg.ProgrammingError("wrong number of parameters")) is Verdict.FATAL


def kafka(code: int, **flags: bool) -> KafkaException:
    return KafkaException(KafkaError(code, "x", **flags))


KAFKA = [
    (kafka(KafkaError.MSG_SIZE_TOO_LARGE), Verdict.DATA),
    (kafka(KafkaError.RECORD_LIST_TOO_LARGE), Verdict.DATA),
    (kafka(KafkaError.INVALID_RECORD), Verdict.DATA),
    (kafka(KafkaError.INVALID_TIMESTAMP), Verdict.DATA),
    (kafka(KafkaError._VALUE_SERIALIZATION), Verdict.DATA),
    (kafka(KafkaError._FENCED, fatal=True), Verdict.FATAL),
    (kafka(KafkaError.MSG_SIZE_TOO_LARGE, fatal=True), Verdict.FATAL),
    (kafka(KafkaError._STATE, txn_requires_abort=True), Verdict.TRANSIENT),
    (kafka(KafkaError.NOT_ENOUGH_REPLICAS, retriable=True), Verdict.TRANSIENT),
    (kafka(KafkaError._TIMED_OUT), Verdict.TRANSIENT),
    (kafka(KafkaError._TRANSPORT), Verdict.TRANSIENT),
    (kafka(KafkaError._ALL_BROKERS_DOWN), Verdict.TRANSIENT),
    (kafka(KafkaError._MSG_TIMED_OUT), Verdict.TRANSIENT),
    (kafka(KafkaError.REQUEST_TIMED_OUT), Verdict.TRANSIENT),
    (kafka(KafkaError.NOT_COORDINATOR), Verdict.TRANSIENT),
    (kafka(KafkaError.COORDINATOR_NOT_AVAILABLE), Verdict.TRANSIENT),
    (kafka(KafkaError.COORDINATOR_LOAD_IN_PROGRESS), Verdict.TRANSIENT),
    (kafka(KafkaError.TOPIC_AUTHORIZATION_FAILED), Verdict.FATAL),
    (KafkaException("not a KafkaError"), Verdict.FATAL),
]


@pytest.mark.parametrize(("exc", "verdict"), KAFKA, ids=lambda x: str(x)[:40])
def test_kafka_by_code(exc: KafkaException, verdict: Verdict) -> None:
    assert classify(exc) is verdict
    assert (as_invalid(exc) is not None) == (verdict is Verdict.DATA)


def test_ours_and_plain_python() -> None:
    assert classify(TransientError("x")) is Verdict.TRANSIENT
    assert classify(InvalidEvent("r", "d")) is Verdict.DATA
    assert classify(RuntimeError("x")) is Verdict.FATAL


@pytest.mark.parametrize(
    "exc",
    [
        RecursionError("maximum recursion depth exceeded"),
        OverflowError("date value out of range"),
        ValueError("year 0 is out of range"),
        UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
        ZeroDivisionError("division by zero"),
        msgspec.DecodeError("JSON is malformed"),
    ],
)
def test_what_a_message_can_make_a_handler_raise_is_a_dead_letter(exc: Exception) -> None:
    invalid = from_handler(exc)
    assert invalid is not None and invalid.reason == "unprocessable"
    assert type(exc).__name__ in invalid.detail


@pytest.mark.parametrize(
    "exc", [TypeError("x"), KeyError("x"), AttributeError("x"), psycopg.OperationalError("down")]
)
def test_a_bug_or_a_fault_of_the_world_is_not(exc: Exception) -> None:
    assert from_handler(exc) is None
