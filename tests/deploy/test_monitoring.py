"""The agreement alert and dashboard (scripts/launcher/monitoring.py, from deploy/models.yaml's `monitoring`),
checked by Prometheus's own promtool: the config and rules parse, the alert fires below the floor once enough
verdicts are in and not otherwise, and every dashboard query is PromQL Prometheus accepts."""

from __future__ import annotations

import json
import re
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
ALERTS = {
    group["name"]: {rule["alert"]: rule for rule in group["rules"] if "alert" in rule}
    for group in yaml.safe_load((DEPLOY / manifests.ALERTS_FILE).read_text())["groups"]
}


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


def _rule_tests(promtool: str, tmp_path: Path, interval: str, cases: list[dict]) -> None:
    """`promtool test rules` on the committed alert rules: each case its input series and expected alerts."""
    tests = {
        "rule_files": [str(DEPLOY / manifests.ALERTS_FILE)],
        "evaluation_interval": interval,
        "tests": [{"interval": interval, **case} for case in cases],
    }
    path = tmp_path / "alert-tests.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    tested = _run(promtool, "test", "rules", str(path), cwd=tmp_path)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


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
                "description": ALERTS["cxr-serve-review"][monitoring.ALERT]["annotations"]["description"],
            },
        }
        for model, finding, share in (("drifting", "fracture", "60%"), ("rejected-always", "pneumonia", "0%"))
    ]
    checks = [
        {"eval_time": "30m", "alertname": monitoring.ALERT, "exp_alerts": []},  # pending, not yet for 1h
        {"eval_time": "100h", "alertname": monitoring.ALERT, "exp_alerts": firing},
    ]
    _rule_tests(promtool, tmp_path, "1h", [{"input_series": series, "alert_rule_test": checks}])


def _queries(dashboard_file: str) -> list[str]:
    board = json.loads((DEPLOY / dashboard_file).read_text())
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]


# Where each service defines its metrics: a dashboard that reads a name none of them exports shows nothing.
METRIC_SOURCES = ("gateway/metrics.py", "services/classifier/metrics.py", "services/bridge/ops.py")


def test_the_agreement_dashboard_reads_the_recorded_share_and_the_verdicts():
    queries = _queries(manifests.DASHBOARD_FILE)
    assert monitoring.SHARE in queries[0] and all(monitoring.VERDICTS in q for q in queries[1:])


def test_the_operations_dashboard_reads_only_what_the_services_export():
    queries = _queries(manifests.OPERATIONS_DASHBOARD_FILE)
    source = "".join((REPO_ROOT / path).read_text() for path in METRIC_SOURCES)
    names = {name for q in queries for name in re.findall(r"\b((?:gateway|classifier|bridge)_[a-z_]+)\b", q)}
    base = {re.sub(r"_(total|bucket)$", "", name) for name in names}
    assert {"gateway_backend_circuit", "gateway_classifier_predictions", "gateway_classifier_confidence"} <= base
    assert {name for name in base if f'"{name}"' not in source} == set()


@pytest.mark.parametrize("dashboard_file", [manifests.DASHBOARD_FILE, manifests.OPERATIONS_DASHBOARD_FILE])
def test_every_dashboard_query_is_promql_prometheus_accepts(promtool, tmp_path, dashboard_file):
    queries = _queries(dashboard_file)
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


def _expected(alert: str, labels: dict[str, str], summary: str) -> dict:
    rule = ALERTS["cxr-serve-operations"][alert]
    return {
        "exp_labels": {"severity": rule["labels"]["severity"], **labels},
        "exp_annotations": {"summary": summary, "description": rule["annotations"]["description"]},
    }


def _requests(status: str, per_minute: int) -> dict[str, str]:
    return {"series": f'gateway_requests_total{{model="cxr-report",status="{status}"}}', "values": f"0+{per_minute}x40"}


