"""Prints where it runs: the environment meridian gives every job attempt."""
import os
import socket

print(os.environ.get("GREETING", "hello"))
for name in ("MERIDIAN_JOB_ID", "MERIDIAN_ATTEMPT", "MERIDIAN_CLOUD_RESOURCE",
             "MERIDIAN_REGION", "MERIDIAN_CLUSTER_STORAGE"):
    print(f"{name}={os.environ.get(name, '')}")
print(f"host={socket.gethostname()} cwd={os.getcwd()}")
