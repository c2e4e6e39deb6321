"""The docs a newcomer navigates: a short README, pages by audience in docs/ built by MkDocs with --strict, and
every pointer into them from code, configuration and the root files resolving to a section that exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from services.contract.paths import REPO_ROOT

DOCS = REPO_ROOT / "docs"
README_MAX_LINES = 200
# "(docs/security.md)" or "(docs/deployment.md, "Kubernetes")": a page, and optionally a section of it, by the
# beginning of its heading or of a bold lead ("**TLS.** ...").
POINTER = re.compile(r"\(docs/([\w-]+\.md)(?:, \"?([^\")]+?)\"?)?\)")
HEADING = re.compile(r"^#{1,6} (.+)$", re.MULTILINE)
BOLD_LEAD = re.compile(r"^(?:\s*(?:- |\d+\. ))?\*\*([^*]+)\*\*", re.MULTILINE)


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    skip = ("scripts/peers/oidc/node_modules/", "docs/img/")
    paths = [REPO_ROOT / name for name in listed.splitlines() if not name.startswith(skip)]
    return [path for path in paths if path.is_file() and path.suffix not in {".png", ".onnx", ".dcm", ".jpeg"}]


def sections(page: Path) -> list[str]:
    text = page.read_text()
    names = HEADING.findall(text) + BOLD_LEAD.findall(text)
    return [name.replace("`", "").lower() for name in names]


def test_the_site_builds_with_strict_checks_of_links_and_anchors(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    for page in ("index", "integrators", "radiologists", "operators", "deployment", "security", "configuration"):
        assert (tmp_path / "site" / f"{page}.html").is_file(), page


def test_the_readme_fits_on_a_few_screens_and_links_every_audience() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES
    assert "Not for clinical use" in readme
    linked = set(re.findall(r"\(docs/([\w-]+\.md)", readme))
    pages = {page.name for page in DOCS.glob("*.md")} - {"index.md"}
    assert pages <= linked, f"the README links no page for {sorted(pages - linked)}"


def test_every_pointer_into_the_docs_names_a_page_and_section_that_exist() -> None:
    broken = []
    pointers = 0
    for path in tracked_text_files():
        for page, section in POINTER.findall(path.read_text(errors="replace")):
            pointers += 1
            target = DOCS / page
            if not target.is_file():
                broken.append(f"{path.relative_to(REPO_ROOT)}: docs/{page}")
            elif section and not any(name.startswith(section.lower()) for name in sections(target)):
                broken.append(f'{path.relative_to(REPO_ROOT)}: docs/{page}, "{section}"')
    assert pointers > 20  # the pattern still finds the code's pointers
    assert broken == []


# The platform notes outside the repository, spelt so that this file does not name them itself.
OUTSIDE_NOTES = "-".join(("PLATFORM", "NOTES"))


def test_nothing_points_at_readme_sections_or_at_files_outside_the_repository() -> None:
    stale = []
    for path in tracked_text_files():
        text = path.read_text(errors="replace")
        if re.search(r"\(README[,:]|README,\s+section", text) or OUTSIDE_NOTES in text:
            stale.append(str(path.relative_to(REPO_ROOT)))
    assert stale == [], "point at docs/<page>.md instead"


def test_a_broken_pointer_is_caught(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## Containers, tested end to end\n\n- **TLS.** The gateway serves HTTPS.\n")
    names = sections(page)
    assert any(name.startswith("containers") for name in names) and any(name.startswith("tls") for name in names)
    assert not any(name.startswith("kubernetes") for name in names)
    assert POINTER.findall('see (docs/deployment.md, "TLS") and (docs/security.md)') == [
        ("deployment.md", "TLS"),
        ("security.md", ""),
    ]
