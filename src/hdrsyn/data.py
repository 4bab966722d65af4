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

from hdrsyn.camera import merge_exposures, solve_inverse_crf
from hdrsyn.capture import BLUR, Capture, quantise, sample_capture
from hdrsyn.curves import CURVE_FAMILIES, MID_GREY_DISPLAY, sample_curve
from hdrsyn.errors import HdrsynError
from hdrsyn.io import (
    HDR_SUFFIXES,
    LDR_SUFFIXES,
    camera_model,
    exif_evs,
    is_hdr_file,
    read_hdr,
    read_ldr,
)
from hdrsyn.stops import DEFAULT_EVS
from hdrsyn.tonemap import REC709_LUMA

LUMA = np.array(REC709_LUMA, np.float32)

# ---------------------------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------------------------
def is_panorama(image: np.ndarray) -> bool:
    """Equirectangular panoramas (``(H, W, 3)``) are twice as wide as high."""
    return image.shape[1] == 2 * image.shape[0]


def native_view(
    panorama: np.ndarray, yaw: float, pitch: float, size: int, scale: float = 1.0
) -> np.ndarray:
    """A ``size × size`` view of an equirectangular panorama ``(H, 2H, 3)`` centred on ``yaw``
    (degrees; 0 = the image centre) and ``pitch``, that never upsamples: it covers
    ``round(scale · size)`` source pixels a side (wrapping around in yaw, shifted in pitch to
    stay inside the panorama), area-averaged down to ``size`` (OpenCV's INTER_AREA: each view
    pixel is the mean radiance over its footprint, as a sensor pixel integrates light), and at
    ``scale`` 1 the source pixels themselves. A crop of the horizon band, not a pinhole
    projection: resampling a panorama into a pinhole view interpolates radiance (docs/data.md).

    Returns:
        ``(size, size, 3)`` float32.
    """
    if scale < 1:
        raise HdrsynError(f"view scale {scale}: below 1 would upsample the source")
    height, width = panorama.shape[:2]
    side = round(scale * size)
    if side > height:
        raise HdrsynError(
            f"a native view of {size}² needs a panorama at least {side} pixels high; "
            f"this one is {height} (use a smaller size or a larger panorama)"
        )
    centre_x = (yaw / 360.0 + 0.5) * width
    centre_y = (0.5 - pitch / 180.0) * height
    top = int(np.clip(round(centre_y - side / 2), 0, height - side))
    left = round(centre_x - side / 2)
    columns = np.arange(left, left + side) % width
    crop = panorama[top : top + side][:, columns]
    if side == size:
        return np.ascontiguousarray(crop, dtype=np.float32)
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)


# Splits never share pixels: training and validation views span at most MAX_SPAN degrees of
# yaw, validation views are centred at yaw −20…20° (so they reach at most 65°), training views
# at 120…240° (the nearest pixel 75° from the front); flat images split into the left 30 % and
# the right 60 %. Test views (held-out scenes only) look anywhere, at the source's own density.
VAL_YAW = (-20.0, 20.0)
TRAIN_YAW = (120.0, 240.0)
PITCH = (-15.0, 15.0)
MAX_SPAN = 90.0  # degrees of yaw a training or validation view covers at most
MAX_SCALE = 2.0  # training views cover 1…2 source pixels a side per view pixel


