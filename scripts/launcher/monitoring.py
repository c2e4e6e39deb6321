"""Monitoring, generated from deploy/models.yaml: Prometheus alert rules (deploy/prometheus-alerts.yml) for
operations (a component down, a circuit open, errors, saturation, audit records or deliveries stuck, a certificate
near expiry) and for agreement (`monitoring`), and two Grafana dashboards: operations (deploy/grafana/operations.json)
and agreement (deploy/grafana/review-agreement.json).

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
                "Clients are told to retry later: add capacity or lower the load (docs/performance.md).",
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


def _panel(
    panel_id: int, title: str, kind: str, expr: str, legend: str, y: int, x: int = 0, w: int = 24, **field: Any
) -> dict[str, Any]:
    return {
        "id": panel_id,
        "title": title,
        "type": kind,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 9, "w": w, "x": x, "y": y},
        "targets": [
            {"refId": "A", "expr": expr, "legendFormat": legend, "datasource": {"type": "prometheus", "uid": "${datasource}"}}
        ],
        "fieldConfig": {"defaults": field, "overrides": []},
    }


def _board(title: str, uid: str, since: str, panels: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "title": title,
        "uid": uid,
        "description": "Generated from deploy/models.yaml by `make deploy-files` (scripts/launcher/monitoring.py).",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "time": {"from": f"now-{since}", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}]},
        "panels": panels,
    }


def dashboard(stack: StackConfig) -> dict[str, Any]:
    m = stack.monitoring
    floor = {"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "green", "value": m.agreement_floor}]}
    version = "{{model}} {{sha256}} {{finding}}"
    return _board(
        "cxr-serve: agreement with the radiologists",
        "cxr-serve-review",
        m.agreement_window,
        [
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
    )


PREDICTIONS = "gateway_classifier_predictions_total"
# The circuit's states as gateway/metrics.py exports them (0 closed, 1 open, 2 half-open), coloured.
_CIRCUIT_STATES = {
    "type": "value",
    "options": {
        "0": {"text": "closed", "color": "green"},
        "1": {"text": "open", "color": "red"},
        "2": {"text": "half-open", "color": "orange"},
    },
}


def _quantile(q: float, metric: str, by: str, window: str = "5m") -> str:
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket[{window}])))"


def operations_dashboard() -> dict[str, Any]:
    """What an operator watches (the alerts of `operations_rules` fire on the same series): traffic, latency per
    stage, refusals, the circuits, queues, each backend's errors and the classifier's outputs over time."""
    return _board(
        "cxr-serve: operations",
        "cxr-serve-operations",
        "6h",
        [
            _panel(
                1,
                "Answers per second, by status",
                "timeseries",
                f"sum by (status) (rate({REQUESTS}[5m]))",
                "{{status}}",
                0,
                unit="reqps",
            ),
            _panel(
                2,
                "Latency per stage, p95",
                "timeseries",
                _quantile(0.95, "gateway_stage_seconds", "stage"),
                "{{stage}}",
                0,
                12,
                12,
                unit="s",
            ),
            _panel(
                3,
                "Refused for saturation (429), share of answers",
                "timeseries",
                _share('status="429"'),
                "429",
                9,
                0,
                12,
                unit="percentunit",
                min=0,
            ),
            _panel(
                4,
                "Circuit per backend",
                "state-timeline",
                "max by (backend) (gateway_backend_circuit)",
                "{{backend}}",
                9,
                12,
                12,
                mappings=[_CIRCUIT_STATES],
            ),
            _panel(
                5,
                "In flight per backend",
                "timeseries",
                "sum by (backend) (gateway_backend_in_flight)",
                "{{backend}}",
                18,
                0,
                12,
                unit="short",
            ),
            _panel(
                6,
                "Classifier queue depth",
                "timeseries",
                "sum by (instance) (classifier_queue_depth)",
                "{{instance}}",
                18,
                12,
                12,
                unit="short",
            ),
            _panel(
                7,
                "Backend errors per second, by kind",
                "timeseries",
                "sum by (backend, kind) (rate(gateway_upstream_errors_total[5m]))",
                "{{backend}} {{kind}}",
                27,
                unit="short",
            ),
            _panel(
                8,
                "Classifier: share of each predicted class, 1 h (drift)",
                "timeseries",
                f"sum by (predicted_class) (rate({PREDICTIONS}[1h]))"
                f" / ignoring (predicted_class) group_left sum(rate({PREDICTIONS}[1h]))",
                "{{predicted_class}}",
                36,
                0,
                12,
                unit="percentunit",
                min=0,
                max=1,
            ),
            _panel(
                9,
                "Classifier: median confidence, 1 h (drift)",
                "timeseries",
                _quantile(0.5, "gateway_classifier_confidence", "job", "1h"),
                "median",
                36,
                12,
                12,
                unit="percentunit",
            ),
            _panel(
                10,
                "Audit records not yet shipped",
                "timeseries",
                "max(gateway_audit_unshipped)",
                "unshipped",
                45,
                0,
                12,
                unit="short",
            ),
            _panel(
                11,
                "Bridge deliveries waiting, by destination",
                "timeseries",
                'sum by (destination, state) (bridge_deliveries{state!="delivered"})',
                "{{destination}} {{state}}",
                45,
                12,
                12,
                unit="short",
            ),
        ],
    )
