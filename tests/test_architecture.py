"""The layering of services/contract/__init__.py, checked on every module's imports.

    services.contract  <-  services.classifier, gateway  <-  scripts  <-  tests

A deployable service imports the contract and itself, never another service, a
tool or a test; the contract imports no other package of the project; and the
gateway never loads an ML runtime (checked in a fresh interpreter).
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from services.contract.paths import REPO_ROOT

# What each package of the project may import from the project.
ALLOWED = {
    "services": (),  # the namespace package itself
    "services.contract": ("services.contract",),
    "services.classifier": ("services.contract", "services.classifier"),
    "services.bridge": ("services.contract", "services.bridge"),
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


# The gateway's HTTP layer: the only modules that may know FastAPI or Starlette. The domain (pipeline,
# backends, clinical content, errors, admission) is free of HTTP, so it can be driven and tested without it.
HTTP_LAYER = ("gateway.app", "gateway.dependencies", "gateway.marking", "gateway.openapi", "gateway.routes")


def _web_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    names += [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module]
    return [name for name in names if name.split(".")[0] in ("fastapi", "starlette")]


def _in_http_layer(module: str) -> bool:
    return any(module == layer or module.startswith(layer + ".") for layer in HTTP_LAYER)


@pytest.mark.parametrize(
    "path",
    [p for p in sorted((REPO_ROOT / "gateway").rglob("*.py")) if not _in_http_layer(_module_name(p))],
    ids=lambda p: str(p.relative_to(REPO_ROOT)),
)
def test_the_gateways_domain_knows_nothing_of_http(path: Path) -> None:
    assert _web_imports(path) == [], f"{_module_name(path)} imports the web framework: map to HTTP in gateway/routes"


# --- each deployable's own dependencies -------------------------------------------------------------------
# What a service's image installs is the project's base dependencies and that service's extra (its
# Dockerfile: `pip install ".[<extra>]"`). Every third-party module a service imports must come from
# those (or what they depend on), and the worker's must not reach the gateway's clients.
def _functions(tree: ast.Module) -> dict[str, bool]:
    """Each function a module defines, at any depth, by name: whether it is `async def`."""
    found: dict[str, bool] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found[node.name] = isinstance(node, ast.AsyncFunctionDef)
    return found


def _sync_dependencies(path: Path) -> list[str]:
    """The functions given to FastAPI's Depends() in `path` that are plain `def` (here or where imported from)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    defined = _functions(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PROJECT_ROOTS:
            origin = REPO_ROOT.joinpath(*node.module.split(".")).with_suffix(".py")
            if origin.exists():
                theirs = _functions(ast.parse(origin.read_text()))
                defined.update({alias.asname or alias.name: theirs[alias.name] for alias in node.names if alias.name in theirs})
    named = [
        node.args[0].id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Depends" and node.args
        if isinstance(node.args[0], ast.Name)
    ]
    return [name for name in named if not defined.get(name, True)]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_fastapi_dependency_is_async(path: Path) -> None:
    """FastAPI runs a plain `def` dependency in its thread pool: a thread hand-off on every request it serves."""
    assert _sync_dependencies(path) == []


def test_the_dependency_check_catches_a_plain_def(tmp_path: Path) -> None:
    module = REPO_ROOT / "gateway" / "dependencies.py"
    assert _sync_dependencies(module) == []
    source = module.read_text().replace("async def _gateway(", "def _gateway(")
    assert source != module.read_text()
    copy = tmp_path / "dependencies.py"
    copy.write_text(source)
    assert _sync_dependencies(copy) == ["_gateway"]


SERVICE_EXTRAS = {"services.classifier": "classifier", "gateway": "gateway", "services.bridge": "bridge"}
GATEWAY_ONLY = {"openai", "httpx2", "fhir-resources", "pyyaml"}
# What a module needs without importing it: Starlette's MultiPartParser works only with python-multipart installed.
IMPLIED = {"MultiPartParser": "python-multipart"}


