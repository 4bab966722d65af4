"""Single photo → HDR: the trained stack generator, then the differentiable HDR layer.

Large photos keep peak memory bounded: the networks run on a copy reduced to at most
``max_pixels``, and what they add to the physical prior (a per-pixel shift in logit space) is
upsampled and added to the prior of the full-resolution photo. The global tone (what the
networks decide) comes from the reduced copy; the local detail of the result is the photo's
own, at full resolution, with no tiles and so no seams. The merge then runs at full resolution;
near clipping each channel is handed over smoothly from the photo to the generated exposures
(:func:`_hand_over`), so that blown highlights stay smooth. Each clipped region is then raised
by the brightness a small model predicts it lost (:mod:`hdrsyn.highlights`; ``highlights=False``
leaves it out).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from hdrsyn.calibration import calibrate
from hdrsyn.camera import RANGE_SLACK, look_up, merge_exposures
from hdrsyn.curves import normalised, srgb_log_inverse
from hdrsyn.errors import HdrsynError
from hdrsyn.highlights import raise_highlights
from hdrsyn.io import read_ldr, read_weights, unit_floats
from hdrsyn.models import HDRSynthesizer, ModelConfig
from hdrsyn.models.stacknet import image_logit, merge_stack, prior_logit
from hdrsyn.stops import DEFAULT_EVS

DEFAULT_MAX_PIXELS = 512 * 512
# "hybrid" first: the default. On camera-realistic views it is at least as good as assuming
# sRGB on every curve group; neither measurement alone is (docs/results.md).
CURVES = ("hybrid", "srgb", "edges", "estimated")
# the hybrid curve: above HYBRID_LEVEL, sRGB plus HYBRID_SHARE of how much more CurveNet's
# estimate rises; only for photos with at least HYBRID_EVIDENCE of their pixels' brightest
# channel above HYBRID_BRIGHT (others keep sRGB). Chosen on validation views of the training
# scenes, PNG and JPEG (scripts/curve_hybrid.py), never on the held-out views
HYBRID_LEVEL, HYBRID_SHARE = 0.7, 1.5
HYBRID_EVIDENCE, HYBRID_BRIGHT = 0.05, 0.8


def hybrid_share(photo: Tensor, share: float = HYBRID_SHARE,
                 evidence: float = HYBRID_EVIDENCE) -> Tensor:  # fmt: skip
    """The share of CurveNet's reading near white that :func:`hybrid_curve` takes for each
    photo (B, 3, H, W): ``share`` where at least ``evidence`` of its pixels have their
    brightest channel above ``HYBRID_BRIGHT``, else 0 (sRGB); (B,).

    An estimate of the curve near white rests on the photo's bright pixels: with few of them
    CurveNet still answers, and on validation its answer for such an sRGB photo cost up to
    10 dB, while photos with more gained on average in every curve group."""
    bright = (photo.amax(dim=1) > HYBRID_BRIGHT).flatten(1).float().mean(dim=1)
    return torch.where(bright >= evidence, share, 0.0).to(photo.dtype)


def hybrid_curve(estimate: Tensor, share: float | Tensor = HYBRID_SHARE,
                 level: float = HYBRID_LEVEL) -> Tensor:  # fmt: skip
    """sRGB's ``g`` up to ``level``; above it, sRGB's rise from there plus ``share`` (a number,
    or one per curve) of how much more the estimated curve ``estimate`` (..., 256) rises from
    there, never less than sRGB's rise.

    Cameras part from sRGB most near white, where many roll their highlights off (a level
    near 255 then stands for far more light than sRGB says), and that is where a blown region
    is read. There the true curves of the validation views never rise less than sRGB's by
    more than 0.18 (in ln; only gamma and S-curves do at all), so a lower estimate is taken as
    sRGB. CurveNet's estimates are drawn towards its mean curve: on validation roll-off photos
    they rise above sRGB's two thirds as far as the truth (median 0.66 against 0.97 at 255),
    hence a share above 1. Continuous, non-decreasing for non-decreasing inputs, g(128) = 0.
    """
    srgb = normalised(srgb_log_inverse()).to(estimate)
    k = round(level * 255)
    if not 128 <= k <= 255:
        raise HdrsynError(f"hybrid level: {level}; must lie in [128/255, 1]")
    excess = (estimate[..., k:] - estimate[..., k : k + 1]) - (srgb[k:] - srgb[k])
    share = torch.as_tensor(share, dtype=estimate.dtype, device=estimate.device)
    upper = srgb[k:] + share[..., None] * excess.clamp_min(0)
    return torch.cat([srgb[:k].expand(*upper.shape[:-1], k), upper], dim=-1)


def shipped_models() -> list[str]:
    """Names of the weights shipped inside the package."""
    folder = resources.files("hdrsyn") / "weights"
    return sorted(p.name.removesuffix(".safetensors") for p in folder.iterdir()
                  if p.name.endswith(".safetensors"))  # fmt: skip


def load_model(model: str | os.PathLike = "small", device: str | torch.device = "cpu"):
    """Load trained weights: a shipped name (``"small"``), a ``.safetensors`` path written by
    ``hdrsyn export``, or a run or checkpoint folder of ``hdrsyn train`` (its latest weights).
    Offline; returns an eval-mode :class:`~hdrsyn.models.HDRSynthesizer` in float32."""
    name = str(model)
    if name in shipped_models():
        path = Path(str(resources.files("hdrsyn") / "weights" / f"{name}.safetensors"))
    elif Path(name).is_dir():
        from hdrsyn.train import weights_file

        path = weights_file(name)
    else:
        path = Path(name)
        if not path.is_file():
            known = ", ".join(shipped_models()) or "none shipped"
            raise HdrsynError(f"{path}: no such weights file (shipped models: {known})")
    state, metadata = read_weights(path)
    if "model" not in metadata:
        raise HdrsynError(f"{path}: no model config in its metadata (not an hdrsyn weights file)")
    config = ModelConfig(**json.loads(metadata["model"]))
    synthesizer = HDRSynthesizer(config, fit_curve_basis=False)  # the weights hold the basis
    try:
        synthesizer.generator.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as error:
        raise HdrsynError(f"{path}: weights do not fit the model config ({error})") from None
    return synthesizer.eval().to(device)


@dataclass
class Reconstruction:
    radiance: np.ndarray  # (H, W, 3) float32, relative scale
    stack: np.ndarray  # (P, H, W, 3) float32 in [0, 1]
    evs: list[float]
    inverse_crf: np.ndarray  # (3, 256) the curve the stack was merged with
    photo_curve: np.ndarray | None = None  # (256,) the photo's g the prior used: CurveNet's
    # estimate (curve="estimated") or the one chosen (hybrid, srgb, edges); None without one


_LEVEL_VALUES = torch.arange(256) / 255.0


def _levels_of(image: Tensor) -> Tensor | None:
    """The 8-bit levels of ``image`` (B, 3, H, W) as uint8 if every value is one, else None
    (one channel at a time: the float copies stay a third of the image)."""
    levels = torch.empty(image.shape, dtype=torch.uint8, device=image.device)
    for channel in range(image.shape[1]):
        scaled = (image[:, channel] * 255).round_()
        if not torch.equal(scaled / 255, image[:, channel]):
            return None
        levels[:, channel] = scaled
    return levels


def _upsampled(image: Tensor, size: tuple[int, int], out: Tensor | None = None) -> Tensor:
    """(C, h, w) → (C, *size), bilinear with pixel centres aligned (``align_corners=False``);
    OpenCV's resize on the CPU (7× torch's at 12 MP; equal within 3e-4) into ``out`` if
    given, torch's elsewhere."""
    if image.device.type != "cpu":
        return nn.functional.interpolate(image[None], size=size, mode="bilinear")[0]
    out = image.new_empty(image.shape[0], *size) if out is None else out
    for channel in range(image.shape[0]):
        cv2.resize(image[channel].contiguous().numpy(), size[::-1], dst=out[channel].numpy(),
                   interpolation=cv2.INTER_LINEAR)  # fmt: skip
    return out


