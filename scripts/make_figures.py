"""Make the pictures in README.md and docs/ from the bundled example, with hdrsyn itself.

python scripts/make_figures.py
"""

from pathlib import Path

import numpy as np
import torch

from hdrsyn import load_model, merge_exposures, read_ldr, reconstruct, write_ldr
from hdrsyn.baselines import linearised
from hdrsyn.io import exposure_from_exif, write_bytes
from hdrsyn.metrics import protocol_align
from hdrsyn.plots import contact_sheet, response_curve_png, stack_rows
from hdrsyn.tonemap import display, srgb_encode

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "interior"
IMAGES = ROOT / "docs" / "images"


def main() -> None:
    paths = [EXAMPLE / f"ev{ev:+d}.jpg" for ev in range(-3, 4)]
    images = [read_ldr(path) for path in paths]
    evs = [exposure_from_exif(path) for path in paths]
    evs = [ev - float(np.median(evs)) for ev in evs]
    stack = torch.from_numpy(np.round(np.stack(images) * 255).astype(np.uint8)).permute(0, 3, 1, 2)
    radiance, inverse_crf = merge_exposures(stack, evs, pixel_weights=True)  # as hdrsyn merge
    shown = display(radiance).permute(1, 2, 0).numpy()

    pair = contact_sheet(
        [images[3], shown], ["input: EV 0 photo", "hdrsyn merge, Reinhard tone map"], 300
    )
    write_ldr(IMAGES / "merge_example.png", pair, overwrite=True)
    labels = [f"EV {ev:+.0f}" for ev in evs]
    write_ldr(IMAGES / "example_stack.png", contact_sheet(images, labels, 120), overwrite=True)
    write_bytes(IMAGES / "example_crf.png", response_curve_png(inverse_crf.numpy()), overwrite=True)

    result = reconstruct(images[3], load_model("small"))
    hdr_shown = display(torch.from_numpy(result.radiance).permute(2, 0, 1))
    tiles = [images[3], *result.stack, hdr_shown.permute(1, 2, 0).numpy()]
    labels = ["input", *[f"generated EV {ev:+g}" for ev in result.evs], "HDR, tone-mapped"]
    write_ldr(IMAGES / "reconstruct_example.png", contact_sheet(tiles, labels, 110), overwrite=True)
    before_after(images[3], result.radiance, radiance)
    speckles(stack, evs)
    response_before_after()
    window_edge()


def window_edge(top: int = 800, left: int = 1800) -> None:
    """A 12 MP phone-style JPEG (the bundled photo enlarged to 4000 × 3000, quality 92) through
    hdrsyn reconstruct: 400 × 600 pixels of the blown window's edge at 1:1, the photo, the
    merge as the networks were trained (per-channel weights, the photo's weight dropping to 0
    where a channel clips) and as reconstruct merges now (with the hand-over of each channel),
    each also one stop darker."""
    import cv2

    enlarged = cv2.resize(cv2.imread(str(EXAMPLE / "ev+0.jpg")), (4000, 3000),
                          interpolation=cv2.INTER_CUBIC)  # fmt: skip
    _, data = cv2.imencode(".jpg", enlarged, [cv2.IMWRITE_JPEG_QUALITY, 92])
    photo = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255
    model = load_model("small")
    result = reconstruct(photo, model)
    window = (slice(top, top + 400), slice(left, left + 600))
    stack = torch.from_numpy(np.ascontiguousarray(result.stack[:, window[0], window[1]]))
    weights = [model.config.photo_weight if ev == 0 else 1.0 for ev in result.evs]
    trained, _ = merge_exposures(stack.permute(0, 3, 1, 2), result.evs,
                                 inverse_crf=torch.from_numpy(result.inverse_crf),
                                 exposure_weights=weights)  # fmt: skip
    now = result.radiance[window]
    white = np.percentile(now, 99)
    tiles, labels = [photo[window]], ["the photo (12 MP JPEG q92), 1:1"]
    for name, radiance in (("as trained", trained.permute(1, 2, 0).numpy()), ("now", now)):
        for stops in (0, 1):
            shown = np.clip(radiance / white / 2**stops, 0, 1)
            tiles.append(srgb_encode(torch.from_numpy(shown).permute(2, 0, 1))
                         .permute(1, 2, 0).numpy())  # fmt: skip
            labels.append(f"merge {name}" + (f", {stops} stop darker" if stops else ""))
    write_ldr(IMAGES / "window_edge.png", contact_sheet(tiles, labels, 300), overwrite=True)


