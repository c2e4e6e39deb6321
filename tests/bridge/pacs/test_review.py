"""The review against a real Orthanc: the worklist of unverified results, the signature, a second one refused.

The preliminary SRs are built from answers of the gateway's shape (tests/bridge/pacs/test_verified.py) and
stored as the bridge stores them; the stack's own answers go through the same code in test_analyze.py.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import subprocess

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from services.bridge.pacs import agreement, sr, verified
from services.bridge.pacs.dicomweb import InstanceRef, Pacs
from services.bridge.pacs.review import AlreadySigned, Reviews, signed_between
from services.bridge.pacs.settings import PacsSettings
from services.bridge.pacs.verified import FindingVerdict, Review, Reviewer
from services.contract import modelcard
from services.contract.paths import REPO_ROOT
from tests.bridge.pacs.helpers import NORMAL, PNEUMONIA, run_pacs
from tests.bridge.pacs.test_verified import ANSWER, DR_CHEN
from tests.dicom_files import from_jpeg
from tests.pacs_server import PASSWORD, USER

DR_LI = Reviewer(name="Li^Na", login="dr.li", organization="Radiology, General Hospital")


@pytest.fixture(scope="module")
def pacs(orthanc) -> Pacs:
    return Pacs(PacsSettings(url=orthanc.url, username=USER, password=PASSWORD))


def _result(pacs: Pacs, jpeg: bytes, study_uid: str, institution: str | None = None) -> InstanceRef:
    """One image in the PACS and cxr-serve's preliminary SR of it beside it: what the bridge leaves there."""
    image = dcmread(io.BytesIO(from_jpeg(jpeg, "mono2-8bit", study_uid=study_uid)))
    if institution is not None:
        image.InstitutionName = institution
    preliminary = sr.build(image, sr.Analysis(cxr=ANSWER, report="Findings suggest pneumonia."))
    pacs.store(image)
    pacs.store(preliminary)
    return InstanceRef(study_uid, str(preliminary.SeriesInstanceUID), str(preliminary.SOPInstanceUID))


def _review(reviewer: Reviewer, verdict: str = "accepted") -> Review:
    verdicts = [FindingVerdict("pneumonia", "accepted"), FindingVerdict("fracture", verdict)]  # type: ignore[arg-type]
    at = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return Review(reviewer=reviewer, verdicts=verdicts, report="Right lower lobe pneumonia.", report_edited=False, signed_at=at)


def test_the_worklist_holds_what_is_unsigned_and_a_signature_takes_it_off(pacs, tmp_path):
    study = str(generate_uid())
    first, second = _result(pacs, PNEUMONIA, study), _result(pacs, NORMAL, study)
    reviews = Reviews(pacs)
    assert [p.sr.sop for p in reviews.worklist(study)] == [second.sop, first.sop]  # newest first
    assert reviews.signed(first) is None

    signed, kept = reviews.sign(first, _review(DR_CHEN, verdict="rejected"))
    assert kept.SOPInstanceUID == verified.verified_instance_uid(first.sop)
    assert (signed.login, [f.verdict for f in signed.findings]) == ("dr.chen", ["accepted", "rejected"])
    assert [p.sr.sop for p in reviews.worklist(study)] == [second.sop]

    stored = pacs.retrieve(InstanceRef(study, verified.verified_series_uid(first.sop), verified.verified_instance_uid(first.sop)))
    assert stored.VerificationFlag == "VERIFIED" and stored.StudyInstanceUID == study
    predecessor = stored.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert predecessor.ReferencedSOPInstanceUID == first.sop
    path = tmp_path / "verified.dcm"
    stored.save_as(path, enforce_file_format=True)
    dumped = subprocess.run(["dsrdump", str(path)], capture_output=True, text=True, timeout=60)
    assert dumped.returncode == 0 and "Verification Flag   : VERIFIED" in dumped.stdout and "Chen^Wei" in dumped.stdout


def test_a_second_sign_off_is_refused_naming_who_signed_and_when(pacs):
    result = _result(pacs, PNEUMONIA, str(generate_uid()))
    reviews = Reviews(pacs)
    first = _review(DR_CHEN)
    reviews.sign(result, first)
    expected = f"signed by Chen^Wei (dr.chen) at {first.signed_at.isoformat()}"
    with pytest.raises(AlreadySigned, match=re.escape(expected)):
        reviews.sign(result, _review(DR_LI, verdict="rejected"))
    assert reviews.signed(result).login == "dr.chen"  # the first signature stands


def test_agreement_is_read_from_the_verified_srs_in_the_pacs(pacs):
    since = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=1)
    study, reviews = str(generate_uid()), Reviews(pacs)
    for verdict in ("accepted", "accepted", "rejected"):
        reviews.sign(_result(pacs, NORMAL, study), _review(DR_CHEN, verdict=verdict))
    found = signed_between(pacs, since, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    rows = {row.finding: row for row in agreement.agreement(found)}
    fracture = rows["fracture"]
    assert fracture.reviews >= 3 and fracture.verdicts["rejected"] >= 1
    assert (fracture.model, fracture.sha256) == ("chexfract", "cd" * 32)


def test_the_agreement_command_prints_shares_figures_and_the_cards_published_ones(pacs, orthanc, tmp_path):
    study, reviews = str(generate_uid()), Reviews(pacs)
    for jpeg, verdict in ((PNEUMONIA, "accepted"), (NORMAL, "rejected")):  # the AI called no fracture on either
        reviews.sign(_result(pacs, jpeg, study), _review(DR_CHEN, verdict=verdict))
    card = modelcard.read(REPO_ROOT / "models" / "fracture-vlm").model_copy(update={"weights_sha256": {"w": "cd" * 32}})
    (tmp_path / "chexfract").mkdir()
    modelcard.write(tmp_path / "chexfract", card)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    env = {"CXR_PACS_URL": orthanc.url, "CXR_PACS_USERNAME": USER, "CXR_PACS_PASSWORD": PASSWORD}
    args = ("agreement", "--since", today, "--until", today, "--min-cases", "1", "--model-cards", str(tmp_path))
    done = run_pacs(env, *args)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    [fracture] = [line for line in lines if line.startswith(f"chexfract sha256={'cd' * 8} fracture:")]
    assert "review(s): accepted" in fracture and "rejected" in fracture and "modified 0.0%" in fracture
    [sensitivity] = [line for line in lines if line.strip().startswith("sensitivity")]
    assert re.search(r"sensitivity +0\.000 \(0\.000-0\.\d{3}, 0/\d+\)", sensitivity)  # every signed fracture was missed
    [ppv_or_none] = [line for line in lines if "published" in line] or [""]
    assert "published 0.487" in sensitivity and "other weights" not in done.stdout, done.stdout
    assert ppv_or_none == sensitivity  # no call of present: no PPV, so the recall is the one figure published here


def test_the_agreement_command_names_an_unreachable_pacs():
    env = {"CXR_PACS_URL": "http://127.0.0.1:9/dicom-web"}
    done = run_pacs(env, "agreement", "--since", "2026-12-01", "--until", "2026-12-02")
    assert done.returncode == 2 and done.stdout.startswith("PACS unavailable: QIDO series")
