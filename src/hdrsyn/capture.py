"""How a camera makes a photo from the light in front of it (DESIGN.md §5, docs/data.md).

A test photo must be made the way a real camera makes one, never the way a method assumes: the
colour-edge curve measurement looked 7 dB better than it is on views that bilinear upsampling
had turned into exact radiance mixtures (docs/results.md). :class:`Capture` is one camera's
processing of a view's radiance, in the order a camera applies it:

1. **optics**: a Gaussian point-spread function of ``blur`` pixels (σ) in radiance;
2. **sensor**: clipping at 1 and Poisson–Gaussian noise σ = shot·√x + read on the linear
   exposure x (Foi et al., IEEE TIP 2008);
3. **Bayer mosaic and demosaicing** (optional): the RGGB samples of that exposure, stored at
   16 bits, interpolated back to RGB by OpenCV's edge-aware demosaicing;
4. **response curve** ``f`` (the camera's tone curve and encoding);
5. **sharpening** (optional) in the encoded domain, as camera pipelines do: an unsharp mask
   ``d + amount·(d − G_radius * d)``;
6. **8-bit quantisation**, then optionally **JPEG** (4:2:0) at ``jpeg`` quality.

The views themselves never upsample the source (:func:`hdrsyn.data.native_view`): a sensor
integrates light over each pixel, it does not interpolate it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from hdrsyn.curves import ResponseCurve

BLUR = (0.3, 0.8)  # optical PSF σ in pixels: a sharp lens at the pixel pitch of its sensor
SHOT_NOISE = (0.0, 0.01)  # of √x, x the linear exposure in [0, 1] (docs/data.md)
READ_NOISE = (0.0, 0.002)
SHARPEN = (0.3, 1.0)  # unsharp-mask amount
SHARPEN_RADIUS = (0.7, 1.5)  # its Gaussian σ in pixels
JPEG_QUALITY = (75, 95)  # inclusive: most photos users have are JPEGs at these qualities
_RAW_WHITE = 65535  # the mosaic is stored at 16 bits, as a raw file would hold it


@dataclass(frozen=True)
class Capture:
    """One camera's processing of a view (module doc); all fields are in pixels or in the
    units of the linear exposure (1 = clipping)."""

    blur: float = 0.0
    shot: float = 0.0
    read: float = 0.0
    bayer: bool = False
    sharpen: float = 0.0
    sharpen_radius: float = 1.0
    jpeg: int | None = None

    def optics(self, radiance: np.ndarray) -> np.ndarray:
        """The radiance the lens delivers to the sensor: ``(H, W, 3)`` float32 blurred by the
        PSF (edges reflected). The reference HDR and the target stack are made from it too."""
        if self.blur <= 0:
            return np.ascontiguousarray(radiance, dtype=np.float32)
        return cv2.GaussianBlur(radiance.astype(np.float32), (0, 0), self.blur,
                                borderType=cv2.BORDER_REFLECT)  # fmt: skip

    def photograph(self, exposure: np.ndarray, curve: ResponseCurve, rng) -> np.ndarray:
        """The photo of a sensor ``exposure`` ``(H, W, 3)`` (after :meth:`optics`; 1 = clipping)
        through ``curve``: float32 multiples of 1/255 in [0, 1]. ``rng`` draws the noise."""
        x = np.clip(exposure, 0, 1).astype(np.float32)
        if self.shot > 0 or self.read > 0:
            sigma = self.shot * np.sqrt(x) + self.read
            x = np.clip(x + sigma * rng.standard_normal(x.shape).astype(np.float32), 0, 1)
        if self.bayer:
            x = demosaiced(mosaic(x))
        display = curve(x).astype(np.float32)
        if self.sharpen > 0:
            detail = display - cv2.GaussianBlur(display, (0, 0), self.sharpen_radius,
                                                borderType=cv2.BORDER_REFLECT)  # fmt: skip
            display = display + self.sharpen * detail
        photo = quantise(display)
        return photo if self.jpeg is None else jpeg_compressed(photo, self.jpeg)

    def describe(self) -> str:
        parts = [f"blur {self.blur:.2f}px"]
        if self.shot > 0 or self.read > 0:
            parts.append(f"noise {self.shot:.4f}√x+{self.read:.4f}")
        if self.bayer:
            parts.append("bayer")
        if self.sharpen > 0:
            parts.append(f"sharpen {self.sharpen:.2f}@{self.sharpen_radius:.2f}px")
        parts.append("png" if self.jpeg is None else f"jpeg q{self.jpeg}")
        return ", ".join(parts)


def sample_capture(
    rng, *, noise: float, bayer: float, sharpen: float, jpeg: float
) -> Capture:
    """A camera drawn from the ranges above; ``noise``, ``bayer``, ``sharpen`` and ``jpeg`` are
    the probabilities of each step. Every value is drawn whether used or not, so the same
    ``rng`` state gives the same view, curve and camera whatever the probabilities (a PNG and a
    JPEG test set then differ only by the JPEG step)."""
    blur = rng.uniform(*BLUR)
    shot, read = rng.uniform(*SHOT_NOISE), rng.uniform(*READ_NOISE)
    amount, radius = rng.uniform(*SHARPEN), rng.uniform(*SHARPEN_RADIUS)
    quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
    noisy, mosaicked, sharpened, compressed = rng.random(4) < [noise, bayer, sharpen, jpeg]
    return Capture(
        blur=float(blur),
        shot=float(shot) if noisy else 0.0,
        read=float(read) if noisy else 0.0,
        bayer=bool(mosaicked),
        sharpen=float(amount) if sharpened else 0.0,
        sharpen_radius=float(radius),
        jpeg=quality if compressed else None,
    )


def mosaic(exposure: np.ndarray) -> np.ndarray:
    """The RGGB Bayer samples of a linear ``(H, W, 3)`` exposure in [0, 1]: ``(H, W)`` uint16
    (red at even rows and columns, blue at odd ones, green elsewhere)."""
    raw = np.empty(exposure.shape[:2], np.float32)
    raw[0::2, 0::2] = exposure[0::2, 0::2, 0]
    raw[0::2, 1::2] = exposure[0::2, 1::2, 1]
    raw[1::2, 0::2] = exposure[1::2, 0::2, 1]
    raw[1::2, 1::2] = exposure[1::2, 1::2, 2]
    return np.round(np.clip(raw, 0, 1) * _RAW_WHITE).astype(np.uint16)


def demosaiced(raw: np.ndarray) -> np.ndarray:
    """RGB ``(H, W, 3)`` float32 in [0, 1] from RGGB samples (:func:`mosaic`), by OpenCV's
    edge-aware demosaicing. OpenCV names Bayer patterns by the second row's first two
    pixels, so RGGB is its ``BayerBG``, and it writes BGR unless asked for RGB."""
    return cv2.cvtColor(raw, cv2.COLOR_BayerBG2RGB_EA).astype(np.float32) / _RAW_WHITE


def quantise(display: np.ndarray) -> np.ndarray:
    """8-bit quantisation of display values in [0, 1] (any shape), returned as float32
    multiples of 1/255."""
    return (np.round(np.clip(display, 0, 1) * 255) / 255).astype(np.float32)


def jpeg_compressed(photo: np.ndarray, quality: int) -> np.ndarray:
    """An ``(H, W, 3)`` photo in [0, 1] saved as a JPEG of ``quality`` and read back (OpenCV's
    codec, 4:2:0), float32."""
    pixels = cv2.cvtColor(np.round(photo * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    _, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)  # OpenCV's JPEG codec is BGR
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB).astype(np.float32) / 255


@dataclass(frozen=True)
class PerChannel:
    """A camera response with its own curve per colour channel (a real JPEG engine's channels
    differ in shape, not only by white balance): ``(…, 3)`` exposures through ``curves[c]``."""

    curves: tuple[ResponseCurve, ResponseCurve, ResponseCurve]

    def __call__(self, exposure: np.ndarray) -> np.ndarray:
        return np.stack([curve(exposure[..., c]) for c, curve in enumerate(self.curves)], axis=-1)


def bracket(
    radiance: np.ndarray, evs, curve, capture: Capture, rng, shift: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A handheld exposure bracket of ``radiance`` ``(H + 2·shift, W + 2·shift, 3)`` (1 =
    clipping at EV 0) as one camera takes it: every frame through the same optics, its own
    sensor noise, ``capture``'s processing and ``curve`` (a :class:`~hdrsyn.curves.ResponseCurve`
    or :class:`PerChannel`), each frame but the middle one shifted by up to ``shift`` pixels a
    side (the camera moved between frames).

    Returns:
        frames ``(P, H, W, 3)`` uint8 and the shifts ``(P, 2)`` (x, y) in pixels by which each
        frame's content moved against the middle frame's.
    """
    light = capture.optics(radiance)
    height, width = light.shape[0] - 2 * shift, light.shape[1] - 2 * shift
    frames, moves = [], []
    middle = len(evs) // 2
    for index, ev in enumerate(evs):
        dx, dy = (0, 0) if index == middle else rng.integers(-shift, shift + 1, 2)
        window = light[shift + dy : shift + dy + height, shift + dx : shift + dx + width]
        photo = capture.photograph(window * 2.0**ev, curve, rng)
        frames.append(np.round(photo * 255).astype(np.uint8))
        moves.append((-dx, -dy))  # a window moved right shows the content moved left
    return np.stack(frames), np.array(moves)
