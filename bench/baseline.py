"""Run a benchmark against another revision of hdrsyn in the same run (``--baseline REV``).

The revision is checked out into a temporary git worktree; a child process imports its
``src/hdrsyn`` (``PYTHONPATH`` comes before the editable install) and runs the benchmark's
current code, so old and new are measured by the same script, on the same machine, in turns.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def checkout(revision: str) -> Iterator[Path]:
    """The ``src`` folder of ``revision`` in a temporary worktree, removed afterwards; a
    folder that holds ``hdrsyn`` (e.g. ``git archive REV src`` unpacked, for a machine
    without the repository's history) is used as it is."""
    if (Path(revision) / "hdrsyn").is_dir():
        yield Path(revision).resolve()
        return
    with tempfile.TemporaryDirectory(prefix="hdrsyn-baseline-") as folder:
        tree = Path(folder) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet",
                        str(tree), revision], check=True)  # fmt: skip
        try:
            yield tree / "src"
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                           check=False)  # fmt: skip


def run_child(arguments: list[str], src: Path | None = None) -> dict | list:
    """Run ``python ARGUMENTS`` (a benchmark's child mode, which prints JSON last) importing
    hdrsyn from ``src`` (None: the working tree's); returns the parsed JSON."""
    env = dict(os.environ)
    if src is not None:
        inherited = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(src) + (os.pathsep + inherited if inherited else "")
    output = subprocess.run([sys.executable, *arguments], capture_output=True, text=True,
                            check=True, env=env).stdout  # fmt: skip
    return json.loads(output.strip().splitlines()[-1])
