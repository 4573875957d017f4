"""Fuzz targets: the handshake decoder, the job-id parser and the public-key parser, for as
long as you like, with the properties of tests/test_hostile_input.py as the oracle.

    python tests/fuzz.py decoder --seconds 600     # random inputs through hypothesis
    python tests/fuzz.py jobid -- -max_total_time=600   # coverage-guided, if atheris is installed

Not part of the test suite (which runs each property for a bounded number of examples).
A failure prints the input and exits non-zero.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

import test_hostile_input as properties  # noqa: E402

TARGETS = {
    "decoder": properties.test_handshake_decoder_answers_garbage_with_a_protocol_error,
    "frames": properties.test_handshake_decoder_never_takes_a_byte_past_its_frame,
    "jobid": properties.test_job_host_parser_gives_a_job_or_one_short_line,
    "keys": properties.test_public_key_parser_gives_a_key_or_none,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("fuzzer_args", nargs="*", help="passed to atheris (after --)")
    args = parser.parse_args()
    fuzz_one_input = TARGETS[args.target].hypothesis.fuzz_one_input
    try:
        import atheris
    except ImportError:
        atheris = None
    if atheris and args.fuzzer_args:
        atheris.Setup([sys.argv[0], *args.fuzzer_args], fuzz_one_input)
        atheris.Fuzz()
        return 0
    deadline, runs = time.monotonic() + args.seconds, 0
    while time.monotonic() < deadline:
        fuzz_one_input(os.urandom(4096))     # raises, with the failing example, on a failure
        runs += 1
    print(f"{args.target}: {runs} inputs, no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
