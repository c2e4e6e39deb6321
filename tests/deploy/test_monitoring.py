"""The agreement alert and dashboard (scripts/launcher/monitoring.py, from deploy/models.yaml's `monitoring`),
checked by Prometheus's own promtool: the config and rules parse, the alert fires below the floor once enough
verdicts are in and not otherwise, and every dashboard query is PromQL Prometheus accepts."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from scripts.launcher import config, manifests, monitoring
from services.contract.paths import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
INSTALL = "make test-packages (as root; it installs Debian's prometheus, which has promtool)"
STACK = config.load("gpu", env={})


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(f"the monitoring tests need promtool: {INSTALL}")
    return found


def _run(promtool: str, *args: str, cwd: Path = DEPLOY) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_prometheus_loads_the_config_and_its_alert_rules(promtool):
    checked = _run(promtool, "check", "config", "prometheus.yml")
    assert checked.returncode == 0 and "SUCCESS: 1 rule files found" in checked.stdout, checked.stdout + checked.stderr


def _series(model: str, finding: str, verdict: str, per_hour: float) -> dict[str, str]:
    labels = f'model="{model}",sha256="{model}-sha",finding="{finding}",verdict="{verdict}",job="gateway"'
    return {"series": f"{monitoring.VERDICTS}{{{labels}}}", "values": f"0+{per_hour}x200"}


def test_the_alert_fires_below_the_floor_with_enough_verdicts_and_not_otherwise(promtool, tmp_path):
    m = STACK.monitoring
    assert (m.agreement_floor, m.agreement_min_reviews) == (0.8, 50), "the expectations below assume models.yaml's values"
    series = [
        _series("drifting", "fracture", "accepted", 6),  # 60 % accepted of 10 an hour: fires
        _series("drifting", "fracture", "rejected", 3),
        _series("drifting", "fracture", "modified", 1),
        _series("healthy", "fracture", "accepted", 9),  # 90 %: quiet
        _series("healthy", "fracture", "rejected", 1),
        _series("rejected-always", "pneumonia", "rejected", 1),  # no accepted series at all: 0 %, fires
        _series("new", "pneumonia", "rejected", 0.1),  # 0 % of ~10 verdicts: too few to say, quiet
    ]
    firing = [
        {
            "exp_labels": {"severity": "warning", "model": model, "sha256": f"{model}-sha", "finding": finding},
            "exp_annotations": {
                "summary": f"{model} ({model}-sha), {finding}: accepted {share}",
                "description": monitoring.alert_rules(STACK)["groups"][0]["rules"][2]["annotations"]["description"],
            },
        }
        for model, finding, share in (("drifting", "fracture", "60%"), ("rejected-always", "pneumonia", "0%"))
    ]
    tests = {
        "rule_files": [str(DEPLOY / manifests.ALERTS_FILE)],
        "evaluation_interval": "1h",
        "tests": [
            {
                "interval": "1h",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "30m", "alertname": monitoring.ALERT, "exp_alerts": []},  # pending, not yet for 1h
                    {"eval_time": "100h", "alertname": monitoring.ALERT, "exp_alerts": firing},
                ],
            }
        ],
    }
    path = tmp_path / "alert-tests.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    tested = _run(promtool, "test", "rules", str(path), cwd=tmp_path)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_every_dashboard_query_is_promql_prometheus_accepts(promtool, tmp_path):
    board = json.loads((DEPLOY / manifests.DASHBOARD_FILE).read_text())
    queries = [target["expr"] for panel in board["panels"] for target in panel["targets"]]
    assert monitoring.SHARE in queries[0] and all(monitoring.VERDICTS in q for q in queries[1:])
    rules = {
        "groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:query{i}", "expr": q} for i, q in enumerate(queries)]}]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = _run(promtool, "check", "rules", str(path), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    broken = path.with_name("broken.yml")
    broken.write_text(
        yaml.safe_dump({"groups": [{"name": "x", "rules": [{"record": "x:y", "expr": "sum by (model (rate(x[1h]))"}]}]})
    )
    assert _run(promtool, "check", "rules", str(broken), cwd=tmp_path).returncode != 0  # the check does catch bad PromQL
