"""The alert rules: valid, their fixtures pass, and they name only metrics the stages export."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from common.metrics import StageMetrics

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def test_rules_are_valid_and_their_fixtures_pass(promtool: str) -> None:
    for argv in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        done = subprocess.run(
            [promtool, *argv], cwd=RULES, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_rules_name_only_exported_metrics() -> None:
    families = list(StageMetrics("gep").registry.collect())
    # A counter's samples are <name>_total; one with labels not yet seen has no sample at all.
    exported = {m.name + ("_total" if m.type == "counter" else "") for m in families}
    exported |= {s.name for m in families for s in m.samples}
    named = set(re.findall(r"\bda_[a-z_]+", (RULES / "alerts.yml").read_text()))
    assert named, "the rules name no da_ metric"
    assert named <= exported, sorted(named - exported)
