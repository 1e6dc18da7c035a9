"""The alert rules and the Grafana dashboard in monitoring/: valid, and about our metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import make_config
from turnstiled.metrics import Metrics

MONITORING = Path(__file__).resolve().parent.parent / "monitoring"
RULES = MONITORING / "turnstiled-alerts.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package 'prometheus'; "
    "scripts/_env.sh installs it)")


@needs_promtool
def test_alert_rules_pass_promtool_check():
    out = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@needs_promtool
def test_each_alert_fires_when_it_must_and_not_before():
    out = subprocess.run([PROMTOOL, "test", "rules", "turnstiled-alerts.test.yml"],
                         cwd=MONITORING, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def exported_families(tmp_path) -> set[str]:
    cfg = make_config(tmp_path, scanner=[{"name": "entry", "type": "serial", "url": "loop://"}],
                      sources={"vivenu": {"token": "t", "base_url": "http://127.0.0.1:9"}})

    def live() -> dict:
        return {"gate": {"relay": "locked", "fire_alarm": False}, "alarms": {},
                "scanners": [{"name": "entry", "connected": True}], "stale_loops": [],
                "mesh": {"connected": True, "peers": 2, "unacknowledged": 0}}
    m = Metrics(cfg, live, lambda: {"drains": {"vivenu": {"sent": 0, "failures": {}}}})
    text = generate_latest(m.http_registry).decode()
    return {f.name for f in text_string_to_metric_families(text)}


def used_metrics(text: str) -> set[str]:
    names = set(re.findall(r"\b(turnstiled_[a-z_]+|up|node_textfile_mtime_seconds)\b", text))
    # series suffixes of counters and histograms
    return {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in names}


def test_rules_and_dashboard_only_use_metrics_we_export(tmp_path):
    families = exported_families(tmp_path) | {"up", "node_textfile_mtime_seconds"}
    for path in (RULES, DASHBOARD):
        used = used_metrics(path.read_text())
        assert used, path
        assert used <= families, f"{path.name} uses unknown metrics {used - families}"


def test_mesh_figures_with_a_mesh(tmp_path):
    names = exported_families(tmp_path)
    assert {"turnstiled_mesh_connected", "turnstiled_mesh_peers",
            "turnstiled_mesh_unacknowledged"} <= names


def test_dashboard_has_one_row_per_gate_with_the_asked_panels():
    dash = json.loads(DASHBOARD.read_text())
    row, *panels = dash["panels"]
    assert row["type"] == "row" and row["repeat"] == "instance"
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    for metric in ("turnstiled_scans_total", "turnstiled_scan_to_relay_seconds_bucket",
                   "turnstiled_sync_age_seconds", "turnstiled_upload_backlog",
                   "turnstiled_scanner_connected", "turnstiled_relay_unlocked"):
        assert metric in exprs
    assert "histogram_quantile(0.99" in exprs
