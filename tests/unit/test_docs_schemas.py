"""docs/schemas.md shows the topics, subjects and schemas the stages really have."""

from __future__ import annotations

from pathlib import Path

from cli.schemas import markdown_table, topic_schemas
from cli.stages import all_topics
from common.codec import Codec
from common.settings import Settings
from common.topics import Topics

DOC = Path(__file__).resolve().parents[2] / "docs" / "schemas.md"


def test_the_table_is_current() -> None:
    text = DOC.read_text()
    begin = "<!-- begin: da schemas list --markdown -->\n"
    table = text[text.index(begin) + len(begin) : text.index("<!-- end -->")]
    assert table == markdown_table(), "regenerate it with `da schemas list --markdown`"


def test_every_avro_topic_has_a_subject_and_a_known_schema() -> None:
    topics = Topics()
    everything = all_topics(Settings(kafka_bootstrap_servers="-", database_url="-"))
    # Raw JSON in, dead letters (original bytes), JSON answers to commands: the rest is Avro.
    avro = {
        t
        for t in everything
        if t != topics.ingest and ".dlq." not in t and not t.startswith(topics.reply_prefix)
    }
    mapped = {ts.topic: ts for ts in topic_schemas()}
    assert set(mapped) == avro
    names = set(Codec().names())
    for ts in mapped.values():
        assert ts.schema in names and ts.writer
        assert ts.subject == f"{ts.topic}-value"
