"""hdrsyn.allocator: glibc keeps freed maps for reuse, unless the user set its thresholds."""

import os
import platform
import subprocess
import sys

import pytest

from hdrsyn.allocator import keep_freed_memory

glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)

# a 20 MB map made and freed ten times: page faults of the last nine
REPEATED_MAP_FAULTS = """
import resource, sys
if sys.argv[1] == "hdrsyn":
    import hdrsyn
import torch
faults = []
for _ in range(10):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    map = torch.empty(5 << 20)
    map.fill_(1)
    del map
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sum(faults[1:]))
"""


def _faults(mode: str) -> int:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    run = subprocess.run([sys.executable, "-c", REPEATED_MAP_FAULTS, mode], env=environ,
                         capture_output=True, text=True, check=True)  # fmt: skip
    return int(run.stdout)


@glibc
def test_a_freed_map_is_reused_without_faulting_in_fresh_pages():
    """Without hdrsyn, glibc gives each 20 MB map back to the kernel and faults in its 5120
    pages again for the next (measured: 6 to 8 of the 9; 6 maps can come to a few pages under
    6 × 5120); after importing hdrsyn the maps reuse the first one's pages (measured: 0 or 1
    of the 9 fault, when a small allocation has split the freed block)."""
    assert _faults("plain") > 5 * 5120
    assert _faults("hdrsyn") < 2.5 * 5120


@glibc
def test_a_users_own_malloc_settings_stand():
    assert keep_freed_memory({}) is True
    assert keep_freed_memory({"MALLOC_TRIM_THRESHOLD_": "0"}) is False
    assert keep_freed_memory({"MALLOC_MMAP_THRESHOLD_": "65536"}) is False
    assert keep_freed_memory({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}) is False
    assert keep_freed_memory({"GLIBC_TUNABLES": "glibc.rtld.nns=2"}) is True
