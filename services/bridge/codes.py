"""The codes cxr-serve's results are given, in the SR (pacs/sr.py) and the HL7 ORU (oru.py) alike.

SNOMED CT, DCM and UCUM where a standard concept exists; the rest in the private scheme 99CXRSERVE.
"""

from __future__ import annotations

from pydicom.sr.coding import Code

SCHEME = "99CXRSERVE"
CHEST_XRAY = Code("399208008", "SCT", "Plain X-ray of chest")
QUALITATIVE_EVALUATIONS = Code("C0034375", "UMLS", "Qualitative Evaluations")  # TID 1500 row 12
PNEUMONIA = Code("233604007", "SCT", "Pneumonia")
NORMAL = Code("17621005", "SCT", "Normal")
FRACTURE = Code("72704001", "SCT", "Fracture")
DESCRIBED = Code("described", SCHEME, "Described by the fracture model")
NOT_DETECTED = Code("not-detected", SCHEME, "Not detected by the fracture model (limited sensitivity)")
PREDICTED_CLASS = Code("predicted-class", SCHEME, "Predicted class")
PROBABILITY = Code("probability", SCHEME, "Probability of pneumonia")
FRACTURE_TEXT = Code("fracture-text", SCHEME, "Fracture model text")
REPORT = Code("report", SCHEME, "Preliminary report")
DISCLAIMER = Code("disclaimer", SCHEME, "Disclaimer")
NO_UNITS = Code("1", "UCUM", "no units")
CLASS_CODES = {"PNEUMONIA": PNEUMONIA, "NORMAL": NORMAL}
MODEL = Code("model", SCHEME, "Model that produced this result")
DICOM_STUDY = Code("113014", "DCM", "DICOM Study")  # the ORU's reference to the study (Study Instance UID)

# The radiologist's review (pacs/verified.py): what was reviewed, the verdict on it, and the finding as signed.
AI_RESULT = Code("ai-result", SCHEME, "AI result reviewed")
REVIEW_VERDICT = Code("review-verdict", SCHEME, "Radiologist's verdict on the AI result")
ACCEPTED = Code("accepted", SCHEME, "AI result accepted")
REJECTED = Code("rejected", SCHEME, "AI result rejected")
MODIFIED = Code("modified", SCHEME, "AI result modified")
SIGNED_STATE = Code("signed-state", SCHEME, "Finding as signed by the radiologist")
PRESENT = Code("52101004", "SCT", "Present")
ABSENT = Code("2667000", "SCT", "Absent")
INDETERMINATE = Code("82334004", "SCT", "Indeterminate")
REVIEW_COMMENT = Code("review-comment", SCHEME, "Reviewer's comment")
SIGNED_REPORT = Code("signed-report", SCHEME, "Signed report")
REPORT_VERDICT = Code("report-verdict", SCHEME, "Radiologist's verdict on the AI report")
EDITED = Code("edited", SCHEME, "AI report edited")
