"""docs/ARCHITECTURE.md is the map a newcomer reads: every module of ours has its line there, by
its path inside condor_job_proxy/, and the page stands on its own (nothing outside the
repository). A module added without its line fails here."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "ARCHITECTURE.md"


def test_a_newcomer_finds_every_module_on_the_architecture_page():
    page = PAGE.read_text()
    package = REPO / "condor_job_proxy"
    missing = [str(path.relative_to(package)) for path in sorted(package.rglob("*.py"))
               if f"`{path.relative_to(package)}`" not in page]
    assert missing == []


def test_the_architecture_page_sends_a_newcomer_nowhere_outside_the_repository():
    assert "../shared" not in PAGE.read_text()
