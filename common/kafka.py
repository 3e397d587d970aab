"""The one place that builds Kafka clients.

Offsets move in one place only (the run loop), so auto-commit and auto offset store are off.
Consumers read committed data only, because GEP and demux write inside transactions.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]
from confluent_kafka.cimpl import NewTopic

from common.kafka_properties import kafka_variable
from common.settings import Settings, SettingsError

log = logging.getLogger(__name__)


class ServiceUnavailable(Exception):
    """Kafka or PostgreSQL cannot be reached; the message says which and what to do."""


_BROKER = re.compile(r"(?:\w+://)?([\w.\-\[\]:]+:\d+)/\w*: ")
_CONNECTION = {"_TRANSPORT", "_ALL_BROKERS_DOWN", "_RESOLVE", "FAIL", "ERROR"}


class Quiet:
    """One line per broker and kind of trouble per interval; the next line says how many were
    held back. While a broker is away every client of a process reports each failed connect
    (tens of lines a second); the first says all there is to say."""

    def __init__(self, interval_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.interval_s = interval_s
        self.clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    def key(self, kind: str, text: str) -> tuple[str, str]:
        found = _BROKER.search(text)
        broker = found.group(1) if found else "cluster"
        return broker, "connection" if kind in _CONNECTION else kind

    def admit(self, key: tuple[str, str]) -> str | None:
        """None: hold the line back; else the suffix to add to it ("" or the count held)."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held and last is not None:
            return f" ({held} more like it in the last {now - last:.0f}s)"
        return ""


_QUIET = Quiet()


def _tidy(text: str) -> str:
    text = re.sub(r"\[rdkafka#[^\]]+\] \[thrd:[^\]]+\]: ", "", text)
    return re.sub(
        r" \(after \d+ms in state \w+(, \d+ identical error\(s\) suppressed)?\)", "", text
    )


def _log_client_error(err: KafkaError) -> None:
    # librdkafka reports and retries connection trouble itself; the run loop notices the effect
    # (no delivery, no commit) and backs off. This only keeps the operator informed.
    text = err.str()
    suffix = _QUIET.admit(_QUIET.key(err.name(), text))
    if suffix is not None:
        log.warning("kafka: %s%s", _tidy(text), suffix)