HAND_OVER = (0.9, 1.0)  # photo levels over which the generated exposures take a channel over


def _hand_over(radiance: Tensor, stack: Tensor, evs: Tensor, inverse_crf: Tensor,
               image: Tensor) -> None:  # fmt: skip
    """Blend each channel, in place, from the merge to the merge of the generated exposures
    alone as the photo's value in that channel rises from 0.9 to 1 (smoothstep, in ln
    radiance).

    The merge weighs the photo far above a generated exposure (``photo_weight``), so a channel
    takes the photo's value until it clips and the generated exposures' from then on: in a
    JPEG's blown window, whose near-white pixels flicker between 254 and 255, the small
    disagreement between the two became hard-edged patches, and cyan, pink and lime blotches
    where one channel clipped and the others did not. Both merges are of the same stack with
    the same curve and coincide where the photo clips (it has no weight there), so the result
    is a continuous function of the photo. Only pixels with a channel above 0.9 are merged
    again."""
    low, high = HAND_OVER
    photo = image[0].flatten(1)  # (3, H·W)
    band = (photo.amax(dim=0) > low).nonzero()[:, 0]
    if band.numel() == 0:
        return
    t = ((photo[:, band] - low) / (high - low)).clamp(0, 1)
    alpha = t * t * (3 - 2 * t)  # (3, n)
    made = (evs != 0).nonzero()[:, 0].tolist()  # the generated exposures
    # (1, P − 1, 3, 1, n): only the band's pixels are copied, one exposure at a time
    pixels = torch.stack([stack[0, j].flatten(1)[:, band] for j in made])[None, :, :, None]
    generated, _ = merge_exposures(pixels, evs[made], inverse_crf=inverse_crf)
    del pixels
    flat = radiance.view(1, 3, -1)
    both = flat[:, :, band].log()
    flat[:, :, band] = torch.lerp(both, generated[:, :, 0].log(), alpha[None]).exp()


