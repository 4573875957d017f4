"""The EC2 path of ``condor-job-proxy connect``, with the job ad read from a JSON file.

Test harness, not product code: until the schedd resolver lands there is no queue to fetch an
EC2 job's ad from, so this stands in for that one step (fetching the ad) and runs everything
after it with the product's own code: ``is_ec2_job``, ``resolve_ec2_job`` (boto3 against the
test's EC2 endpoint) and ``connect_endpoint`` (transport, pinning, identity link, fd handoff).
It takes the generated include's arguments: AD_JSON connect --identity I --known-hosts K
--job-identity J HOST USER.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from proxycmd.connect import connect_endpoint
from proxycmd.errors import ProxyError
from proxycmd.resolvers.ec2 import is_ec2_job, resolve_ec2_job
from starter import paths
from starter.jobid import parse_host


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("ad", type=Path)
    parser.add_argument("verb", choices=["connect"])
    for option in ("--identity", "--known-hosts", "--job-identity"):
        parser.add_argument(option, type=Path)
    parser.add_argument("host")
    parser.add_argument("user", nargs="?")
    args = parser.parse_args()
    try:
        ad = json.loads(args.ad.read_text())
        assert is_ec2_job(ad), "the harness only serves EC2 job ads"
        endpoint = resolve_ec2_job(ad, parse_host(args.host), paths.settings())
        connect_endpoint(args.host, endpoint, args.user, identity=args.identity,
                         known_hosts=args.known_hosts, job_identity=args.job_identity)
    except ProxyError as err:
        print(f"condor-job-proxy: {err}", file=sys.stderr)
        return 255
    return 0


if __name__ == "__main__":
    sys.exit(main())
