"""``condor-job-proxy``: ssh's ProxyCommand goes straight to ``condor_job_proxy.proxycmd.main``;
everything else (and any command line that parser does not take) is the click CLI, which imports
click."""
from __future__ import annotations

import sys

from condor_job_proxy.proxycmd import main as proxy
from condor_job_proxy.proxycmd.options import parse_connect

from . import refresh_include


def main() -> None:
    """The console script and ``python -m condor_job_proxy``."""
    request = parse_connect(sys.argv[1:])
    if request is None:
        from .cli import main as click_main
        click_main()
    else:
        sys.exit(proxy.run_connect(request, after_user_mismatch=refresh_include))


if __name__ == "__main__":
    main()
