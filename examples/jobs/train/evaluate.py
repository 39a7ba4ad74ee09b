"""Evaluates the checkpoint that train.py wrote, from wherever this job runs.

train.py writes MERIDIAN_CLUSTER_STORAGE/checkpoints/<CHECKPOINT_NAME>/latest.json; every
operator mounts its cloud resource's object storage there, so a checkpoint written in one
region is read here in another without copying. Exits 1 when there is no checkpoint yet.
"""
import json
import os
import sys


def filesystem_of(path):
    """The filesystem type of the mount that holds `path`, from /proc/self/mountinfo."""
    path = os.path.realpath(path)
    best, fstype = "", "unknown"
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                mount_point = fields[4]
                kind = fields[fields.index("-") + 1]
                inside = path == mount_point or path.startswith(mount_point.rstrip("/") + "/")
                if inside and len(mount_point) >= len(best):
                    best, fstype = mount_point, kind
    except (OSError, ValueError, IndexError):
        pass
    return fstype


storage = os.environ.get("MERIDIAN_CLUSTER_STORAGE", ".")
region = os.environ.get("MERIDIAN_REGION", "")
run = os.environ.get("CHECKPOINT_NAME", "train-tiny")
checkpoint = os.path.join(storage, "checkpoints", run, "latest.json")
print(f"cluster storage {storage} (filesystem {filesystem_of(storage)}) in region {region}",
      flush=True)

if not os.path.exists(checkpoint):
    print(f"no checkpoint at {checkpoint}: run examples/jobs/train.yaml first", flush=True)
    sys.exit(1)
with open(checkpoint) as f:
    state = json.load(f)
print(f"found checkpoint {run} at step {state['step']}, written in region "
      f"{state.get('region', '?')}; evaluating in region {region}", flush=True)
# The toy model estimates the mean of a signal whose true mean is 1.0.
print(f"evaluation: weight={state['weight']:.4f} error={abs(state['weight'] - 1.0):.4f}")
