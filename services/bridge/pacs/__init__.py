"""cxr-serve as a PACS-side AI service: find chest X-rays over DICOMweb, analyse them through the gateway,
store a TID 1500 Structured Report back.

    python -m services.bridge pacs analyze --study UID     one study, now
    python -m services.bridge pacs watch                   every new chest study, once each, until stopped

A client of both sides, like the batch CLI: QIDO-RS and WADO-RS read from the
PACS, the gateway's /v1/analyze does the work, STOW-RS stores the SR. The SR's
series UID is derived from the source image's SOP Instance UID, so "is this
image already analysed?" is one QIDO query, and re-running never duplicates.
"""
