"""Issue 13: crash consistency of build-lut.

`latprof build-lut` runs as a real process and is killed with SIGKILL (no handler, no
cleanup) at seeded random points. After every kill the table is either absent or a valid
table without duplicate keys, holding only keys of the plan; `--resume` then ends with
exactly the keys of an uninterrupted build, each once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from latprof.lut.plan import plan_build
from latprof.lut.table import LatencyTable

REPO = Path(__file__).parent.parent
# tiny.toml, larger and with more mid widths: 84 entries, saved in 6 (alone) to 20
# (networks) batches. Input and trials make the measuring last about 3.5 s after a start-up
# of about 1.3 s on a fast host (an Intel Xeon, 2026-12-02), so the kills land before the end:
# with 48x48 and 10 trials that host finished whole builds in 1.7 s, before any kill
SPACE = """\
name = "crash"
input = [3, 96, 96]

[[stage]]
name = "stem"
c_out = 8
stride = 2
ops = ["conv_k3"]

[[stage]]
name = "body"
c_out = 8
layers = [1, 2]
ops = [
    {op = "mbinvres", kernel = 3, expansion = [1, 6]},
    {op = "mbinvres", kernel = 5, expansion = [1, 6], se = "c_in"},
]

[[stage]]
name = "pool_fc"
c_out = 10
act = "none"
ops = ["pool_fc"]
"""
WARMUP, TRIALS = 2, 100
OPTIONS = ["--width-step", "1", "--warmup", str(WARMUP), "--trials", str(TRIALS)]
OPTIONS += ["--threads", "1", "--self-check", "0", "--fit", "0"]
KILLS = 3
SEED = 13
CONTEXTS = [None, "alone"]  # None: build-lut's default for a space (networks)

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX")


def planned_keys(space: Path, context: str | None) -> list[str]:
    """The keys an uninterrupted build writes, from the plan (as the CLI makes it)."""
    plan = plan_build(
        space=str(space),
        width_step=1,
        warmup=WARMUP,
        trials=TRIALS,
        context=context or "networks",
    )
    return [j.key for j in plan.jobs]


def start(space: Path, out: Path, context: str | None, resume: bool) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "latprof", "build-lut", "--space", str(space), *OPTIONS]
    cmd += ["-o", str(out)] + (["--context", context] if context else [])
    cmd += ["--resume"] if resume else []
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )


def keys_on_disk(out: Path, planned: set[str]) -> list[str]:
    """The file's keys, after checking it is absent or a valid table of this plan."""
    if not out.exists():
        return []
    raw = pq.read_table(out, columns=["key"]).column("key").to_pylist()
    assert len(raw) == len(set(raw)), f"duplicate keys in {out.name}"
    table = LatencyTable.load(out)  # the table as every command reads it
    assert sorted(table.rows) == sorted(raw)
    assert set(raw) <= planned, sorted(set(raw) - planned)
    return raw


def row_count(out: Path) -> int:
    try:
        return pq.read_metadata(out).num_rows
    except (OSError, ValueError):  # not there yet (a rename is atomic: never half a file)
        return -1


def kill_when(proc: subprocess.Popen, out: Path, after_rows: int, delay_s: float) -> bool:
    """SIGKILL `proc` `delay_s` seconds after the file holds more than `after_rows` rows
    (-1: as soon as it exists). False when the build ended first."""
    deadline = time.monotonic() + 60
    while row_count(out) <= after_rows:
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, "the build made no progress in 60 s"
        time.sleep(0.01)
    time.sleep(delay_s)
    if proc.poll() is not None:
        return False
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if proc.returncode == 0:  # it ended between the poll and the kill: the build ended first
        return False
    assert proc.returncode == -signal.SIGKILL
    return True


def kill_and_resume(tmp_path: Path, context: str | None) -> None:
    """KILLS seeded kills of one build, each followed by a check of the file; then a resume
    to the end, which must hold exactly the planned keys."""
    tmp_path.mkdir()
    space = tmp_path / "crash.toml"
    space.write_text(SPACE, encoding="utf-8")
    out = tmp_path / "crash.parquet"
    planned = planned_keys(space, context)
    assert len(planned) == len(set(planned)) >= 80
    rng = random.Random(f"{SEED}-{context}")
    killed = 0
    # the first kill: a seeded time after the start, before or after the first save
    proc = start(space, out, context, resume=False)
    time.sleep(rng.uniform(0.0, 2.5))
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed += 1
    assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read() if proc.stderr else ""
    seen = keys_on_disk(out, set(planned))
    # the others: a seeded time after the resumed build has saved something new, so that
    # the kills land while it measures or while it writes a save
    for _ in range(KILLS - 1):
        proc = start(space, out, context, resume=True)
        if kill_when(proc, out, len(seen) if out.exists() else -1, rng.uniform(0.0, 0.3)):
            killed += 1
        else:
            assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
        now = keys_on_disk(out, set(planned))
        assert set(seen) <= set(now)  # what was saved stays saved
        seen = now
    assert killed >= KILLS - 1, "the build ended before the kills: make the space bigger"
    done = start(space, out, context, resume=True)
    _, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    final = keys_on_disk(out, set(planned))
    assert sorted(final) == sorted(planned)
    assert LatencyTable.load(out).meta["context"] == (context or "networks")
    # a kill in the middle of a save may leave its temporary file behind; the next save
    # removes those of dead writers, so nothing is left
    strays = [p.name for p in tmp_path.iterdir() if p not in (space, out)]
    assert strays == []


@pytest.mark.filterwarnings("ignore:.*carries no self-check")  # built with --self-check 0
def test_sigkill_at_seeded_points_then_resume_ends_with_the_planned_keys(tmp_path: Path) -> None:
    """Both contexts (networks, the default for a space, and alone), one build each, run
    side by side: each process spends most of its life starting up (importing torch)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = [pool.submit(kill_and_resume, tmp_path / (c or "default"), c) for c in CONTEXTS]
        for run in runs:
            run.result()  # re-raises a failed check
