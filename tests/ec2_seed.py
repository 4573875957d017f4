"""What HTCondor's EC2 GAHP does for a job, against the test's EC2 endpoint (test harness).

``launch URL KEYFILE``: creates a key pair named the way the GAHP names them, writes its private
key to KEYFILE (0600, PEM, as HTCondor does) and runs one instance with it; prints the instance
as JSON. ``stop URL ID``: stops an instance. Credentials and region come from the environment.
"""
from __future__ import annotations

import json
import os
import sys
import time

import boto3


def client(url: str):
    return boto3.client("ec2", endpoint_url=url, region_name="us-east-1")


def launch(url: str, key_file: str) -> dict:
    ec2 = client(url)
    name = f"SSH_127 0 0 1 9618_vm 40 0 {int(time.time())}"
    material = ec2.create_key_pair(KeyName=name)["KeyMaterial"]
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(material)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, KeyName=name,
                                 InstanceType="m1.small")["Instances"][0]
    described = ec2.describe_instances(InstanceIds=[instance["InstanceId"]])
    found = described["Reservations"][0]["Instances"][0]
    return {key: found.get(key) for key in ("InstanceId", "ImageId", "PublicDnsName",
                                            "PublicIpAddress", "KeyName")}


def stop(url: str, instance_id: str) -> dict:
    client(url).stop_instances(InstanceIds=[instance_id])
    return {"stopped": instance_id}


if __name__ == "__main__":
    action, url, arg = sys.argv[1:4]
    print(json.dumps(launch(url, arg) if action == "launch" else stop(url, arg)))
