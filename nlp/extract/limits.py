"""Process helpers of the extract stage: tie a child's life to its parent's, cap its memory,
read its memory use (Linux; elsewhere each helper does what it can and says so).

Stage: extract. Used by :mod:`nlp.extract.worker` (the worker processes) and
:mod:`nlp.extract.ocr` (the Tesseract subprocesses a worker starts).
"""
from __future__ import annotations

import logging
import os
import signal
import sys

log = logging.getLogger(__name__)

MB = 1024 * 1024
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int | None = None, sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies
    (``prctl(PR_SET_PDEATHSIG)``), then exit at once if the parent is already gone (it may
    have died between the fork and this call). Returns False where prctl is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        return False
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)
    return True


def die_with_parent_preexec() -> None:
    """``preexec_fn`` for subprocesses a worker starts (Tesseract): they die with the worker."""
    die_with_parent(None)


def vm_bytes(pid: int | str = "self") -> int:
    """Virtual memory size of a process in bytes, 0 when unknown."""
    return _statm(pid, 0)


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size of a process in bytes, 0 when unknown (or the process is gone)."""
    return _statm(pid, 1)


def _statm(pid: int | str, field: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[field]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def cap_address_space(max_memory_mb: int) -> int:
    """Cap this process's address space at its current size plus ``max_memory_mb``
    (``RLIMIT_AS``): an allocation beyond fails (``MemoryError`` in Python; native parsers
    usually abort). Relative to the current size because a forked worker starts with the
    parent's libraries mapped. Returns the limit in bytes (0 when it could not be set)."""
    import resource

    limit = vm_bytes() + max_memory_mb * MB
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ValueError, OSError) as exc:  # pragma: no cover - platform without RLIMIT_AS
        log.warning("cannot cap the worker's memory: %s", exc)
        return 0
    return limit


def reset_peak_rss() -> None:
    """Reset this process's peak RSS (``VmHWM``, what ``wait4`` reports as ``ru_maxrss``), so
    that the peak seen at a worker's death is the peak of its last document."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
