"""A cgroup per submission run: kernel limits that hold for every process of the run, whatever it does.

The grader (the trusted side) creates the group before the run and starts the run's command through
:meth:`Group.command_prefix`, a shell that moves itself into the group and then ``exec``s the command, so
that nothing of the answer ever runs outside it. The group limits:

- memory, counting what ``RLIMIT_AS`` does not: shared memory (``memfd_create``, ``/dev/shm``, the
  sandbox's tmpfs folders), page cache and swap (v1 ``memory.limit_in_bytes`` with
  ``memory.memsw.limit_in_bytes``, or ``memory.swappiness`` 0; v2 ``memory.max`` and
  ``memory.swap.max`` 0);
- processes and threads (``pids.max``), which also holds for root and for forks the audit hook never
  sees (``ctypes.pythonapi.fork``, ``_posixsubprocess.fork_exec``);
- CPU: one CPU's worth of time (the child runs torch single-threaded), where the cpu controller is
  available (the group is made without it otherwise, and :meth:`Group.describe` says so).

At the end of the run :meth:`Group.kill` ends every process in the group (daemons that left the process
group and session included) and :meth:`Group.remove` removes its folders.

Both cgroup versions: v2 (one hierarchy; the group is made beside the grader's own cgroup, in its parent,
which must offer the memory and pids controllers, and cpu where it can: root, or a delegated subtree) and v1 (one
hierarchy per controller; the group is made inside the grader's own cgroup of each). Where neither can
be written, or the memory or pids controller is missing, :func:`create` returns None and the run has its
rlimits only.
"""

import os
import posixpath
import secrets
import signal
import time

# What the child holds once torch, the removal and the probes are loaded, which the answer's
# ``Limits.memory_mb`` comes on top of. Measured with torch 2.13 (CPU build) and the adamax model answer
# with all its checks, with bubblewrap and without: the child's peak RSS was 480 MiB (224 anonymous, 256
# of mapped files), the run's cgroup peaked at 227 MiB (the libraries' pages were already cached, and
# charged, elsewhere). 1024 MiB leaves room for a cold page cache, a CUDA build's larger libraries and
# other assignments' probes.
HEADROOM_MB = 1024
CPU_PERIOD_US = 100_000
REQUIRED = ("memory", "pids")  # without both, no group: the run has its rlimits only

