"""moto's EC2 server, with console output a test can set (test harness, not product code).

moto answers GetConsoleOutput with one fixed kernel log for every instance, so a test could
never see cloud-init's host keys through it. This launcher keeps moto's whole HTTP server and
API and only lets the console text of an instance come from ``$CJP_TEST_CONSOLE_DIR/<id>``
when that file exists (what a booted instance's cloud-init would have printed).
"""
from __future__ import annotations

import os
import sys
import threading

from moto.ec2.responses import general
from moto.server import main

_original = general.General.get_console_output
_lock = threading.Lock()


def get_console_output(self: general.General) -> object:
    path = os.path.join(os.environ["CJP_TEST_CONSOLE_DIR"], self._get_param("InstanceId"))
    with _lock:
        saved = general.SAMPLE_CONSOLE_OUTPUT
        if os.path.exists(path):
            with open(path) as file:
                general.SAMPLE_CONSOLE_OUTPUT = file.read()
        try:
            return _original(self)
        finally:
            general.SAMPLE_CONSOLE_OUTPUT = saved


general.General.get_console_output = get_console_output

if __name__ == "__main__":
    main(sys.argv[1:])
