"""A user's config.toml with a mistake in it: one line naming the file, the key and what it
must be, from ssh (the ProxyCommand: exit 255) and from the CLI (a click error); a key this
version does not know is a one-line warning, as condor_submit warns of an unused line."""
from __future__ import annotations

import pytest

from conftest import Job, Workbench

MISTAKES = [
    ('control_master = "yes"\n', 'control_master must be true or false, not \'yes\''),
    ('control_master = false\nwait = "sometimes"\n',
     'wait must be true, false, "auto" or seconds, not \'sometimes\''),
    ('control_master = false\n[interactive.gpu]\nrequest_gpus = "one"\n',
     "interactive.gpu.request_gpus must be a whole number, not 'one'"),
]


def _config(bench: Workbench):
    return bench.root / "config" / "condor-job-proxy" / "config.toml"


def _our_lines(stderr: bytes) -> list[str]:
    """Our lines and any error or traceback; ssh's own "Permission denied (refused@...)" is not
    ours (the refusal server it was handed ends with it)."""
    return [line for line in stderr.decode().splitlines() if line.startswith("condor-job-proxy")
            or "Error" in line or "Traceback" in line]


@pytest.mark.parametrize("text, wanted", MISTAKES)
def test_a_wrong_value_in_config_toml_stops_ssh_with_one_line(bench: Workbench, job: Job,
                                                             text: str, wanted: str) -> None:
    _config(bench).write_text(text)
    result = bench.ssh(job.host, "true")
    assert result.returncode == 255
    assert _our_lines(result.stderr) == [f"condor-job-proxy: {_config(bench)}: {wanted}"]


@pytest.mark.parametrize("text, wanted", MISTAKES)
def test_a_wrong_value_in_config_toml_stops_jobs_with_a_click_error(bench: Workbench,
                                                                   text: str,
                                                                   wanted: str) -> None:
    _config(bench).write_text(text)
    result = bench.proxy("jobs")
    assert result.returncode == 1
    assert result.stderr.decode() == f"Error: {_config(bench)}: {wanted}\n"


def test_a_misspelt_key_is_one_warning_and_ssh_still_works(bench: Workbench, job: Job) -> None:
    _config(bench).write_text('control_master = false\nschedd = "ap1.example.org"\n')
    result = bench.ssh(job.host, "echo", "in-the-job")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"in-the-job\n"
    assert _our_lines(result.stderr) == [f"condor-job-proxy: warning: {_config(bench)}: unknown "
                                         "key schedd ignored (did you mean schedds?)"]
