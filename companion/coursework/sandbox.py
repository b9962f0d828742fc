"""Run one submission's grading process in a sandbox and collect its report.

Limits, in layers (each applies where the one before it is unavailable, and all where they can):

- a process of its own, in its own session, killed (with its group) at the wall-clock limit, and as soon
  as the child has reported nothing for ``answer_s`` (the answer cells) or ``check_s`` (a check) plus
  ``grace_s``: the per-check limit holds from the grader's side even if the answer ignores, blocks or
  swallows the child's SIGALRM;
- ``RLIMIT_AS`` (address space, so endless allocation ends in MemoryError), ``RLIMIT_CPU``, ``RLIMIT_FSIZE``
  and ``RLIMIT_CORE`` = 0, which the child sets on itself before it runs any answer (no ``preexec_fn``: the
  grader starts children from several threads);
- a cgroup of its own (:mod:`companion.coursework.cgroups`), where the machine allows it (root, or a
  delegated cgroup v2 subtree), made by the grader, which every process of the run joins before any of
  the answer runs: memory counted with shared memory and page cache (``RLIMIT_AS`` misses
  ``memfd_create`` and tmpfs files), processes and threads (``RLIMIT_NPROC`` misses root and forks through
  ``ctypes``), one CPU; at the end of the run every process in it is killed (a daemon that left the
  process group and session too) and the group is removed. :attr:`Outcome.kernel_limits` says which
  kernel limits held (``COMPANION_NO_CGROUP=1``: rlimits only), :attr:`Outcome.oom` whether the
  group's memory limit was hit;
- bubblewrap (``bwrap``, Debian's ``bubblewrap``), required unless the instructor opts out
  (:class:`SandboxUnavailable` says why it cannot run and how to fix it): a file system that holds only
  what the answer needs, read-only (``/usr`` and the ``/lib``, ``/bin`` links, the interpreter's prefixes,
  the ``companion`` package folder, never the repository around it), a scratch folder and ``/tmp`` on
  size-capped tmpfs, no network, its own PID space (everything in it dies with the run);
- with the explicit opt-out (``allow_unsandboxed``), the network namespace is unshared where the kernel
  allows (root), and the child installs an audit hook that refuses writes outside its scratch folder,
  sockets, new processes and signals to others; files stay readable and the scratch folder is capped per
  file only.

The report comes back over a socket (which, unlike a pipe, cannot be reopened through ``/proc/self/fd``):
JSON lines, each carrying a token that only the grader and the child know, read by the grader, which
alone writes grades.
"""

import functools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

from companion.coursework import cgroups

REPORT_CAP = (
    128 * 1024 * 1024
)  # bytes of report read from one run (observations hold raw samples)
UNSANDBOXED = "none (rlimits + audit hook; the instructor opted out of the sandbox)"


@dataclass
class Limits:
    wall_s: float = 120.0  # the whole submission, torch's import included
    check_s: float = 20.0  # one check
    answer_s: float = 20.0  # running the answer cells
    # address space the answer may add to what torch's import and the checks use; with a cgroup, memory
    # (shared memory included) on top of cgroups.HEADROOM_MB
    memory_mb: int = 3072
    file_mb: int = 16  # the largest file the child may write (its scratch folder)
    scratch_mb: int = 64  # the scratch folder in all (bubblewrap's size-capped tmpfs)
    processes: int = 64  # the cgroup's pids.max and RLIMIT_NPROC (threads count)
    grace_s: float = (
        5.0  # past answer_s or check_s without a report, the grader ends the run
    )


@dataclass
class Outcome:
    events: list
    returncode: int | None
    timed_out: bool
    stderr_tail: str
    sandbox: str
    stalled: str | None = (
        None  # "answer" or "check": the grader ended a run that reported nothing in time
    )
    # the run's cgroup hit its memory limit (the kernel's OOM killer ended a process of the run)
    oom: bool = False
    # the kernel limits that held: the cgroup's, or "rlimits only (why)"
    kernel_limits: str = ""


