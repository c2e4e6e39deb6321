"""Monitoring, generated from deploy/models.yaml: Prometheus alert rules (deploy/prometheus-alerts.yml) for
operations (a component down, a circuit open, errors, saturation, audit records or deliveries stuck, a certificate
near expiry) and for agreement (`monitoring`), and a Grafana dashboard (deploy/grafana/review-agreement.json).

They read the gateway's `gateway_review_verdicts_total{model, sha256, finding, verdict}` (gateway/metrics.py),
one count per verdict a radiologist signs. The accepted share counts a finding with no accepted verdict as 0,
not as missing, so a model the reviewers reject every time still alerts. The share with its Wilson interval
and the sensitivity and specificity come from the verified SRs in the PACS (`python -m services.bridge pacs
agreement`); these are the live view of the same verdicts.
"""

from __future__ import annotations

from typing import Any

from scripts.launcher.config import StackConfig

VERDICTS = "gateway_review_verdicts_total"
BY = "model, sha256, finding"
COUNT = "cxr:review_verdicts:window"
SHARE = "cxr:review_accepted_share:window"
ALERT = "CxrReviewAgreementBelowFloor"
ACCEPTED = '{verdict="accepted"}'


def _increase(window: str, selector: str = "") -> str:
    return f"sum by ({BY}) (increase({VERDICTS}{selector}[{window}]))"


def _alert(name: str, expr: str, wait: str, severity: str, summary: str, description: str) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": wait,
        "labels": {"severity": severity},
        "annotations": {"summary": summary, "description": description},
    }


REQUESTS = "gateway_requests_total"


def _share(selector: str) -> str:
    return f"sum(rate({REQUESTS}{{{selector}}}[5m])) / sum(rate({REQUESTS}[5m]))"


ERROR_SHARE = 0.05  # of the gateway's answers, 5xx over 5 minutes
REFUSED_SHARE = 0.10  # of the gateway's answers, 429 over 5 minutes: the backends' slots are full
CERTIFICATE_DAYS = 14


def operations_rules(jobs: list[str]) -> dict[str, Any]:
    """What an operator is woken for; `jobs` are the scrape jobs of the stack's components (deploy/prometheus.yml)."""
    return {
        "name": "cxr-serve-operations",
        "rules": [
            _alert(
                "CxrComponentDown",
                f'up{{job=~"{"|".join(jobs)}"}} == 0',
                "2m",
                "critical",
                "{{ $labels.job }} does not answer Prometheus",
                "Its /metrics has not answered for 2 minutes: the process is down or unreachable.",
            ),
            _alert(
                "CxrBackendCircuitOpen",
                "gateway_backend_circuit == 1",
                "5m",
                "critical",
                "the gateway's circuit to {{ $labels.backend }} is open",
                "Calls to it fail at once (results are partial, naming it); see the gateway's /ready for the reason.",
            ),
            _alert(
                "CxrGatewayErrors",
                _share('status=~"5.."') + f" > {ERROR_SHARE}",
                "10m",
                "warning",
                "{{ $value | humanizePercentage }} of the gateway's answers are 5xx",
                f"Above {ERROR_SHARE:.0%} for 10 minutes: gateway_upstream_errors_total names the backend and the kind.",
            ),
            _alert(
                "CxrSaturated",
                _share('status="429"') + f" > {REFUSED_SHARE}",
                "10m",
                "warning",
                "{{ $value | humanizePercentage }} of the gateway's answers are 429: the backends' slots are full",
                "Clients are told to retry later: add capacity or lower the load (README, Performance).",
            ),
            _alert(
                "CxrAuditNotShipped",
                "gateway_audit_unshipped > 0",
                "15m",
                "critical",
                "{{ $value }} audit records not taken by the audit repository",
                "The gateway keeps them in its sealed trail and retries; the syslog-over-TLS receiver is down or refusing.",
            ),
            _alert(
                "CxrDeliveriesDead",
                'bridge_deliveries{state="dead"} > 0',
                "0m",
                "warning",
                "{{ $value }} deliveries to {{ $labels.destination }} gave up",
                "Out of attempts, they wait for an operator: `python -m services.bridge dead-letters` lists them, "
                "`replay` sends them again.",
            ),
            _alert(
                "CxrCertificateExpiring",
                f"probe_ssl_earliest_cert_expiry - time() < {CERTIFICATE_DAYS} * 86400",
                "1h",
                "warning",
                "the certificate of {{ $labels.instance }} expires in {{ $value | humanizeDuration }}",
                "Read by the blackbox exporter's TLS probe of the gateway (and the audit repository): renew it.",
            ),
        ],
    }


