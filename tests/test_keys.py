"""Key files as OpenSSH names them."""
from __future__ import annotations

from pathlib import Path

from condor_job_proxy.common.keys import public_key_path


def test_public_half_of_a_key_with_a_dot_in_its_name_is_beside_it() -> None:
    assert public_key_path(Path("/home/u/.ssh/id.work")) == Path("/home/u/.ssh/id.work.pub")
    assert public_key_path(Path("id_ed25519")) == Path("id_ed25519.pub")
