#!/usr/bin/env python3
"""Temporal worker stand-in: runs activities while Temporal, Postgres and the bucket answer; fails visibly otherwise."""
import os, random, signal, sys, time, urllib.request

import s3lib
from checks import postgres_ok

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
name = os.environ.get("WORKER_NAME", "worker")
ok_file = "/tmp/worker-ok"


def log(msg):
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} [{name}] {msg}", flush=True)


def check():
    problems = []
    try:
        urllib.request.urlopen("http://temporal:7233/health", timeout=2).read()
    except Exception as e:  # noqa: BLE001 - any failure means Temporal is unusable
        problems.append(f"temporal unreachable ({e})")
    if not postgres_ok():
        problems.append("postgres unreachable")
    try:
        bucket_ok = s3lib.request("HEAD", f"/{s3lib.bucket}")[0] == 200
    except OSError:
        bucket_ok = False
    if not bucket_ok:
        problems.append(f"bucket {s3lib.bucket} not accessible")
    return problems


log("Worker successfully registered with task queue 'default' (namespace default)")
n = 0
while True:
    n += 1
    problems = check()
    if problems:
        if os.path.exists(ok_file):
            os.remove(ok_file)
        for p in problems:
            log(f"ERROR activity failed: {p}")
    else:
        open(ok_file, "w").close()
        key = f"artifacts/run-{n:05d}.json"
        try:
            # A new file each time (and the old one dropped) so a full volume shows at once.
            with open(f"/scratch/run-{n}.json", "w") as f:
                f.write('{"ok": true}' * 64)
            if os.path.exists(f"/scratch/run-{n - 4}.json"):
                os.remove(f"/scratch/run-{n - 4}.json")
            log(f"[artifact] stored {key}")
        except OSError as e:
            if os.path.exists(ok_file):
                os.remove(ok_file)
            log(f"ERROR [artifact] write failed for {key}: {e.strerror}")
            time.sleep(float(os.environ.get("WORKER_INTERVAL", "2")))
            continue
        if n % 7 == 0:
            log(f"activity failed: SyncArtifacts attempt 1/3 timed out after 30s (workflow wf-{n:04d}), retrying")
        elif n % 11 == 0:
            log(f"WARN Large payload detected: {random.randint(2, 4)}.{random.randint(0, 9)} MB in activity result of wf-{n:04d}")
        else:
            log(f"activity completed: SyncArtifacts wf-{n:04d} in {random.randint(20, 400)}ms")
    time.sleep(float(os.environ.get("WORKER_INTERVAL", "2")))