class _Progress:
    """What the child has reported so far (lines with the run's token only), for the grader's own time
    limits: after "start" the answer cells have ``answer_s``, after "answer" and after each "check" the
    next check has ``check_s``, each plus ``grace_s``."""

    def __init__(self, token: str, limits: "Limits"):
        self.token, self.limits = token, limits
        self.phase, self.since = None, time.monotonic()
        self._parts: list[
            bytes
        ] = []  # the line being received (an observation may be megabytes)

    def feed(self, block: bytes) -> None:
        *lines, rest = block.split(b"\n")
        if lines:
            lines[0] = b"".join([*self._parts, lines[0]])
            self._parts = []
        self._parts.append(rest)
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict) or event.get("token") != self.token:
                continue  # a forged line fails the grading; it cannot buy time either
            kind = event.get("event")
            phase = {"start": "answer", "answer": "check", "check": "check"}
            self.phase, self.since = phase.get(kind, "done"), time.monotonic()

    def deadline(self) -> float | None:
        """When the grader ends the run if nothing more arrives (None: only the wall-clock limit)."""
        if self.phase is None:
            return None
        budget = {"answer": self.limits.answer_s, "check": self.limits.check_s}
        return self.since + budget.get(self.phase, 0.0) + self.limits.grace_s


class SandboxUnavailable(RuntimeError):
    """bubblewrap cannot run here, and the instructor did not opt out of the sandbox."""


def bwrap_works() -> bool:
    """True if ``bwrap`` is installed and can create its namespaces here (and COMPANION_NO_BWRAP is not set)."""
    return _probe(shutil.which("bwrap"), os.environ.get("COMPANION_NO_BWRAP"))[0]


def why_no_sandbox() -> str:
    """Why bubblewrap is unusable here and how to fix it ('' when it works)."""
    return _probe(shutil.which("bwrap"), os.environ.get("COMPANION_NO_BWRAP"))[1]


def _size_supported() -> bool:
    return _probe(shutil.which("bwrap"), os.environ.get("COMPANION_NO_BWRAP"))[2]


FIX = (
    "Install bubblewrap (`apt-get install bubblewrap`) and allow unprivileged user namespaces "
    "(`sysctl kernel.unprivileged_userns_clone=1`, or `kernel.apparmor_restrict_unprivileged_userns=0`; "
    "in a container, run it with `--security-opt seccomp=unconfined` or `--privileged`), or grade on a "
    "machine where `bwrap --ro-bind / / true` works. To grade anyway with weaker isolation (the answers "
    "can read every file the grader can, the limits are per process), pass --unsafe-no-sandbox "
    "(allow_unsandboxed=True); the feedback and grades.csv then say so."
)


