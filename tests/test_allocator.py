"""hdrsyn.allocator: the command line makes glibc keep freed maps for reuse, unless the user set
its thresholds; importing the library changes nothing."""

import os
import platform
import subprocess
import sys

import pytest

from hdrsyn.allocator import keep_freed_memory

glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)

# one 20 MB block from malloc: is it mapped from the kernel, and is it kept once freed?
ONE_BLOCK = """
import ctypes, sys
if sys.argv[1] == "hdrsyn":  # the library, used
    import hdrsyn
    hdrsyn.merge_exposures
if sys.argv[1] == "cli":  # a command that fails on its input, as the console script runs it
    from hdrsyn.cli import main
    assert main(["tonemap", "missing.exr", "-o", "out.png"]) == 2
class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split())]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
block = libc.malloc(20 << 20)
mapped = libc.mallinfo2().hblkhd >= 20 << 20
libc.free(block)
kept = libc.mallinfo2().fordblks >= 20 << 20
print(int(mapped), int(kept))
"""

# a small convolutional network run six times on a 384 x 384 image, as a reconstruction runs
# its networks: page faults of the last five runs
REPEATED_FORWARD_FAULTS = """
import resource, sys
if sys.argv[1] == "cli":
    from hdrsyn.cli import main
    assert main(["tonemap", "missing.exr", "-o", "out.png"]) == 2
import torch
torch.set_num_threads(1)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
                          torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(),
                          torch.nn.Conv2d(16, 3, 3, padding=1))
image = torch.rand(1, 3, 384, 384)
faults = []
with torch.no_grad():
    for _ in range(6):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        net(image)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sum(faults[1:]))
"""


def _run(script: str, mode: str) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    run = subprocess.run([sys.executable, "-c", script, mode], env=environ,
                         capture_output=True, text=True, check=True)  # fmt: skip
    return run.stdout.split()


@glibc
@pytest.mark.skipif(
    tuple(map(int, (platform.libc_ver()[1] or "0.0").split(".")[:2])) < (2, 33),
    reason="mallinfo2 needs glibc 2.33",
)
def test_the_command_line_keeps_large_blocks_and_the_library_leaves_malloc_alone():
    """glibc maps a 20 MB block from the kernel and unmaps it on free, also after importing
    and using hdrsyn; once the command line has run (mmap threshold 32 MB, trim threshold
    512 MB) it comes from the heap and is kept."""
    assert _run(ONE_BLOCK, "plain") == ["1", "0"]
    assert _run(ONE_BLOCK, "hdrsyn") == ["1", "0"]
    assert _run(ONE_BLOCK, "cli") == ["0", "1"]


@glibc
def test_freed_maps_are_reused_without_faulting_in_fresh_pages():
    """Without hdrsyn, every run of the network faults its 9.4 MB maps in from the kernel again
    (measured: 55-57k faults over the last five runs); after the command line has run they come
    from kept heap (2.3k-4.6k, the second run only). A 20 MB block freed and asked for again is
    no test of this: torch asks for 64-byte aligned blocks, which a freed block of exactly the
    same size cannot serve, so whether it is reused depends on what Python allocated beside it."""
    plain = int(*_run(REPEATED_FORWARD_FAULTS, "plain"))
    cli = int(*_run(REPEATED_FORWARD_FAULTS, "cli"))
    assert cli * 4 < plain, (cli, plain)


@glibc
def test_a_users_own_malloc_settings_stand():
    assert keep_freed_memory({}) is True
    assert keep_freed_memory({"MALLOC_TRIM_THRESHOLD_": "0"}) is False
    assert keep_freed_memory({"MALLOC_MMAP_THRESHOLD_": "65536"}) is False
    assert keep_freed_memory({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}) is False
    assert keep_freed_memory({"GLIBC_TUNABLES": "glibc.rtld.nns=2"}) is True
