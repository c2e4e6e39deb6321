"""The clinical rule tables and the fracture-text parser (pure functions over the data files)."""

import shutil
from pathlib import Path

import pytest

from gateway.clinical import consistency, fracture_findings, negation, rules
from gateway.clinical.abstention import FindingAssessment
from gateway.clinical.content import CLINICAL_DIR, ClinicalContentError, load
from gateway.clinical.structured import ReportFinding, StructuredReport

CLINICAL = load()


@pytest.mark.parametrize(
    ("cls", "confidence", "risk", "interpretation"),
    [
        ("PNEUMONIA", 0.95, "high", "very_confident"),
        ("PNEUMONIA", 0.90, "high", "confident"),
        ("PNEUMONIA", 0.75, "medium", "somewhat_confident"),
        ("PNEUMONIA", 0.55, "low", "not_confident"),
        ("NORMAL", 0.92, "normal", "confident"),
        ("NORMAL", 0.60, "uncertain", "not_confident"),
    ],
)
def test_seed_thresholds(cls, confidence, risk, interpretation):
    assessment = rules.assess(CLINICAL, rules.Facts(cls, confidence, False), "en")
    assert assessment.risk_level.code == risk
    assert assessment.confidence_interpretation.code == interpretation


def test_recommendations_follow_the_seed_table_in_both_languages():
    high = rules.assess(CLINICAL, rules.Facts("PNEUMONIA", 0.85, False), "zh").recommendations
    assert high[-3:] == ["建议进行血常规检查", "可考虑痰培养检查", "必要时进行CT检查"]
    low = rules.assess(CLINICAL, rules.Facts("PNEUMONIA", 0.6, False), "en").recommendations
    assert len(low) == 4 and "Monitor symptoms closely" in low
    assert len(rules.assess(CLINICAL, rules.Facts("NORMAL", 0.99, False), "en").recommendations) == 2
    with_fracture = rules.assess(CLINICAL, rules.Facts("NORMAL", 0.99, True), "en").recommendations
    assert any("fracture" in item for item in with_fracture)
    unknown_fracture = rules.assess(CLINICAL, rules.Facts("NORMAL", 0.99, None), "en").recommendations
    assert not any("fracture" in item for item in unknown_fracture)


@pytest.mark.parametrize(
    ("text", "suspected"),
    [
        ("Acute fracture of the left 5th rib.", True),
        ("No fracture is seen.", False),
        ("No evidence of fracture. Lungs are clear.", False),
        ("Without displaced fractures.", False),
        ("Healed right clavicle fracture; no acute fracture.", True),
        ("No definite fracture, but a rib fracture cannot be excluded.", True),
        ("The bones are intact.", False),
        ("未见明显骨折。", False),
        ("左侧第5肋骨骨折。", True),
        ("Cannot exclude a subtle fracture", True),
    ],
)
def test_fracture_text_negation(text, suspected):
    finding = fracture_findings.parse(text, CLINICAL.rules.fracture_terms)
    assert finding.suspected is suspected
    assert bool(finding.evidence) is suspected


def _report(pneumonia: str, fracture: str, impression: str, recommendations: list[str] = ()) -> StructuredReport:
    return StructuredReport(
        findings=[
            ReportFinding(finding="pneumonia", status="present", evidence=pneumonia),
            ReportFinding(finding="fracture", status="uncertain", evidence=fracture),
        ],
        impression=impression,
        recommendations=list(recommendations),
    )


def _assessed(pneumonia: str, fracture: str) -> list[FindingAssessment]:
    def one(finding: str, state: str) -> FindingAssessment:
        return FindingAssessment(finding=finding, state=state, statement="s", reason="r", probability=None)

    return [one("pneumonia", pneumonia), one("fracture", fracture)]


def _found(report: StructuredReport, pneumonia: str, fracture: str) -> list[tuple[str, str, str]]:
    found = consistency.contradictions(report, _assessed(pneumonia, fracture), CLINICAL.rules.report_consistency)
    return [(c.finding, c.stated, c.part) for c in found]


