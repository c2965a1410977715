"""Shared plumbing of the peer benchmarks: one fresh subprocess per measurement, a memory cap,
and the machine description that goes with every result.

A measurement is a call ``worker(**params) -> dict`` in a module of this package. The public
functions of the modules call :func:`run_in_subprocess`, which starts
``python -m benchmarks.peers.<module> --worker '<json params>'`` in the repository root, watches
its resident memory (the process and its children), and returns the worker's dict, or a dict with
``status`` saying why there is none (a failure, a time-out, or the memory cap).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
MAIN_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
BRIAN2_PYTHON = REPO_ROOT / ".venv-brian2" / "bin" / "python"

#: marker of the line that carries a worker's JSON result on stdout
RESULT_MARK = "@@PEER_RESULT@@ "

#: default cap on the resident memory of a measurement's process tree (GiB); the machine is shared
DEFAULT_MEM_CAP_GB = float(os.environ.get("QGEN_PEER_MEM_CAP_GB", "10"))


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def current_rss_bytes() -> int:
    """Resident set size of this process now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def median(xs):
    return float(statistics.median(xs)) if xs else None


def machine_info() -> dict:
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def _tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            # the command name may hold spaces: split after its closing parenthesis
            fields = stat[stat.rindex(")") + 2:].split()
            ppid = int(fields[1])
            rss_pages = int(fields[21])
        except (OSError, ValueError, IndexError):
            continue
        p = int(entry)
        children.setdefault(ppid, []).append(p)
        rss[p] = rss_pages * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total


def run_in_subprocess(module: str, params: dict, *, python: str | os.PathLike | None = None,
                      timeout_s: float = 3600.0, mem_cap_gb: float | None = None,
                      env: dict | None = None, package: str = "benchmarks.peers") -> dict:
    """Run ``<package>.<module>.worker(**params)`` in a fresh Python process.

    Returns the worker's result dict, or ``{"status": "..."}`` when the process fails, runs past
    ``timeout_s``, or its process tree exceeds ``mem_cap_gb`` of resident memory (it is killed
    then, and the status says "out of memory (cap)").
    """
    if python is None:
        python = MAIN_PYTHON if MAIN_PYTHON.exists() else sys.executable
    python = str(python)
    cap = DEFAULT_MEM_CAP_GB if mem_cap_gb is None else mem_cap_gb
    run_env = dict(os.environ)
    run_env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + run_env["PYTHONPATH"]
                                               if run_env.get("PYTHONPATH") else "")
    run_env.setdefault("PYTHONUNBUFFERED", "1")
    flags = sys.modules.get("qgen.runtime.xla_flags")
    if package == "benchmarks.peers" and flags is not None:  # a peer runs as its users run it: no qgen settings
        run_env.pop("XLA_FLAGS", None)
        if flags.ORIGINAL is not None:
            run_env["XLA_FLAGS"] = flags.ORIGINAL
    if env:
        run_env.update(env)
    cmd = [python, "-m", f"{package}.{module}", "--worker", json.dumps(params)]
    with tempfile.TemporaryFile(mode="w+") as out, tempfile.TemporaryFile(mode="w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=run_env, stdout=out, stderr=err,
                                start_new_session=True, preexec_fn=_die_with_parent)
        peak_tree = 0
        killed_for = None
        stop = threading.Event()

        def watch():
            nonlocal peak_tree, killed_for
            while not stop.is_set():
                rss = _tree_rss_bytes(proc.pid)
                peak_tree = max(peak_tree, rss)
                if rss > cap * 2**30:
                    killed_for = f"out of memory (cap): resident memory passed {cap:g} GiB"
                    _kill_group(proc)
                    return
                if time.perf_counter() - t0 > timeout_s:
                    killed_for = f"timed out after {timeout_s:g} s"
                    _kill_group(proc)
                    return
                stop.wait(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        rc = proc.wait()
        stop.set()
        watcher.join()
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    result = None
    for line in stdout.splitlines():
        if line.startswith(RESULT_MARK):
            result = json.loads(line[len(RESULT_MARK):])
    if result is None:
        if killed_for:
            status = killed_for
        elif rc < 0:
            status = f"failed: killed by signal {-rc} ({signal.Signals(-rc).name})"
        else:
            tail = "\n".join(stderr.strip().splitlines()[-15:])
            status = f"failed: exit status {rc}: {tail}"
        result = {"status": status}
    result.setdefault("status", "ok")
    result["subprocess_wall_s"] = wall
    result["subprocess_peak_tree_rss_bytes_sampled"] = peak_tree
    result["command"] = " ".join(cmd[:3]) + " --worker '" + cmd[4] + "'"
    return result


def _die_with_parent() -> None:
    """In the worker before exec: be killed when the benchmark that started it dies. The worker has its
    own session (so that its whole tree can be killed at the memory cap), which a signal to the
    benchmark's process group, e.g. from ``timeout``, does not reach."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def worker_main(worker, argv=None) -> bool:
    """If argv is ``--worker JSON``, run ``worker(**params)``, print its result line, return True."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) >= 2 and argv[0] == "--worker":
        params = json.loads(argv[1])
        cpus = params.pop("cpus", None)
        if cpus:  # pin the measurement (and the threads of its libraries) to the first cpus cores
            os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:int(cpus)]))
        result = worker(**params)
        if cpus:
            result["cpus"] = int(cpus)
        sys.stdout.flush()
        print(RESULT_MARK + json.dumps(result), flush=True)
        return True
    return False
