"""Validation during training: scores on fixed views and a contact sheet per check."""

from __future__ import annotations

from pathlib import Path

import torch

from hdrsyn.baselines import linearised
from hdrsyn.curves import curve_rmse
from hdrsyn.metrics import hdr_psnr, psnr
from hdrsyn.models import StackGenerator
from hdrsyn.models.stacknet import merge_stack


@torch.no_grad()
def validate(generator: StackGenerator, dataset, device, run: Path | None = None, step: int = 0):
    """Stack PSNR (generated EV ≠ 0 vs target, 8-bit), HDR μ-law PSNR of ours and of the
    linearised input, and the estimated curve's ln f⁻¹ RMSE (models that estimate it), over the
    fixed validation views; writes a contact sheet PNG to ``run``."""
    generator.eval()
    scores: dict[str, list] = {"stack_psnr": [], "hdr_psnr": [], "linearised_hdr_psnr": []}
    pictures = []
    for index in range(len(dataset)):
        sample = dataset[index]
        photo = sample["input"][None].to(device)
        generated = generator(photo, sample["evs"].tolist())
        generated.stack = generated.stack.float()
        radiance = merge_stack(generated, generator.config)[0].cpu()
        stack = generated.stack.cpu()[0]
        target = sample["stack"]
        others = [i for i, ev in enumerate(sample["evs"].tolist()) if ev != 0]
        scores["stack_psnr"].append(psnr(stack[others], target[others]).mean())
        reference = sample["radiance"][None]
        scores["hdr_psnr"].append(hdr_psnr(radiance, reference, photo.cpu())[0])
        linear = linearised(photo.cpu())
        scores["linearised_hdr_psnr"].append(hdr_psnr(linear, reference, photo.cpu())[0])
        if generated.inverse_crf is not None:
            error = curve_rmse(generated.inverse_crf.float().cpu()[0], sample["inverse_crf"][0])
            scores.setdefault("curve_rmse", []).append(error)
        if index < 3:
            pictures.append((sample, stack, radiance[0]))
    metrics = {key: float(torch.stack(values).mean()) for key, values in scores.items()}
    if run is not None:
        _validation_sheet(run / f"validation-{step:07d}.png", pictures)
    return metrics


def _validation_sheet(path: Path, pictures) -> None:
    from hdrsyn.io import write_ldr
    from hdrsyn.plots import contact_sheet, stack_rows
    from hdrsyn.tonemap import display

    def shown(image):
        return image.permute(1, 2, 0).numpy()

    rows = []
    for sample, stack, radiance in pictures:
        tones = [display(r) for r in (radiance, sample["radiance"])]
        evs = sample["evs"].tolist()
        images = [shown(sample["input"])] + [shown(x) for x in stack] + [shown(t) for t in tones]
        labels = ["input"] + [f"ours EV {ev:+g}" for ev in evs] + ["ours HDR", "reference HDR"]
        rows.append(contact_sheet(images, labels, 96))
        rows.append(contact_sheet(
            [shown(x) for x in sample["stack"]], [f"target EV {ev:+g}" for ev in evs], 96
        ))  # fmt: skip
    write_ldr(path, stack_rows(rows, gap=4), overwrite=True)