@pytest.mark.parametrize(
    ("text", "stated"),
    [
        ("Right lower lobe pneumonia.", ["present"]),
        ("No pneumonia.", ["absent"]),
        ("Pneumonia is absent.", ["absent"]),
        ("Pneumonia is ruled out.", ["absent"]),
        ("Pneumonia cannot be excluded.", ["uncertain"]),
        ("Findings suggest pneumonia.", ["uncertain"]),
        ("No consolidation, but pneumonia is possible.", ["absent", "uncertain"]),
        ("Lungs are clear.", []),
        ("未见肺炎。", ["absent"]),
        ("右下肺肺炎。", ["present"]),
    ],
)
def test_the_report_reader_states_each_mention_present_absent_or_uncertain(text, stated):
    cues = CLINICAL.rules.report_consistency.of("pneumonia")
    assert [m.stated for m in negation.mentions(text, cues)] == stated


def test_a_report_that_agrees_with_stage_one_has_no_contradiction():
    agrees = _report("Opacity in the right lower lobe.", "No fracture is seen.", "Findings consistent with pneumonia.")
    assert _found(agrees, "present", "not_detected") == []
    hedged = _report("Possible pneumonia.", "A fracture cannot be excluded.", "Pneumonia; a fracture is not ruled out.")
    assert _found(hedged, "present", "not_detected") == []


def test_each_contradiction_is_named_by_finding_statement_and_part():
    # The case: ChexFract described none, the impression asserts a fracture.
    assert _found(_report("Opacity.", "Not detected.", "Rib fracture."), "present", "not_detected") == [
        ("fracture", "present", "impression")
    ]
    # A pneumonia classified absent asserted in a recommendation, and one classified present denied.
    assert _found(_report("Clear.", "None.", "Normal.", ["Treat the pneumonia."]), "absent", "not_detected") == [
        ("pneumonia", "present", "recommendation 1")
    ]
    assert _found(_report("No pneumonia.", "None.", "Normal."), "present", "not_detected") == [
        ("pneumonia", "absent", "pneumonia evidence")
    ]
    # An undecided classification may only be hedged; a fracture no model gave may not be stated at all.
    assert _found(_report("Pneumonia.", "None.", "No fracture."), "uncertain", "unavailable") == [
        ("pneumonia", "present", "pneumonia evidence"),
        ("fracture", "absent", "impression"),
    ]


def test_a_report_that_omits_a_finding_from_its_text_has_no_contradiction():
    # Nothing in the free text names either finding: the schema's statuses stand, nothing is contradicted.
    assert _found(_report("Opacity at the right base.", "Bones intact.", "See above."), "present", "unavailable") == []


def _clinical_copy(tmp_path: Path, edit) -> Path:
    folder = tmp_path / "clinical"
    shutil.copytree(CLINICAL_DIR, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    rules = folder / "rules.yaml"
    rules.write_text(edit(rules.read_text(encoding="utf-8")), encoding="utf-8")
    return folder


LAST_RISK_RULE = "  - when: {}\n    code: uncertain"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text.replace("min_confidence: 0.9}", "min_confidnce: 0.9}", 1), r"risk_level\.0\.when\.min_confidnce"),
        (lambda text: text.replace('en: "AI-generated preliminary', 'eng: "AI-generated preliminary'), r"disclaimer\.en"),
        (lambda text: text.replace(LAST_RISK_RULE, LAST_RISK_RULE.replace("{}", "{class: NORMAL}")), "empty `when"),
    ],
)
def test_a_bad_rules_file_stops_the_start_naming_the_key(tmp_path, edit, message):
    with pytest.raises(ClinicalContentError, match=message):
        load(_clinical_copy(tmp_path, edit))


def test_a_rule_for_a_class_the_classifier_lacks_is_refused():
    with pytest.raises(ClinicalContentError, match="PNEUMONIA"):
        CLINICAL.check_classes(("NORMAL", "COVID"))
    CLINICAL.check_classes(("NORMAL", "PNEUMONIA"))