# moves the shell into each group ("$$", the process that then becomes the command), then runs the command
_JOIN = (
    'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, value) -> None:
    with open(path, "w") as f:
        f.write(str(value))


def _pids(folder: str) -> list[int]:
    try:
        return [int(p) for p in _read(os.path.join(folder, "cgroup.procs")).split()]
    except (OSError, ValueError):
        return []


def _fields(text: str) -> dict[str, int]:
    """``key value`` lines (memory.events, memory.oom_control) as a dict."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """The cgroup file systems: (mount point, root inside the hierarchy, type, options)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            head, _, tail = line.partition(" - ")
            fields, extra = head.split(), tail.split()
            if (
                len(fields) >= 5
                and len(extra) >= 3
                and extra[0] in ("cgroup", "cgroup2")
            ):
                root = fields[3].replace("\\040", " ")
                point = fields[4].replace("\\040", " ")
                out.append((point, root, extra[0], set(extra[2].split(","))))
    return out


def _own() -> dict[str, str]:
    """The grader's own cgroup in each hierarchy: controller (or "" for v2) -> path."""
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            parts = line.rstrip("\n").split(":", 2)
            if len(parts) == 3:
                for name in parts[1].split(",") if parts[1] else [""]:
                    out[name] = parts[2]
    return out


def _folder(point: str, root: str, path: str) -> str:
    """Where a cgroup path of /proc/self/cgroup lies under a mount of (part of) its hierarchy."""
    rel = posixpath.relpath(path, root) if path.startswith(root) else "."
    folder = os.path.normpath(os.path.join(point, rel))
    return folder if os.path.isdir(folder) else point


class Group:
    """One run's cgroup: a folder per controller (v2: the same folder for all; v1: memory, pids and,
    where mounted, cpu and freezer)."""

    def __init__(self, version: int, folders: dict[str, str]):
        self.version, self.folders = version, folders
        self.memory_mb, self.processes, self.swap, self.cpu = 0, 0, "", False

    def _distinct(self) -> list[str]:
        return list(dict.fromkeys(self.folders.values()))

    def command_prefix(self) -> list[str]:
        """Put before a command: it joins the group, then ``exec``s the command (exit 125 if it cannot)."""
        procs = [os.path.join(f, "cgroup.procs") for f in self._distinct()]
        return ["/bin/sh", "-c", _JOIN, "sh", *procs, "--"]

    def describe(self) -> str:
        return (
            f"cgroup v{self.version}: memory {self.memory_mb} MiB (shared memory counted"
            f"{self.swap}), {self.processes} processes, "
            + ("1 CPU" if self.cpu else "CPU not limited (no cpu controller)")
        )

    def members(self) -> list[int]:
        return sorted({p for f in self._distinct() for p in _pids(f)})

    def kill(self, wait_s: float = 5.0) -> bool:
        """SIGKILL every process in the group, until none is left (True) or ``wait_s`` passed."""
        end = time.monotonic() + wait_s
        first = self._distinct()[0]
        if os.path.exists(os.path.join(first, "cgroup.kill")):  # v2, Linux 5.14
            try:
                _write(os.path.join(first, "cgroup.kill"), 1)
            except OSError:
                pass
        freezer = self.folders.get("freezer")
        while self.members():
            # v1: frozen, no process can fork while its siblings are being killed; SIGKILL lands on thaw
            if freezer:
                self._freeze(freezer, "FROZEN", min(end, time.monotonic() + 0.5))
            for pid in self.members():
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            if freezer:
                self._freeze(freezer, "THAWED", end)
            if time.monotonic() > end:
                return not self.members()
            time.sleep(0.01)
        return True

    @staticmethod
    def _freeze(folder: str, state: str, end: float) -> bool:
        try:
            _write(os.path.join(folder, "freezer.state"), state)
            while _read(os.path.join(folder, "freezer.state")).strip() != state:
                if time.monotonic() > end:
                    return False
                time.sleep(0.005)
            return True
        except OSError:
            return False

    def oom(self) -> bool:
        """Whether the group's memory limit ended a process of the run (the OOM killer), or, where the
        kernel does not count its kills, whether the limit was ever hit."""
        memory = self.folders["memory"]
        try:
            if self.version == 2:
                events = _fields(_read(os.path.join(memory, "memory.events")))
                return events.get("oom_kill", 0) > 0 or events.get("oom", 0) > 0
            control = _fields(_read(os.path.join(memory, "memory.oom_control")))
            if "oom_kill" in control:  # Linux 4.13
                return control["oom_kill"] > 0
            return int(_read(os.path.join(memory, "memory.failcnt"))) > 0
        except (OSError, ValueError):
            return False

    def peak_mb(self) -> float | None:
        """The most memory the group held (v1 max_usage_in_bytes, v2 memory.peak), in MiB."""
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int(_read(os.path.join(self.folders["memory"], name))) / 2**20
        except (OSError, ValueError):
            return None

    def remove(self, wait_s: float = 5.0) -> bool:
        """Remove the group's folders (after :meth:`kill`); True when none is left."""
        end = time.monotonic() + wait_s
        left = self._distinct()
        while left:
            for folder in list(left):
                try:
                    os.rmdir(folder)
                    left.remove(folder)
                except FileNotFoundError:
                    left.remove(folder)
                except OSError:
                    pass
            if not left or time.monotonic() > end:
                break
            self.kill(wait_s=0.2)  # a process still there (EBUSY)
            time.sleep(0.02)
        return not left


def create(limits) -> Group | None:
    """A new group for one run (``limits``: a :class:`~companion.coursework.sandbox.Limits`), limited to
    ``HEADROOM_MB + limits.memory_mb`` of memory, ``limits.processes`` processes and threads and one CPU;
    None where no cgroup can be made here (not root, no delegated subtree, read-only, controllers
    missing)."""
    name = f"coursework-{os.getpid()}-{secrets.token_hex(4)}"
    mounts, own = _mounts(), _own()
    for make in (_v2, _v1):
        group = make(mounts, own, name)
        if group is None:
            continue
        try:
            _configure(group, HEADROOM_MB + limits.memory_mb, limits.processes)
            return group
        except OSError:
            group.remove(wait_s=1.0)
    return None


def _v2(mounts, own, name) -> Group | None:
    if "" not in own:
        return None
    for point, root, kind, _ in mounts:
        if kind != "cgroup2":
            continue
        # beside the grader's own cgroup: a cgroup with processes cannot also hold groups with controllers
        parent = _folder(point, root, posixpath.dirname(own[""]))
        try:
            offered = set(_read(os.path.join(parent, "cgroup.controllers")).split())
            if not set(REQUIRED) <= offered:
                continue
            wanted = [c for c in (*REQUIRED, "cpu") if c in offered]
            enabled = set(_read(os.path.join(parent, "cgroup.subtree_control")).split())
            if not set(wanted) <= enabled:
                _write(
                    os.path.join(parent, "cgroup.subtree_control"),
                    " ".join("+" + c for c in wanted),
                )
            folder = os.path.join(parent, name)
            os.mkdir(folder)
        except OSError:
            continue
        return Group(2, {c: folder for c in wanted})
    return None


def _v1(mounts, own, name) -> Group | None:
    folders = {}
    for controller in (*REQUIRED, "cpu", "freezer"):
        for point, root, kind, options in mounts:
            if kind == "cgroup" and controller in options and controller in own:
                folder = os.path.join(_folder(point, root, own[controller]), name)
                try:
                    os.mkdir(folder)
                    folders[controller] = folder
                except OSError:
                    pass
                break
        if controller in REQUIRED and controller not in folders:
            Group(1, folders).remove(wait_s=1.0)
            return None
    return Group(1, folders)


def _configure(group: Group, memory_mb: int, processes: int) -> None:
    """Write the limits: memory and processes, or OSError; swap and CPU where the kernel allows."""
    memory, pids = group.folders["memory"], group.folders["pids"]
    limit = memory_mb * 2**20
    if group.version == 2:
        _write(os.path.join(memory, "memory.max"), limit)
        group.swap = _try(os.path.join(memory, "memory.swap.max"), 0, ", no swap")
    else:
        _write(os.path.join(memory, "memory.limit_in_bytes"), limit)
        # memory and swap together (with swap accounting), or else no swapping
        group.swap = _try(
            os.path.join(memory, "memory.memsw.limit_in_bytes"),
            limit,
            ", swap included",
        ) or _try(os.path.join(memory, "memory.swappiness"), 0, ", no swap")
    _write(os.path.join(pids, "pids.max"), processes)
    group.memory_mb, group.processes = memory_mb, processes
    cpu = group.folders.get("cpu")
    if cpu and group.version == 2:
        group.cpu = bool(
            _try(os.path.join(cpu, "cpu.max"), f"{CPU_PERIOD_US} {CPU_PERIOD_US}", "1")
        )
    elif cpu:
        group.cpu = bool(
            _try(os.path.join(cpu, "cpu.cfs_period_us"), CPU_PERIOD_US, "1")
            and _try(os.path.join(cpu, "cpu.cfs_quota_us"), CPU_PERIOD_US, "1")
        )


def _try(path: str, value, said: str) -> str:
    """Write ``value`` to ``path``; ``said`` if it could, else ''."""
    if not os.path.exists(path):
        return ""
    try:
        _write(path, value)
        return said
    except OSError:
        return ""
