"""What ``da status`` knows about each consuming stage, and its verdict.

A ``Sample`` is one reading of every stage's partitions: the end of its input, the group's
committed offsets in Kafka, the offsets a store stage keeps in ``da_offsets``, and the group's
members. The verdict compares samples: the two the command takes ``--interval`` apart, and the
ones earlier runs kept in the state dir (``cli.status``), which give the rate over the last
minute. Nothing is read from the stages themselves; a stopped or frozen stage is seen as such.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Verdict = Literal["OK", "CATCHING_UP", "SLOW", "STALLED", "STOPPED", "REWIND", "UNKNOWN"]
EXIT: dict[Verdict, int] = {
    "OK": 0,
    "CATCHING_UP": 1,
    "SLOW": 1,
    "REWIND": 1,
    "STALLED": 2,
    "STOPPED": 2,
    "UNKNOWN": 3,
}
_RANK = {0: 0, 1: 1, 3: 2, 2: 3}  # critical outranks unknown, which outranks a warning


def overall_exit(verdicts: list[Verdict]) -> int:
    codes = [EXIT[v] for v in verdicts] or [3]
    return max(codes, key=lambda c: _RANK[c])


@dataclass(frozen=True, slots=True)
class Member:
    client_id: str  # "<instance>:<pid>", as ``common.launch`` names its consumer
    host: str
    partitions: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Partition:
    topic: str
    partition: int
    end: int
    committed: int | None  # Kafka
    stored: int | None  # da_offsets (store stages); None there: no row
    store: bool

    @property
    def position(self) -> int:
        """Where the stage resumes: a store stage from its stored offset (the beginning when it
        has none), any other from its committed one."""
        at = self.stored if self.store else self.committed
        return 0 if at is None else at

    @property
    def lag(self) -> int:
        return max(0, self.end - self.position)

    @property
    def rewound(self) -> bool:
        """A store stage's offsets moved back under Kafka's: a replay, not yet re-read."""
        return self.store and self.committed is not None and self.position < self.committed


@dataclass(frozen=True)
class StageSample:
    stage: str
    partitions: tuple[Partition, ...]
    members: tuple[Member, ...]
    error: str | None = None

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def processed(self) -> int:
        return sum(p.position for p in self.partitions)

    def owner(self, topic: str, partition: int) -> Member | None:
        return next((m for m in self.members if (topic, partition) in m.partitions), None)


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    why: str
    stuck: tuple[Partition, ...] = field(default=())  # lagging partitions that did not move


def judge(before: StageSample, now: StageSample, minute_ago: StageSample | None) -> Judgement:
    """The stage's verdict from two samples a few seconds apart (and one from about a minute
    ago, when earlier runs left one)."""
    if now.error is not None:
        return Judgement("UNKNOWN", now.error)
    rewound = [p for p in now.partitions if p.rewound]
    went_back = now.processed < before.processed or (
        minute_ago is not None and now.processed < minute_ago.processed
    )
    if rewound or went_back:
        return Judgement("REWIND", "offsets moved back (a replay): the stage re-reads its input")
    if not now.members:
        return Judgement("STOPPED", "no instance is in the consumer group")
    if now.lag == 0:
        return Judgement("OK", "caught up")
    old = {(p.topic, p.partition): p.position for p in before.partitions}

    def still(p: Partition) -> bool:
        return p.lag > 0 and p.position <= old.get((p.topic, p.partition), 0)

    if now.processed <= before.processed:
        return Judgement("STALLED", "lag, and no commit since the last sample", _still(now, still))
    # Some partitions moved; an instance whose lagging partitions all stood still is stuck.
    for m in now.members:
        mine = [p for p in now.partitions if (p.topic, p.partition) in m.partitions]
        lagging = [p for p in mine if p.lag > 0]
        if lagging and all(still(p) for p in lagging):
            why = f"{m.client_id} on {m.host} commits nothing while its partitions lag"
            return Judgement("STALLED", why, tuple(lagging))
    reference = minute_ago if minute_ago is not None else before
    if now.lag < reference.lag:
        return Judgement("CATCHING_UP", "committing, and the lag falls")
    return Judgement("SLOW", "committing, but the lag does not fall")


def _still(sample: StageSample, still: Callable[[Partition], bool]) -> tuple[Partition, ...]:
    return tuple(p for p in sample.partitions if still(p))


def rate(now: StageSample, t_now: float, then: StageSample | None, t_then: float) -> float | None:
    """Records per second between two samples; None without an earlier one."""
    if then is None or t_now <= t_then:
        return None
    return max(0.0, (now.processed - then.processed) / (t_now - t_then))


def eta_s(lag: int, per_s: float | None, verdict: Verdict) -> float | None:
    if verdict not in ("CATCHING_UP", "OK") or not per_s or lag == 0:
        return 0.0 if lag == 0 else None
    return lag / per_s


def next_command(stage: str, judgement: Judgement, sample: StageSample) -> str | None:
    """What to run under a red or amber verdict."""
    v = judgement.verdict
    if v == "STOPPED":
        return f"da run {stage}   (or `da up`, which restarts what exits)"
    if v == "REWIND":
        return f"da run {stage}   (it re-reads from the replayed offsets)"
    if v == "STALLED":
        owners = {sample.owner(p.topic, p.partition) for p in judgement.stuck}
        named = sorted(f"{m.client_id} on {m.host}" for m in owners if m is not None)
        who = ", ".join(named) or "its instances"
        return (
            f"{who}: holds lagging partitions and commits nothing; check its /healthz and "
            "restart it (kill -TERM <pid>; `da up` starts it again)"
        )
    if v == "SLOW":
        parts = len(sample.partitions)
        return f"da run {stage}   (one more instance; up to {parts} share the work)"
    if v == "UNKNOWN":
        return "da stack status   (or check DA_KAFKA_BOOTSTRAP_SERVERS / DA_DATABASE_URL)"
    return None
