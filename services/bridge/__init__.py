"""The bridge: the radiology department's own interfaces in front of the gateway (a client of its HTTP API).

- scp.py: a DICOM Storage SCP (pynetdicom): modalities, PACS and routers push X-rays by C-STORE; C-ECHO
  answered; the gateway's DICOM policy checked before anything is queued, refusals as DIMSE statuses
- spool.py: every accepted instance on disk (fsync'd) and in the state database (SQLite, WAL) before the
  C-STORE is answered Success: nothing received is lost, a resend is recognised
- analysis.py: each spooled instance sent to the gateway's /v1/analyze at once, retried with backoff
  while the gateway is away, its outcome kept in the state database
- ops.py: /health, /ready and /metrics on CXR_BRIDGE_HTTP_PORT
- pacs/: the DICOMweb side (`python -m services.bridge pacs analyze|watch`): studies read from a PACS by
  QIDO/WADO, analysed, a TID 1500 SR stored back by STOW
- settings.py: CXR_BRIDGE_* settings (the DICOMweb commands' are CXR_PACS_*, pacs/settings.py)

It imports the contract and itself only (tests/test_architecture.py), and its image installs the base
dependencies and the `bridge` extra (pyproject.toml).
"""
