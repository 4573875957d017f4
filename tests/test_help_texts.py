"""What a user reads in ``--help``: every command's summary, description and option is a
whole sentence, never one that click cut off with "..." because it ran past the line.

The commands run as real processes from this checkout, at an 80-column terminal (click fits
the command list to the terminal's width, and 80 is what most terminals open with).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from accounts import ROOT

PROGRAMS = {"condor-job-proxy": ["condor_job_proxy"], "condor-job-starter": ["condor_job_proxy.starter"]}
ENTRY = re.compile(r"^  (\S.*?)(?:\s{2,}(\S.*))?$")


def _help(argv: list[str]) -> str:
    shown = subprocess.run([sys.executable, "-m", *argv, "--help"], cwd=ROOT, capture_output=True,
                           text=True, timeout=60, env={**os.environ, "COLUMNS": "80"})
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def _sections(text: str) -> dict[str, list[tuple[str, str]]]:
    """click's help as {section: [(name, its help, joined over wrapped lines)]}; the text
    before the first section is the description, under ""."""
    sections: dict[str, list[tuple[str, str]]] = {"": []}
    current, description = "", []
    for line in text.splitlines()[1:]:
        if line and not line.startswith(" "):
            current = line.rstrip(":")
            sections[current] = []
        elif not current:
            description.append(line.strip())
        elif (entry := ENTRY.match(line)) and not line.startswith("   "):
            sections[current].append((entry.group(1), entry.group(2) or ""))
        elif line.strip() and sections[current]:
            name, help_text = sections[current][-1]
            sections[current][-1] = (name, f"{help_text} {line.strip()}".strip())
    sections[""] = [("", " ".join(description).strip())]
    return sections


def _every_help() -> list[tuple[str, dict[str, list[tuple[str, str]]]]]:
    """(command line, its help's sections) for each program, group and command."""
    found, todo = [], list(PROGRAMS.values())
    while todo:
        argv = todo.pop()
        sections = _sections(_help(argv))
        found.append((" ".join(argv), sections))
        todo += [argv + [name] for name, _ in sections.get("Commands", [])]
    return found


def _whole_sentence(text: str) -> bool:
    text = re.sub(r"\s*\[[^]]*\]$", "", text)     # click's own "[default: 5; x>=0]"
    return text.endswith(".") and not text.endswith("...")


@pytest.fixture(scope="module")
def every_help() -> list[tuple[str, dict[str, list[tuple[str, str]]]]]:
    return _every_help()


def test_help_lists_every_command_with_a_whole_sentence(every_help) -> None:
    cut = [f"{where} {name}: {summary!r}" for where, sections in every_help
           for name, summary in sections.get("Commands", []) if not _whole_sentence(summary)]
    assert len(every_help) >= 15
    assert not cut, "summaries cut off or not a sentence:\n" + "\n".join(cut)


def test_help_describes_every_command_in_whole_sentences(every_help) -> None:
    bad = [f"{where}: {sections[''][0][1]!r}" for where, sections in every_help
           if not _whole_sentence(sections[""][0][1])]
    assert not bad, "descriptions that are not whole sentences:\n" + "\n".join(bad)


def test_help_describes_every_option_in_a_whole_sentence(every_help) -> None:
    bad = [f"{where} {name}: {text!r}" for where, sections in every_help
           for name, text in sections.get("Options", []) if not _whole_sentence(text)]
    assert not bad, "option help that is not a whole sentence:\n" + "\n".join(bad)


@pytest.mark.parametrize("argv,flag,shown", [
    (["condor_job_proxy"], "--version", "condor-job-proxy "),
    (["condor_job_proxy.starter"], "--version", "condor-job-starter (condor-job-proxy) "),
    (["condor_job_proxy.ssh_to_job"], "-version", "condor_ssh_to_job (condor-job-proxy) "),
])
def test_every_command_tells_its_version(argv: list[str], flag: str, shown: str) -> None:
    result = subprocess.run([sys.executable, "-m", *argv, flag], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith(shown), result