@functools.cache
def _probe(exe: str | None, opt_out: str | None) -> tuple[bool, str, bool]:
    """(works, why not and how to fix it, supports --size), cached per bwrap path and opt-out."""
    if opt_out == "1":
        return False, "COMPANION_NO_BWRAP=1 is set. " + FIX, False
    if not exe:
        return False, "bubblewrap (`bwrap`) is not installed. " + FIX, False
    base = [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--unshare-net"]
    tail = ["--unshare-pid", "true"]
    error = ""
    for size in (["--size", "1048576", "--tmpfs", "/tmp"], []):
        try:
            done = subprocess.run(
                base + size + tail,
                check=False,
                capture_output=True,
                timeout=20,
                text=True,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"`bwrap` could not be run ({exc}). " + FIX, False
        if done.returncode == 0:
            return True, "", bool(size)
        error = error or (done.stderr.strip().splitlines() or [""])[0]
    return (
        False,
        f"`bwrap` is installed but cannot create its namespaces here "
        f"({error or 'exit status ' + str(done.returncode)}). " + FIX,
        False,
    )


def sandbox_kind() -> str:
    return "bubblewrap" if bwrap_works() else UNSANDBOXED


def _package_root() -> str:
    """The folder that holds the ``companion`` package (the repository, in a checkout)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def _readable_roots() -> list[str]:
    """What the answer's process may read: the system's programs and libraries, the interpreter's
    prefixes and import path, the ``companion`` package folder; never the folder around the package."""
    root = _package_root()
    package = os.path.join(root, "companion")
    wanted = ["/usr", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d"]
    wanted += ["/etc/alternatives", "/etc/localtime"]
    wanted += [sys.prefix, sys.base_prefix, sys.exec_prefix, package]
    for entry in sys.path:
        path = os.path.realpath(entry) if entry else ""
        # the repository (or anything above it) would expose .git, assignments/, release/: skip it, and
        # what lies inside it (pytest's rootdir, tests/) unless a prefix holds it (a .venv in the checkout)
        if not path or root == path or root.startswith(path + os.sep):
            continue
        if path.startswith(root + os.sep):
            continue
        wanted.append(path)
    seen, roots = set(), []
    for path in sorted(map(os.path.realpath, wanted), key=len):
        if os.path.exists(path) and not any(
            path == r or path.startswith(r + os.sep) for r in seen
        ):
            seen.add(path)
            roots.append(path)
    return roots


def _command(scratch: str, use_bwrap: bool, hide: list, limits: Limits) -> list[str]:
    child = [sys.executable, "-m", "companion.coursework.child"]
    if not use_bwrap:
        return child
    roots = _readable_roots()
    binds = [arg for path in roots for arg in ("--ro-bind", path, path)]
    # merged /usr: /bin, /lib, ... are links into /usr; older systems have them as folders
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            binds += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            binds += ["--ro-bind", top, top]
    hidden = [
        arg
        for path in map(os.path.realpath, hide)
        if os.path.isdir(path)
        and any(path.startswith(r + os.sep) for r in roots)
        and not any(r == path or r.startswith(path + os.sep) for r in roots)
        for arg in ("--tmpfs", path)
    ]
    size = _size_supported()
    mb = 1024 * 1024
    tmp = ["--size", str(16 * mb)] if size else []
    capped = ["--size", str(limits.scratch_mb * mb)] if size else []
    return [
        "bwrap",
        *tmp,
        "--tmpfs",
        "/tmp",
        *binds,
        *hidden,
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        *capped,
        "--tmpfs",
        scratch,
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--die-with-parent",
        "--new-session",
        "--chdir",
        scratch,
        *child,
    ]


def run(
    job: dict, limits: Limits, hide: tuple = (), allow_unsandboxed: bool = False
) -> Outcome:
    """Run the child on ``job`` (see ``child.py``) and return its report, whatever the child does.

    The job (with the probes' source; never the judges) travels on the child's stdin; with bubblewrap only the folders of :func:`_readable_roots` exist inside the sandbox,
    and any of ``hide`` (the assignments, the grades) that lies under one of them is emptied. Without a
    usable bubblewrap this raises :class:`SandboxUnavailable` unless ``allow_unsandboxed``."""
    use_bwrap = bwrap_works()
    if not use_bwrap and not allow_unsandboxed:
        raise SandboxUnavailable(why_no_sandbox())
    if os.environ.get("COMPANION_NO_CGROUP") == "1":
        return _run(job, limits, hide, use_bwrap, None, "COMPANION_NO_CGROUP=1")
    group = cgroups.create(limits)
    if group is None:
        return _run(job, limits, hide, use_bwrap, None, "no writable cgroup")
    try:
        return _run(job, limits, hide, use_bwrap, group, "")
    finally:  # whatever happened: no process of the run outlives it, and no group is left behind
        group.kill()
        group.remove()


def _run(
    job: dict,
    limits: Limits,
    hide: tuple,
    use_bwrap: bool,
    group: "cgroups.Group | None",
    why_no_group: str,
) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="coursework-") as scratch:
        ours, theirs = socket.socketpair()
        token = secrets.token_hex(16)
        job = {
            **job,
            "report_fd": theirs.fileno(),
            "token": token,
            "scratch": scratch,
            "check_timeout": limits.check_s,
            "answer_timeout": limits.answer_s,
            "unshare_net": not use_bwrap,
            "rlimits": {
                "memory_mb": limits.memory_mb,
                "cpu_s": int(limits.wall_s) + 5,
                "file_mb": limits.file_mb,
                # RLIMIT_NPROC counts every process of the user: only in bubblewrap's user namespace is
                # that the sandbox's own (and root, as in containers, is exempt from it anyway)
                "processes": limits.processes if use_bwrap else 0,
            },
        }
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("http", "HTTP", "PYTHONSTARTUP"))
        }
        # every cache inside the scratch folder: torch sets TORCHINDUCTOR_CACHE_DIR in the grader's own
        # environment once it has used torch._dynamo, and a child that inherited it would try to write there
        env.update(
            OMP_NUM_THREADS="1",
            PYTHONDONTWRITEBYTECODE="1",
            MPLBACKEND="Agg",
            HOME=scratch,
            TMPDIR=scratch,
            PYTHONHASHSEED="0",
            XDG_CACHE_HOME=scratch,
            TORCHINDUCTOR_CACHE_DIR=os.path.join(scratch, "torchinductor"),
            TRITON_CACHE_DIR=os.path.join(scratch, "triton"),
        )
        with open(os.path.join(scratch, ".stderr"), "w+b") as err:
            command = _command(scratch, use_bwrap, list(hide), limits)
            if group is not None:  # the command joins the group before it starts
                command = group.command_prefix() + command
            proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=err,
                pass_fds=(theirs.fileno(),),
                cwd=scratch,
                env=env,
                start_new_session=True,
            )
            theirs.close()
            chunks: list[bytes] = []
            progress = _Progress(token, limits)
            reader = threading.Thread(
                target=_drain, args=(ours, chunks, progress), daemon=True
            )
            reader.start()
            try:
                proc.stdin.write(json.dumps(job).encode())
                proc.stdin.close()
            except BrokenPipeError:
                pass
            timed_out, stalled = _wait(proc, limits, progress)
            # every process of the run, also after a normal exit (one the answer left behind): the
            # cgroup's, wherever they went, or else the process group (under bubblewrap, everything in
            # its PID namespace has already died with the run)
            if group is not None:
                group.kill()
            _kill(proc)
            reader.join(timeout=10)
            ours.close()
            err.seek(0, os.SEEK_END)
            err.seek(max(0, err.tell() - 4000))
            tail = err.read().decode(errors="replace")
    events = []
    for line in b"".join(chunks).decode(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            event = None
        # a line that is not one of the child's JSON objects, or lacks the token, was not written by it
        if not isinstance(event, dict) or event.pop("token", None) != token:
            event = {"event": "forged"}
        events.append(event)
    return Outcome(
        events,
        proc.returncode,
        timed_out,
        tail,
        "bubblewrap" if use_bwrap else UNSANDBOXED,
        stalled,
        group is not None and group.oom(),
        group.describe() if group is not None else f"rlimits only ({why_no_group})",
    )


def _wait(proc: subprocess.Popen, limits: Limits, progress: _Progress):
    """Wait for the child; (True, None) past the wall-clock limit, (False, phase) when it reported nothing
    within its phase's limit plus grace (see :class:`_Progress`), (False, None) when it ended by itself."""
    wall = time.monotonic() + limits.wall_s
    while True:
        stall = progress.deadline()
        now = time.monotonic()
        if now >= wall:
            return True, None
        if stall is not None and now >= stall and progress.phase != "done":
            return False, progress.phase
        wake = min(wall, stall if stall is not None else wall)
        try:
            proc.wait(timeout=max(0.05, min(wake - now, 0.5)))
            return False, None
        except subprocess.TimeoutExpired:
            continue


def _drain(
    sock: socket.socket, chunks: list, progress: _Progress, cap: int = REPORT_CAP
) -> None:
    size = 0
    while True:
        try:
            block = sock.recv(65536)
        except OSError:
            return
        if not block:
            return
        if size < cap:
            chunks.append(block[: cap - size])
            progress.feed(block[: cap - size])
            size += len(block)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
