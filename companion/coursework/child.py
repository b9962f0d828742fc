"""The answer's process for one submission: ``python -m companion.coursework.child`` (started by the sandbox).

It reads its job from stdin (JSON: the assignment's spec, the answer cells, the probes' source and their
names in order, the run's seed, the time per check, the scratch folder, the report's file descriptor and
token), moves the report socket to a high, random descriptor and keeps a private reference to
``os.write``, removes the torch implementations the assignment forbids and installs the audit hook, runs
the setup and the answer cells, then every probe, and reports one JSON line per event, each with the token: ``start``, ``answer``, one
``check`` per probe in order (its observation, plain data from :func:`companion.coursework.probes.encode`,
or the error the answer raised), ``done``. It holds no check, no judge, no torch reference and no
tolerance: the grader decodes the observations and judges them. Errors travel as fields (kind, type,
first line, answer cell and line), which the grader sanitizes. It writes no file but its scratch folder's.
"""

import fcntl
import json
import os
import random
import signal
import sys
import tempfile
import traceback


class CheckTimeout(BaseException):
    """A check (or the answer cells) ran past its time; BaseException so a bare ``except Exception`` in the
    answer does not swallow it."""


def _alarm(seconds: float) -> None:
    signal.setitimer(signal.ITIMER_REAL, seconds)


def _on_alarm(signum, frame):
    raise CheckTimeout()


def _where(exc: BaseException) -> dict:
    """The answer cell and line of the innermost frame of the answer in the traceback, if any."""
    from companion.coursework.guard import ANSWER_FILE

    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if f.filename.startswith(ANSWER_FILE)
    ]
    if not frames:
        return {}
    f = frames[-1]
    cell = f.filename[len(ANSWER_FILE) :].strip(" >")
    return {"cell": int(cell) if cell.isdigit() else 0, "line": f.lineno or 0}


def describe(exc: BaseException) -> dict:
    """An error as plain fields; the grader writes (and trims) the sentence."""
    if isinstance(exc, CheckTimeout):
        return {"kind": "timeout"}
    if isinstance(exc, MemoryError):
        return {"kind": "memory", **_where(exc)}
    try:
        text = str(exc).strip()
    except BaseException:  # noqa: BLE001 — a __str__ that raises
        text = ""
    first = text.splitlines()[0][:1000] if text else ""
    kind = "assertion" if isinstance(exc, AssertionError) else "error"
    if isinstance(exc, NotImplementedError) and not first:
        kind = "not_implemented"
    return {"kind": kind, "type": type(exc).__name__, "text": first, **_where(exc)}


def _writes(mode, flags) -> bool:
    if mode:
        return any(c in mode for c in "wax+")
    return bool(
        (flags or 0) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND)
    )


