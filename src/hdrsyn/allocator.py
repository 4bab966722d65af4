"""Keep freed memory for reuse: glibc's malloc set to the state it reaches on its own.

A reconstruction or a training step allocates and frees the same large maps over and over (a
608 × 448 × 8 float map is 8.7 MB). glibc serves blocks above its mmap threshold (128 KB at
start) with fresh pages from the kernel and gives them back when freed, and it returns free
memory at the top of its heap beyond its trim threshold; it raises both thresholds by itself,
but only after it has freed such blocks, so a process's first reconstruction faults in every
page again and again: 250k minor page faults and 0.5 s of kernel time for one 1 MP photo.
Setting the thresholds where glibc would end up (blocks up to 32 MB from the heap, its maximum)
and keeping up to 512 MB of freed heap for reuse cuts that to about 55k faults and a 1 MP
photo's first reconstruction from about 1.9 to 1.5 s (docs/performance.md); blocks larger than
32 MB (a 12 MP plane) still go back to the kernel when freed.

Applied by the command line (``hdrsyn.cli.main``) for its own process, never by ``import
hdrsyn``: a library must not retune its host application's allocator (an application that
wants it calls :func:`keep_freed_memory` itself). On glibc only, and not at all when the
process's environment sets either threshold itself (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_`` or a ``glibc.malloc`` entry of ``GLIBC_TUNABLES``), so that a
user's choice stands.
"""

from __future__ import annotations

import ctypes
import os
import platform

MMAP_THRESHOLD = 32 << 20  # glibc's largest (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)
TRIM_THRESHOLD = 512 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)


def keep_freed_memory(environ=os.environ) -> bool:
    """Set glibc's mmap and trim thresholds (module doc); True if they were set."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"} & set(environ) or (
        "glibc.malloc" in environ.get("GLIBC_TUNABLES", "")
    ):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and
                mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))  # fmt: skip