def _flat_crop(image: np.ndarray, rng, split: str, size: int) -> np.ndarray:
    """A square crop of a flat image, 60–100 % of the split's part (validation: the left
    30 %, training: the right 60 %, test: all of it), area-averaged to ``size`` (never
    upsampled: the crop is at least ``size`` a side)."""
    height, width = image.shape[:2]
    left, right = {"val": (0, int(0.3 * width)), "train": (int(0.4 * width), width),
                   "test": (0, width)}[split]  # fmt: skip
    largest = min(height, right - left)
    if largest < size:
        raise HdrsynError(
            f"a {split} view of {size}² needs a {size}-pixel square in this {width}×{height} "
            "image's part for that split (use a smaller size or a larger image)"
        )
    side = max(size, int(largest * rng.uniform(0.6, 1.0)))
    x = int(rng.integers(left, right - side + 1))
    y = int(rng.integers(0, height - side + 1))
    return cv2.resize(image[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_AREA)


# ---------------------------------------------------------------------------------------------
# Synthetic stacks
# ---------------------------------------------------------------------------------------------
# The project's own held-out scenes (issue 11): never trained on, the test set of docs/results.md.
# A sun in view, a glass bridge with blown windows, a lamp-lit interior.
# Each in every resolution the data has (hdr-extra-1k/ holds 1024-pixel copies of two).
HELD_OUT = ("hdr/sunrise.exr", "hdr-extra/bridge.exr", "hdr-extra/lobby.exr",
            "hdr-extra-1k/bridge.exr", "hdr-extra-1k/lobby.exr")  # fmt: skip
# The test set of docs/results.md: the held-out scenes at their highest resolution, relative to
# ../shared/data, so that 256-pixel test views are native.
TEST_FILES = ("hdr/sunrise.exr", "hdr-extra-1k/bridge.exr", "hdr-extra-1k/lobby.exr")


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


# Shares of training inputs that go through each step of the capture (docs/data.md). Half the
# inputs carry no noise: photos from a clean pipeline carry none, and the curve estimator must
# not learn to read the curve from the noise alone (it did: ln f⁻¹ RMSE 0.15 on noisy, 0.22 on
# clean inputs of the same views at step 1000). Test photos always carry some.
TRAIN_CAPTURE = {"noise": 0.5, "bayer": 0.5, "sharpen": 0.5, "jpeg": 0.5}
TEST_CAPTURE = {"noise": 1.0, "bayer": 0.5, "sharpen": 0.5}  # + JPEG for photo_format "jpeg"
PHOTO_FORMATS = ("png", "jpeg")


class SyntheticStackDataset(Dataset):
    """Exposure stacks synthesised from real HDR radiance maps (DESIGN.md §5).

    Per sample: a view that never upsamples its source (:func:`native_view` of a panorama, or
    an area-averaged crop), an exposure set by the auto-exposure rule "geometric-mean
    luminance at 18 % grey" plus a jitter of up to ±1 stop, a response curve from
    :data:`CURVE_FAMILIES`, white-balance gains and a flip (training only), a camera's
    processing (:class:`hdrsyn.capture.Capture`: optical blur for every split; sensor noise,
    Bayer demosaicing, sharpening and JPEG for the photo of training and test samples), and
    the stack ``f(clip(R · 2^EV))`` of the blurred radiance ``R``, quantised to 8 bits. The
    targets are clean; validation photos are the clean EV 0 image. Samples are a pure function
    of ``(seed, split, index)``.

    Args:
        source: a folder of .exr/.hdr/.pfm files, a file, or a list of both.
        exclude: files to leave out (see :func:`hdr_files`), e.g. :data:`HELD_OUT`.
        split: ``train`` (random views, length ``length``), ``val`` (``length`` fixed views,
            round-robin over the images, never overlapping the training views) or ``test``
            (``length`` fixed views looking anywhere at the source's own pixel density, for
            scenes never trained on: view ``i`` shows image ``i mod n`` through the curve kind
            ``i div n`` of the family, in turn).
        curves: which curve family to draw from (``train`` or ``test``).
        noise, jpeg: whether training photos may carry sensor noise and JPEG compression.
        photo_format: the test photos' storage, ``png`` or ``jpeg`` (quality 75–95); the same
            views, curves and cameras either way.
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
        photo_format: str = "png",
        srgb_share: float | None = None,
    ):
        if split not in ("train", "val", "test"):
            raise HdrsynError(f"split: {split!r}; use 'train', 'val' or 'test'")
        if curves not in CURVE_FAMILIES:
            raise HdrsynError(f"curves: {curves!r}; use 'train' or 'test'")
        if photo_format not in PHOTO_FORMATS:
            raise HdrsynError(f"photo format: {photo_format!r}; use 'png' or 'jpeg'")
        if srgb_share is not None and not 0 <= srgb_share <= 1:
            raise HdrsynError(f"srgb_share: {srgb_share}; a probability in [0, 1]")
        self.files = hdr_files(source, exclude)
        self.images = [read_hdr(path) for path in self.files]
        self.size, self.split, self.length, self.seed = size, split, length, seed
        self.curves, self.evs = curves, tuple(float(ev) for ev in evs)
        self.capture = dict(TRAIN_CAPTURE)
        self.capture["noise"] *= noise
        self.capture["jpeg"] *= jpeg
        self.photo_format = photo_format
        self.make_stack = True  # False (without_stack): only the EV 0 exposure
        self.srgb_share = srgb_share
        for path, image in zip(self.files, self.images, strict=True):
            self._check_size(path, image)

    def _check_size(self, path: Path, image: np.ndarray) -> None:
        """Views never upsample: the image must hold a native view of ``size`` pixels, and
        training and validation views of a panorama at most MAX_SPAN degrees wide."""
        height, width = image.shape[:2]
        if is_panorama(image):
            need = self.size if self.split == "test" else math.ceil(self.size * 360 / MAX_SPAN)
            if (height if self.split == "test" else width) < need:
                raise HdrsynError(
                    f"{path}: {width}×{height} is too small for native {self.split} views of "
                    f"{self.size}² (needs {'height' if self.split == 'test' else 'width'} "
                    f"≥ {need}; use a smaller size or a larger panorama)"
                )

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
            width = source.shape[1]
            if self.split == "test":
                yaw, scale = rng.uniform(-180.0, 180.0), 1.0
            else:
                yaw = rng.uniform(*(TRAIN_YAW if training else VAL_YAW))
                widest = min(MAX_SCALE, MAX_SPAN / 360 * width / self.size)
                scale = rng.uniform(1.0, widest) if training else 1.0
            pitch = rng.uniform(*PITCH)
            view = native_view(source, yaw, pitch, self.size, scale)
            where = f"yaw {yaw:.1f}° pitch {pitch:.1f}° x{scale:.2f}"
        else:
            view = _flat_crop(source, rng, self.split, self.size)
            where = "crop"
        if training:
            view = view * rng.uniform(0.85, 1.15, 3).astype(np.float32)  # white balance
            if rng.random() < 0.5:
                view = view[:, ::-1]
        if self.split == "test":
            kinds = CURVE_FAMILIES[self.curves]["kinds"]
            curve = sample_curve(rng, self.curves, kinds[(index // count) % len(kinds)])
        else:
            curve = sample_curve(rng, self.curves, srgb_share=self.srgb_share)
        if training:
            camera = sample_capture(rng, **self.capture)
        elif self.split == "test":
            camera = sample_capture(rng, **TEST_CAPTURE, jpeg=float(self.photo_format == "jpeg"))
        else:
            camera = Capture(blur=float(rng.uniform(*BLUR)))
        view = camera.optics(view)
        # auto-exposure: the log-average luminance lands on mid-grey of the display, ±1 stop
        luminance = np.maximum(view @ LUMA, 1e-6)
        jitter = rng.uniform(-1.0, 1.0)
        mid_grey = float(curve.inverse(np.array([MID_GREY_DISPLAY]))[0])
        scale = mid_grey * 2.0**jitter / math.exp(np.log(luminance).mean())
        radiance = np.ascontiguousarray(view * scale, dtype=np.float32)
        evs = self.evs if self.make_stack else (0.0,)
        stack = np.stack([quantise(curve(radiance * 2.0**ev)) for ev in evs])
        photo = camera.photograph(radiance, curve, rng)
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
            "view": where,
            "capture": camera.describe(),
        }


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
    image to ``size × size``, as the paper does (area-averaged when shrinking, Lanczos when
    enlarging). Each sample's ``curve_group`` is the camera of its EV 0 image (EXIF make and
    model, ``camera`` without them): reports give a row per camera.
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
        camera = camera_model(scene.images[scene.evs.index(0.0)]) or "camera"
        return {
            "input": stack[scene.evs.index(0.0)],
            "stack": stack,
            "evs": evs,
            "radiance": radiance,
            "inverse_crf": g,
            "curve": camera,
            "curve_group": camera,  # real brackets: reports give a row per camera
            "source": scene.folder.name,
        }

    def _resize(self, image: np.ndarray) -> np.ndarray:
        if self.size is None:
            return image
        # shrinking averages each pixel's footprint, as a coarser sensor would (Lanczos rings)
        shrinking = min(image.shape[:2]) >= self.size
        method = cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4
        resized = cv2.resize(image, (self.size, self.size), interpolation=method)
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
