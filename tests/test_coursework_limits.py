"""Coursework: the kernel limits of a submission's run (a cgroup per run, issue 20), against the escapes the
rlimits and the audit hook miss: shared memory from ``memfd_create`` (not in the address space), forks
through ``ctypes`` (no audit event, and root is exempt from RLIMIT_NPROC), a daemon that leaves the
process group and session. Each runs with bubblewrap and without it (the instructor's opt-out).

The answers run through ``sandbox.run`` directly, without the static source rules (which would refuse
``ctypes``), so that the kernel limits are what is tested. One grading process per run, so this runs
once, not in the reruns under other ATen kernels.
"""

import functools
import os
import secrets
import signal
import subprocess

import pytest
from test_coursework_attacks import _job
from test_coursework_grading import write

from companion.coursework import assignment as asg
from companion.coursework import cgroups, grader, sandbox

pytestmark = pytest.mark.skipif(
    os.environ.get("COMPANION_KERNEL_RERUN") == "1",
    reason="grading runs subprocesses; once is enough (not per ATen kernel)",
)

# a small memory limit, so that exceeding it is quick and does not stress the machine
LIMITS = sandbox.Limits(wall_s=60, check_s=20, answer_s=20, memory_mb=512, processes=16)

# 3 GiB of shared memory, in memfds of 8 MiB (below RLIMIT_FSIZE), none of it in the address space
MEMFD = """
import os
_fds = []
for _i in range(384):
    _fd = os.memfd_create("hold")
    os.write(_fd, bytes(8 << 20))
    _fds.append(_fd)
raise RuntimeError(f"held {len(_fds) * 8} MiB of shared memory")
"""

# 200 forks through ctypes (no audit event); each child renames itself (PR_SET_NAME) and sleeps
FORKS = """
import ctypes
_c = ctypes.pythonapi
_made, _refused = 0, 0
for _i in range(200):
    _pid = _c.fork()
    if _pid == 0:
        _c.prctl(15, b"%(marker)s", 0, 0, 0)
        _c.sleep(300)
        _c._exit(0)
    if _pid > 0:
        _made += 1
    else:
        _refused += 1
raise RuntimeError(f"forked {_made} refused {_refused}")
"""

# a daemon (double fork, setsid) that says when it is up, then sleeps 300 s
DAEMON = """
import ctypes, os
_c = ctypes.pythonapi
_r, _w = os.pipe()
if _c.fork() == 0:
    _c.setsid()
    if _c.fork() == 0:
        _c.prctl(15, b"%(marker)s", 0, 0, 0)
        os.write(_w, b"up")
        _c.sleep(300)
    _c._exit(0)
os.close(_w)
raise RuntimeError("daemon " + os.read(_r, 2).decode())
"""


@functools.cache
def _why_no_cgroup() -> str:
    group = cgroups.create(LIMITS)
    if group is None:
        return "no cgroup can be made here (not root, no delegated cgroup v2 subtree)"
    group.remove()
    return ""


@pytest.fixture(params=["bubblewrap", "unsandboxed"])
def mode(request, monkeypatch):
    """With bubblewrap, and without it (COMPANION_NO_BWRAP=1, allow_unsandboxed)."""
    monkeypatch.delenv("COMPANION_NO_CGROUP", raising=False)
    if request.param == "bubblewrap":
        monkeypatch.delenv("COMPANION_NO_BWRAP", raising=False)
        if not sandbox.bwrap_works():
            pytest.skip(f"bubblewrap cannot run here: {sandbox.why_no_sandbox()}")
    else:
        monkeypatch.setenv("COMPANION_NO_BWRAP", "1")
    if _why_no_cgroup():
        pytest.skip(_why_no_cgroup())
    return request.param


@pytest.fixture
def made(monkeypatch):
    """Every cgroup the runs make (to check that none is left behind)."""
    groups = []
    real = cgroups.create

    def create(limits):
        group = real(limits)
        groups.append(group)
        return group

    monkeypatch.setattr(cgroups, "create", create)
    return groups


def _run(answers: list) -> sandbox.Outcome:
    a = asg.load("adamax")
    return sandbox.run(
        _job(a, answers, 7), LIMITS, hide=(a.folder.parent,), allow_unsandboxed=True
    )


