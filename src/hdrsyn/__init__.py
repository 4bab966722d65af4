"""hdrsyn: single-image HDR synthesis with a differentiable HDR layer (Kim et al., AAAI 2021)."""

from importlib.metadata import PackageNotFoundError, version

from hdrsyn.allocator import keep_freed_memory
from hdrsyn.camera import merge_exposures
from hdrsyn.errors import HdrsynError
from hdrsyn.io import read_hdr, read_ldr, write_hdr, write_ldr
from hdrsyn.reconstruct import load_model, reconstruct
from hdrsyn.tonemap import tonemap_reinhard

keep_freed_memory()  # glibc: reuse freed maps instead of faulting in fresh pages (allocator.py)

try:
    __version__ = version("hdrsyn")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

__all__ = [
    "HdrsynError",
    "__version__",
    "load_model",
    "merge_exposures",
    "reconstruct",
    "read_hdr",
    "read_ldr",
    "tonemap_reinhard",
    "write_hdr",
    "write_ldr",
]
