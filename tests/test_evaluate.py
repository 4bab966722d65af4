"""Baselines by hand, and `hdrsyn evaluate` end to end on tiny test sets the tests make."""

import csv
import math

import numpy as np
import pytest
import torch
from conftest import make_stack

from hdrsyn import HdrsynError
from hdrsyn.baselines import akyuz, huo, linearised
from hdrsyn.cli import main
from hdrsyn.io import write_hdr, write_ldr
from hdrsyn.tonemap import srgb_decode


def test_akyuz_is_a_linear_luminance_stretch_keeping_colour():
    photo = torch.rand(3, 8, 8) * 0.9 + 0.05
    linear = srgb_decode(photo)
    lum = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    expected_lum = 3000 * (lum - lum.min()) / (lum.max() - lum.min())
    out = akyuz(photo)
    out_lum = 0.2126 * out[0] + 0.7152 * out[1] + 0.0722 * out[2]
    torch.testing.assert_close(out_lum, expected_lum, rtol=1e-4, atol=1e-3)
    lit = out_lum > 0  # the darkest pixel maps to black
    chroma = (out / out.sum(0))[:, lit], (linear / linear.sum(0))[:, lit]
    torch.testing.assert_close(*chroma, rtol=1e-4, atol=1e-4)


def test_huo_on_a_flat_image_by_hand():
    """Flat image: the bilateral filter and log-mean are the luminance L itself, so
    L_exp = (L / L) ((kL)^n + (kL)^n)^(1/n) = 2^(1/n) k L."""
    photo = torch.full((3, 16, 16), 0.6)
    lum = srgb_decode(photo)[0, 0, 0].item()
    expected = 2 ** (1 / 0.86) * 3000 * lum
    torch.testing.assert_close(huo(photo), torch.full((3, 16, 16), expected), rtol=1e-4, atol=0)


def test_huo_expands_highlights_more_than_shadows():
    photo = torch.linspace(0.05, 1.0, 64).repeat(3, 64, 1)
    ratio = huo(photo)[1] / linearised(photo)[1].clamp_min(1e-6)
    assert ratio[0, -1] > ratio[0, 0]  # bright regions are boosted relative to dark ones


@pytest.fixture
def hdr_test_folder(tmp_path):
    folder = tmp_path / "hdr"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        coarse = rng.uniform(0.01, 1, (6, 6, 3)).astype(np.float32)
        radiance = np.kron(coarse, np.ones((16, 16, 1), np.float32)) ** 3 * 40
        write_hdr(folder / f"{name}.exr", radiance)
    return folder


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_evaluate_cli_end_to_end(hdr_test_folder, tmp_path, capsys):
    report = tmp_path / "report"
    argv = ["evaluate", "--data", str(hdr_test_folder), "-o", str(report), "--views", "2",
            "--size", "64", "--model", "ours=small"]  # fmt: skip
    assert main(argv) == 0
    rows = read_rows(report / "results.csv")
    methods = ["ours", "linearised", "akyuz", "huo", "expandnet", "true-curve", "oracle"]
    assert [r["method"] for r in rows] == methods * 2
    for row in rows:
        for column in ("pu21_psnr", "pu21_ssim", "log_psnr", "mu_psnr", "pu21_psnr_well"):
            assert np.isfinite(float(row[column])), (row["method"], column)
    assert [r["group"] for r in rows[::7]] == ["srgb", "srgb"]  # view 0 and 1: kind 0 = sRGB
    # through an sRGB camera the linearised photo is nearly the true-curve photo (they differ
    # only at levels 0 and 255, which the table reads at the floor and 254.5); both are below
    # the truth by the camera's noise, demosaicing and sharpening
    by_method = {r["method"]: r for r in rows[:7]}
    linearised, true_curve = (float(by_method[m]["pu21_psnr"])
                              for m in ("linearised", "true-curve"))  # fmt: skip
    assert abs(linearised - true_curve) < 0.5 and 20 < linearised < 60
    assert float(by_method["linearised"]["curve_rmse"]) < 0.01
    assert rows[0]["psnr_ev+1"] and rows[0]["ms_ssim_ev+1"] == "nan"  # 64 px: too small
    assert rows[1]["psnr_ev+1"] == ""  # baselines make no stack
    oracle = [float(r["mu_psnr"]) for r in rows if r["method"] == "oracle"]
    linear = [float(r["mu_psnr"]) for r in rows if r["method"] == "linearised"]
    assert min(oracle) > max(linear)  # the true stack beats a single linearised photo
    text = (report / "report.md").read_text()
    assert "| ours |" in text and "| oracle |" in text and "EV +3" in text
    assert "by the camera's curve group" in text and "by region" in text
    assert len(list((report / "images").glob("*.png"))) == 2
    capsys.readouterr()
    assert main(argv) == 2  # no silent overwrite
    assert "already holds a report" in capsys.readouterr().err
    assert main([*argv, "--force", "--baselines", "oracle"]) == 0
    assert {r["method"] for r in read_rows(report / "results.csv")} == {"ours", "oracle"}