def response_before_after(pick: int = 9) -> None:
    """A realistic JPEG bracket of merge_study.py (its bracket ``pick``, a night sky through a
    filmic camera at JPEG q75: of the 45 brackets, the one whose Eq. 1 at λ = 10 fell most,
    by 1.35): the response Eq. 1 recovers at OpenCV's λ = 10 (as hdrsyn merge did
    before issue 24) against the default (λ = 100, monotone) and the camera's own curve, and
    a crop of the brightest region merged with each, exposed alike."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from merge_study import EVS, SETTINGS, SHARED, SHIFT, _aligned, bracket, brackets
    from PIL import Image

    from hdrsyn.camera import solve_response
    from hdrsyn.plots import CHANNEL_COLOURS

    scenes = [*sorted((SHARED / "hdr").glob("*.exr")),
              *sorted((SHARED / "hdr-extra-1k").glob("*.exr"))]  # fmt: skip
    made = brackets(scenes, 3, jpeg=True)
    for _ in range(pick):  # every bracket draws from the same generator: make them in order
        _, view, curve, capture, rng = next(made)
        bracket(view, EVS, curve, capture, rng, shift=SHIFT)
    name, view, curve, capture, rng = next(made)
    frames, _ = bracket(view, EVS, curve, capture, rng, shift=SHIFT)
    frames = np.stack(_aligned(list(frames))[0])
    truth = capture.optics(view)[SHIFT:-SHIFT, SHIFT:-SHIFT]
    stack = torch.from_numpy(frames).permute(0, 3, 1, 2)
    figure = Figure(figsize=(12, 3.4), dpi=100)
    axes = figure.add_subplot(1, 4, 1)
    levels = np.arange(256)
    for channel_curve in curve.curves:
        true = channel_curve.log_inverse()
        axes.plot(true - true[128], levels, color="black", linewidth=0.6)
    merged = {}
    for label, style in (("unscaled 10", ":"), ("100 monotone", "-")):
        g = solve_response(stack[None], torch.tensor(EVS)[None], **SETTINGS[label]).inverse_crf[0]
        for c, colour in enumerate(CHANNEL_COLOURS):
            axes.plot(g[c], levels, color=colour, linestyle=style, linewidth=1.2)
        merged[label] = merge_exposures(stack, EVS, inverse_crf=g.float(), pixel_weights=True)[0]
    axes.set_xlabel("ln exposure g(Z)")
    axes.set_ylabel("pixel level Z")
    axes.set_ylim(100, 255)
    axes.set_xlim(-1, 3)
    axes.set_title("dotted: before, solid: now, black: camera", fontsize=8)
    # the 80 × 120 window brightest in the middle frame (top-left corner of its box mean)
    import cv2

    box = cv2.boxFilter(frames[3].max(axis=2).astype(np.float32), -1, (120, 80), anchor=(0, 0),
                        borderType=cv2.BORDER_CONSTANT)  # fmt: skip
    box[-80:], box[:, -120:] = -1, -1
    y, x = np.unravel_index(np.argmax(box), box.shape)
    crops = {"truth": truth, **{k: v.permute(1, 2, 0).numpy() for k, v in merged.items()}}
    titles = {"truth": "true radiance", "unscaled 10": "before: λ 10, not monotone",
              "100 monotone": "now: λ 100, monotone"}  # fmt: skip
    reference = truth[y : y + 80, x : x + 120]
    for panel, (label, radiance) in enumerate(crops.items(), start=2):
        crop = radiance[y : y + 80, x : x + 120]
        crop = crop * (np.median(reference) / np.median(crop, axis=(0, 1)))  # per channel
        crop = np.clip(crop / np.percentile(reference, 99) * 0.9, 0, 1) ** (1 / 2.2)
        image_axes = figure.add_subplot(1, 4, panel)
        image_axes.imshow(crop)
        image_axes.set_title(titles[label], fontsize=8)
        image_axes.axis("off")
    figure.suptitle(f"a realistic JPEG bracket: {name}, {capture.describe()}", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    picture = np.asarray(Image.open(buffer).convert("RGB"), np.float32) / 255
    write_ldr(IMAGES / "merge_curves.png", picture, overwrite=True)



def speckles(stack: torch.Tensor, evs: list[float]) -> None:
    """The merged window at 4×: per-channel weights (Eq. 2 as printed) against one weight per
    pixel (what hdrsyn merge does) and OpenCV's MergeDebevec, each exposed alike."""
    import cv2

    merged = [merge_exposures(stack, evs, pixel_weights=joint)[0].permute(1, 2, 0).numpy()
              for joint in (False, True)]  # fmt: skip
    images = [np.ascontiguousarray(x[..., ::-1]) for x in stack.permute(0, 2, 3, 1).numpy()]
    times = (2.0 ** np.asarray(evs)).astype(np.float32)
    response = cv2.createCalibrateDebevec().process(images, times)
    merged.append(cv2.createMergeDebevec().process(images, times, response)[..., ::-1])
    top, left = 98, 221  # 40 × 60 pixels of the window and the curtain's edge
    tiles = []
    for radiance in merged:
        crop = radiance[top : top + 40, left : left + 60]
        crop = np.clip(crop / np.percentile(crop, 90) * 0.9, 0, 1) ** (1 / 2.2)
        tiles.append(np.kron(crop, np.ones((4, 4, 1), np.float32)))
    labels = ["per-channel weights (Eq. 2 as printed)", "one weight per pixel (hdrsyn merge)",
              "OpenCV MergeDebevec"]  # fmt: skip
    write_ldr(IMAGES / "merge_speckles.png", contact_sheet(tiles, labels, 160), overwrite=True)