def alert_rules(stack: StackConfig, jobs: list[str]) -> dict[str, Any]:
    m = stack.monitoring
    accepted = f"({_increase(m.agreement_window, ACCEPTED)} or {COUNT} * 0)"
    summary = "{{ $labels.model }} ({{ $labels.sha256 }}), {{ $labels.finding }}: accepted {{ $value | humanizePercentage }}"
    return {
        "groups": [
            operations_rules(jobs),
            {
                "name": "cxr-serve-review",
                "rules": [
                    {"record": COUNT, "expr": _increase(m.agreement_window)},
                    {"record": SHARE, "expr": f"{accepted} / {COUNT}"},
                    {
                        "alert": ALERT,
                        "expr": f"{SHARE} < {m.agreement_floor} and {COUNT} >= {m.agreement_min_reviews}",
                        "for": "1h",
                        "labels": {"severity": "warning"},
                        "annotations": {
                            "summary": summary,
                            "description": (
                                f"Below the floor of {m.agreement_floor:.0%} over {m.agreement_window}, with at least "
                                f"{m.agreement_min_reviews} verdicts (deploy/models.yaml, monitoring). Compare with the "
                                "model card; `python -m services.bridge pacs agreement` gives the figures with their intervals."
                            ),
                        },
                    },
                ],
            },
        ]
    }


def _panel(panel_id: int, title: str, kind: str, expr: str, legend: str, y: int, **field: Any) -> dict[str, Any]:
    return {
        "id": panel_id,
        "title": title,
        "type": kind,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 9, "w": 24, "x": 0, "y": y},
        "targets": [
            {"refId": "A", "expr": expr, "legendFormat": legend, "datasource": {"type": "prometheus", "uid": "${datasource}"}}
        ],
        "fieldConfig": {"defaults": field, "overrides": []},
    }


def dashboard(stack: StackConfig) -> dict[str, Any]:
    m = stack.monitoring
    floor = {"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "green", "value": m.agreement_floor}]}
    version = "{{model}} {{sha256}} {{finding}}"
    return {
        "title": "cxr-serve: agreement with the radiologists",
        "uid": "cxr-serve-review",
        "description": "Generated from deploy/models.yaml by `make deploy-files` (scripts/launcher/monitoring.py).",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "time": {"from": f"now-{m.agreement_window}", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}]},
        "panels": [
            _panel(
                1,
                f"Accepted share over {m.agreement_window} (floor {m.agreement_floor:.0%})",
                "timeseries",
                SHARE,
                version,
                0,
                unit="percentunit",
                min=0,
                max=1,
                thresholds=floor,
                custom={"thresholdsStyle": {"mode": "line"}},
            ),
            _panel(
                2,
                f"Verdicts over {m.agreement_window}",
                "timeseries",
                f"sum by ({BY}, verdict) (increase({VERDICTS}[{m.agreement_window}]))",
                version + " {{verdict}}",
                9,
                unit="short",
            ),
            _panel(
                3,
                "Verdicts signed per hour",
                "timeseries",
                f"sum by (finding, verdict) (rate({VERDICTS}[1h])) * 3600",
                "{{finding}} {{verdict}}",
                18,
                unit="short",
            ),
        ],
    }
