"""Training and evaluation data: synthetic exposure stacks from real HDR photographs, and folders
of real bracketed exposures.

Every sample is a dict of tensors:

* ``input``: :math:`(3, H, W)` the photo the model sees (the EV 0 exposure, maybe degraded);
* ``stack``: :math:`(P, 3, H, W)` the target exposures in [0, 1], EV 0 included;
* ``evs``: :math:`(P,)` their exposure values in stops (relative to the input);
* ``radiance``: :math:`(3, H, W)` the reference HDR (relative scale);
* ``inverse_crf``: :math:`(3, 256)` the log inverse response ``g`` that made the stack (the
  Debevec–Malik solve of our layer for real brackets).

See docs/data.md for the layout of bracketed folders, the response-curve family and the splits.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from hdrsyn.camera import DEFAULT_EVS, merge_exposures, solve_inverse_crf
from hdrsyn.curves import CURVE_FAMILIES, MID_GREY_DISPLAY, ResponseCurve, sample_curve
from hdrsyn.errors import HdrsynError
from hdrsyn.io import HDR_SUFFIXES, LDR_SUFFIXES, exif_evs, is_hdr_file, read_hdr, read_ldr
from hdrsyn.tonemap import REC709_LUMA

LUMA = np.array(REC709_LUMA, np.float32)

# ---------------------------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------------------------
def is_panorama(image: np.ndarray) -> bool:
    """Equirectangular panoramas (``(H, W, 3)``) are twice as wide as high."""
    return image.shape[1] == 2 * image.shape[0]


def perspective_view(
    panorama: np.ndarray, yaw: float, pitch: float, fov: float, size: int
) -> np.ndarray:
    """A pinhole view of an equirectangular panorama ``(H, 2H, 3)`` (degrees; yaw 0 = the
    image centre).

    Returns:
        ``(size, size, 3)`` float32.
    """
    height, width = panorama.shape[:2]
    focal = 0.5 * size / math.tan(math.radians(fov) / 2)
    coords = (np.arange(size, dtype=np.float64) + 0.5 - size / 2) / focal
    x, y = np.meshgrid(coords, -coords)
    rays = np.stack([x, y, np.ones_like(x)], axis=-1)
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    p, q = math.radians(pitch), math.radians(yaw)
    tilt = np.array([[1, 0, 0], [0, math.cos(p), math.sin(p)], [0, -math.sin(p), math.cos(p)]])
    turn = np.array([[math.cos(q), 0, math.sin(q)], [0, 1, 0], [-math.sin(q), 0, math.cos(q)]])
    rays = rays @ (turn @ tilt).T
    longitude = np.arctan2(rays[..., 0], rays[..., 2])
    latitude = np.arcsin(np.clip(rays[..., 1], -1, 1))
    map_x = ((longitude / (2 * math.pi) + 0.5) * width - 0.5).astype(np.float32)
    map_y = ((0.5 - latitude / math.pi) * height - 0.5).astype(np.float32)
    return cv2.remap(panorama, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)


# Splits never share pixels: panorama views look at yaw −20…20° (validation) or 120…240°
# (training; with a horizontal field of view ≤ 80° the nearest corner is 70° away, while the
# validation views reach at most 59°); flat images split into the left 30 % and the right 60 %.
VAL_YAW = (-20.0, 20.0)
TRAIN_YAW = (120.0, 240.0)
TRAIN_FOV = (50.0, 80.0)
VAL_FOV = 60.0
PITCH = (-15.0, 15.0)


def _flat_crop(image: np.ndarray, rng, split: str, size: int) -> np.ndarray:
    height, width = image.shape[:2]
    left, right = (0, int(0.3 * width)) if split == "val" else (int(0.4 * width), width)
    side = int(min(height, right - left) * rng.uniform(0.6, 1.0))
    x = int(rng.integers(left, right - side + 1))
    y = int(rng.integers(0, height - side + 1))
    return cv2.resize(image[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_AREA)


# ---------------------------------------------------------------------------------------------
# Synthetic stacks
# ---------------------------------------------------------------------------------------------
# The project's own held-out scenes (issue 11): never trained on, the test set of docs/results.md.
# A sun in view, a glass bridge with blown windows, a lamp-lit interior.
HELD_OUT = ("hdr/sunrise.exr", "hdr-extra/bridge.exr", "hdr-extra/lobby.exr")


def _matches(path: Path, names) -> bool:
    """``path`` ends with one of ``names`` (``folder/file`` or ``file``)."""
    return any(path.as_posix().endswith("/" + name) or path.name == name for name in names)


def hdr_files(source, exclude=()) -> list[Path]:
    """The HDR images of ``source``: a folder, a file, or a list of folders and files; files
    whose path ends with an entry of ``exclude`` (e.g. ``hdr/sunrise.exr``) are left out."""
    items = [source] if isinstance(source, str | os.PathLike) else list(source)
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if not path.exists():
            raise HdrsynError(f"{path}: no such file or folder")
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if is_hdr_file(p))
            if not found:
                raise HdrsynError(f"{path}: no .exr, .hdr, .pfm or Ultra HDR .jpg files")
            files += found
        elif path.is_file() and is_hdr_file(path):
            files.append(path)
        else:
            raise HdrsynError(f"{path}: not an HDR image (.exr, .hdr, .pfm, Ultra HDR .jpg) "
                              "or a folder of them")  # fmt: skip
    files = [p for p in files if not _matches(p, exclude)]
    if not files:
        raise HdrsynError(f"{', '.join(map(str, items))}: no HDR images left after excluding")
    return files


# Degradations of training inputs: shares of samples, and ranges (docs/data.md). Half the inputs
# stay clean: photos from a clean pipeline carry no noise, and the curve estimator must not
# learn to read the curve from the noise alone (it did: ln f⁻¹ RMSE 0.15 on noisy, 0.22 on
# clean inputs of the same views at step 1000).
NOISE_SHARE = 0.5
JPEG_SHARE = 0.5
# Sensor noise σ = shot·√x + read on the linear exposure x ∈ [0, 1] (the Poisson–Gaussian model
# of Foi et al., IEEE TIP 2008); the ranges are this project's choice (docs/data.md).
SHOT_NOISE = (0.0, 0.01)
READ_NOISE = (0.0, 0.002)
JPEG_QUALITY = (70, 98)  # inclusive range of JPEG qualities (docs/data.md)


def quantise(display: np.ndarray) -> np.ndarray:
    """8-bit quantisation of display values in [0, 1] (any shape), returned as float32
    multiples of 1/255."""
    return (np.round(np.clip(display, 0, 1) * 255) / 255).astype(np.float32)


class SyntheticStackDataset(Dataset):
    """Exposure stacks synthesised from real HDR radiance maps (DESIGN.md §5).

    Per sample: a view (perspective from a panorama, or a crop), an exposure set by the
    auto-exposure rule "geometric-mean luminance at 18 % grey" plus a jitter of up to ±1 stop,
    a response curve from :data:`CURVE_FAMILIES`, white-balance gains and a flip (training
    only), and the stack ``f(clip(R · 2^EV))`` quantised to 8 bits. The ``input`` is the EV 0
    image, optionally degraded by sensor noise (before the curve) and JPEG compression; the
    targets are clean. Samples are a pure function of ``(seed, split, index)``.

    Args:
        source: a folder of .exr/.hdr/.pfm files, a file, or a list of both.
        exclude: files to leave out (see :func:`hdr_files`), e.g. :data:`HELD_OUT`.
        split: ``train`` (random views, length ``length``), ``val`` (``length`` fixed views,
            round-robin over the images, never overlapping the training views) or ``test``
            (``length`` fixed views looking anywhere, for scenes never trained on: view ``i``
            shows image ``i mod n`` through the curve kind ``i div n`` of the family, in turn).
        curves: which curve family to draw from (``train`` or ``test``).
        srgb_share: probability of an sRGB curve (``train`` and ``val``; default
            :func:`hdrsyn.curves.sample_curve`'s).
    """

    def __init__(
        self,
        source: str | os.PathLike | list,
        *,
        exclude: tuple[str, ...] | list[str] = (),
        size: int = 256,
        split: str = "train",
        length: int = 1000,
        seed: int = 0,
        curves: str = "train",
        evs: tuple[float, ...] = DEFAULT_EVS,
        noise: bool = True,
        jpeg: bool = True,
        srgb_share: float | None = None,
    ):
        if split not in ("train", "val", "test"):
            raise HdrsynError(f"split: {split!r}; use 'train', 'val' or 'test'")
        if curves not in CURVE_FAMILIES:
            raise HdrsynError(f"curves: {curves!r}; use 'train' or 'test'")
        if srgb_share is not None and not 0 <= srgb_share <= 1:
            raise HdrsynError(f"srgb_share: {srgb_share}; a probability in [0, 1]")
        self.files = hdr_files(source, exclude)
        self.images = [read_hdr(path) for path in self.files]
        self.size, self.split, self.length, self.seed = size, split, length, seed
        self.curves, self.evs = curves, tuple(float(ev) for ev in evs)
        self.noise, self.jpeg = noise and split == "train", jpeg and split == "train"
        self.make_stack = True  # False (without_stack): only the EV 0 exposure
        self.srgb_share = srgb_share

    def __len__(self) -> int:
        return self.length

    def without_stack(self) -> SyntheticStackDataset:
        """The same samples with only the EV 0 exposure (``stack`` is then (1, 3, H, W)),
        sharing the images already read: the curve stage of training needs only the photo and
        its curve."""
        view = copy.copy(self)
        view.make_stack = False
        return view

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(index)
        training = self.split == "train"
        rng = np.random.default_rng([self.seed, ("val", "train", "test").index(self.split), index])
        count = len(self.images)
        which = int(rng.integers(count)) if training else index % count
        source = self.images[which]
        if is_panorama(source):
            if self.split == "test":
                yaw, fov = rng.uniform(-180.0, 180.0), VAL_FOV
            else:
                yaw = rng.uniform(*(TRAIN_YAW if training else VAL_YAW))
                fov = rng.uniform(*TRAIN_FOV) if training else VAL_FOV
            view = perspective_view(source, yaw, rng.uniform(*PITCH), fov, self.size)
        else:
            view = _flat_crop(source, rng, "val" if self.split == "test" else self.split, self.size)
        if training:
            view = view * rng.uniform(0.85, 1.15, 3).astype(np.float32)  # white balance
            if rng.random() < 0.5:
                view = view[:, ::-1]
        if self.split == "test":
            kinds = CURVE_FAMILIES[self.curves]["kinds"]
            curve = sample_curve(rng, self.curves, kinds[(index // count) % len(kinds)])
        else:
            curve = sample_curve(rng, self.curves, srgb_share=self.srgb_share)
        # auto-exposure: the log-average luminance lands on mid-grey of the display, ±1 stop
        luminance = np.maximum(view @ LUMA, 1e-6)
        jitter = rng.uniform(-1.0, 1.0)
        mid_grey = float(curve.inverse(np.array([MID_GREY_DISPLAY]))[0])
        scale = mid_grey * 2.0**jitter / math.exp(np.log(luminance).mean())
        radiance = np.ascontiguousarray(view * scale, dtype=np.float32)
        evs = self.evs if self.make_stack else (0.0,)
        stack = np.stack([quantise(curve(radiance * 2.0**ev)) for ev in evs])
        photo = self._degrade(radiance, curve, rng) if training else stack[evs.index(0.0)]
        g = curve.log_inverse()
        return {
            "input": torch.from_numpy(photo).permute(2, 0, 1),
            "stack": torch.from_numpy(stack).permute(0, 3, 1, 2),
            "evs": torch.tensor(evs),
            "radiance": torch.from_numpy(radiance).permute(2, 0, 1),
            "inverse_crf": torch.from_numpy(np.stack([g, g, g])),
            "curve": curve.describe(),
            "curve_group": curve.group,
            "source": self.files[which].name,
        }

    def _degrade(self, radiance: np.ndarray, curve: ResponseCurve, rng) -> np.ndarray:
        exposure = radiance
        if self.noise and rng.random() < NOISE_SHARE:
            shot, read = rng.uniform(*SHOT_NOISE), rng.uniform(*READ_NOISE)
            sigma = shot * np.sqrt(np.clip(exposure, 0, 1)) + read
            exposure = exposure + sigma * rng.standard_normal(exposure.shape).astype(np.float32)
        photo = quantise(curve(exposure))
        if self.jpeg and rng.random() < JPEG_SHARE:
            photo = jpeg_compressed(photo, int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))
        return photo


def jpeg_compressed(photo: np.ndarray, quality: int) -> np.ndarray:
    """An ``(H, W, 3)`` photo in [0, 1] saved as a JPEG of ``quality`` and read back (OpenCV's
    codec, 4:2:0), float32."""
    pixels = cv2.cvtColor(np.round(photo * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    _, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)  # OpenCV's JPEG codec is BGR
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB).astype(np.float32) / 255


# ---------------------------------------------------------------------------------------------
# Real bracketed stacks (VDS / HDR-Eye layout)
# ---------------------------------------------------------------------------------------------
@dataclass
class _Scene:
    folder: Path
    images: list[Path]
    evs: list[float]
    reference: Path | None


class BracketedStackDataset(Dataset):
    """Real bracketed exposures, one folder per scene (layout in docs/data.md).

    Each scene folder holds two or more LDR exposures, their EVs in ``exposures.json``
    (``{"file.jpg": -2, ...}``) or ``exposures.csv`` (``file,ev`` rows) or else in EXIF, and
    optionally a reference ``reference.exr`` / ``.hdr`` / ``.pfm``; without one, the reference
    is the Debevec merge of the stack through our layer. EVs are made relative to the image at
    EV 0 (which must exist; with EXIF, the middle exposure is EV 0). ``size`` resizes every
    image to ``size × size`` (Lanczos), as the paper does.
    """

    def __init__(self, root: str | os.PathLike, *, size: int | None = None):
        root = Path(root)
        if not root.is_dir():
            raise HdrsynError(f"{root}: not a folder")
        folders = sorted(p for p in root.iterdir() if p.is_dir())
        if not folders:
            raise HdrsynError(f"{root}: no scene folders (one folder of exposures per scene)")
        self.scenes = [_read_scene(folder) for folder in folders]
        self.size = size

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> dict:
        scene = self.scenes[index]
        images = [self._resize(read_ldr(path)) for path in scene.images]
        for path, image in zip(scene.images, images, strict=True):
            if image.shape != images[0].shape:
                raise HdrsynError(f"{path}: size differs from {scene.images[0].name}")
        stack = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
        evs = torch.tensor(scene.evs)
        levels = torch.round(stack * 255).to(torch.uint8)
        if scene.reference is None:
            radiance, g = merge_exposures(levels, evs)
        else:  # only the response curve is needed; no full-resolution merge
            g = solve_inverse_crf(levels[None], evs[None])[0].float()
            reference = self._resize(read_hdr(scene.reference))
            if reference.shape != images[0].shape:
                raise HdrsynError(f"{scene.reference}: size differs from the exposures")
            radiance = torch.from_numpy(reference).permute(2, 0, 1)
        return {
            "input": stack[scene.evs.index(0.0)],
            "stack": stack,
            "evs": evs,
            "radiance": radiance,
            "inverse_crf": g,
            "curve": "camera",
            "curve_group": "camera",
            "source": scene.folder.name,
        }

    def _resize(self, image: np.ndarray) -> np.ndarray:
        if self.size is None:
            return image
        resized = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_LANCZOS4)
        return np.clip(resized, 0, None) if image.max() > 1 else np.clip(resized, 0, 1)


def _read_scene(folder: Path) -> _Scene:
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in LDR_SUFFIXES)
    references = sorted(p for p in folder.iterdir() if p.stem == "reference")
    references = [p for p in references if p.suffix.lower() in HDR_SUFFIXES]
    if len(images) < 2:
        raise HdrsynError(f"{folder}: {len(images)} exposure images; a scene needs at least 2")
    evs = _scene_evs(folder, images)
    if 0.0 not in evs:
        raise HdrsynError(f"{folder}: no image at EV 0; EVs are stops relative to the input image")
    if len(set(evs)) != len(evs):
        raise HdrsynError(f"{folder}: two images have the same EV")
    order = sorted(range(len(images)), key=evs.__getitem__)
    return _Scene(
        folder,
        [images[i] for i in order],
        [evs[i] for i in order],
        references[0] if references else None,
    )


def _scene_evs(folder: Path, images: list[Path]) -> list[float]:
    table: dict[str, float] | None = None
    if (folder / "exposures.json").exists():
        path = folder / "exposures.json"
        try:
            table = {str(k): float(v) for k, v in json.loads(path.read_text()).items()}
        except (ValueError, AttributeError, TypeError) as error:
            raise HdrsynError(f'{path}: expected {{"file": ev, ...}} ({error})') from None
    elif (folder / "exposures.csv").exists():
        path = folder / "exposures.csv"
        try:
            with path.open(newline="") as handle:
                table = {row[0].strip(): float(row[1]) for row in csv.reader(handle) if row}
        except (ValueError, IndexError) as error:
            raise HdrsynError(f"{path}: expected 'file,ev' rows ({error})") from None
    if table is not None:
        missing = [p.name for p in images if p.name not in table]
        if missing:
            raise HdrsynError(f"{path}: no EV for {', '.join(missing)}")
        evs = [table[p.name] for p in images]
    else:
        evs = exif_evs(images, "add exposures.json or exposures.csv")
    if not all(math.isfinite(ev) for ev in evs):
        raise HdrsynError(f"{folder}: EVs must be finite")
    return evs
