"""Run one submission's grading process in a sandbox and collect its report.

Limits, in layers (each applies where the one before it is unavailable, and all where they can):

- a process of its own, in its own session, killed (with its group) at the wall-clock limit;
- ``RLIMIT_AS`` (address space, so endless allocation ends in MemoryError), ``RLIMIT_CPU``, ``RLIMIT_FSIZE``
  and ``RLIMIT_CORE`` = 0, which the child sets on itself before it runs any answer (no ``preexec_fn``: the
  grader starts children from several threads);
- bubblewrap (``bwrap``, Debian's ``bubblewrap``) where it is installed and can create namespaces: the whole
  file system read-only except a fresh scratch folder, a private ``/tmp``, no network, its own PID space;
- otherwise the network namespace is unshared where the kernel allows (root), and the child installs an
  audit hook that refuses writes outside its scratch folder, sockets, new processes and signals to others.

The report comes back over a pipe: JSON lines read by the grader, which alone writes grades.
"""

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass


@dataclass
class Limits:
    wall_s: float = 120.0  # the whole submission, torch's import included
    check_s: float = 20.0  # one check
    answer_s: float = 20.0  # running the answer cells
    memory_mb: int = 3072  # address space; importing torch takes about 700 MB of it
    file_mb: int = 16  # the largest file the child may write (its scratch folder)


@dataclass
class Outcome:
    events: list
    returncode: int | None
    timed_out: bool
    stderr_tail: str
    sandbox: str


@functools.cache
def bwrap_works() -> bool:
    """True if ``bwrap`` is installed and can create its namespaces here (and COMPANION_NO_BWRAP is not set)."""
    exe = shutil.which("bwrap")
    if not exe or os.environ.get("COMPANION_NO_BWRAP") == "1":
        return False
    try:
        return (
            subprocess.run(
                [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--unshare-net", "true"],
                capture_output=True,
                timeout=20,
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def sandbox_kind() -> str:
    return "bubblewrap" if bwrap_works() else "rlimits + audit hook"


def _command(scratch: str, use_bwrap: bool, hide: list) -> list[str]:
    child = [sys.executable, "-m", "companion.coursework.child"]
    if not use_bwrap:
        return child
    needed = [os.path.realpath(p) for p in (__file__, sys.executable, sys.prefix)]
    hidden = [
        arg
        for path in map(os.path.realpath, hide)
        if os.path.isdir(path)
        and not any(n == path or n.startswith(path + os.sep) for n in needed)
        for arg in ("--tmpfs", path)
    ]
    # the private /tmp would hide a checkout or a virtual environment that lives under /tmp (as CI's may):
    # bind those back, read-only, before hiding the grader's folders and opening the scratch folder
    package_root = os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    )
    under_tmp = sorted(
        {
            path
            for path in map(os.path.realpath, [sys.prefix, package_root, *sys.path])
            if path.startswith("/tmp/") and os.path.exists(path)
        }
    )
    keep = [arg for path in under_tmp for arg in ("--ro-bind", path, path)]
    return [
        "bwrap",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        *keep,
        *hidden,
        "--bind",
        scratch,
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


def run(job: dict, limits: Limits, hide: tuple = ()) -> Outcome:
    """Run the child on ``job`` (see ``child.py``) and return its report, whatever the child does.

    The checks file is copied into the scratch folder (the child deletes it once imported); with bubblewrap the
    folders in ``hide`` (the assignments, the grades) are empty inside the sandbox."""
    use_bwrap = bwrap_works()
    with tempfile.TemporaryDirectory(prefix="coursework-") as scratch:
        checks_copy = os.path.join(
            scratch,
            os.path.basename(os.path.dirname(job["checks_path"])) + "_checks.py",
        )
        shutil.copyfile(job["checks_path"], checks_copy)
        read_end, write_end = os.pipe()
        job = {
            **job,
            "checks_path": checks_copy,
            "report_fd": write_end,
            "scratch": scratch,
            "check_timeout": limits.check_s,
            "answer_timeout": limits.answer_s,
            "unshare_net": not use_bwrap,
            "rlimits": {
                "memory_mb": limits.memory_mb,
                "cpu_s": int(limits.wall_s) + 5,
                "file_mb": limits.file_mb,
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
            proc = subprocess.Popen(
                _command(scratch, use_bwrap, list(hide)),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=err,
                pass_fds=(write_end,),
                cwd=scratch,
                env=env,
                start_new_session=True,
            )
            os.close(write_end)
            chunks: list[bytes] = []
            reader = threading.Thread(
                target=_drain, args=(read_end, chunks), daemon=True
            )
            reader.start()
            try:
                proc.stdin.write(json.dumps(job).encode())
                proc.stdin.close()
            except BrokenPipeError:
                pass
            timed_out = False
            try:
                proc.wait(timeout=limits.wall_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill(proc)
            reader.join(timeout=10)
            err.seek(0, os.SEEK_END)
            err.seek(max(0, err.tell() - 4000))
            tail = err.read().decode(errors="replace")
    events = []
    for line in b"".join(chunks).decode(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return Outcome(
        events,
        proc.returncode,
        timed_out,
        tail,
        "bubblewrap" if use_bwrap else "rlimits + audit hook",
    )


def _drain(fd: int, chunks: list, cap: int = 4 * 1024 * 1024) -> None:
    size = 0
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        while True:
            block = pipe.read(65536)
            if not block:
                return
            if size < cap:
                chunks.append(block[: cap - size])
                size += len(block)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
