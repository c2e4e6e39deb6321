"""The bridge: the radiology department's own interfaces in front of the gateway (a client of its HTTP API).

In:
- scp.py: a DICOM Storage SCP (pynetdicom): modalities, PACS and routers push X-rays by C-STORE; C-ECHO
  answered; the gateway's DICOM policy checked before anything is queued, refusals as DIMSE statuses
- spool.py: every accepted instance on disk (fsync'd) and in the state database before the C-STORE is
  answered Success: nothing received is lost, a resend is recognised
- analysis.py: each spooled instance sent to the gateway's /v1/analyze at once, retried with backoff
  while the gateway is away; its result and its deliveries recorded in one transaction
Out:
- outbox.py: one delivery per analysed instance and destination, until the destination has it
- destinations.py: the SR by C-STORE or STOW-RS to the PACS, the ORU^R01 over MLLP to the RIS
- delivery.py: each pending delivery sent at once, retried with backoff, dead-lettered with the reason
- pacs/sr.py, oru.py, codes.py: the TID 1500 SR, the HL7 v2.5.1 ORU^R01, and the codes both use
Around them:
- database.py, state.py: the state folder: the spooled images and one SQLite database (WAL, synchronous=FULL)
- worker.py: the loop that drains a durable queue, woken at once, bounded
- ops.py: /health, /ready and /metrics on CXR_BRIDGE_HTTP_PORT; __main__.py: serve, and the operator's CLI
- pacs/: the DICOMweb side (`python -m services.bridge pacs analyze|watch`): studies read from a PACS by
  QIDO (paged, narrowed where the PACS caps its answers) and WADO, analysed, the SR stored back by STOW
- settings.py: CXR_BRIDGE_* settings (the DICOMweb commands' are CXR_PACS_*, pacs/settings.py)

It imports the contract and itself only (tests/test_architecture.py), and its image (deploy/bridge.Dockerfile)
installs the base dependencies and the `bridge` extra (pyproject.toml).
"""
