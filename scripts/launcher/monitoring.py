"""Agreement monitoring, generated from deploy/models.yaml's `monitoring`: Prometheus recording and alert rules
(deploy/prometheus-alerts.yml) and a Grafana dashboard (deploy/grafana/review-agreement.json).

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


def alert_rules(stack: StackConfig) -> dict[str, Any]:
    m = stack.monitoring
    accepted = f"({_increase(m.agreement_window, ACCEPTED)} or {COUNT} * 0)"
    summary = "{{ $labels.model }} ({{ $labels.sha256 }}), {{ $labels.finding }}: accepted {{ $value | humanizePercentage }}"
    return {
        "groups": [
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
            }
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
