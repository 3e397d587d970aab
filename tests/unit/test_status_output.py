from __future__ import annotations

import csv
import io

from cli.output import Format, Report, Table, render
from cli.status import _CSV_COLUMNS, csv_rows

RESULT = {
    "checked_at": "2026-11-29T23:00:00+00:00",
    "exit": 2,
    "stages": [
        {
            "stage": "gep",
            "verdict": "STALLED",
            "why": "lag and no commit",
            "instances": [{"client_id": "a:1", "host": "h"}, {"client_id": "b:2", "host": "h"}],
            "processed": 120,
            "outstanding": 30,
            "behind_s": 4.5,
            "rate_per_s": 0.0,
            "eta_s": None,
            "dead_letters": {"bad_json": 2, "too_deep": 1},
            "parked": None,
            "last_commit": "2026-11-29T22:55:00+00:00",
            "next": "da run gep",
            "partitions": [],
        }
    ],
}


def test_status_csv_is_one_flat_row_per_stage_with_counts() -> None:
    text = render(Report([Table("stages", _CSV_COLUMNS, csv_rows(RESULT))]), Format.CSV)
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert row["stage"] == "gep" and row["verdict"] == "STALLED"
    assert (row["instances"], row["dead_letters"], row["outstanding"]) == ("2", "3", "30")
    assert row["next"] == "da run gep"