def _said(outcome: sandbox.Outcome) -> str:
    """What the answer's error said (its first line)."""
    answer = [e for e in outcome.events if e.get("event") == "answer"]
    assert answer and answer[0]["error"], (outcome.events, outcome.stderr_tail)
    return answer[0]["error"].get("text", "")


def _alive(marker: str) -> list[int]:
    """Processes (not zombies) named ``marker``, anywhere on the machine."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name, state = stat[stat.index("(") + 1 : stat.rindex(")")], stat.rsplit(")")[1]
        if name == marker and state.split()[0] not in "ZX":
            found.append(int(pid))
    return found


def _marker() -> str:
    return "cw" + secrets.token_hex(6)  # at most 15 characters (a process name)


def _no_group_left(made: list) -> None:
    assert made and all(g is not None for g in made), made
    left = [f for g in made for f in g.folders.values() if os.path.exists(f)]
    assert not left, left


def test_shared_memory_counts_against_the_memory_limit(mode, made):
    outcome = _run([MEMFD])
    assert outcome.oom, (outcome.events, outcome.stderr_tail)
    assert outcome.kernel_limits.startswith("cgroup v"), outcome.kernel_limits
    # the kernel ended the run (the answer never finished), not the grader: this process goes on
    assert outcome.returncode != 0 and not outcome.timed_out
    assert not any(e.get("event") in ("answer", "done") for e in outcome.events)
    _no_group_left(made)


def test_forks_through_ctypes_stop_at_the_process_limit(mode, made):
    marker = _marker()
    outcome = _run([FORKS % {"marker": marker}])
    said = _said(outcome)
    made_, refused = int(said.split()[1]), int(said.split()[3])
    # pids.max counts the run's every process and thread (bubblewrap's and the child's included)
    assert 1 <= made_ < LIMITS.processes and made_ + refused == 200, said
    assert not outcome.oom
    assert not _alive(marker)
    _no_group_left(made)


def test_a_daemon_dies_with_the_run(mode, made):
    marker = _marker()
    outcome = _run([DAEMON % {"marker": marker}])
    assert _said(outcome) == "daemon up"
    assert not _alive(marker)
    _no_group_left(made)


def test_without_the_cgroup_or_bubblewrap_a_daemon_outlives_the_run(monkeypatch):
    """The control: the escape the cgroup closes (the grader kills only the run's process group)."""
    monkeypatch.setenv("COMPANION_NO_CGROUP", "1")
    monkeypatch.setenv("COMPANION_NO_BWRAP", "1")
    marker = _marker()
    try:
        outcome = _run([DAEMON % {"marker": marker}])
        assert _said(outcome) == "daemon up"
        assert outcome.kernel_limits == "rlimits only (COMPANION_NO_CGROUP=1)"
        assert _alive(marker)
    finally:
        for pid in _alive(marker):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("no_cgroup", [True, False], ids=["rlimits-only", "cgroup"])
def test_a_right_answer_runs_and_says_which_kernel_limits_held(
    no_cgroup, tmp_path, monkeypatch, made
):
    if no_cgroup:
        monkeypatch.setenv("COMPANION_NO_CGROUP", "1")
    else:
        monkeypatch.delenv("COMPANION_NO_CGROUP", raising=False)
        if _why_no_cgroup():
            pytest.skip(_why_no_cgroup())
    a = asg.load("adamax")
    answers = grader.answer_cells(write(tmp_path / "s.ipynb", a.notebook), a.spec())
    outcome = _run(answers)
    checks = [e for e in outcome.events if e.get("event") == "check"]
    assert checks and all("obs" in e for e in checks), outcome.events
    assert outcome.returncode == 0 and not outcome.oom
    if no_cgroup:
        assert outcome.kernel_limits == "rlimits only (COMPANION_NO_CGROUP=1)"
        assert not made
    else:
        memory = cgroups.HEADROOM_MB + LIMITS.memory_mb
        assert outcome.kernel_limits.startswith("cgroup v"), outcome.kernel_limits
        assert f"memory {memory} MiB (shared memory counted" in outcome.kernel_limits
        assert outcome.kernel_limits.endswith("16 processes, 1 CPU")
        _no_group_left(made)


def test_the_cgroup_v2_layout_on_a_stand_in_tree(tmp_path, monkeypatch):
    """cgroup v2 where this machine may have none: the files written, on a folder tree standing in for
    /sys/fs/cgroup (names and values only; the kernel's behaviour is tested above, where it runs)."""
    mount = tmp_path / "cgroup"
    me = mount / "grader.slice" / "me.scope"
    me.mkdir(parents=True)
    (mount / "grader.slice" / "cgroup.controllers").write_text("cpu io memory pids\n")
    (mount / "grader.slice" / "cgroup.subtree_control").write_text("")
    files = ("cgroup.procs", "memory.max", "memory.swap.max", "pids.max", "cpu.max")
    real_mkdir = os.mkdir

    def mkdir(path, *args):  # the kernel makes a new group's files
        real_mkdir(path, *args)
        for name in files:
            open(os.path.join(path, name), "w").close()

    monkeypatch.setattr(cgroups.os, "mkdir", mkdir)
    mounts = [(str(mount), "/", "cgroup2", {"rw"})]
    group = cgroups._v2(mounts, {"": "/grader.slice/me.scope"}, "coursework-1-ab")
    cgroups._configure(group, cgroups.HEADROOM_MB + 512, 16)
    folder = mount / "grader.slice" / "coursework-1-ab"  # beside the grader's own
    assert set(group.folders.values()) == {str(folder)}
    written = {name: (folder / name).read_text() for name in files[1:]}
    assert written == {
        "memory.max": str((cgroups.HEADROOM_MB + 512) * 2**20),
        "memory.swap.max": "0",
        "pids.max": "16",
        "cpu.max": "100000 100000",
    }
    subtree = (mount / "grader.slice" / "cgroup.subtree_control").read_text()
    assert subtree == "+memory +pids +cpu"
    memory = cgroups.HEADROOM_MB + 512
    assert group.describe() == (
        f"cgroup v2: memory {memory} MiB (shared memory counted, no swap), "
        "16 processes, 1 CPU"
    )
    # the command joins the group as itself (exec), or does not run at all
    done = subprocess.run(
        group.command_prefix() + ["/bin/sh", "-c", "echo $$"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert (folder / "cgroup.procs").read_text().strip() == done.stdout.strip()
    (folder / "cgroup.procs").write_text("")
    refused = subprocess.run(
        [*group.command_prefix()[:4], str(tmp_path / "no" / "cgroup.procs"), "--"]
        + ["/bin/echo", "ran"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 125 and "ran" not in refused.stdout
    events = folder / "memory.events"
    events.write_text("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")
    assert not group.oom()
    events.write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n")
    assert group.oom()


@pytest.mark.parametrize("when", ["answer", "check"])
def test_the_feedback_names_the_memory_limit(when, tmp_path, monkeypatch):
    """The grader's side of an OOM kill (the kernel's is shown above): the run's report stops where the
    kernel ended it, and every check fails saying which limit ended it."""
    a = asg.load("adamax")
    sub = write(tmp_path / "s.ipynb", a.notebook)
    events = [{"event": "start"}]
    if when == "check":
        events.append({"event": "answer", "error": None})
    seen = {}

    def run(job, limits, **kwargs):
        seen["kernel_limits"] = "cgroup v1: memory 1536 MiB (stand-in)"
        return sandbox.Outcome(
            events,
            -9,
            False,
            "",
            "bubblewrap",
            oom=True,
            kernel_limits=seen["kernel_limits"],
        )

    monkeypatch.setattr(sandbox, "run", run)
    monkeypatch.setattr(sandbox, "bwrap_works", lambda: True)
    (r,) = grader.grade("adamax", [sub], tmp_path / "out", limits=LIMITS)
    assert sum(r.points.values()) == 0
    said = "memory limit: the submission used more than its 512 MB (shared memory included)"
    assert all(said in why for why in r.reasons.values()), r.reasons
    if when == "answer":
        assert all(
            why.startswith("the answer cells failed") for why in r.reasons.values()
        )
    assert r.kernel_limits == seen["kernel_limits"]
