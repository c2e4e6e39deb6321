"""The configuration reference (docs/configuration.md), generated from the services' settings classes.

    python -m scripts.configref            # rewrite docs/configuration.md
    python -m scripts.configref --check    # exit 1 if it differs from what the classes say (a test runs this)

Every variable of every service: its name, type, default and meaning. The meaning is the field's
`description` where it has one, else its comments in the class's source: the comment block right above it
and the comment on its line. A block above also covers the fields that follow it without a blank line and
without a comment of their own (a group: `tls_cert_file`, `tls_key_file`).
"""

from __future__ import annotations

import argparse
import ast
import inspect
import io
import sys
import textwrap
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic_core import PydanticUndefined

from gateway.settings import GatewaySettings
from services.bridge.pacs.settings import PacsSettings
from services.bridge.settings import BridgeSettings
from services.classifier.settings import ClassifierSettings
from services.contract.paths import REPO_ROOT

REFERENCE = REPO_ROOT / "docs" / "configuration.md"
SERVICES: list[tuple[str, type[BaseModel], str]] = [
    ("Gateway", GatewaySettings, "`gateway/settings.py` (also read from a `.env` file in its working folder)"),
    ("Classifier worker", ClassifierSettings, "`services/classifier/settings.py`"),
    ("Bridge (DICOM, HL7, review API)", BridgeSettings, "`services/bridge/settings.py`"),
    ("PACS watcher", PacsSettings, "`services/bridge/pacs/settings.py`"),
]


@dataclass(frozen=True)
class Variable:
    name: str
    type: str
    default: str
    meaning: str


def _comments(source: str) -> dict[int, str]:
    """Line number (1-based, in `source`) -> the comment's text."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {tok.start[0]: tok.string.lstrip("#").strip() for tok in tokens if tok.type == tokenize.COMMENT}


def _field_notes(cls: type) -> dict[str, tuple[str, str]]:
    """Field name -> (its annotation as written, its comments) for the fields a class declares itself."""
    source = textwrap.dedent(inspect.getsource(cls))
    comments = _comments(source)
    lines = source.splitlines()
    (node,) = ast.parse(source).body
    assert isinstance(node, ast.ClassDef)
    notes: dict[str, tuple[str, str]] = {}
    group = ""
    for statement in node.body:
        if not isinstance(statement, ast.AnnAssign) or not isinstance(statement.target, ast.Name):
            group = ""
            continue
        above: list[str] = []
        line = statement.lineno - 1
        while line >= 1 and lines[line - 1].strip().startswith("#"):
            above.insert(0, comments[line])
            line -= 1
        if above:
            group = " ".join(above)
        elif line >= 1 and not lines[line - 1].strip():
            group = ""  # a blank line ends a group comment
        own = comments.get(statement.lineno, "")
        meaning = " ".join(filter(None, [group, own])) if above or not own else own
        notes[statement.target.id] = (_type(statement.annotation), meaning)
    return notes


def _type(annotation: ast.expr) -> str:
    """The annotation as written, less `Annotated[...]`'s metadata (NoDecode: how a list is read, not its type)."""
    if isinstance(annotation, ast.Subscript) and ast.unparse(annotation.value) == "Annotated":
        assert isinstance(annotation.slice, ast.Tuple)
        return ast.unparse(annotation.slice.elts[0])
    return ast.unparse(annotation)


def _notes(model: type[BaseModel]) -> dict[str, tuple[str, str]]:
    """Every field's notes, from the base classes down; a subclass that only changes a default keeps its meaning."""
    merged: dict[str, tuple[str, str]] = {}
    for cls in reversed(model.__mro__):
        if isinstance(cls, type) and issubclass(cls, BaseModel) and not cls.__module__.startswith("pydantic"):
            for name, (annotation, comment) in _field_notes(cls).items():
                merged[name] = (annotation, comment or merged.get(name, ("", ""))[1])
    return merged


def _default(value: Any) -> str:
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, Path):
        return f"`{value}`"
    if isinstance(value, (list, tuple, set, frozenset)):
        return f"`{','.join(str(item) for item in value)}`" if value else "empty"
    if isinstance(value, dict):
        return f"`{value}`" if value else "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def variables(model: type[BaseModel], prefix: str, defaults: BaseModel | None = None) -> Iterator[Variable]:
    notes = _notes(model)
    for name, field in model.model_fields.items():
        annotation, comment = notes.get(name, (str(field.annotation), ""))
        meaning = field.description or comment
        nested = field.annotation if isinstance(field.annotation, type) else None
        if nested is not None and issubclass(nested, BaseModel):
            instance = field.default if isinstance(field.default, BaseModel) else None
            yield from variables(nested, f"{prefix}{name.upper()}_", instance)
            continue
        default = getattr(defaults, name) if defaults is not None else field.get_default(call_default_factory=True)
        yield Variable(f"{prefix}{name.upper()}", annotation, _default(default), meaning)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    out = [
        "# Configuration reference",
        "",
        "Generated from the services' settings classes by `python -m scripts.configref` (`make docs`);",
        "`tests/test_configuration_reference.py` fails when this page and the classes differ. Each service reads its",
        "variables at start-up and refuses to start on a bad value, naming it. `make run`, compose and Kubernetes",
        "set the backends' URLs, ports and model names from `deploy/models.yaml` (`scripts/launcher/commands.py`);",
        "a variable set by the operator wins over them. A list is comma-separated; a mapping is JSON.",
    ]
    for title, model, where in SERVICES:
        prefix = str(model.model_config.get("env_prefix", ""))
        out += ["", f"## {title}: `{prefix}*`", "", f"Source: {where}.", ""]
        out += ["| Variable | Type | Default | Meaning |", "|---|---|---|---|"]
        for variable in variables(model, prefix):
            cells = [f"`{variable.name}`", f"`{variable.type}`", variable.default, variable.meaning]
            out.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/configuration.md is not current")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = REFERENCE.exists() and REFERENCE.read_text() == text
        print("docs/configuration.md is current" if current else "docs/configuration.md is stale: run make docs")
        return 0 if current else 1
    REFERENCE.parent.mkdir(exist_ok=True)
    REFERENCE.write_text(text)
    print(f"wrote {REFERENCE.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
