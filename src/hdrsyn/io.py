"""Reading and writing LDR photographs and HDR radiance maps.

Images are NumPy arrays of shape ``(H, W, 3)``, RGB order:

* LDR images are ``float32`` in [0, 1] (8- and 16-bit files alike), EXIF orientation applied.
* HDR images are ``float32``, linear radiance on a relative scale, finite and non-negative.

Libraries do the decoding: OpenCV (PNG, JPEG, TIFF, Radiance ``.hdr``, PFM), the ``OpenEXR``
package (``.exr``) and Pillow (EXIF, LDR encoding). Every writer encodes in memory or to a
temporary file in the target folder and renames it into place, so a failed write never leaves a
partial file, and refuses to replace an existing file unless ``overwrite=True``.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import warnings
from pathlib import Path

import cv2
import numpy as np
import OpenEXR
from PIL import Image, UnidentifiedImageError

from hdrsyn.errors import HdrsynError

LDR_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
HDR_SUFFIXES = (".exr", ".hdr", ".pfm")
JPEG_SUFFIXES = (".jpg", ".jpeg")
ULTRAHDR_SUFFIXES = JPEG_SUFFIXES  # HDR outputs (and inputs) as Ultra HDR JPEGs
AVIF_SUFFIXES = (".avif",)  # HDR AVIF: 10-bit BT.2100 PQ
HDR_OUTPUT_SUFFIXES = HDR_SUFFIXES + ULTRAHDR_SUFFIXES + AVIF_SUFFIXES
MAX_BOOST = 3.0  # stops above SDR white an Ultra HDR JPEG or HDR AVIF keeps by default (8×)
_SDR_KEY = 0.18  # Ultra HDR and AVIF scale: the log-average luminance lands at 18 % of SDR white
SDR_WHITE_NITS = 203.0  # ITU-R BT.2408's reference white: where SDR white sits in PQ
# ITU-R BT.2087: linear BT.709 RGB → BT.2020 RGB
_BT709_TO_BT2020 = np.array([[0.6274, 0.3293, 0.0433],
                             [0.0691, 0.9195, 0.0114],
                             [0.0164, 0.0880, 0.8956]])  # fmt: skip
_PQ = (2610 / 16384, 2523 / 4096 * 128, 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32)
_CICP_BT2100_PQ = (9, 16, 9)  # colour primaries BT.2020, transfer SMPTE ST 2084, matrix BT.2020

# EXIF tags (CIPA DC-008): Orientation in IFD0, the rest in the Exif sub-IFD.
_UMASK = os.umask(0)
os.umask(_UMASK)

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")  # little- and big-endian TIFF headers
_EXIF_IFD = 0x8769
_ORIENTATION = 0x0112
_MAKE, _MODEL = 0x010F, 0x0110  # EXIF tags of the camera
_EXPOSURE_TIME = 0x829A
_F_NUMBER = 0x829D
_ISO = 0x8827


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise HdrsynError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise HdrsynError(f"{path}: is a folder, not an image file") from None
    except OSError as error:
        raise HdrsynError(f"{path}: cannot read ({error.strerror})") from None
    if not data:
        raise HdrsynError(f"{path}: file is empty")
    return data


def _orientation(data: bytes) -> int:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return int(image.getexif().get(_ORIENTATION, 1))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return 1


def _apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Undo EXIF orientation 1-8 so that the array is upright."""
    transforms = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),  # Pillow's TRANSVERSE
        8: lambda a: np.rot90(a, 1),
    }
    if orientation not in transforms:
        return image
    return np.ascontiguousarray(transforms[orientation](image))


def read_ldr(path: str | os.PathLike) -> np.ndarray:
    """Read an 8- or 16-bit PNG, JPEG or TIFF photograph.

    Grey images become RGB; an alpha channel is dropped with a warning; EXIF orientation is
    applied.

    Returns:
        RGB image of shape ``(H, W, 3)``, ``float32`` in [0, 1].
    """
    path = Path(path)
    data = _read_bytes(path)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise HdrsynError(f"{path}: not a readable image (truncated or unknown format)")
    if image.dtype not in (np.uint8, np.uint16):
        raise HdrsynError(f"{path}: {image.dtype} samples; expected an 8- or 16-bit LDR image")
    if image.ndim == 2:
        image = image[:, :, None]
    channels = image.shape[2]
    if channels == 2 or channels == 4:
        warnings.warn(f"{path}: alpha channel dropped", stacklevel=2)
        image = image[:, :, :-1]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    else:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)  # OpenCV decodes to BGR
    if not data.startswith(_TIFF_MAGIC):  # OpenCV's TIFF decoder applies it itself
        image = _apply_orientation(image, _orientation(data))
    return unit_floats(image)


