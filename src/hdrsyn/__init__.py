"""hdrsyn: single-image HDR synthesis with a differentiable HDR layer (Kim et al., AAAI 2021).

The public names load their modules on first use (PEP 562), so that ``import hdrsyn`` and the
command line's ``--help`` do not pay for PyTorch, and importing hdrsyn changes nothing in the
host process (the command line, not the library, tunes glibc's malloc: allocator.py).
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hdrsyn")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

_PUBLIC = {
    "HdrsynError": "hdrsyn.errors",
    "load_model": "hdrsyn.reconstruction",
    "merge_exposures": "hdrsyn.camera",
    "reconstruct": "hdrsyn.reconstruction",
    "read_hdr": "hdrsyn.io",
    "read_ldr": "hdrsyn.io",
    "tonemap_reinhard": "hdrsyn.tonemap",
    "write_hdr": "hdrsyn.io",
    "write_ldr": "hdrsyn.io",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(import_module(_PUBLIC[name]), name)
        globals()[name] = value  # found once, then an ordinary attribute
        return value
    raise AttributeError(f"module 'hdrsyn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