def _closure(wanted: list[tuple[str, frozenset[str]]]) -> set[str]:
    """The distributions `wanted` (name, extras) installs, with everything they depend on (as installed here)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(canonicalize_name(name), extras) for name, extras in wanted]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            markers = [{"extra": extra} for extra in ("", *extras)]
            if requirement.marker is None or any(requirement.marker.evaluate(m) for m in markers):
                todo.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return {name for name, _ in seen} - {"cxr-serve"}


def _image_distributions(extra: str) -> set[str]:
    """What `pip install ".[extra]"` installs: the project's base dependencies and the extra's."""
    return _closure([("cxr-serve", frozenset({extra}))])


def _third_party_imports(package: str) -> set[str]:
    root = REPO_ROOT.joinpath(*package.split("."))
    found: set[str] = set()
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        found |= {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        found |= {
            node.module.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
        }
    return {name for name in found if name not in sys.stdlib_module_names and name not in PROJECT_ROOTS}


def _distributions_of(modules: set[str]) -> dict[str, set[str]]:
    providers = importlib.metadata.packages_distributions()
    return {module: {canonicalize_name(d) for d in providers.get(module, [])} for module in modules}


@pytest.mark.parametrize(("package", "extra"), [*SERVICE_EXTRAS.items(), ("services.contract", "classifier")])
def test_every_module_a_service_imports_is_installed_by_its_own_image(package: str, extra: str) -> None:
    installed = _image_distributions(extra)
    missing = {m: d for m, d in _distributions_of(_third_party_imports(package)).items() if not d & installed}
    assert missing == {}, f"{package} imports modules its image (base + [{extra}]) does not install"
    sources = "".join(path.read_text() for path in REPO_ROOT.joinpath(*package.split(".")).rglob("*.py"))
    implied = {call: dist for call, dist in IMPLIED.items() if call in sources and dist not in installed}
    assert implied == {}, f"{package} needs these at run time, and its image does not install them"


# The static check above sees only the imports written in the project; a library's own imports at run time
# (uvicorn's httptools protocol needs `httptools`, which `uvicorn` alone does not install) it cannot see, and
# the test environment, with every extra at once, hides them until the image is built. So each service's
# modules, every one, are also imported in a fresh interpreter where every installed distribution its image
# would not have is made unimportable, as in the image: an optional import (a library trying `brotli`) is
# refused and falls back; a needed one fails the import, and the test with it.
_IMPORT_AS_THE_IMAGE_WOULD = """
import importlib, importlib.abc, json, pkgutil, sys
absent = set(json.loads(sys.argv[1]))

class NotInTheImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in absent:
            raise ModuleNotFoundError(f"No module named {name!r} (its image does not install it)", name=name)
        return None

sys.meta_path.insert(0, NotInTheImage())
for name in sys.argv[2:]:
    package = importlib.import_module(name)
    for module in pkgutil.walk_packages(getattr(package, "__path__", []), name + "."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
"""


@pytest.mark.parametrize(("package", "extra"), SERVICE_EXTRAS.items())
def test_every_module_of_a_service_imports_with_only_what_its_image_installs(package: str, extra: str) -> None:
    installed = _image_distributions(extra) | {"cxr-serve"}
    providers = importlib.metadata.packages_distributions()
    absent = sorted(m for m, d in providers.items() if not {canonicalize_name(n) for n in d} & installed)
    argv = [sys.executable, "-c", _IMPORT_AS_THE_IMAGE_WOULD, json.dumps(absent), package, "services.contract"]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert done.returncode == 0, f"{package} does not import with only base + [{extra}]:\n{done.stderr[-3000:]}"


def test_the_run_time_check_catches_a_library_needing_what_the_image_lacks() -> None:
    # uvicorn's httptools protocol, imported with `httptools` made absent, as the gateway's image once lacked it.
    argv = [sys.executable, "-c", _IMPORT_AS_THE_IMAGE_WOULD, json.dumps(["httptools"]), "uvicorn.protocols.http.httptools_impl"]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert done.returncode != 0 and "No module named 'httptools' (its image does not install it)" in done.stderr


def test_the_worker_image_installs_none_of_the_gateways_dependencies() -> None:
    worker = _image_distributions("classifier")
    assert _image_distributions("gateway") >= GATEWAY_ONLY
    assert worker & GATEWAY_ONLY == set()
    assert "onnxruntime" not in _image_distributions("gateway")  # nor the gateway an ML runtime