def _as_unit_floats(photo: np.ndarray) -> np.ndarray:
    """An (H, W, 3) photo as float32 in [0, 1]: uint8 and uint16 levels scaled as
    :func:`~hdrsyn.io.read_ldr` does, floats checked with the merge's slack."""
    if photo.ndim != 3 or photo.shape[2] != 3 or photo.size == 0:
        raise HdrsynError(f"photo: expected an (H, W, 3) image, got shape {photo.shape}")
    if photo.dtype in (np.uint8, np.uint16):
        return unit_floats(photo)
    if not np.issubdtype(photo.dtype, np.floating):
        raise HdrsynError(f"photo: {photo.dtype} values; pass floats in [0, 1] or uint8/uint16 "
                          "levels")  # fmt: skip
    photo = photo.astype(np.float32, copy=False)
    low, high = float(photo.min()), float(photo.max())
    if not (-RANGE_SLACK <= low and high <= 1 + RANGE_SLACK):  # also refuses NaN
        raise HdrsynError(f"photo: float values must lie in [0, 1], got {low:g}…{high:g} "
                          "(8-bit levels: pass them as uint8)")  # fmt: skip
    return photo


@torch.no_grad()
def reconstruct(
    photo: np.ndarray | str | os.PathLike,
    model: nn.Module | str | os.PathLike = "small",
    *,
    evs: Sequence[float] = DEFAULT_EVS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    curve: str = "hybrid",
    highlights: bool = True,
    stage: Callable[[str], None] | None = None,
) -> Reconstruction:
    """Turn one LDR photo into an HDR radiance map (the paper's pipeline).

    Args:
        photo: ``(H, W, 3)`` RGB floats in [0, 1] (e.g. from :func:`hdrsyn.read_ldr`),
            uint8 or uint16 levels (e.g. from PIL or OpenCV, in RGB order), or the path of
            a photo file.
        model: a loaded model or a name/path for :func:`load_model`.
        evs: exposures of the generated stack in stops; must hold 0 (the photo).
        max_pixels: the networks run on a copy of at most this many pixels (see module doc).
        curve: the photo's response curve: ``"hybrid"`` (default: sRGB up to level 0.7,
            above it more light where CurveNet reads a roll-off and the photo has enough
            bright pixels to read it from, :func:`hybrid_curve`), ``"srgb"`` (the
            photo is taken as sRGB-encoded), ``"edges"`` (measured from the photo's colour
            edges by :func:`hdrsyn.calibration.calibrate`, sRGB where it finds too few;
            misled by real cameras' demosaicing, sharpening and JPEG) or ``"estimated"`` (CurveNet's
            guess from the photo's statistics); results of each on camera-realistic
            held-out photos in docs/results.md. Models without a curve estimator always use
            their own.
        highlights: raise each clipped region of the result by the boost the shipped region
            model predicts for it (:mod:`hdrsyn.highlights`; on by default: on views of
            scenes it never saw, the training scenes cross-validated and the held-out test,
            it gains on average for every kind of camera, by a little, and a few views lose,
            1.7 % of the unseen-scene views over 1 dB: docs/results.md). ``False``
            leaves clipped regions where the stack and the merge put them (a fraction of a
            stop above white).
        stage: called with ``"curve"``, ``"networks"`` and ``"merge"`` as each begins (a
            progress display's hook).

    Returns:
        the radiance (relative scale: a level-128 pixel of the photo, under the recovered
        response, has radiance 1), the generated stack, its EVs and the response curve.
    """
    if curve not in CURVES:
        raise HdrsynError(f"curve: {curve!r}; use {', '.join(CURVES)}")
    if isinstance(photo, str | os.PathLike):
        photo = read_ldr(photo)
    if not isinstance(model, nn.Module):
        model = load_model(model)
    if not (isinstance(max_pixels, int | np.integer) and max_pixels > 0):
        raise HdrsynError(f"max_pixels: {max_pixels!r}; must be a positive integer")
    photo = _as_unit_floats(np.asarray(photo))
    device = next(model.parameters()).device
    image = torch.from_numpy(photo).permute(2, 0, 1)[None].to(device)
    height, width = photo.shape[:2]
    scale = min(1.0, (max_pixels / (height * width)) ** 0.5)
    if scale < 1.0:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        small = nn.functional.interpolate(image, size=size, mode="area")
    else:
        small = image
    stage = stage or (lambda name: None)
    stage("curve")
    known = None
    if curve != "estimated" and model.generator.curve_net is not None:
        measured = None
        if curve == "edges":
            measured = calibrate(np.round(np.clip(photo, 0, 1) * 255).astype(np.uint8))
        elif curve == "hybrid":
            measured = hybrid_curve(model.generator.estimate_curve(small)[0],
                                    hybrid_share(small)[0])
        if measured is None:
            measured = normalised(srgb_log_inverse())
        known = measured.to(device)[None]
    stage("networks")
    generated = model.generator(small, evs, known)
    evs_sorted = generated.evs.tolist()
    if scale < 1.0:
        # what the networks added to the physical prior, upsampled, on the full-size prior
        prior, curve = model.config.prior, generated.inverse_crf
        stack = torch.empty(1, len(evs_sorted), 3, height, width, device=device)
        levels = _levels_of(image)
        # one buffer for every EV on the CPU: 12 MP planes are above glibc's mmap threshold, so
        # a new one each time would fault in 144 MB again
        upsampled = image.new_empty(image.shape[1:]) if device.type == "cpu" else None
        for index, ev in enumerate(evs_sorted):  # one exposure at a time: bounded memory
            out = stack[0, index]  # (3, H, W), filled in place: no full-size temporaries
            if ev == 0:
                out.copy_(image[0])  # the photo itself
                continue
            stops = image.new_tensor([ev])
            shift = image_logit(generated.stack[:, index]) - prior_logit(small, stops, prior, curve)
            if levels is None:
                out.copy_(prior_logit(image, stops, prior, curve)[0])
            else:  # an 8-bit photo: the prior is a function of the level, one table per EV
                values = _LEVEL_VALUES.to(image).expand(1, 3, 1, 256)  # one curve for R, G, B
                table = prior_logit(values, stops, prior, curve)[0, 0, 0]
                for channel in range(3):  # planes: OpenCV's LUT on the CPU (camera.look_up)
                    look_up(table, levels[0, channel], out[channel])
            out.add_(_upsampled(shift[0], (height, width), upsampled)).sigmoid_()
        del levels, upsampled  # before the merge, the peak of memory
    else:
        stack = generated.stack
    stage("merge")
    stack = stack.float()
    radiance, inverse_crf = merge_stack(generated, model.config, stack)
    _hand_over(radiance, stack, generated.evs, inverse_crf, image)
    if highlights:
        raise_highlights(radiance, image)
    radiance, inverse_crf = radiance[0], inverse_crf[0]
    return Reconstruction(
        radiance=radiance.permute(1, 2, 0).cpu().numpy(),
        stack=stack[0].permute(0, 2, 3, 1).cpu().numpy(),
        evs=evs_sorted,
        inverse_crf=inverse_crf.float().cpu().numpy(),
        photo_curve=None
        if generated.inverse_crf is None
        else generated.inverse_crf[0].float().cpu().numpy(),
    )