def _inside(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or lies below it (both real paths)."""
    return path == folder or path.startswith(folder + os.sep)


def _audit(scratch: str, allow_net: bool, removed: tuple = (), refused: list = ()):
    """An audit hook: no writes outside the scratch folder, no wrapping of descriptors, no new processes, no
    signals to others, no sockets, no code from a file the answer can write, and no new import of a module
    the grader removed (``removed``; each refusal is appended to ``refused``). Python offers no way to
    remove an audit hook."""
    me = os.getpid()
    scratch = os.path.realpath(scratch)
    writable = {scratch, "/tmp", "/dev/shm", os.path.realpath(tempfile.gettempdir())}
    writable = tuple(folder + os.sep for folder in writable)
    # the installation: the import path as the answer finds it (the interpreter, its packages, the course's
    # package), which may lie under /tmp (a checkout there) but which the answer cannot write (this hook
    # refuses writes outside the scratch folder; bubblewrap binds it read-only); never the scratch folder,
    # nor a folder that holds a writable one
    installed = {os.path.realpath(p) + os.sep for p in sys.path if p}
    installed = tuple(
        p
        for p in installed
        if not _inside(p.rstrip(os.sep), scratch)
        and not any(w.startswith(p) for w in writable)
    )

    def _written(path) -> bool:
        """A path in a folder the answer can write to (its scratch folder, /tmp, /dev/shm), outside the
        installation."""
        if not isinstance(path, (str, bytes)) or os.fsdecode(path).startswith("<"):
            return False  # not a file: "<answer cell 1>", "<string>"
        real = os.path.realpath(os.fsdecode(path))
        if _inside(real, scratch):
            return True
        real += os.sep
        return real.startswith(writable) and not real.startswith(installed)

    def _is_code(path) -> bool:
        return os.fsdecode(path).endswith(
            (".py", ".pyc", ".pyw", ".so", ".pth", ".zip")
        )

    def hook(event, args):
        if event == "open" and isinstance(args[0], int):
            # open(fd) / os.fdopen / io.FileIO(fd): the answer has no descriptor of its own to wrap
            raise PermissionError("the grader forbids opening a file descriptor")
        if (
            event == "open"
            and isinstance(args[0], (str, bytes))
            and _writes(args[1], args[2])
        ):
            path = os.path.realpath(os.fsdecode(args[0]))
            if not (_inside(path, scratch) or path == os.devnull):
                raise PermissionError(
                    f"the grader allows writing only in the scratch folder, not {path}"
                )
        elif event in (
            "os.remove",
            "os.rename",
            "os.rmdir",
            "os.truncate",
            "os.chmod",
            "os.link",
            "os.symlink",
            "shutil.rmtree",
            "shutil.move",
            "os.mkdir",
            "os.chown",
            "os.utime",
        ):
            path = (
                os.path.realpath(os.fsdecode(args[0]))
                if isinstance(args[0], (str, bytes))
                else scratch
            )
            if not _inside(path, scratch):
                raise PermissionError(
                    f"the grader forbids {event} outside the scratch folder"
                )
        elif event in (
            "subprocess.Popen",
            "os.system",
            "os.exec",
            "os.posix_spawn",
            "os.spawn",
            "os.fork",
            "os.forkpty",
            "pty.spawn",
            "ctypes.dlopen",
            "os.startfile",
            "resource.setrlimit",
            "resource.prlimit",
        ):
            raise PermissionError(f"the grader forbids {event}")
        elif event in ("os.kill", "os.killpg") and args[0] not in (me, 0):
            raise PermissionError("the grader forbids signals to other processes")
        elif event.startswith("socket.") and not allow_net:
            raise PermissionError("no network while grading")
        elif event == "compile" and _written(args[1]):
            raise PermissionError("the grader runs no code the answer wrote to a file")
        name = event == "import" and next(
            (m for m in removed if args[0] == m or args[0].startswith(m + ".")), None
        )
        if name:
            refused.append(name)
            raise ImportError(
                f"the from-scratch rule: {name} is not in the grader's process"
            )
        if event == "open" and _written(args[0]) and _is_code(args[0]):
            raise PermissionError("the grader runs no code the answer wrote to a file")

    return hook


def _load_generated_code() -> None:
    """Import, before the audit hook, the modules of torch that write Python source to the temporary
    folder and import it, which the hook would refuse later as code the answer wrote: torch.distributed's
    remote-module template, which torch._dynamo imports (lazily; with torch 2.9 the first optimizer step
    does). A few milliseconds; absent where torch has no torch.distributed."""
    try:
        import torch.distributed.nn.api.remote_module  # noqa: F401
    except Exception:  # noqa: BLE001 - torch without distributed support (e.g. some macOS builds)
        pass


CLONE_NEWNET = 0x40000000


def _limit(rlimits: dict, unshare_net: bool) -> None:
    """The sandbox's limits, set by the child on itself before any answer runs (the audit hook then forbids
    raising them)."""
    import resource

    mb = 1024 * 1024
    resource.setrlimit(resource.RLIMIT_CPU, (rlimits["cpu_s"], rlimits["cpu_s"] + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (rlimits["file_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if rlimits.get(
        "processes"
    ):  # counted per user namespace: set only under bubblewrap
        resource.setrlimit(resource.RLIMIT_NPROC, (rlimits["processes"],) * 2)
    if unshare_net:  # without bubblewrap: a network namespace of its own where the kernel allows (root)
        import ctypes

        ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNET)


def _limit_memory(memory_mb: int) -> None:
    """``RLIMIT_AS``: the address space in use once torch and the checks are loaded, plus ``memory_mb``
    for the answer (a CUDA build of torch maps several GB of libraries at import; the limit is on what
    the answer adds)."""
    import resource

    with open("/proc/self/status") as status:
        in_use_kb = int(status.read().split("VmSize:")[1].split()[0])
    limit = in_use_kb * 1024 + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _hide_report(fd: int) -> int:
    """Move the report socket to a random high descriptor (close-on-exec) and close the original."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    top = min(soft if soft > 0 else 1024, 4096)
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, random.randrange(top // 4, top - 16))
    os.close(fd)
    return high


def main() -> None:
    job = json.loads(sys.stdin.read())
    # ``python -m`` put the working folder (the scratch folder) first on the import path: nothing the
    # answer writes there is importable
    scratch = os.path.realpath(job["scratch"])
    sys.path[:] = [
        p for p in sys.path if p and not _inside(os.path.realpath(p), scratch)
    ]
    fd, token, write = _hide_report(job.pop("report_fd")), job.pop("token"), os.write
    _limit(job["rlimits"], job["unshare_net"])

    def report(**event):
        data = (json.dumps({**event, "token": token}) + "\n").encode()
        while data:
            data = data[write(fd, data) :]

    import torch

    from companion.coursework import guard, probes

    _load_generated_code()
    torch.set_num_threads(1)
    spec, limit, seed = job["spec"], job["check_timeout"], job["seed"]
    refused: list[str] = []
    _limit_memory(job["rlimits"]["memory_mb"])  # before the guards and the answer
    removed = guard.remove(spec["remove"], refused)
    # the probes: sandbox-side code only (no judge, reference or tolerance is in their source)
    module = {"__name__": "__probes__", "__builtins__": __builtins__}
    exec(compile(job.pop("probes_source"), "<probes>", "exec"), module)
    signal.signal(signal.SIGALRM, _on_alarm)
    os.chdir(job["scratch"])
    sys.addaudithook(_audit(job["scratch"], False, tuple(removed), refused))

    namespace = {"__name__": guard.ANSWER_MODULE, "__builtins__": __builtins__}
    report(event="start")
    try:
        _alarm(job["answer_timeout"])
        exec(compile(spec["setup"], "<setup>", "exec"), namespace)
        for i, source in enumerate(job["answers"], 1):
            exec(compile(source, f"{guard.ANSWER_FILE} {i}>", "exec"), namespace)
        _alarm(0)
        answer_error = None
    except BaseException as exc:  # noqa: BLE001 — anything the answer does is reported, never raised
        _alarm(0)
        answer_error = describe(exc)
    report(event="answer", error=answer_error, refused=refused[:])
    for name, probe_name in job["probes"]:
        if answer_error is not None:
            report(event="check", name=name, answer_failed=True)
            continue
        torch.manual_seed(seed)
        before = len(refused)
        try:
            _alarm(limit)
            missing = [n for n in spec["required"] if n not in namespace]
            if missing:
                raise NameError(f"the answer does not define {', '.join(missing)}")
            obs = probes.encode(module[probe_name](namespace, seed))
            _alarm(0)
            report(event="check", name=name, obs=obs)
        except BaseException as exc:  # noqa: BLE001
            _alarm(0)
            report(
                event="check",
                name=name,
                error=describe(exc),
                refused=refused[before:],
            )
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    report(event="done", refused=refused[:], cpu_s=usage.ru_utime + usage.ru_stime)
    sys.stdout.flush()
    os._exit(
        0
    )  # no exit handlers or finalizers of the answer's objects run after "done"


if __name__ == "__main__":
    main()