class _QuietFilter(logging.Filter):
    """librdkafka's own lines (FAIL, ERROR, ...) go through the same throttle."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        text = record.getMessage()
        kind = text.split(" ", 1)[0]
        suffix = _QUIET.admit(_QUIET.key(kind, text))
        if suffix is None:
            return False
        record.msg, record.args = _tidy(text) + suffix, None
        return True


_LIBRDKAFKA = logging.getLogger("librdkafka")
_LIBRDKAFKA.addFilter(_QuietFilter())


def _base(settings: Settings) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "error_cb": _log_client_error,
        # librdkafka's own lines go through logging (one format, one level) instead of raw stderr.
        "logger": _LIBRDKAFKA,
        "socket.connection.setup.timeout.ms": 10_000,
        # DA_KAFKA_<PROPERTY>: security (SASL, SSL) and tuning for a cluster that needs it.
        **settings.kafka_config(),
    }


_Client = TypeVar("_Client")


def _build(make: Callable[[dict[str, Any]], _Client], config: dict[str, Any]) -> _Client:
    """Build a client; a property librdkafka refuses is a settings error naming its variable."""
    try:
        return make(config)
    except KafkaException as exc:
        text = exc.args[0].str() if exc.args and isinstance(exc.args[0], KafkaError) else str(exc)
        named = re.search(r'"([a-z0-9._]+)"', text)
        variable = kafka_variable(named.group(1)) if named else "a DA_KAFKA_* variable"
        raise SettingsError(f"{variable}: {text}") from None


def request_timeout_ms(deadline_ms: int) -> int:
    """How long a request may go unanswered before it is sent again, for a delivery deadline of
    ``deadline_ms``: librdkafka gives a ProduceRequest the lesser of ``socket.timeout.ms`` (60 s
    by default) and its oldest message's time left, so a broker that hangs with its connection
    open (paused, swapping) would fail the request's messages at their deadline, with no resend
    to the partition's new leader once the controller has fenced the hung broker. A third of the
    deadline leaves room for two resends (the Java producer's defaults allow three: 30 s a
    request, 120 s a delivery); not under 5 s while the deadline allows twice that, so that a
    slow broker on a loaded machine is not disconnected over every late answer."""
    return max(deadline_ms // 3, min(deadline_ms // 2, 5_000))


def producer_config(settings: Settings, *, transactional_id: str | None = None) -> dict[str, Any]:
    deadline_ms = int(settings.io_timeout_s * 1000)
    config = {
        **_base(settings),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "message.timeout.ms": deadline_ms,
    }
    # DA_KAFKA_SOCKET_TIMEOUT_MS may say otherwise; resends are safe: the producer is idempotent
    # (make_command_producer's is not: its one record is deduplicated by its command id).
    config.setdefault("socket.timeout.ms", request_timeout_ms(deadline_ms))
    if transactional_id is not None:
        config["transactional.id"] = transactional_id
        # Delivery reports for failed records only: commit_transaction already fails (abortably)
        # when any record of the transaction was not delivered, so a report of each success tells
        # nothing; the processors' callbacks only name the records the broker refused. Saves a
        # Python call per record (the binding still frees each record's state on success).
        config["delivery.report.only.error"] = True
        # How long an instance that died mid-transaction holds its partitions' readers back
        # when no successor with its transactional id comes to abort it sooner;
        # DA_KAFKA_TRANSACTION_TIMEOUT_MS may say otherwise (within the broker's maximum).
        config.setdefault("transaction.timeout.ms", 60_000)
    return config


def make_producer(settings: Settings, *, transactional_id: str | None = None) -> Producer:
    return _build(Producer, producer_config(settings, transactional_id=transactional_id))


def make_collector_producer(settings: Settings) -> Producer:
    """The collector's producer: idempotent, acks=all (a 202 means the in-sync replicas have the
    event), and a delivery deadline equal to the time a client is kept waiting, so an event the
    client was told failed (503) is not delivered much later behind its back."""
    config = producer_config(settings)
    config["linger.ms"] = 2  # a post waits for its acks: latency matters more than batching
    config["message.timeout.ms"] = int(settings.collector_ack_timeout_s * 1000)
    return _build(Producer, config)


def make_command_producer(settings: Settings) -> Producer:
    """The producer of one command sent on its own (``da workflow set-state``): acks=all, not
    idempotent. librdkafka's idempotent producer holds the records of its first half second
    while it acquires a producer id (it asks before a broker connection is up, then waits out a
    500 ms retry timer): that was half of a command's round trip. One record needs no ordering,
    and a duplicate from a retry is harmless: a command is applied once, and a repeat of its id
    gets the stored answer again."""
    config = producer_config(settings)
    config["enable.idempotence"] = False
    config["linger.ms"] = 0
    return _build(Producer, config)


def make_consumer(settings: Settings, group_id: str, **overrides: Any) -> Consumer:
    config = {
        **_base(settings),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "partition.assignment.strategy": "cooperative-sticky",
        # A stage holding a batch through a database outage keeps polling (paused), so the
        # default interval is enough; a stuck handler is a bug and should lose its partitions.
        "max.poll.interval.ms": 300_000,
        "session.timeout.ms": 15_000,
        **overrides,
    }
    return _build(Consumer, config)


def make_admin(settings: Settings, *, quiet: bool = False) -> AdminClient:
    config = _base(settings)
    if quiet:
        # A reachability check reports its own one-line verdict; librdkafka's connect-failure
        # lines on stderr would only bury it.
        config["log_level"] = 0
    return _build(AdminClient, config)


# Errors that waiting will not mend: the cluster refuses who we are, or whom we talk to.
_REFUSALS = {KafkaError._AUTHENTICATION: "refused the credentials", KafkaError._SSL: "failed TLS"}
_ADVICE = {
    KafkaError._AUTHENTICATION: "check DA_KAFKA_SASL_MECHANISMS, DA_KAFKA_SASL_USERNAME and "
    "DA_KAFKA_SASL_PASSWORD",
    KafkaError._SSL: "check DA_KAFKA_SECURITY_PROTOCOL and DA_KAFKA_SSL_CA_LOCATION",
}


def _refusal(err: KafkaError) -> str:
    # "sasl_ssl://host:port/bootstrap: SASL authentication error: ... (after 333ms in state X)"
    text = err.str().split("/bootstrap: ", 1)[-1]
    return re.sub(r" \(after \d+ms in state \w+\)$", "", text)


def check_kafka(settings: Settings, timeout_s: float | None = None) -> None:
    """Fail fast, in one line, when the broker cannot be reached or refuses our credentials
    (within DA_IO_TIMEOUT_S, 10 s at most)."""
    timeout_s = min(settings.io_timeout_s, 10.0) if timeout_s is None else timeout_s
    refused: list[KafkaError] = []
    config = {**_base(settings), "log_level": 0}
    config["error_cb"] = lambda err: refused.append(err) if err.code() in _REFUSALS else None
    admin = _build(AdminClient, config)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
            return
        except KafkaException as exc:
            admin.poll(0)  # serves error_cb: an authentication failure is told apart there
            if refused:
                err = refused[0]
                raise ServiceUnavailable(
                    f"Kafka at {settings.kafka_bootstrap_servers} {_REFUSALS[err.code()]} "
                    f"({_refusal(err)}); {_ADVICE[err.code()]}"
                ) from None
            if time.monotonic() >= deadline:
                raise ServiceUnavailable(
                    f"Kafka at {settings.kafka_bootstrap_servers} is unreachable "
                    f"({exc.args[0].str()}); start it with `da stack up` or set "
                    "DA_KAFKA_BOOTSTRAP_SERVERS"
                ) from None


# How long new topics' partitions may take to be served by their leaders: each broker creates its
# replicas after the controller has the topic, half a minute for a run's topics on a busy machine.
TOPICS_SERVED_S = 180.0


def min_insync_replicas(replication_factor: int) -> int:
    """How many replicas must have a write before it is acknowledged (``acks=all``): 2 of 3, so
    one broker may be lost or restarted while writes go on and an acknowledged write survives
    the loss of any one broker; 1 when there are fewer than 3 replicas."""
    return 2 if replication_factor >= 3 else 1


def ensure_topics(
    settings: Settings, names: Sequence[str], partitions: int | None = None
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    admin = make_admin(settings)
    existing = set(admin.list_topics(timeout=settings.io_timeout_s).topics)
    wanted = [n for n in names if n not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                n,
                num_partitions=partitions or settings.partitions,
                replication_factor=settings.replication_factor,
                config={
                    "min.insync.replicas": str(min_insync_replicas(settings.replication_factor))
                },
            )
            for n in wanted
        ],
        operation_timeout=settings.io_timeout_s,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    # Created is not yet visible: the broker's metadata follows the controller a moment later,
    # and a stage started right after `da topics ensure` must not find its topic missing.
    deadline = time.monotonic() + settings.io_timeout_s
    listed = {}
    while time.monotonic() < deadline:
        listed = admin.list_topics(timeout=settings.io_timeout_s).topics
        if all(n in listed and listed[n].partitions for n in wanted):
            break
        time.sleep(0.1)
    _until_served(admin, [TopicPartition(n, p) for n in wanted for p in listed[n].partitions])
    return sorted(created)


def _until_served(admin: AdminClient, partitions: list[TopicPartition]) -> None:
    """Wait until each partition's leader has made its log and answers for it. On a cluster the
    controller names a leader before that broker has created the partition, and an idempotent
    producer writing at once lost its very first message while told it was delivered (the
    leader then took the second one as the producer's first: a chaos run found it)."""
    deadline = time.monotonic() + TOPICS_SERVED_S
    waiting, latest = partitions, OffsetSpec.latest()  # type: ignore[no-untyped-call]
    while waiting:
        futures = admin.list_offsets(dict.fromkeys(waiting, latest), request_timeout=10)
        failed = []
        for tp, future in futures.items():
            try:
                future.result()
            except KafkaException:
                failed.append(tp)
        waiting = failed
        if waiting and time.monotonic() > deadline:
            names = sorted({f"{tp.topic}/{tp.partition}" for tp in waiting})
            raise ServiceUnavailable(
                f"created, but no leader serves {', '.join(names[:5])} after {TOPICS_SERVED_S:g}s"
            )
        if waiting:
            time.sleep(0.5)


def connected_members(settings: Settings, timeout_s: float = 10.0) -> dict[str, int]:
    """Consumer groups with members now, and how many: who would lose the broker if it stopped."""
    admin = make_admin(settings, quiet=True)
    listed = admin.list_consumer_groups(request_timeout=timeout_s).result(timeout=timeout_s)
    ids = [g.group_id for g in listed.valid]
    if not ids:
        return {}
    described = admin.describe_consumer_groups(ids, request_timeout=timeout_s)
    members = {gid: len(f.result(timeout=timeout_s).members) for gid, f in described.items()}
    return {gid: n for gid, n in sorted(members.items()) if n}