def before_after(photo: np.ndarray, reconstructed: np.ndarray, merged: torch.Tensor) -> None:
    """What an HDR file holds that the photo does not: the photo, hdrsyn's reconstruction from
    it alone and the merge of the whole bracket, tone-mapped (top) and shown 3 stops darker
    (bottom), where the photo's clipped window is flat grey and the HDR images keep its light."""
    photo_t = torch.from_numpy(photo).permute(2, 0, 1)
    linear = linearised(photo_t)
    # one scale for all: each HDR image matched to the linearised photo on its well-exposed pixels
    hdrs = [protocol_align(x[None], linear[None], photo_t[None])[0]
            for x in (torch.from_numpy(reconstructed).permute(2, 0, 1), merged)]  # fmt: skip

    def darker(x):
        return srgb_encode((x / 8).clamp(0, 1)).permute(1, 2, 0).numpy()

    top = [photo, *(display(x, like=hdrs[1]).permute(1, 2, 0).numpy() for x in hdrs)]
    bottom = [darker(x) for x in (linear, *hdrs)]
    names = ["the photo (8-bit JPEG)", "hdrsyn reconstruct, from the photo alone",
             "merge of the 7-photo bracket"]  # fmt: skip
    sheet = stack_rows([contact_sheet(top, [f"{n}, as shown" for n in names], 240),
                        contact_sheet(bottom, [f"{n}, 3 stops darker" for n in names], 240)])
    write_ldr(IMAGES / "before_after.png", sheet, overwrite=True)


if __name__ == "__main__":
    main()
