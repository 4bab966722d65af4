from pathlib import Path

import numpy as np
import pytest
import torch

DATA = Path(__file__).resolve().parent / "data"  # small CC0 HDR images (tests/data/README.md)
EVS = np.arange(-3.0, 4.0)


@pytest.fixture(autouse=True)
def _seeded_torch():
    """Every test starts from the same torch random state, so a failure on CI reproduces here
    (an unseeded torch.rand once drew a pixel 4.2e-7 off where a test allowed 3e-7)."""
    torch.manual_seed(0)


def data_file(name: str) -> Path:
    """A file of tests/data, shipped with the repository: the suite needs nothing beside it."""
    path = DATA / name
    assert path.exists(), f"{path}: missing from the repository"
    return path


def exr_pixel_type(path) -> str:
    """The sample type an OpenEXR file stores ("float16" or "float32"); asserts it is PIZ, the
    lossless compression hdrsyn writes."""
    import OpenEXR

    with OpenEXR.File(str(path)) as exr:
        assert exr.header()["compression"] == OpenEXR.PIZ_COMPRESSION
        return exr.channels()["RGB"].pixels.dtype.name


def gamma_curve(x: np.ndarray, gamma: float = 2.2) -> np.ndarray:
    return np.clip(x, 0, 1) ** (1 / gamma)


def make_stack(radiance: np.ndarray, curve=gamma_curve, evs=EVS) -> np.ndarray:
    """8-bit exposures (P, H, W, 3) of a radiance map through a response curve."""
    return np.stack([np.round(255 * curve(radiance * 2.0**ev)).astype(np.uint8) for ev in evs])


def to_tensor(stack: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(stack).permute(0, 3, 1, 2).contiguous()


@pytest.fixture(scope="session")
def city_radiance() -> np.ndarray:
    from hdrsyn.io import read_hdr

    radiance = read_hdr(data_file("city.exr"))  # 256 × 128
    return radiance / np.median(radiance) * 0.18