def unit_floats(levels: np.ndarray) -> np.ndarray:
    """uint8 or uint16 levels as float32 in [0, 1]: one float copy, divided in place (a
    division, as level / 255 must come out exactly)."""
    values = levels.astype(np.float32)
    return np.divide(values, np.float32(np.iinfo(levels.dtype).max), out=values)


def exposure_from_exif(path: str | os.PathLike) -> float | None:
    """Exposure of a photograph in stops, log2(t · ISO/100 / N²), from its EXIF data.

    Exposure time ``t`` is required; f-number ``N`` defaults to 1 and ISO to 100 when absent,
    which is right when they are the same for every image of a bracket.

    Returns:
        The exposure in stops, or ``None`` when the file has no exposure time.
    """
    path = Path(path)
    data = _read_bytes(path)
    try:
        with Image.open(io.BytesIO(data)) as image:
            exif = image.getexif().get_ifd(_EXIF_IFD)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    try:
        time = float(exif[_EXPOSURE_TIME])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    f_number = _positive_or(exif.get(_F_NUMBER), 1.0)
    iso = exif.get(_ISO)
    if isinstance(iso, tuple):
        iso = iso[0] if iso else None
    iso = _positive_or(iso, 100.0)
    if not (time > 0 and math.isfinite(time)):
        return None
    return math.log2(time * (iso / 100.0) / f_number**2)


def camera_model(path: str | os.PathLike) -> str | None:
    """The camera that took a photo, "Make Model" from its EXIF (the make left out where the
    model already starts with it), or None."""
    try:
        with Image.open(io.BytesIO(_read_bytes(Path(path)))) as image:
            exif = image.getexif()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    make = str(exif.get(_MAKE, "")).strip(" \x00")
    model = str(exif.get(_MODEL, "")).strip(" \x00")
    if model.lower().startswith(make.lower()):
        make = ""
    return " ".join(part for part in (make, model) if part) or None


