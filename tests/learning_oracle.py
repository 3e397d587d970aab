"""An independent computation of the learning pipeline's outputs from the raw messages sent,
written from the rules in ``docs/formats.md`` and issues 3 and 15, not from
``gep``/``demux``/``dep``: what every DE topic and every learning table must hold.

Input: the JSON values of the valid raw messages, each with its ``da-format``, duplicates
included (a resent message is a second delivery: GEP and demux pass it on again; the DEPs count
each DE once). ``tests.learning_des`` turns each message into its DEs; this module derives the
roll-up and the state: sums over distinct DEs, a latest value newest in event time, a session's
score its newest (a regrade or a fuller roll-up replaces it), a collection session's score the
mean of its questions' scores.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from tests.learning_des import De, SysDe, fold, system_de, usage_des


@dataclass
class Expected:
    demux: dict[str, Counter[De]]  # bucket -> DEs (a duplicate delivery counts twice)
    system: dict[str, Counter[SysDe]]
    rollup: dict[str, set[De]]  # bucket -> distinct DEs, the score ones without value/basis
    rollup_sessions: dict[tuple[Any, ...], tuple[int, float]]  # session -> (questions, mean)
    catalog: dict[str, tuple[Any, ...]]
    usage: dict[tuple[str, ...], tuple[Any, ...]]
    competency: dict[tuple[str, str], tuple[int, float, float]]


def expected(sent: list[tuple[str, Any]]) -> Expected:
    demux: dict[str, Counter[De]] = {}
    system: dict[str, Counter[SysDe]] = {}
    for fmt, value in sent:
        if fmt == "gooru.system":
            s = system_de(value)
            system.setdefault(s.name.split(".")[0], Counter())[s] += 1
        for d in usage_des(fmt, value):
            demux.setdefault(d.name.removeprefix("usage."), Counter())[d] += 1
    distinct = {(d.root, d.name): d for c in demux.values() for d in c}
    rollup, sessions, up = _rollup(list(distinct.values()))
    return Expected(
        demux,
        system,
        rollup,
        sessions,
        _catalog(system.get("content", Counter())),
        _usage(list(distinct.values()) + up),
        _competency(system, distinct, up),
    )


def _rollup(des: list[De]) -> tuple[dict[str, set[De]], dict[tuple[Any, ...], Any], list[De]]:
    """The next level up: resource/question DEs played inside a *collection*."""
    out: dict[str, set[De]] = {}
    per_session: dict[tuple[Any, ...], list[De]] = {}
    final = []
    for d in des:
        if d.collection_type != "collection" or not d.collection:
            continue
        metric = d.name.rsplit(".", 1)[1]
        up = replace(
            d,
            name=f"usage.collection.{metric}",
            content=d.collection,
            collection=None,
            collection_type=None,
        )
        if metric == "score":
            per_session.setdefault((d.user, d.collection, d.context, d.session), []).append(up)
            up = replace(up, value=-1, at_ms=0)  # the running mean depends on arrival order
        else:
            final.append(up)
        out.setdefault(f"collection.{metric}", set()).add(up)
    sessions = {}
    for key, ups in per_session.items():
        mean = sum(u.value for u in ups) / len(ups)
        sessions[key] = (len(ups), mean)
        last = max(ups, key=lambda u: u.at_ms)
        final.append(replace(last, value=mean, at_ms=max(u.at_ms for u in ups)))
    return out, sessions, final


def _newest(events: list[SysDe]) -> SysDe:
    return max(events, key=lambda s: (s.at_ms, s.root))


def _catalog(content: Counter[SysDe]) -> dict[str, tuple[Any, ...]]:
    by: dict[str, list[SysDe]] = {}
    for s in content:
        by.setdefault(s.entity, []).append(s)
    out = {}
    for cid, evs in by.items():
        metas = [s for s in evs if s.name != "content.deleted"]
        meta = _newest(metas) if metas else None
        deleted = _newest(evs).name == "content.deleted"
        out[cid] = (
            (meta.content_type, fold(meta.content_type), meta.parent, list(meta.competencies))
            if meta
            else (None, None, None, [])
        ) + (deleted,)
    return out


def _scores(des: list[De]) -> dict[tuple[Any, ...], De]:
    """A session's score is its newest (a regrade or a fuller roll-up replaces it)."""
    best: dict[tuple[Any, ...], De] = {}
    for d in des:
        if d.name.endswith(".score"):
            k = (d.user, d.content, d.context, d.session)
            if k not in best or (d.at_ms, d.root) > (best[k].at_ms, best[k].root):
                best[k] = d
    return best


def _usage(des: list[De]) -> dict[tuple[str, ...], tuple[Any, ...]]:
    rows: dict[tuple[str, ...], list[Any]] = {}
    reactions: dict[tuple[str, ...], De] = {}
    for d in des:
        key = (d.user, d.content, *d.context)
        row = rows.setdefault(key, [0, 0, 0, None, None, None])
        metric = d.name.rsplit(".", 1)[1]
        if metric == "timespent":
            row[0] += d.value
        elif metric == "view":
            row[1] += 1
        elif metric == "start":
            row[2] += 1
        elif metric == "reaction":
            old = reactions.get(key)
            if old is None or (d.at_ms, d.root) > (old.at_ms, old.root):
                reactions[key] = d
    for d in _scores(des).values():
        row = rows[(d.user, d.content, *d.context)]
        newest = row[5]
        if newest is None or (d.at_ms, d.root) > (newest.at_ms, newest.root):
            row[5] = d
        row[4] = d.value if row[4] is None else max(row[4], d.value)
    for k, r in reactions.items():
        rows[k][3] = r.value
    return {
        k: (r[0], r[1], r[2], r[5].value if r[5] else None, r[4], r[3]) for k, r in rows.items()
    }


def _competency(
    system: dict[str, Counter[SysDe]], distinct: dict[Any, De], up: list[De]
) -> dict[tuple[str, str], tuple[int, float, float]]:
    catalog = _catalog(system.get("content", Counter()))
    scored = [d for d in distinct.values() if d.name == "usage.assessment.score"]
    scored += [d for d in up if d.name == "usage.collection.score"]
    per: dict[tuple[str, str], list[De]] = {}
    for (_, content, _, _), d in _scores(scored).items():
        for competency in dict.fromkeys(catalog.get(content, (None, None, None, []))[3]):
            per.setdefault((d.user, competency), []).append(d)
    return {
        k: (len(v), max(v, key=lambda d: (d.at_ms, d.root)).value, max(d.value for d in v))
        for k, v in per.items()
    }
