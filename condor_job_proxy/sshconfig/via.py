"""The access point a laptop's config reaches jobs through, remembered by ``setup --via``.

``config refresh`` (and a refresh ssh triggers) must keep building the include through the
same hop; ``setup`` without ``--via`` goes back to jobs on this machine.
"""
from __future__ import annotations

import json
from pathlib import Path

from condor_job_proxy.proxycmd.via.hop import DEFAULT_COMMAND, Hop, check_target
from condor_job_proxy.common.files import write_private
from condor_job_proxy.common import paths


def via_file() -> Path:
    return paths.config_dir() / "via.json"


def remembered() -> Hop | None:
    try:
        data = json.loads(via_file().read_text())
        return Hop(check_target(str(data["target"])), str(data.get("command", DEFAULT_COMMAND)))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{via_file()}: unreadable ({err}): run condor-job-proxy setup again") from None


def remember(hop: Hop | None) -> None:
    if hop is None:
        via_file().unlink(missing_ok=True)
        return
    via_file().parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(via_file(), json.dumps(hop._asdict()) + "\n")
