"""A radiologist's review of one preliminary SR → the verified SR that supersedes it, in the same study.

cxr-serve's preliminary SR (pacs/sr.py) is UNVERIFIED AI output. A review gives each AI finding a verdict
(accepted, rejected, or modified to a state: present / absent / uncertain, with a comment) and the report
text (accepted or edited), and signs. The verified SR (TID 1500, highdicom) is what the PACS then holds:
- VerificationFlag VERIFIED, CompletionFlag COMPLETE, PreliminaryFlag FINAL; the Verifying Observer
  Sequence names the reviewer (name, organisation, and the login as an identification code) and when;
- Predecessor Documents Sequence → the preliminary SR (PS3.3 C.17.2.3), whose evidence it carries on;
- the observer is the reviewer (a person), no longer the device;
- one measurement group per finding, with the preliminary's tracking identifier and algorithm (name,
  sha256 of the weights): the AI's call, the verdict on it and the finding as signed, so agreement per
  model version is read from the verified SRs alone (pacs/agreement.py);
- the signed report text, and whether it was edited.

Its UIDs derive from the preliminary SR's: a result has one verified SR, however often a signing is retried,
and a second signature of the same result is recognised as the instance that exists (pacs/review.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from services.bridge import codes as cx
from services.contract.review import FindingName, SignedState, Verdict

Call = Literal["present", "absent"]  # what the AI said of a finding

SERIES_DESCRIPTION = "cxr-serve result - VERIFIED by a radiologist"
USER_SCHEME = "99CXRSERVE-USER"  # the coding scheme of the reviewers' login names

_FINDINGS: dict[str, FindingName] = {cx.PNEUMONIA.value: "pneumonia", cx.FRACTURE.value: "fracture"}
_FINDING_CODES: dict[FindingName, Code] = {"pneumonia": cx.PNEUMONIA, "fracture": cx.FRACTURE}
# The preliminary's value for each finding → the AI's call (a fracture not detected is a negative call).
_CALLS: dict[str, Call] = {
    cx.PNEUMONIA.value: "present",
    cx.NORMAL.value: "absent",
    cx.DESCRIBED.value: "present",
    cx.NOT_DETECTED.value: "absent",
}
_STATE_CODES: dict[SignedState, Code] = {"present": cx.PRESENT, "absent": cx.ABSENT, "uncertain": cx.INDETERMINATE}
_VERDICT_CODES: dict[Verdict, Code] = {"accepted": cx.ACCEPTED, "rejected": cx.REJECTED, "modified": cx.MODIFIED}
# DCM codes of TID 1500 / 1501 / 4019 that the reader looks for.
_IMAGING_MEASUREMENTS, _MEASUREMENT_GROUP, _FINDING = "126010", "125007", "121071"
_ALGORITHM_NAME, _ALGORITHM_PARAMETERS, _TRACKING_ID, _TRACKING_UID = "111001", "111002", "112039", "112040"


class ReviewRefused(ValueError):
    """The review does not fit the result it signs; the message says how."""


@dataclass(frozen=True)
class AiFinding:
    """One finding of a preliminary SR: what the AI called it, and which model, by its weights."""

    finding: FindingName
    call: Call
    model: str
    sha256: str
    tracking_id: str
    tracking_uid: str


@dataclass(frozen=True)
class Reviewer:
    name: str  # as a DICOM person name, "Chen^Wei"
    login: str  # the identity provider's login (preferred_username)
    organization: str


@dataclass(frozen=True)
class FindingVerdict:
    finding: FindingName
    verdict: Verdict
    state: SignedState | None = None  # the corrected state: required when modified, implied otherwise
    comment: str = ""

    def signed_state(self, call: Call) -> SignedState:
        if self.verdict == "modified":
            if self.state is None:
                raise ReviewRefused(f"{self.finding}: a modified finding needs the corrected state")
            return self.state
        implied: SignedState = call if self.verdict == "accepted" else ("absent" if call == "present" else "present")
        if self.state is not None and self.state != implied:
            raise ReviewRefused(f"{self.finding}: {self.verdict} means {implied}, not {self.state}; say modified")
        return implied


@dataclass(frozen=True)
class Review:
    reviewer: Reviewer
    verdicts: list[FindingVerdict]
    report: str  # the report text as signed
    report_edited: bool
    signed_at: dt.datetime

    @property
    def changed(self) -> bool:
        """Whether the signed result differs from the preliminary one (an ORU's C rather than F)."""
        return self.report_edited or any(v.verdict != "accepted" for v in self.verdicts)


@dataclass(frozen=True)
class SignedFinding:
    ai: AiFinding
    verdict: Verdict
    state: SignedState


@dataclass(frozen=True)
class Signed:
    """A verified SR of ours, read back: who signed, when, and each finding's verdict."""

    reviewer: str
    login: str
    signed_at: dt.datetime
    findings: list[SignedFinding]
    report: str
    report_edited: bool
    preliminary_uid: str


def verified_instance_uid(preliminary_uid: str) -> str:
    return str(generate_uid(entropy_srcs=["cxr-serve verified SR", preliminary_uid]))


def verified_series_uid(preliminary_uid: str) -> str:
    return str(generate_uid(entropy_srcs=["cxr-serve verified series", preliminary_uid]))


# --- reading our SRs ------------------------------------------------------------------------------------


def _concept(item: Dataset) -> str:
    return str(item.ConceptNameCodeSequence[0].CodeValue) if "ConceptNameCodeSequence" in item else ""


def _walk(item: Dataset) -> Iterator[Dataset]:
    for child in getattr(item, "ContentSequence", []):
        yield child
        yield from _walk(child)


def _groups(sr: Dataset) -> Iterator[Dataset]:
    for container in getattr(sr, "ContentSequence", []):
        if _concept(container) == _IMAGING_MEASUREMENTS:
            yield from (g for g in getattr(container, "ContentSequence", []) if _concept(g) == _MEASUREMENT_GROUP)


def _by_concept(group: Dataset) -> dict[str, Dataset]:
    return {_concept(item): item for item in _walk(group)}


def _code(item: Dataset) -> str:
    return str(item.ConceptCodeSequence[0].CodeValue)


def _ai_finding(group: Dataset) -> AiFinding | None:
    items = _by_concept(group)
    finding = _FINDINGS.get(_code(items[_FINDING])) if _FINDING in items else None
    value = items.get(cx.PREDICTED_CLASS.value if finding == "pneumonia" else cx.FRACTURE.value)
    value = items.get(cx.AI_RESULT.value, value)  # a verified SR states the call itself
    if finding is None or value is None:
        return None
    code = _code(value)
    call: Call | None = _CALLS.get(code) or (
        "present" if code == cx.PRESENT.value else "absent" if code == cx.ABSENT.value else None
    )
    parameters = str(items[_ALGORITHM_PARAMETERS].TextValue) if _ALGORITHM_PARAMETERS in items else ""
    if call is None:
        return None
    return AiFinding(
        finding=finding,
        call=call,
        model=str(items[_ALGORITHM_NAME].TextValue) if _ALGORITHM_NAME in items else "unknown",
        sha256=parameters.removeprefix("sha256=") or "unknown",
        tracking_id=str(items[_TRACKING_ID].TextValue),
        tracking_uid=str(items[_TRACKING_UID].UID),
    )


def read_preliminary(sr: Dataset) -> list[AiFinding]:
    """The AI findings of a preliminary SR of ours (a failed fracture stage has none: nothing to review)."""
    return [finding for group in _groups(sr) if (finding := _ai_finding(group)) is not None]


def _text(sr: Dataset, concept: Code) -> str:
    return next((str(item.TextValue) for item in _walk(sr) if _concept(item) == concept.value), "")


@dataclass(frozen=True)
class Preliminary:
    """What a reviewer is shown of a preliminary SR: the AI's findings and words, and the image it was made from."""

    findings: list[AiFinding]
    probability: float | None  # of pneumonia, as the classifier gave it
    fracture_text: str  # ChexFract's words, verbatim ("" when the fracture stage failed)
    report: str
    disclaimer: str  # carries the stand-in notice when a stand-in model answered
    image: Dataset  # the source image's reference (Study, Series, SOP Class and SOP Instance UIDs)


def _probability(sr: Dataset) -> float | None:
    for item in _walk(sr):
        if _concept(item) == cx.PROBABILITY.value and "MeasuredValueSequence" in item:
            return float(item.MeasuredValueSequence[0].NumericValue)
    return None


def read_result(sr: Dataset) -> Preliminary:
    return Preliminary(
        findings=read_preliminary(sr),
        probability=_probability(sr),
        fracture_text=_text(sr, cx.FRACTURE_TEXT),
        report=_text(sr, cx.REPORT),
        disclaimer=_text(sr, cx.DISCLAIMER),
        image=_evidence(sr)[0],
    )


def signed_report(sr: Dataset) -> str:
    """The report text as signed, from a verified SR of ours."""
    return _text(sr, cx.SIGNED_REPORT)


def _person_name(name: str) -> str:
    """A reviewer's name as a DICOM PN: as given when it has components (Family^Given); a name from a login
    ("Wei Chen") is one component, so it ends with a caret (PS3.5 6.2.1.2); read back without it."""
    return name if "^" in name else f"{name}^"


def read_verified(sr: Dataset) -> Signed:
    findings = []
    for group in _groups(sr):
        ai, items = _ai_finding(group), _by_concept(group)
        if ai is None:
            continue
        verdict = next(v for v, c in _VERDICT_CODES.items() if c.value == _code(items[cx.REVIEW_VERDICT.value]))
        state = next(s for s, c in _STATE_CODES.items() if c.value == _code(items[cx.SIGNED_STATE.value]))
        findings.append(SignedFinding(ai=ai, verdict=verdict, state=state))
    observer = sr.VerifyingObserverSequence[0]
    edited = any(_concept(i) == cx.REPORT_VERDICT.value and _code(i) == cx.EDITED.value for i in _walk(sr))
    return Signed(
        reviewer=str(observer.VerifyingObserverName).rstrip("^"),
        login=str(observer.VerifyingObserverIdentificationCodeSequence[0].CodeValue),
        signed_at=dt.datetime.strptime(str(observer.VerificationDateTime)[:14], "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC),
        findings=findings,
        report=signed_report(sr),
        report_edited=edited,
        preliminary_uid=str(
            sr.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        ),
    )


# --- writing the verified SR ----------------------------------------------------------------------------


def _signed(preliminary: Dataset, review: Review) -> list[SignedFinding]:
    ai = {finding.finding: finding for finding in read_preliminary(preliminary)}
    given = {verdict.finding: verdict for verdict in review.verdicts}
    if len(given) != len(review.verdicts):
        raise ReviewRefused("a finding has two verdicts")
    if set(given) != set(ai):
        raise ReviewRefused(f"the result's findings are {sorted(ai)}; the review gives verdicts for {sorted(given)}")
    return [SignedFinding(ai=ai[name], verdict=v.verdict, state=v.signed_state(ai[name].call)) for name, v in given.items()]


def _group(
    signed: SignedFinding, comment: str, source_images: list[hd.sr.SourceImageForMeasurementGroup]
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    ai = signed.ai
    evaluations = [
        hd.sr.QualitativeEvaluation(name=cx.AI_RESULT, value=_STATE_CODES[ai.call]),
        hd.sr.QualitativeEvaluation(name=cx.REVIEW_VERDICT, value=_VERDICT_CODES[signed.verdict]),
        hd.sr.QualitativeEvaluation(name=cx.SIGNED_STATE, value=_STATE_CODES[signed.state]),
    ]
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=ai.tracking_uid, identifier=ai.tracking_id),
        algorithm_id=hd.sr.AlgorithmIdentification(name=ai.model, version=ai.sha256[:16], parameters=[f"sha256={ai.sha256}"]),
        finding_type=_FINDING_CODES[ai.finding],
        source_images=source_images,
        qualitative_evaluations=evaluations,
    )
    if comment:
        group[0].ContentSequence.append(
            hd.sr.TextContentItem(name=cx.REVIEW_COMMENT, value=comment, relationship_type="CONTAINS")
        )
    return group


def _evidence(preliminary: Dataset) -> list[Dataset]:
    """The images the preliminary SR was made from, as references (the image itself is not fetched for this)."""
    found = []
    for study in preliminary.CurrentRequestedProcedureEvidenceSequence:
        for series in study.ReferencedSeriesSequence:
            for sop in series.ReferencedSOPSequence:
                image = Dataset()
                image.StudyInstanceUID, image.SeriesInstanceUID = study.StudyInstanceUID, series.SeriesInstanceUID
                image.SOPClassUID, image.SOPInstanceUID = sop.ReferencedSOPClassUID, sop.ReferencedSOPInstanceUID
                found.append(image)
    return found


def _report_texts(review: Review) -> hd.sr.ContainerContentItem:
    container = hd.sr.ContainerContentItem(name=cx.QUALITATIVE_EVALUATIONS, relationship_type="CONTAINS")
    verdict = cx.EDITED if review.report_edited else cx.ACCEPTED
    container.ContentSequence = Sequence(
        [
            hd.sr.TextContentItem(name=cx.SIGNED_REPORT, value=review.report, relationship_type="CONTAINS"),
            hd.sr.CodeContentItem(name=cx.REPORT_VERDICT, value=verdict, relationship_type="CONTAINS"),
        ]
    )
    return container


def build(preliminary: Dataset, review: Review, series_number: int = 991) -> Dataset:
    """The verified SR for one preliminary SR of ours and the review that signs it."""
    if not review.report.strip():
        raise ReviewRefused("the signed report is empty")
    signed = _signed(preliminary, review)
    comments = {v.finding: v.comment for v in review.verdicts}
    images = _evidence(preliminary)
    sources = [hd.sr.SourceImageForMeasurementGroup(i.SOPClassUID, i.SOPInstanceUID) for i in images]
    person = hd.sr.PersonObserverIdentifyingAttributes(
        name=_person_name(review.reviewer.name), login_name=review.reviewer.login, organization_name=review.reviewer.organization
    )
    context = hd.sr.ObservationContext(
        observer_person_context=hd.sr.ObserverContext(observer_type=codes.DCM.Person, observer_identifying_attributes=person)
    )
    groups = [_group(s, comments[s.ai.finding], sources) for s in signed]
    report = hd.sr.MeasurementReport(observation_context=context, procedure_reported=cx.CHEST_XRAY, imaging_measurements=groups)
    report[0].ContentSequence.append(_report_texts(review))
    preliminary_uid = str(preliminary.SOPInstanceUID)
    sr = hd.sr.ComprehensiveSR(
        evidence=[preliminary, *images],  # the patient and study modules are copied from the first
        content=report[0],
        series_instance_uid=verified_series_uid(preliminary_uid),
        series_number=series_number,
        sop_instance_uid=verified_instance_uid(preliminary_uid),
        instance_number=1,
        manufacturer="cxr-serve",
        is_complete=True,
        is_final=True,
        is_verified=True,
        verifying_observer_name=_person_name(review.reviewer.name),
        verifying_organization=review.reviewer.organization,
        previous_versions=[preliminary],
    )
    observer = sr.VerifyingObserverSequence[0]
    observer.VerificationDateTime = review.signed_at.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S")
    login = Dataset()
    login.CodeValue, login.CodingSchemeDesignator, login.CodeMeaning = review.reviewer.login, USER_SCHEME, review.reviewer.name
    observer.VerifyingObserverIdentificationCodeSequence = Sequence([login])
    sr.SeriesDescription = SERIES_DESCRIPTION
    sr.SeriesDate, sr.SeriesTime = sr.ContentDate, sr.ContentTime
    return sr
