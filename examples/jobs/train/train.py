"""A tiny CPU "training" loop that checkpoints into MERIDIAN_CLUSTER_STORAGE.

Each step updates a toy model (a running mean of a noisy signal) and writes a checkpoint
atomically (write to a temporary file, then rename). On start it resumes from the newest
checkpoint, so a moved or retried attempt continues instead of starting over.
"""
import argparse
import json
import os
import random
import time

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=20)
parser.add_argument("--step-seconds", type=float, default=0.2)
args = parser.parse_args()

storage = os.environ.get("MERIDIAN_CLUSTER_STORAGE", ".")
run = os.environ.get("CHECKPOINT_NAME", os.environ.get("MERIDIAN_JOB_ID", "train"))
checkpoint_dir = os.path.join(storage, "checkpoints", run)
os.makedirs(checkpoint_dir, exist_ok=True)
checkpoint = os.path.join(checkpoint_dir, "latest.json")

state = {"step": 0, "weight": 0.0}
if os.path.exists(checkpoint):
    with open(checkpoint) as f:
        state = json.load(f)
    print(f"resumed from step {state['step']} in region {os.environ.get('MERIDIAN_REGION')}",
          flush=True)
else:
    print("starting from scratch", flush=True)

rng = random.Random(state["step"])
while state["step"] < args.steps:
    sample = 1.0 + rng.gauss(0, 0.1)
    state["step"] += 1
    state["weight"] += (sample - state["weight"]) / state["step"]
    state["region"] = os.environ.get("MERIDIAN_REGION", "")
    tmp = checkpoint + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, checkpoint)
    print(f"step {state['step']}/{args.steps} weight={state['weight']:.4f}", flush=True)
    time.sleep(args.step_seconds)

print(f"done: {state['step']} steps, weight={state['weight']:.4f}, checkpoint {checkpoint}")
