"""The sessions of ``da sample learning``, one method per way the platform reports a play: the
log API 3.0 client (arrays of events), the log writer (one event each), the EdMobile partner app,
and the core-system events of the content, class and users. Each adds raw messages, with the
event time they were sent at, to ``Plays.records``."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from common.epoch import from_ms, to_ms

Record = dict[str, Any]
START = datetime(2020, 9, 14, 8, 0, tzinfo=UTC)
CLASS, COURSE, TEACHER, API_KEY = "class-7b", "course-ma4", "teacher-1", "app-key-1"
_EDMOBILE_TZ = timezone(timedelta(hours=2))


@dataclass(frozen=True, slots=True)
class Lesson:
    unit: str
    lesson: str
    collection: str
    resources: tuple[str, ...]
    cquestions: tuple[str, ...]  # the collection's questions
    assessment: str
    aquestions: tuple[str, ...]  # the assessment's questions
    competencies: tuple[str, ...]
    ckind: str = "collection"  # the kinds as the platform sends them (external ones included)
    akind: str = "assessment"


def course(units: int = 2, lessons: int = 1) -> list[Lesson]:
    out = []
    for u in range(1, units + 1):
        for n in range(1, lessons + 1):
            ln = f"{u}-{n}"
            out.append(
                Lesson(
                    f"unit-{u}",
                    f"lesson-{ln}",
                    f"coll-{ln}",
                    (f"res-{ln}-1", f"res-{ln}-2"),
                    (f"q-{ln}-c1", f"q-{ln}-c2"),
                    f"asmt-{ln}",
                    (f"q-{ln}-a1", f"q-{ln}-a2", f"q-{ln}-a3"),
                    # neighbouring lessons share a competency, so the stats aggregate contents
                    (f"MA.4.NF.{u}", f"MA.4.NF.{u}.{n}"),
                    # every kind of collection the platform names appears in a course
                    "collection-external" if u % 2 else "collection",
                    "assessment" if u % 2 else ("assessment-external", "offline-activity")[n % 2],
                )
            )
    return out


def epoch_ms(at: datetime) -> int:
    return to_ms(at)


class Plays:
    def __init__(self, rng: random.Random, lessons: list[Lesson]) -> None:
        self.rng = rng
        self.lessons = lessons
        self.records: list[tuple[int, int, Record]] = []
        self.seq = 0

    def add(self, at: datetime, fmt: str, key: str, value: Any) -> None:
        self.seq += 1
        self.records.append((epoch_ms(at), self.seq, {"format": fmt, "key": key, "value": value}))

    def event_id(self, prefix: str = "ev") -> str:
        self.seq += 1
        return f"{prefix}{self.seq:04d}{self.rng.getrandbits(16):04x}"  # not UUIDs, as in real data

    # -- core-system events -------------------------------------------------------------------

    def system(self, at: datetime, name: str, data: dict[str, Any]) -> None:
        value = {
            "eventId": self.event_id("sys"),
            "eventName": name,
            "timestamp": epoch_ms(at),
            "actorId": TEACHER,
            "data": data,
        }
        self.add(at, "gooru.system", str(data["id"]), value)

    def content(self, at: datetime, name: str, cid: str, kind: str, **data: Any) -> None:
        self.system(at, name, {"id": cid, "contentType": kind, **data})

    # -- plays --------------------------------------------------------------------------------

    def duration(self, low_s: int, high_s: int) -> timedelta:
        return timedelta(seconds=self.rng.randint(low_s, high_s))

    def answer(self) -> str:
        return self.rng.choices(["correct", "incorrect", "attempted"], [6, 3, 1])[0]

    def logapi(
        self, who: str, ls: Lesson, assessment: bool, at: datetime, *, student: bool
    ) -> None:
        session = self.event_id("s")
        parent = ls.assessment if assessment else ls.collection
        ctype = ls.akind if assessment else ls.ckind
        ctx = {
            "classGooruId": CLASS,
            "courseGooruId": COURSE,
            "unitGooruId": ls.unit,
            "lessonGooruId": ls.lesson,
        }

        def event(
            name: str, typ: str | None, content: str, start: datetime, end: datetime, **more: Any
        ) -> Record:
            c = {"type": typ} if typ else {}
            c |= {"contentGooruId": content, **ctx, "collectionType": ctype}
            if content != parent:
                c |= {"parentGooruId": parent, "resourceType": more.pop("rtype", "resource")}
            c |= more.pop("context", {})
            if not student:  # a teacher's preview
                more["payLoadObject"] = {**more.get("payLoadObject", {}), "isStudent": False}
            return {
                "eventId": self.event_id(),
                "eventName": name,
                "session": {"apiKey": API_KEY, "sessionId": session},
                "startTime": epoch_ms(start),
                "endTime": epoch_ms(end),
                "user": {"gooruUId": who},
                "context": c,
                "version": {"logApi": "3.0"},
                **more,
            }

        events = [event("collection.play", "start", parent, at, at)]
        t = at
        items = [] if assessment else [(r, "resource") for r in ls.resources]
        items += [(q, "question") for q in (ls.aquestions if assessment else ls.cquestions)]
        correct = 0
        for item, rtype in items:
            spent = self.duration(20, 240)
            if self.rng.random() < 0.2:
                events.append(event("collection.resource.play", "start", item, t, t, rtype=rtype))
            more: dict[str, Any] = {"rtype": rtype}
            if rtype == "question":
                status = self.answer()
                correct += status == "correct"
                more["payLoadObject"] = {"answerStatus": status}
            events.append(event("collection.resource.play", "stop", item, t, t + spent, **more))
            t += spent + self.duration(2, 20)
            if student and self.rng.random() < 0.15:
                react = {"context": {"reactionType": self.rng.randint(1, 5)}}
                events.append(event("reaction.create", None, item, t, t, rtype=rtype, **react))
        score = round(100 * correct / len(items)) if assessment else None
        metrics = {"metrics": {"score": score}} if score is not None else {}
        events.append(event("collection.play", "stop", parent, at, t, **metrics))
        if student and assessment and self.rng.random() < 0.3:
            react = {"context": {"reactionType": self.rng.randint(1, 5)}}
            events.append(event("reaction.create", None, parent, t, t, **react))
        while events:  # clients send what they buffered, a few events per request
            n = self.rng.randint(1, 5)
            batch, events = events[:n], events[n:]
            self.add(from_ms(batch[-1]["endTime"]), "gooru.logapi", who, batch)

    def logwriter(self, who: str, ls: Lesson, assessment: bool, at: datetime) -> None:
        session = self.event_id("s")
        coll, ctype = (ls.assessment, ls.akind) if assessment else (ls.collection, ls.ckind)
        ctx = {
            "classId": CLASS,
            "courseId": COURSE,
            "unitId": ls.unit,
            "lessonId": ls.lesson,
            "sessionId": session,
        }

        def event(name: str, t: datetime, **more: Any) -> None:
            value = {
                "eventId": self.event_id(),
                "eventName": name,
                "userId": who,
                "activityTime": epoch_ms(t),
                "collectionId": coll,
                "collectionType": ctype,
                "context": ctx,
                **more,
            }
            self.add(t, "gooru.logwriter", who, value)

        event("collection.start", at)
        t, correct = at, 0
        items = [] if assessment else [(r, "resource") for r in ls.resources]
        items += [(q, "question") for q in (ls.aquestions if assessment else ls.cquestions)]
        for item, rtype in items:
            spent = self.duration(20, 240)
            t += spent
            result: dict[str, Any] = {"timeSpent": spent // timedelta(milliseconds=1)}
            if rtype == "question":
                status = self.answer()
                correct += status == "correct"
                result["answerStatus"] = status
                if self.rng.random() < 0.5:
                    result["score"] = 100.0 if status == "correct" else 0.0
            elif self.rng.random() < 0.2:
                result["reaction"] = self.rng.randint(1, 5)
            event("resource.performance", t, resourceId=item, resourceType=rtype, result=result)
            t += self.duration(2, 20)
        score = round(100 * correct / len(items), 1)
        spent_ms = epoch_ms(t) - epoch_ms(at)
        event(
            "collection.performance",
            t,
            result={"score": score, "maxScore": 100, "timeSpent": spent_ms},
        )
        if assessment and self.rng.random() < 0.15:  # the teacher regrades the next day
            event(
                "collection.score.update",
                t + timedelta(days=1),
                result={"score": min(100.0, score + 20), "maxScore": 100},
            )

    def edmobile(self, who: str, ls: Lesson, at: datetime) -> None:
        def activity(kind: str, item: str, start: datetime, end: datetime, **more: Any) -> None:
            value = {
                "partner": "edmobile",
                "activityId": self.event_id("em"),
                "learnerRef": who,
                "kind": kind,
                "itemRef": item,
                "classRef": CLASS,
                "startedAt": start.astimezone(_EDMOBILE_TZ).isoformat(),
                "finishedAt": end.astimezone(_EDMOBILE_TZ).isoformat(),
                **more,
            }
            self.add(end, "partner.edmobile", who, value)

        t, right = at, 0
        for q in ls.aquestions:
            spent = self.duration(20, 180)
            outcome = self.rng.choices(["right", "wrong", "skipped"], [6, 3, 1])[0]
            right += outcome == "right"
            rating = {"rating": self.rng.randint(1, 5)} if self.rng.random() < 0.2 else {}
            activity("quiz-item", q, t, t + spent, quizRef=ls.assessment, outcome=outcome, **rating)
            t += spent + self.duration(2, 20)
        percent = round(100 * right / len(ls.aquestions), 1)
        activity("quiz", ls.assessment, at, t, percent=percent, rating=self.rng.randint(3, 5))
