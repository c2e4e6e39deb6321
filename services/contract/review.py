"""The review between the gateway and the bridge: what a reviewer sends, who they are, and what was signed.

The bridge reads and writes the PACS (services/bridge/pacs/review_api.py); the gateway is the reviewers' door
(gateway/routes/reviews.py): it authenticates the person, checks the review permission, names the reviewer
from their login (never from the request body), audits and counts. These models are all the two share.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

FindingName = Literal["pneumonia", "fracture"]
Verdict = Literal["accepted", "rejected", "modified"]
SignedState = Literal["present", "absent", "uncertain"]
# A DICOM UID: digits and dots, at most 64 characters (PS3.5 9.1); anything else never reaches the PACS.
Uid = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)*$", max_length=64)]
# What a DICOM LO / PN value may hold (the verified SR's observer, PS3.5 6.2): no backslash (the value
# separator), no "=" (PN's component groups), no control character.
DicomText = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\\=\x00-\x1f\x7f]+$")]
# A study-level restriction, from the gateway to the bridge: the sites (InstitutionName) the reviewer may see, as
# a JSON array; absent: not restricted. The bridge answers a result outside them as if it did not exist (404).
SITES_HEADER = "x-cxr-review-sites"
REVIEW_TEXT_MAX = 20_000  # characters of a signed report: a long chest report is ~3,000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FindingReview(_Strict):
    finding: FindingName
    verdict: Verdict
    state: SignedState | None = None  # the corrected state: required when modified
    comment: Annotated[str, StringConstraints(max_length=2000)] = ""


class Signing(_Strict):
    """What the reviewer's page sends to sign one result."""

    verdicts: list[FindingReview] = Field(min_length=1, max_length=2)
    report: Annotated[str, StringConstraints(min_length=1, max_length=REVIEW_TEXT_MAX)]
    report_edited: bool


class ReviewerIdentity(_Strict):
    """The reviewer as the gateway authenticated them: the login and the name from the identity provider."""

    login: DicomText
    name: DicomText
    organization: DicomText


class SignOff(Signing):
    """What the gateway asks the bridge to sign: the page's signing and the authenticated reviewer."""

    reviewer: ReviewerIdentity


class SignedFindingOut(_Strict):
    finding: FindingName
    model: str
    sha256: str
    ai_call: Literal["present", "absent"]
    verdict: Verdict
    state: SignedState


class SignedOut(_Strict):
    """A signed result, as the PACS holds it: the gateway audits and counts from this."""

    study: Uid
    preliminary_sop: Uid
    verified_sop: Uid
    reviewer: str
    login: str
    signed_at: str  # ISO 8601, UTC
    findings: list[SignedFindingOut]
    report_edited: bool
    changed: bool  # the signed result differs from the preliminary one (an HL7 result status C rather than F)