def test_evaluate_bracketed_scenes(tmp_path):
    from hdrsyn.evaluate import evaluate

    root = tmp_path / "scenes"
    rng = np.random.default_rng(1)
    for scene in ("s1", "s2"):
        folder = root / scene
        folder.mkdir(parents=True)
        radiance = np.kron(rng.uniform(0.02, 2, (4, 4, 3)), np.ones((12, 12, 1)))
        evs = [-2.0, 0.0, 2.0]
        for ev, image in zip(evs, make_stack(radiance, evs=np.array(evs)), strict=True):
            write_ldr(folder / f"ev{ev:+g}.png", image / 255.0)
        (folder / "exposures.json").write_text('{"ev-2.png": -2, "ev+0.png": 0, "ev+2.png": 2}')
    # s2 was taken by a named camera (EXIF make and model in its EV 0 image): a row of its own
    from PIL import Image

    image = Image.open(root / "s2" / "ev+0.png")
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Acme", "Acme Phone 7"
    image.save(root / "s2" / "ev+0.png", exif=exif)
    rows = evaluate(root, tmp_path / "out", models=[], baselines=["linearised", "oracle"],
                    size=48)  # fmt: skip
    assert len(rows) == 4 and {r["source"] for r in rows} == {"s1", "s2"}
    assert {r["source"]: r["group"] for r in rows} == {"s1": "camera", "s2": "Acme Phone 7"}
    table = (tmp_path / "out" / "report.md").read_text()
    assert "| method | Acme Phone 7 | camera | all |" in table


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--data", "missing-folder"], "no such file or folder"),
        (["--baselines", "magic"], "unknown magic"),
        (["--model", "nope.safetensors"], "no such weights file"),
        (["--model", "=x"], "NAME=PATH"),
    ],
)
def test_evaluate_bad_input(hdr_test_folder, tmp_path, capsys, argv, needle):
    base = {"--data": str(hdr_test_folder), "-o": str(tmp_path / "r")}
    for flag, value in zip(argv[::2], argv[1::2], strict=True):
        base[flag] = value
    args = ["evaluate", *[x for pair in base.items() for x in pair], "--views", "1", "--size", "32"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def _rows(scores: dict[str, list[float]]) -> list[dict]:
    """results.csv-like rows: every HDR column of a method gets the same score per image."""
    from hdrsyn.evaluate import HDR_COLUMNS

    return [
        {"image": f"{i:03d}", "method": method} | dict.fromkeys(HDR_COLUMNS, value)
        for method, values in scores.items()
        for i, value in enumerate(values)
    ]


def test_paired_differences_and_wilcoxon_by_hand():
    from hdrsyn.evaluate import paired_differences, wilcoxon_p

    rows = _rows({"ours": [10, 10, 10, 10, 10, 20], "other": [11, 12, 13, 14, 15, math.inf]})
    d = paired_differences(rows, "other", "ours", "mu_psnr")
    np.testing.assert_array_equal(d, [1, 2, 3, 4, 5])  # the infinite pair is dropped
    # five positive differences, no ties: the exact two-sided p is 2 / 2**5
    assert wilcoxon_p(d) == pytest.approx(0.0625)
    assert wilcoxon_p(np.zeros(4)) == 1.0


def test_report_has_a_paired_table_against_the_first_method():
    from hdrsyn.evaluate import report_markdown

    rows = _rows({"ours": [10, 10, 10, 10, 10], "other": [9, 8, 11, 7, 5]})
    text = report_markdown(rows, ["ours", "other"], {"data": "x"})
    assert "| method − ours |" in text
    # differences −1, −2, +1, −3, −5: mean −2, median −2, higher on 1 of 5
    assert "| other | -2.00 (-2.00; 1/5; p " in text
    assert "-2.0000 (-2.0000; 1/5; p " in text  # the SSIM column, four digits


def test_model_specs_name_the_model_the_curve_and_the_highlight_boost():
    from hdrsyn.evaluate import _model_label

    assert _model_label("ours=runs/a") == ("ours", "runs/a", "hybrid", True)
    assert _model_label("small@srgb") == ("small@srgb", "small", "srgb", True)
    assert _model_label("ours=runs/a@estimated") == ("ours", "runs/a", "estimated", True)
    assert _model_label("ours=runs/a@srgb") == ("ours", "runs/a", "srgb", True)
    assert _model_label("small@estimated") == ("small@estimated", "small", "estimated", True)
    assert _model_label("small@edges") == ("small@edges", "small", "edges", True)
    assert _model_label("small@no-highlights") == ("small@no-highlights", "small", "hybrid",
                                                   False)  # fmt: skip
    assert _model_label("small@srgb@no-highlights") == ("small@srgb@no-highlights", "small",
                                                        "srgb", False)  # fmt: skip
    assert _model_label("ours=runs/a@no-highlights") == ("ours", "runs/a", "hybrid", False)
    assert _model_label("small@highlights") == ("small", "small", "hybrid", True)  # the default
    assert _model_label("w/model.safetensors") == ("model", "w/model.safetensors", "hybrid", True)
    with pytest.raises(HdrsynError, match="NAME=PATH"):
        _model_label("=x@srgb")


def test_evaluate_takes_ultrahdr_jpegs_as_references(hdr_test_folder, tmp_path, capsys):
    """An Ultra HDR JPEG is an HDR reference like an EXR (its radiance decoded by libultrahdr);
    a plain JPEG among them is not picked up."""
    from PIL import Image

    from hdrsyn import read_hdr

    folder = tmp_path / "ultra"
    folder.mkdir()
    write_hdr(folder / "a.jpg", read_hdr(hdr_test_folder / "a.exr"))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "plain.jpg")
    report = tmp_path / "report"
    argv = ["evaluate", "--data", str(folder), "-o", str(report), "--views", "1", "--size", "48",
            "--baselines", "linearised"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    rows = read_rows(report / "results.csv")
    assert {r["source"] for r in rows} == {"a.jpg"}
    assert all(np.isfinite(float(r["pu21_psnr"])) for r in rows)
