"""The layering of services/contract/__init__.py, checked on every module's imports.

    services.contract  <-  services.classifier, gateway  <-  scripts  <-  tests

A deployable service imports the contract and itself, never another service, a
tool or a test; the contract imports no other package of the project; and the
gateway never loads an ML runtime (checked in a fresh interpreter).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from services.contract.paths import REPO_ROOT

# What each package of the project may import from the project.
ALLOWED = {
    "services": (),  # the namespace package itself
    "services.contract": ("services.contract",),
    "services.classifier": ("services.contract", "services.classifier"),
    "gateway": ("services.contract", "gateway"),
    "scripts": ("services", "gateway", "scripts"),
}
PROJECT_ROOTS = ("services", "gateway", "scripts", "tests")


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return [name for name in found if name.split(".")[0] in PROJECT_ROOTS]


def _layer(module: str) -> str:
    return next(layer for layer in sorted(ALLOWED, key=len, reverse=True) if module == layer or module.startswith(layer + "."))


def _violations(module: str, imported: list[str]) -> list[str]:
    allowed = ALLOWED[_layer(module)]
    return [name for name in imported if not any(name == ok or name.startswith(ok + ".") for ok in allowed)]


def _modules() -> list[Path]:
    return sorted(p for root in ("services", "gateway", "scripts") for p in (REPO_ROOT / root).rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_imports_only_go_down_the_layers(path: Path) -> None:
    module = _module_name(path)
    assert _violations(module, _imports(path)) == [], f"{module} reaches above or beside its layer"


def test_the_check_catches_a_gateway_reaching_into_the_worker() -> None:
    assert _violations("gateway.backends.x", ["services.classifier.model"]) == ["services.classifier.model"]
    assert _violations("services.contract.images", ["gateway.errors"]) == ["gateway.errors"]
    assert _violations("services.classifier.app", ["scripts.launcher.config"]) == ["scripts.launcher.config"]
    assert _violations("gateway.app", ["services.contract.roles"]) == []


def test_the_gateway_loads_no_ml_runtime() -> None:
    probe = (
        "import sys, gateway.app, gateway.cli; "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('onnxruntime', 'torch', 'vllm', 'transformers')); "
        "print(','.join(loaded))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert result.stdout.strip() == ""


def _tool(module: str) -> str:
    """The tool a scripts module belongs to: `scripts.launcher`, `scripts.bench`, ..."""
    return ".".join(module.split(".")[:2])


def test_no_two_tools_import_each_other() -> None:
    edges: dict[str, set[str]] = {}
    for path in (REPO_ROOT / "scripts").rglob("*.py"):
        tool = _tool(_module_name(path))
        edges.setdefault(tool, set()).update(
            _tool(name) for name in _imports(path) if name.startswith("scripts.") and _tool(name) != tool
        )
    mutual = sorted((a, b) for a, targets in edges.items() for b in targets if a < b and a in edges.get(b, set()))
    assert mutual == []
