"""Where things are in a checkout: one definition for the tools and tests that need the repository."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO_ROOT / "models"
MODELS_YAML = REPO_ROOT / "deploy" / "models.yaml"
