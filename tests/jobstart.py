"""Starting and ending a starter's job; no pytest here, so the benchmark can use it too."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path


def wait_for_job_line(process: subprocess.Popen, stderr_file: Path, timeout: float = 15) -> str:
    """The job id from the starter's `job N.0 running: ssh job-N.0` line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in stderr_file.read_text().splitlines():
            if line.startswith("job ") and " running: ssh " in line:
                return line.split()[1]
        if process.poll() is not None:
            raise AssertionError(f"starter exited {process.returncode}: {stderr_file.read_text()}")
        time.sleep(0.02)
    raise AssertionError(f"starter did not report its job: {stderr_file.read_text()}")


def end_job(process: subprocess.Popen, grace: float = 10) -> None:
    """Stop a starter (and so its job) if it still runs: SIGTERM, then SIGKILL after ``grace``."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