def exif_evs(paths: list[Path], fix: str) -> list[float]:
    """Exposure values of a bracket from EXIF, in stops relative to its middle exposure (which
    so gets EV 0), rounded to 10⁻³ stop. ``fix`` ends the error for a file without EXIF."""
    evs = []
    for path in paths:
        ev = exposure_from_exif(path)
        if ev is None:
            raise HdrsynError(f"{path}: no exposure time in EXIF; {fix}")
        evs.append(ev)
    middle = sorted(evs)[len(evs) // 2]
    return [round(ev - middle, 3) for ev in evs]


def _positive_or(value, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return default
    return number if number > 0 and math.isfinite(number) else default


def read_weights(path: str | os.PathLike) -> tuple[dict, dict[str, str]]:
    """A safetensors file's tensors and metadata (``{}`` if it has none), or a one-line refusal
    naming the file (safetensors raises several error types for missing or bad files)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata() or {}
        return load_file(str(path)), metadata
    except Exception as error:
        raise HdrsynError(f"{path}: not a readable safetensors file ({error})") from None


def is_hdr_file(path: str | os.PathLike) -> bool:
    """An OpenEXR, Radiance, PFM or AVIF file by its suffix (an AVIF's colour signalling is
    checked when it is read), or a JPEG that holds an Ultra HDR gain map (its bytes are checked
    here: a plain JPEG is a photo, not HDR)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in HDR_SUFFIXES or suffix in AVIF_SUFFIXES:
        return True
    if suffix not in ULTRAHDR_SUFFIXES or not path.is_file():
        return False
    return _is_ultrahdr(path.read_bytes())


def _is_ultrahdr(data: bytes) -> bool:
    """libultrahdr's check, which crashes the process on empty data (imagecodecs 2026.3.6)."""
    import imagecodecs

    return len(data) > 0 and bool(imagecodecs.ultrahdr_check(data))


def _hdr_suffix(path: Path) -> str:
    """The lower-case suffix of an HDR file this module reads and writes, or a refusal."""
    suffix = path.suffix.lower()
    if suffix not in HDR_OUTPUT_SUFFIXES:
        raise HdrsynError(f"{path}: unknown HDR format; use one of "
                          f"{', '.join(HDR_OUTPUT_SUFFIXES)}")  # fmt: skip
    return suffix


def read_hdr(path: str | os.PathLike) -> np.ndarray:
    """Read an OpenEXR, Radiance ``.hdr`` or PFM radiance map, an Ultra HDR JPEG (its base
    image and gain map decoded to linear radiance by libultrahdr) or an HDR AVIF (BT.2100 PQ,
    by libavif; both via imagecodecs).

    Returns:
        RGB radiance of shape ``(H, W, 3)``, ``float32``, finite; negative values are set to 0.
    """
    path = Path(path)
    suffix = _hdr_suffix(path)
    data = _read_bytes(path)
    if suffix in ULTRAHDR_SUFFIXES:
        image = _decode_ultrahdr(path, data)
    elif suffix in AVIF_SUFFIXES:
        image = _decode_avif(path, data)
    elif suffix == ".exr":
        image = _decode_exr(path)
    else:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None or image.size == 0:
            raise HdrsynError(f"{path}: not a readable {suffix} file (truncated or corrupt)")
        if image.ndim == 2:
            image = image[:, :, None]
        image = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image[:, :, 2::-1]
    image = np.ascontiguousarray(image, dtype=np.float32)
    if not np.isfinite(image).all():
        bad = int((~np.isfinite(image)).any(axis=2).sum())
        raise HdrsynError(f"{path}: {bad} pixels are NaN or infinite")
    # Lossy EXR compression (DWA, B44) leaves small negative values: clip them to black.
    return np.maximum(image, 0, out=image)


def _decode_ultrahdr(path: Path, data: bytes) -> np.ndarray:
    import imagecodecs

    if not _is_ultrahdr(data):
        raise HdrsynError(f"{path}: not an Ultra HDR JPEG (no gain map): an SDR photo, not HDR")
    try:
        decoded = imagecodecs.ultrahdr_decode(data, dtype=np.float16)
    except Exception as error:  # imagecodecs raises its own error types
        raise HdrsynError(f"{path}: not a readable Ultra HDR JPEG ({error})") from None
    return decoded[:, :, :3]


def _encode_ultrahdr(path: Path, image: np.ndarray, max_boost: float) -> bytes:
    """Linear radiance → Ultra HDR JPEG: scaled so the log-average luminance is 18 % of SDR
    white, clipped at ``2^max_boost`` times SDR white, half float RGBA for libultrahdr, which
    makes the SDR base (its own tone mapping) and the gain map."""
    import imagecodecs

    scale, peak = _sdr_scale(image, max_boost)
    rgba = np.empty((*image.shape[:2], 4), np.float16)
    rgba[:, :, 3] = 1
    for top in range(0, image.shape[0], 256):  # float32 work a band of rows at a time
        band = image[top : top + 256] * np.float32(scale)
        rgba[top : top + 256, :, :3] = np.clip(band, 0, peak, out=band)
    # the gain map stays at full size: at half size each way it encodes 0.5 s faster at 12 MP,
    # but loses per-pixel detail above SDR white (a reconstruction's bright pixels: ln RMSE
    # 0.026 against 0.018 after decoding)
    try:
        return bytes(imagecodecs.ultrahdr_encode(rgba, 95))
    except Exception as error:  # imagecodecs raises its own error types
        raise HdrsynError(f"{path}: libultrahdr could not encode it ({error})") from None


def _pq_encode(nits: np.ndarray) -> np.ndarray:
    """SMPTE ST 2084 (PQ): absolute luminance in cd/m² → signal in [0, 1]."""
    m1, m2, c1, c2, c3 = _PQ
    y = np.power(np.clip(nits / 10000.0, 0, 1), m1)
    return np.power((c1 + c2 * y) / (1 + c3 * y), m2)


def _pq_decode(signal: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_pq_encode`: signal in [0, 1] → cd/m²."""
    m1, m2, c1, c2, c3 = _PQ
    e = np.power(np.clip(signal, 0, 1), 1 / m2)
    return 10000.0 * np.power(np.maximum(e - c1, 0) / (c2 - c3 * e), 1 / m1)


def _sdr_scale(image: np.ndarray, max_boost: float) -> tuple[float, float]:
    """What the HDR formats for viewing store: radiance times the factor that puts its
    log-average luminance at 18 % of SDR white (1.0), clipped at the value returned with it,
    ``2^max_boost`` times SDR white."""
    if not max_boost > 0:
        raise HdrsynError(f"max_boost: {max_boost}; must be a positive number of stops")
    from hdrsyn.tonemap import REC709_LUMA  # here: io.py is read without torch (cli --help)

    luminance = np.maximum(image @ np.array(REC709_LUMA, np.float32), 1e-8)
    return _SDR_KEY / float(np.exp(np.log(luminance, out=luminance).mean())), 2.0**max_boost


def _encode_avif(path: Path, image: np.ndarray, max_boost: float) -> bytes:
    """Radiance → 10-bit HDR AVIF in BT.2100 PQ (BT.2020 primaries), SDR white at 203 cd/m²,
    4:4:4, its CICP (9, 16, 9) in the file's colour box, by libavif via imagecodecs."""
    import imagecodecs

    scale, peak = _sdr_scale(image, max_boost)
    nits = (np.clip(image * scale, 0, peak) @ _BT709_TO_BT2020.T) * SDR_WHITE_NITS
    codes = np.round(_pq_encode(nits) * 1023).astype(np.uint16)
    primaries, transfer, matrix = _CICP_BT2100_PQ
    try:
        return bytes(imagecodecs.avif_encode(np.ascontiguousarray(codes), 90, bitspersample=10,
                                             primaries=primaries, transfer=transfer,
                                             matrix=matrix, pixelformat="444"))  # fmt: skip
    except Exception as error:  # imagecodecs raises its own error types
        raise HdrsynError(f"{path}: libavif could not encode it ({error})") from None


def avif_cicp(data: bytes) -> tuple[int, int, int] | None:
    """(colour primaries, transfer, matrix) of an AVIF's ``colr``/``nclx`` box, or None."""
    at = data.find(b"colrnclx")
    if at < 0 or len(data) < at + 14:
        return None
    box = data[at + 8 : at + 14]
    return tuple(int.from_bytes(box[i : i + 2], "big") for i in (0, 2, 4))


def _decode_avif(path: Path, data: bytes) -> np.ndarray:
    import imagecodecs

    cicp = avif_cicp(data)
    if cicp != _CICP_BT2100_PQ:
        raise HdrsynError(f"{path}: not an HDR AVIF (BT.2100 PQ, CICP 9/16/9): CICP {cicp}")
    try:
        codes = imagecodecs.avif_decode(data)
    except Exception as error:  # imagecodecs raises its own error types
        raise HdrsynError(f"{path}: not a readable AVIF ({error})") from None
    nits = _pq_decode(codes[:, :, :3].astype(np.float64) / 1023)
    return (nits @ np.linalg.inv(_BT709_TO_BT2020).T / SDR_WHITE_NITS).astype(np.float32)


def _decode_exr(path: Path) -> np.ndarray:
    try:
        with OpenEXR.File(str(path)) as exr:
            channels = {name: channel.pixels for name, channel in exr.channels().items()}
    except Exception as error:  # the OpenEXR binding raises bare Exception/RuntimeError
        raise HdrsynError(f"{path}: not a readable OpenEXR file ({error})") from None
    if "RGB" in channels:
        return channels["RGB"][:, :, :3]
    if all(name in channels for name in "RGB"):
        return np.stack([channels[name] for name in "RGB"], axis=2)
    if "Y" in channels:
        return np.repeat(channels["Y"][:, :, None], 3, axis=2)
    raise HdrsynError(f"{path}: no R, G, B or Y channels (has {', '.join(sorted(channels))})")


def write_hdr(
    path: str | os.PathLike,
    image: np.ndarray,
    *,
    overwrite: bool = False,
    half: bool = False,
    max_boost: float = MAX_BOOST,
) -> None:
    """Write an RGB radiance map as OpenEXR (float32 or ``half``; PIZ, lossless), Radiance
    ``.hdr``, PFM, an Ultra HDR JPEG (``.jpg``/``.jpeg``: an SDR JPEG any viewer shows, plus a
    gain map that HDR displays use to show highlights up to ``max_boost`` stops above SDR
    white) or an HDR AVIF (``.avif``, BT.2100 PQ, the same headroom); for those two the
    radiance is scaled so its log-average luminance is 18 % of SDR white.

    Args:
        image: ``(H, W, 3)`` finite radiance.
        half: store 16-bit floats in OpenEXR, where every value fits them (up to 65504; else
            float32): files a half to a seventh of float32's, rounding under 0.05 % (one
            8-bit level at white is 0.86 % of the light under sRGB); ignored by the other
            formats.
        max_boost: Ultra HDR / AVIF headroom in stops (ignored by the other formats).
    """
    path = Path(path)
    suffix = _hdr_suffix(path)
    image = _check_rgb(path, image)
    if not np.isfinite(image).all():
        raise HdrsynError(f"{path}: refusing to write NaN or infinite radiance")
    if suffix in ULTRAHDR_SUFFIXES:
        write_bytes(path, _encode_ultrahdr(path, image, max_boost), overwrite=overwrite)
        return
    if suffix in AVIF_SUFFIXES:
        write_bytes(path, _encode_avif(path, image, max_boost), overwrite=overwrite)
        return
    if suffix == ".exr":
        largest = max(float(image.max()), -float(image.min()))  # no full-size |image| copy
        half = half and largest <= float(np.finfo(np.float16).max)
        pixels = np.ascontiguousarray(image, dtype=np.float16 if half else np.float32)
        # PIZ: lossless like ZIP; on a 12 MP reconstruction 12-16 % faster and 12-27 % smaller
        header = {"compression": OpenEXR.PIZ_COMPRESSION, "type": OpenEXR.scanlineimage}

        def write(temporary: Path) -> None:
            with OpenEXR.File(header, {"RGB": pixels}) as exr:
                exr.write(str(temporary))

        _atomic_write(path, write, overwrite)
        return
    ok, encoded = cv2.imencode(suffix, np.ascontiguousarray(image[:, :, ::-1], np.float32))
    if not ok:
        raise HdrsynError(f"{path}: OpenCV could not encode {suffix}")
    write_bytes(path, encoded.tobytes(), overwrite=overwrite)


def write_ldr(
    path: str | os.PathLike, image: np.ndarray, *, overwrite: bool = False, quality: int = 95
) -> None:
    """Write an ``(H, W, 3)`` RGB image in [0, 1] as 8-bit PNG or JPEG (or 16-bit TIFF for
    ``.tif``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    image = _check_rgb(path, image)
    if suffix in (".png", ".jpg", ".jpeg"):
        pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
        buffer = io.BytesIO()
        kind = "PNG" if suffix == ".png" else "JPEG"
        Image.fromarray(pixels).save(buffer, format=kind, quality=quality)
        encoded = buffer.getvalue()
    elif suffix in (".tif", ".tiff"):
        pixels = np.round(np.clip(image, 0, 1) * 65535).astype(np.uint16)[:, :, ::-1]
        ok, array = cv2.imencode(suffix, np.ascontiguousarray(pixels))
        if not ok:
            raise HdrsynError(f"{path}: OpenCV could not encode {suffix}")
        encoded = array.tobytes()
    else:
        raise HdrsynError(f"{path}: unknown LDR format; use one of {', '.join(LDR_SUFFIXES)}")
    write_bytes(path, encoded, overwrite=overwrite)


def _check_rgb(path: Path, image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise HdrsynError(f"{path}: expected an (H, W, 3) image, got shape {image.shape}")
    return image


def check_writable(
    path: str | os.PathLike,
    overwrite: bool,
    suffixes: tuple[str, ...] | None = None,
    *,
    folder_made: bool = False,
) -> Path:
    """Fail early, before any work, when ``path`` cannot be written (or has the wrong suffix).
    ``folder_made``: its folder, if missing, is one the caller checked and will make."""
    path = Path(path)
    if folder_made and not path.parent.exists():
        if suffixes is not None and path.suffix.lower() not in suffixes:
            raise HdrsynError(f"{path}: unsupported file type; use one of {', '.join(suffixes)}")
        return path
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise HdrsynError(f"{path}: unsupported file type; use one of {', '.join(suffixes)}")
    if path.exists() and not overwrite:
        raise HdrsynError(f"{path}: already exists (use --force to overwrite)")
    if path.is_dir():
        raise HdrsynError(f"{path}: is a folder")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise HdrsynError(f"{path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise HdrsynError(f"{path}: folder {folder} is not writable")
    return path


def write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = False) -> None:
    """Write encoded file contents atomically (temporary file, then rename)."""
    _atomic_write(Path(path), lambda temporary: temporary.write_bytes(data), overwrite)


def _atomic_write(path: Path, write, overwrite: bool) -> None:
    """Call ``write(temporary)`` on a file beside ``path``, then rename it onto ``path``."""
    check_writable(path, overwrite)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=folder)
    except OSError as error:
        raise HdrsynError(f"{path}: cannot write ({error.strerror})") from None
    os.close(handle)
    temporary = Path(name)
    os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
    try:
        write(temporary)
        if not overwrite and path.exists():
            raise HdrsynError(f"{path}: already exists (use --force to overwrite)")
        os.replace(temporary, path)
    except OSError as error:
        raise HdrsynError(f"{path}: cannot write ({error.strerror or error})") from None
    finally:
        temporary.unlink(missing_ok=True)
