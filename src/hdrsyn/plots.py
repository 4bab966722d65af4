"""Pictures a person looks at: response-curve plots and contact sheets, encoded as PNG bytes."""

from __future__ import annotations

import io

import numpy as np

CHANNEL_COLOURS = ("#d62728", "#2ca02c", "#1f77b4")


def response_curve_png(
    inverse_crf: np.ndarray,
    title: str = "Recovered camera response",
    least_squares: np.ndarray | None = None,
    notes: list[str] = (),
) -> bytes:
    """Plot a log inverse response ``g`` of shape ``(3, 256)`` as Debevec & Malik's Fig. 2 does:
    pixel level against log exposure, one curve per colour channel; ``least_squares`` (the
    solve before its monotone fit) dotted beneath where it differs, ``notes`` (what looks
    unreliable) printed on the plot."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 4), dpi=100)
    axes = figure.add_subplot()
    levels = np.arange(inverse_crf.shape[-1])
    for curve, colour, name in zip(inverse_crf, CHANNEL_COLOURS, "RGB", strict=True):
        axes.plot(curve, levels, color=colour, label=name, linewidth=1.5)
    if least_squares is not None and np.abs(least_squares - inverse_crf).max() > 1e-3:
        for curve, colour in zip(least_squares, CHANNEL_COLOURS, strict=True):
            axes.plot(curve, levels, color=colour, linewidth=0.8, linestyle=":")
        axes.plot([], [], color="grey", linewidth=0.8, linestyle=":", label="before monotone fit")
    for row, note in enumerate(notes):
        axes.text(0.02, 0.97 - 0.06 * row, note, transform=axes.transAxes, fontsize=6,
                  verticalalignment="top", color="#b00000", wrap=True)  # fmt: skip
    axes.set_xlabel("log exposure g(Z) = ln E + ln Δt")
    axes.set_ylabel("pixel level Z")
    axes.set_ylim(0, 255)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def contact_sheet(images: list[np.ndarray], labels: list[str], height: int = 160) -> np.ndarray:
    """Place RGB images in [0, 1] side by side, each scaled to ``height``, labelled beneath.

    Returns:
        ``(H, W, 3)`` float32 image in [0, 1].
    """
    from PIL import Image, ImageDraw

    tiles = []
    for image, label in zip(images, labels, strict=True):
        pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
        width = max(1, round(pixels.shape[1] * height / pixels.shape[0]))
        tile = Image.fromarray(pixels).resize((width, height), Image.Resampling.LANCZOS)
        canvas = Image.new("RGB", (width, height + 18), "white")
        canvas.paste(tile)
        ImageDraw.Draw(canvas).text((4, height + 3), label, fill="black")
        tiles.append(np.asarray(canvas))
        tiles.append(np.full((height + 18, 4, 3), 255, np.uint8))
    return np.concatenate(tiles[:-1], axis=1).astype(np.float32) / 255


def stack_rows(rows: list[np.ndarray], gap: int = 6) -> np.ndarray:
    """Stack contact-sheet rows ``(h_i, w_i, 3)`` of different widths, left-aligned on white,
    ``gap`` px apart; ``(Σ h_i + gaps, max w_i, 3)``."""
    width = max(row.shape[1] for row in rows)
    padded = [
        np.pad(row, ((0, gap), (0, width - row.shape[1]), (0, 0)), constant_values=1)
        for row in rows
    ]
    return np.concatenate(padded)
