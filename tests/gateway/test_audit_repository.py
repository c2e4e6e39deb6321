"""The audit trail reaches a real audit repository (Debian's rsyslogd, syslog over TLS on loopback) as DICOM
audit messages in RFC 5424, and as FHIR AuditEvents from the admin export; a repository that is down stops
nothing and loses nothing."""

from __future__ import annotations

import re
from xml.etree import ElementTree

import httpx
import pytest
import yaml
from fhir.resources.R4B.bundle import Bundle

from gateway import identity
from scripts.peers import rsyslog
from tests.gateway.conftest import xray_message
from tests.waiting import wait_until

RFC5424 = re.compile(r"^<85>1 \S+Z \S+ cxr-serve - IHE\+RFC-3881 - (<AuditMessage>.*</AuditMessage>)$")
ADMIN, HIS = identity.new_key(), identity.new_key()


def seqs(repository: rsyslog.Rsyslog) -> list[int]:
    found = []
    for line in repository.messages():
        message = ElementTree.fromstring(RFC5424.match(line).group(1))
        found += [int(d.get("value")) for d in message.iter("ParticipantObjectDetail") if d.get("type") == "seq"]
    return found


@pytest.fixture
def repository(tmp_path, tls_files):
    assert rsyslog.installed(), f"the audit repository is Debian's rsyslogd with TLS: {rsyslog.INSTALL}"
    peer = rsyslog.Rsyslog(tmp_path / "rsyslog", tls_files["ca"], tls_files["cert"], tls_files["key"])
    peer.start()
    yield peer
    peer.stop()


@pytest.fixture
def gateway(start_gateway, repository, tls_files, tmp_path):
    clients = tmp_path / "clients.yaml"
    entries = [
        {"name": "auditor", "key_hashes": [identity.hash_key(ADMIN)], "permissions": ["admin"]},
        {"name": "his", "key_hashes": [identity.hash_key(HIS)], "permissions": ["analyze"]},
    ]
    clients.write_text(yaml.safe_dump({"clients": entries}))
    return start_gateway(
        GATEWAY_CLIENTS_FILE=str(clients),
        GATEWAY_AUDIT_SYSLOG_ADDRESS=repository.address,
        GATEWAY_AUDIT_SYSLOG_CA_FILE=tls_files["ca"],
        GATEWAY_AUDIT_SYSLOG_RETRY_S="0.5",
    )


def classify(gateway, image: bytes, request_id: str) -> int:
    body = {"model": "pneumonia-classifier", "messages": xray_message(image)}
    headers = {"Authorization": f"Bearer {HIS}", "x-request-id": request_id}
    return httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=120).status_code


def test_records_reach_the_repository_and_wait_out_its_outage(gateway, repository, sample_images):
    image = next(iter(sample_images.values()))
    assert classify(gateway, image, "before-1") == 200
    httpx.post(f"{gateway.url}/v1/analyze", files={"file": ("x.jpeg", image)})  # no key: a refused credential
    wait_until(lambda: seqs(repository) == [0, 1], 30, "the first two records in the repository")
    first, refused = (ElementTree.fromstring(RFC5424.match(line).group(1)) for line in repository.messages())
    assert first.find("EventIdentification/EventID").get("originalText") == "Patient Record"
    assert first.find("ActiveParticipant").get("UserID") == "his"
    assert refused.find("EventIdentification/EventID").get("originalText") == "User Authentication"
    assert refused.find("EventIdentification").get("EventOutcomeIndicator") == "4"

    repository.stop()
    for n in range(3):  # the gateway keeps serving while the repository is down
        assert classify(gateway, image, f"during-{n}") == 200
    wait_until(lambda: "audit repository unreachable" in gateway.log_text(), 30, "the outage logged")
    metrics = httpx.get(f"{gateway.url}/metrics", headers={"Authorization": f"Bearer {ADMIN}"}).text
    assert re.search(r"^gateway_audit_unshipped [1-9]", metrics, re.MULTILINE), metrics
    repository.start()
    wait_until(lambda: sorted(set(seqs(repository))) == [0, 1, 2, 3, 4], 30, "every record after the restart")
    assert HIS not in repository.received.read_text() and ADMIN not in gateway.log_text()


def test_the_admin_export_is_a_valid_fhir_bundle_of_balp_audit_events(gateway, sample_images):
    assert classify(gateway, next(iter(sample_images.values())), "fhir-1") == 200
    url = f"{gateway.url}/admin/audit/events"
    assert httpx.get(url, headers={"Authorization": f"Bearer {HIS}"}).status_code == 403
    answer = httpx.get(url, params={"after": -1, "limit": 10}, headers={"Authorization": f"Bearer {ADMIN}"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/fhir+json")
    bundle = Bundle.model_validate(answer.json())
    events = [entry.resource for entry in bundle.entry]
    event = next(e for e in events if e.entity[0].what.identifier.value == "fhir-1")
    assert event.meta.profile == ["https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Create"]
    assert event.agent[0].who.display == "his" and event.agent[0].requestor is True and event.outcome == "0"
    assert {m.what.display for m in event.entity[1:]} == {"pneumonia-classifier"}
