"""The README's Python blocks run as written (in a folder holding the files they name)."""

import re
import shutil
from pathlib import Path

import numpy as np

from hdrsyn import write_hdr

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) >= 2
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    shutil.copy(ROOT / "examples" / "interior" / "ev+0.jpg", tmp_path / "photo.jpg")
    write_hdr(tmp_path / "scene.exr", np.random.default_rng(0).uniform(0, 4, (32, 48, 3)))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "out.exr").exists()
    assert namespace["result"].radiance.shape == (*namespace["image"].shape[:2], 3)
