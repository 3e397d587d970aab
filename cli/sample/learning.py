"""``da sample learning``: a class's worth of seeded learning sessions in the platform's formats.

One class follows a course of units and lessons; each lesson has a collection (resources and
questions) and an assessment (questions). The teacher's content, the class and its students
arrive as core-system events first; then each student plays some lessons, each play reported
by the log API 3.0 client (arrays of events), the log writer (one event each) or, for a few
students' assessments, the EdMobile partner app. A few realistic oddities are in it on purpose:
a retaken assessment, a teacher's regrade, a teacher's preview, a tab left open past the 2 h
clamp, a resource played outside any class.

The output is JSON lines, one raw message each (``docs/formats.md``, "Sample files")::

    {"format": "gooru.logapi", "key": "learner-07", "value": [...the raw message...]}

``da emit`` replays it. The same seed always gives the same file.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Annotated

import typer

from cli.sample import OldOutputOption, ToOption, deliver, write_jsonl
from cli.sample.plays import CLASS, START, TEACHER, Plays, Record, course, epoch_ms


def catalog(sample: Plays, students: list[str]) -> None:
    """The class, its students and the course's content, the day before the first lesson."""
    at = START - timedelta(days=1)
    sample.system(at, "class.created", {"id": CLASS, "title": "Grade 4, room 7b"})
    for s in students:
        sample.system(at, "user.created", {"id": s})
    for ls in sample.lessons:
        at += timedelta(minutes=1)
        comp = list(ls.competencies)
        sample.content(at, "content.created", ls.collection, ls.ckind, competencies=comp[:1])
        sample.content(at, "content.created", ls.assessment, ls.akind, competencies=comp)
        for r in ls.resources:
            sample.content(at, "content.created", r, "resource", parentId=ls.collection)
        for q in ls.cquestions:
            sample.content(at, "content.created", q, "question", parentId=ls.collection)
        for q in ls.aquestions:
            sample.content(at, "content.created", q, "question", parentId=ls.assessment)
    first = sample.lessons[0]
    sample.content(
        at + timedelta(hours=1),
        "content.updated",
        first.assessment,
        first.akind,
        competencies=list(first.competencies),
        title="Fractions, revised",
    )
    sample.content(at, "content.created", "res-draft", "resource", parentId=first.collection)
    sample.system(at + timedelta(hours=2), "content.deleted", {"id": "res-draft"})


def generate(seed: int = 7, students: int = 25, units: int = 2, lessons: int = 1) -> list[Record]:
    """The sample's raw messages, in the order the platform would have sent them."""
    rng = random.Random(seed)
    sample = Plays(rng, course(units, lessons))
    learners = [f"learner-{n:02d}" for n in range(1, students + 1)]
    catalog(sample, learners)
    for n, who in enumerate(learners):
        via_edmobile = n % 8 == 3
        for day, ls in enumerate(sample.lessons):
            if day and rng.random() < 0.5:
                continue  # absent that day
            at = START + timedelta(days=day, minutes=rng.randint(0, 90))
            for assessment in (False, True):
                if assessment and via_edmobile:
                    sample.edmobile(who, ls, at)
                elif rng.random() < 0.6:
                    sample.logapi(who, ls, assessment, at, student=True)
                else:
                    sample.logwriter(who, ls, assessment, at)
                at += timedelta(minutes=rng.randint(20, 40))
            if rng.random() < 0.1:  # a retake of the assessment, to do better
                sample.logapi(who, ls, True, at + timedelta(hours=3), student=True)
    _oddities(sample, learners)
    return [r for _, _, r in sorted(sample.records, key=lambda x: (x[0], x[1]))]


def _oddities(sample: Plays, learners: list[str]) -> None:
    first = sample.lessons[0]
    sample.logapi(TEACHER, first, True, START - timedelta(hours=1), student=False)  # a preview
    # a tab left open for 3 hours: the time spent is clamped to 2 h
    left_open = START + timedelta(hours=5)
    value = {
        "eventId": sample.event_id(),
        "eventName": "resource.play",
        "startTime": epoch_ms(left_open),
        "endTime": epoch_ms(left_open + timedelta(hours=3)),
        "user": {"gooruUId": learners[0]},
        "context": {
            "type": "stop",
            "contentGooruId": first.resources[0],
            "resourceType": "resource",
        },
    }
    sample.add(left_open + timedelta(hours=3), "gooru.logapi", learners[0], value)


def command(
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same file.")] = 7,
    students: Annotated[int, typer.Option(min=1, help="Students in the class.")] = 25,
    units: Annotated[int, typer.Option(min=1, help="Units in the course.")] = 2,
    lessons: Annotated[int, typer.Option(min=1, help="Lessons per unit.")] = 1,
    to: ToOption = None,
    output: OldOutputOption = None,
) -> None:
    """A class's learning sessions as JSON lines of raw messages, for `da emit`."""
    records = generate(seed, students, units, lessons)
    said = f"{len(records)} raw messages of {students} students"
    deliver(to or output, lambda out: write_jsonl(records, out), said)