def test_the_operations_alerts_fire_on_recorded_faults_and_stay_quiet_otherwise(promtool, tmp_path):
    gateway = {"job": "gateway", "instance": "gateway:8080"}
    faults = [
        {"series": 'up{job="gateway",instance="gateway:8080"}', "values": "1x10 0x30"},  # down from 10 min
        {"series": 'up{job="bridge",instance="bridge:8090"}', "values": "1x40"},
        {"series": 'up{job="someone-else",instance="x:1"}', "values": "0x40"},  # not the stack's: quiet
        {"series": 'gateway_backend_circuit{backend="fracture"}', "values": "0x5 1x35"},  # open from 5 min
        {"series": 'gateway_backend_circuit{backend="report"}', "values": "2x40"},  # half-open: a trial, quiet
        _requests("200", 90),
        _requests("500", 10),  # 10 % 5xx
        {"series": "gateway_audit_unshipped", "values": "0x5 3x35"},
        {"series": 'bridge_deliveries{destination="ris",state="dead"}', "values": "0x5 1x35"},
        {"series": 'bridge_deliveries{destination="pacs",state="dead"}', "values": "0x40"},
        {"series": 'probe_ssl_earliest_cert_expiry{instance="https://gateway:8443"}', "values": f"{10 * 86400}x40"},
        {"series": 'probe_ssl_earliest_cert_expiry{instance="audit:6514"}', "values": f"{60 * 86400}x40"},
    ]
    at = "30m"
    checks = [
        ("CxrComponentDown", [_expected("CxrComponentDown", gateway, "gateway does not answer Prometheus")]),
        (
            "CxrBackendCircuitOpen",
            [_expected("CxrBackendCircuitOpen", {"backend": "fracture"}, "the gateway's circuit to fracture is open")],
        ),
        ("CxrGatewayErrors", [_expected("CxrGatewayErrors", {}, "10% of the gateway's answers are 5xx")]),
        ("CxrSaturated", []),
        (
            "CxrAuditNotShipped",
            [_expected("CxrAuditNotShipped", {}, "3 audit records not taken by the audit repository")],
        ),
        (
            "CxrDeliveriesDead",
            [_expected("CxrDeliveriesDead", {"destination": "ris", "state": "dead"}, "1 deliveries to ris gave up")],
        ),
    ]
    saturated = [_requests("200", 80), _requests("429", 20)]
    saturation_checks = [
        {
            "eval_time": at,
            "alertname": "CxrSaturated",
            "exp_alerts": [_expected("CxrSaturated", {}, "20% of the gateway's answers are 429: the backends' slots are full")],
        },
        {"eval_time": at, "alertname": "CxrGatewayErrors", "exp_alerts": []},
    ]
    fault_checks = [{"eval_time": at, "alertname": name, "exp_alerts": alerts} for name, alerts in checks]
    fault_checks += [{"eval_time": "1m", "alertname": name, "exp_alerts": []} for name, _ in checks]  # nothing yet
    cases = [
        {"input_series": faults, "alert_rule_test": fault_checks},
        {"input_series": saturated, "alert_rule_test": saturation_checks},
    ]
    _rule_tests(promtool, tmp_path, "1m", cases)
    jobs = ALERTS["cxr-serve-operations"]["CxrComponentDown"]["expr"]
    assert all(job in jobs for job in manifests.scrape_targets(STACK))  # every component the config scrapes


def test_a_certificate_near_its_expiry_alerts(promtool, tmp_path):
    series = [
        {"series": 'probe_ssl_earliest_cert_expiry{instance="https://gateway:8443"}', "values": f"{10 * 86400}x200"},
        {"series": 'probe_ssl_earliest_cert_expiry{instance="audit:6514"}', "values": f"{60 * 86400}x200"},
    ]
    rule = ALERTS["cxr-serve-operations"]["CxrCertificateExpiring"]
    firing = {
        "exp_labels": {"severity": "warning", "instance": "https://gateway:8443"},
        "exp_annotations": {
            "summary": "the certificate of https://gateway:8443 expires in 9d 22h 0m 0s",
            "description": rule["annotations"]["description"],
        },
    }
    checks = [
        {"eval_time": "2h", "alertname": "CxrCertificateExpiring", "exp_alerts": [firing]},
        {"eval_time": "30m", "alertname": "CxrCertificateExpiring", "exp_alerts": []},  # for 1h
    ]
    _rule_tests(promtool, tmp_path, "1m", [{"input_series": series, "alert_rule_test": checks}])
