import json

import numpy as np
import pytest
import torch
from conftest import data_file
from PIL import Image

from hdrsyn import HdrsynError, merge_exposures, write_hdr
from hdrsyn.capture import Capture, demosaiced, mosaic
from hdrsyn.curves import CURVE_FAMILIES, KINDS, ResponseCurve, parameter_bands, sample_curve
from hdrsyn.data import (
    HELD_OUT,
    MAX_SPAN,
    TRAIN_YAW,
    VAL_YAW,
    BracketedStackDataset,
    SyntheticStackDataset,
    native_view,
)
from hdrsyn.io import read_ldr

EXAMPLE = [f"ev{ev:+d}.jpg" for ev in range(-3, 4)]


@pytest.fixture(scope="module")
def hdr_folder():
    return data_file("city.exr").parent


@pytest.fixture(scope="module")
def train_set(hdr_folder):
    return SyntheticStackDataset(hdr_folder, size=64, length=8, seed=1)


def test_stack_monotonic_clipped_and_quantised(train_set):
    for index in range(4):
        sample = train_set[index]
        stack = sample["stack"]
        assert stack.shape == (7, 3, 64, 64) and sample["evs"].tolist() == list(range(-3, 4))
        assert (stack.diff(dim=0) >= 0).all()  # pixel by pixel, brighter with EV
        means = stack.mean(dim=(1, 2, 3))
        assert (means.diff() > 0).all()
        levels = stack * 255
        assert torch.equal(levels, levels.round()) and stack.min() >= 0 and stack.max() <= 1
        exposure = sample["radiance"] * 2.0**3
        assert (stack[-1][exposure >= 1] == 1).all()  # clipped where the exposure saturates


def test_reference_radiance_consistent_with_stack(train_set):
    for index in range(3):
        sample = train_set[index]
        merged, _ = merge_exposures(
            sample["stack"], sample["evs"], inverse_crf=sample["inverse_crf"]
        )
        reference = sample["radiance"]
        informative = (sample["stack"] > 0).any(0) & (sample["stack"] < 1).any(0)
        error = (merged / reference.clamp_min(1e-8) - 1).abs()[informative]
        assert error.median() < 0.01 and error.quantile(0.95) < 0.05


def test_deterministic_given_seed(hdr_folder, train_set):
    again = SyntheticStackDataset(hdr_folder, size=64, length=8, seed=1)
    for key in ("input", "stack", "radiance"):
        assert torch.equal(train_set[3][key], again[3][key])
    assert not torch.equal(train_set[3]["stack"], train_set[4]["stack"])
    other = SyntheticStackDataset(hdr_folder, size=64, length=8, seed=2)
    assert not torch.equal(train_set[3]["stack"], other[3]["stack"])


def test_validation_views_are_fixed_and_clean(hdr_folder):
    val = SyntheticStackDataset(hdr_folder, size=48, split="val", length=6, seed=0)
    sample = val[2]
    torch.testing.assert_close(sample["input"], sample["stack"][3])  # no noise, no JPEG
    count = len(val.files)
    assert count >= 2
    assert [val[i]["source"] for i in range(count)] == sorted(p.name for p in val.files)


def test_splits_look_at_disjoint_parts_of_the_panorama():
    # a panorama whose red channel is the longitude in degrees (−180…180 from left to right)
    height, width = 256, 512
    longitude = (np.arange(width) + 0.5) / width * 360 - 180
    panorama = np.zeros((height, width, 3), np.float32)
    panorama[..., 0] = longitude
    centre = native_view(panorama, 30.0, 0.0, 33)[16, 16, 0]
    assert centre == pytest.approx(30.0, abs=1.0)
    side = int(MAX_SPAN / 360 * width)  # the widest view a split may take
    view = native_view(panorama, VAL_YAW[1], 15.0, side)[..., 0]
    assert view.max() < 66
    view = native_view(panorama, TRAIN_YAW[0], 15.0, side // 2, scale=2.0)[..., 0]
    longitudes = np.where(view < 0, view + 360, view)
    assert longitudes.min() > 74


def test_native_views_never_upsample_and_keep_the_mean_radiance():
    rng = np.random.default_rng(3)
    panorama = np.exp(rng.normal(0, 1, (64, 128, 3))).astype(np.float32)
    # at scale 1 every view pixel is a source pixel, wrapped around in yaw
    view = native_view(panorama, 170.0, 0.0, 32)
    assert np.isin(view, panorama).all()
    # at scale 2 each view pixel is the mean of its 2 × 2 footprint: the same mean radiance
    view = native_view(panorama, 0.0, 0.0, 16, scale=2.0)
    np.testing.assert_allclose(view.mean((0, 1)), panorama[16:48, 48:80].mean((0, 1)), rtol=1e-5)
    np.testing.assert_allclose(view[0, 0], panorama[16:18, 48:50].mean((0, 1)), rtol=1e-5)
    # at a fractional scale the area average still keeps the mean
    view = native_view(panorama, 0.0, 0.0, 20, scale=1.6)
    np.testing.assert_allclose(view.mean((0, 1)), panorama[16:48, 48:80].mean((0, 1)), rtol=1e-4)
    with pytest.raises(HdrsynError, match="upsample"):
        native_view(panorama, 0.0, 0.0, 16, scale=0.5)
    with pytest.raises(HdrsynError, match="at least 80 pixels high"):
        native_view(panorama, 0.0, 0.0, 80)


def test_dataset_views_are_native_in_every_split(tmp_path):
    """Every split's views come from native_view at scale ≥ 1: no view pixel is smaller than
    a source pixel. A panorama of unique values shows it: the test and validation views are
    made of source values only."""
    panorama = np.arange(64 * 128 * 3, dtype=np.float32).reshape(64, 128, 3) % 977 + 1
    write_hdr(tmp_path / "unique.exr", panorama)
    for split, length in (("train", 12), ("val", 3), ("test", 3)):
        data = SyntheticStackDataset(tmp_path, size=16, split=split, length=length,
                                     curves="test" if split == "test" else "train")  # fmt: skip
        for index in range(length):
            where = data[index]["view"]
            assert float(where.split("x")[-1]) >= 1.0, where
    with pytest.raises(HdrsynError, match="too small for native train views"):
        SyntheticStackDataset(tmp_path, size=64, split="train", length=1)


def test_capture_steps():
    rng = np.random.default_rng(0)
    curve = ResponseCurve("srgb")
    # the Bayer round trip returns a flat colour unchanged, in the right channels
    flat = np.ones((16, 16, 3), np.float32) * np.array([0.8, 0.4, 0.1], np.float32)
    np.testing.assert_allclose(demosaiced(mosaic(flat)), flat, atol=1e-4)
    # optics keep the mean radiance (a PSF integrates to 1) and blur a point
    point = np.zeros((33, 33, 3), np.float32)
    point[16, 16] = 1.0
    blurred = Capture(blur=0.8).optics(point)
    assert blurred.sum() == pytest.approx(3.0, rel=1e-3) and blurred[16, 16, 0] < 0.5
    # noise is zero-mean on the exposure, and grows with it (shot noise)
    exposure = np.full((128, 128, 3), 0.25, np.float32)
    noisy = Capture(shot=0.02).photograph(exposure, ResponseCurve("gamma", 1.0), rng)
    assert abs(noisy.mean() - 0.25) < 2 / 255 and noisy.std() == pytest.approx(0.01, rel=0.15)
    # sharpening in the encoded domain overshoots an edge on both sides
    edge = np.zeros((16, 16, 3), np.float32)
    edge[:, 8:] = 0.5
    edge = Capture(blur=1.0).optics(edge)
    plain = Capture().photograph(edge, curve, rng)
    sharp = Capture(sharpen=1.0).photograph(edge, curve, rng)
    assert sharp[:, 9:11].max() > plain.max() and sharp[:, 5:7].min() < plain[:, 5:7].min()
    # the photo is always 8-bit
    np.testing.assert_allclose(sharp * 255, np.round(sharp * 255), atol=1e-4)


def test_png_and_jpeg_test_sets_differ_only_by_the_jpeg_step():
    scene = data_file("city.exr")
    png = SyntheticStackDataset(scene, size=64, split="test", curves="test", length=2)
    jpeg = SyntheticStackDataset(scene, size=64, split="test", curves="test", length=2,
                                 photo_format="jpeg")  # fmt: skip
    a, b = png[1], jpeg[1]
    assert torch.equal(a["radiance"], b["radiance"]) and a["curve"] == b["curve"]
    assert a["capture"].endswith("png") and "jpeg q" in b["capture"]
    assert a["capture"].rsplit(", ", 1)[0] == b["capture"].rsplit(", ", 1)[0]
    assert not torch.equal(a["input"], b["input"])
    assert (a["input"] - b["input"]).abs().mean() < 0.03


def test_curve_families_are_monotone_and_disjoint():
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, 1001)
    for family in CURVE_FAMILIES:
        for _ in range(40):
            curve = sample_curve(rng, family)
            y = curve(x)
            assert y[0] == pytest.approx(0, abs=1e-9) and y[-1] == pytest.approx(1)
            assert (np.diff(y) >= 0).all()
            assert np.isfinite(curve.log_inverse()).all()
    train = [sample_curve(rng, "train") for _ in range(600)]
    test = [sample_curve(rng, "test") for _ in range(600)]
    assert {c.kind for c in train} == set(KINDS) - {"aces"}  # aces: never in training
    assert {c.kind for c in test} == set(KINDS)
    for kind, attribute, name in [("gamma", "gamma", "gamma"), ("sigmoid", "contrast", "contrast"),
                                  ("shoulder", "shoulder", "shoulder"),
                                  ("reinhard", "white", "reinhard"), ("hable", "white", "hable"),
                                  ("log", "white", "log")]:  # fmt: skip
        for family, curves in (("train", train), ("test", test)):
            bands = parameter_bands(name, family)
            for curve in (c for c in curves if c.kind == kind):  # inside its own family's bands
                value = getattr(curve, attribute)
                assert any(a - 1e-9 <= value <= b + 1e-9 for a, b in bands), (family, curve)


def test_log_inverse_inverts_curve():
    curve = ResponseCurve("sigmoid", 2.2, contrast=4.0)
    g = curve.log_inverse()
    levels = np.arange(5, 251)
    np.testing.assert_allclose(curve(np.exp(g[levels])), levels / 255, atol=1e-4)


def test_synthetic_rejects_bad_folders(tmp_path):
    with pytest.raises(HdrsynError, match="no .exr"):
        SyntheticStackDataset(tmp_path)
    with pytest.raises(HdrsynError, match="no such file or folder"):
        SyntheticStackDataset(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(HdrsynError, match="not an HDR image"):
        SyntheticStackDataset(tmp_path / "notes.txt")


def test_non_panoramic_sources_are_cropped(tmp_path):
    rng = np.random.default_rng(0)
    write_hdr(tmp_path / "flat.exr", np.exp(rng.normal(0, 1, (60, 100, 3))).astype(np.float32))
    sample = SyntheticStackDataset(tmp_path, size=32, length=2)[0]
    assert sample["stack"].shape == (7, 3, 32, 32)


@pytest.fixture
def scenes(tmp_path):
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "interior"
    scene = tmp_path / "scenes" / "room"
    scene.mkdir(parents=True)
    for name in EXAMPLE[1:6]:
        (scene / name).write_bytes((example / name).read_bytes())
    return tmp_path / "scenes"


def test_bracketed_from_exif_and_json(scenes):
    dataset = BracketedStackDataset(scenes, size=64)
    sample = dataset[0]
    assert sample["evs"].tolist() == [-2, -1, 0, 1, 2]
    assert sample["stack"].shape == (5, 3, 64, 64)
    torch.testing.assert_close(sample["input"], sample["stack"][2])
    assert torch.isfinite(sample["radiance"]).all() and sample["radiance"].shape == (3, 64, 64)
    room = scenes / "room"
    (room / "exposures.json").write_text(json.dumps({n: i - 1 for i, n in enumerate(EXAMPLE[1:6])}))
    assert BracketedStackDataset(scenes)[0]["evs"].tolist() == [-1, 0, 1, 2, 3]


def test_bracketed_with_reference_and_csv(scenes):
    room = scenes / "room"
    (room / "exposures.csv").write_text(
        "\n".join(f"{n},{i - 2}" for i, n in enumerate(EXAMPLE[1:6]))
    )
    reference = np.full((320, 600, 3), 2.5, np.float32)
    write_hdr(room / "reference.exr", reference)
    sample = BracketedStackDataset(scenes)[0]
    assert torch.all(sample["radiance"] == 2.5)


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda room: (room / "exposures.json").write_text("{not json"), "exposures.json"),
        (lambda room: (room / "exposures.json").write_text('{"ev-2.jpg": 0}'), "no EV for"),
        (lambda room: [p.unlink() for p in sorted(room.iterdir())[1:]], "at least 2"),
        (lambda room: (room / "exposures.csv").write_text("ev-2.jpg\n"), "exposures.csv"),
    ],
)
def test_bracketed_rejects_malformed_folders(scenes, setup, message):
    setup(scenes / "room")
    with pytest.raises(HdrsynError, match=message):
        BracketedStackDataset(scenes)


def test_bracketed_rejects_missing_ev0_and_mismatched_sizes(scenes, tmp_path):
    room = scenes / "room"
    names = EXAMPLE[1:6]
    (room / "exposures.json").write_text(json.dumps({n: i + 1 for i, n in enumerate(names)}))
    with pytest.raises(HdrsynError, match="EV 0"):
        BracketedStackDataset(scenes)
    (room / "exposures.json").write_text(json.dumps({n: i - 2 for i, n in enumerate(names)}))
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(room / "ev+1.jpg")
    with pytest.raises(HdrsynError, match="size differs"):
        BracketedStackDataset(scenes)[0]
    with pytest.raises(HdrsynError, match="no scene folders"):
        BracketedStackDataset(tmp_path / "scenes" / "room")


def test_preview_data_cli(hdr_folder, tmp_path, capsys):
    from hdrsyn.cli import main

    out = tmp_path / "sheet.png"
    assert (
        main(["preview-data", str(hdr_folder), "-o", str(out), "--count", "2", "--size", "48"]) == 0
    )
    sheet = read_ldr(out)
    assert sheet.shape[0] > 2 * 48 and sheet.shape[1] > 9 * 48
    assert main(["preview-data", str(tmp_path / "none"), "-o", str(tmp_path / "x.png")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_held_out_scenes_are_excluded_and_the_test_split_cycles_curve_kinds(tmp_path):
    rng = np.random.default_rng(0)
    for folder, name in [("hdr", "sunrise.exr"), ("hdr", "city.exr"), ("hdr-extra", "lobby.exr")]:
        (tmp_path / folder).mkdir(exist_ok=True)
        radiance = np.exp(rng.normal(0, 1, (16, 32, 3))).astype(np.float32)
        write_hdr(tmp_path / folder / name, radiance)
    folders = [tmp_path / "hdr", tmp_path / "hdr-extra"]
    training = SyntheticStackDataset(folders, exclude=HELD_OUT, size=8, length=8)
    assert [p.name for p in training.files] == ["city.exr"]
    kept = SyntheticStackDataset(folders, exclude=["lobby.exr"], size=8, length=8)
    assert [p.name for p in kept.files] == ["city.exr", "sunrise.exr"]
    test = SyntheticStackDataset(folders, size=16, split="test", curves="test", length=16)
    samples = [test[i] for i in range(16)]
    kinds = CURVE_FAMILIES["test"]["kinds"]
    for index, sample in enumerate(samples):  # view i: image i mod 3, kind i div 3, in turn
        assert sample["source"] == test.files[index % 3].name
        expected = kinds[(index // 3) % len(kinds)]
        assert sample["curve"].split()[0].lower() == expected.lower(), (index, sample["curve"])
    assert samples[0]["curve_group"] == "srgb" and samples[12]["curve_group"] == "roll-off"
    again = SyntheticStackDataset(folders, size=16, split="test", curves="test", length=16)
    assert torch.equal(again[5]["input"], samples[5]["input"])


def test_auto_exposure_puts_the_log_average_at_display_mid_grey(tmp_path):
    rng = np.random.default_rng(1)
    write_hdr(tmp_path / "flat.exr", np.exp(rng.normal(0, 0.3, (40, 80, 3))).astype(np.float32))
    data = SyntheticStackDataset(tmp_path, size=24, split="test", curves="test", length=64)
    for index in range(0, 64, 9):
        sample = data[index]
        zero = sample["evs"].tolist().index(0.0)
        photo = sample["stack"][zero].numpy()
        # the log average of a low-contrast scene lands within the ±1 stop jitter of mid-grey
        assert 0.1 < np.exp(np.log(np.clip(photo, 1e-3, 1)).mean()) < 0.9, sample["curve"]


def test_jpeg_degradation_encodes_rgb_as_pillow_does(tmp_path):
    """The JPEG codec's colour transform must see RGB as RGB: the degraded photo equals
    Pillow's JPEG round trip at the same quality (an independent encoder of RGB arrays)."""
    import io

    from PIL import Image

    rng = np.random.default_rng(0)
    texture = np.zeros((32, 32, 3), np.float32)
    texture[..., 0] = np.where(rng.random((32, 32)) > 0.5, 0.8, 0.1)  # detail in red only
    texture[..., 1] = 0.2
    write_hdr(tmp_path / "t.exr", texture + 0.01)
    curve = ResponseCurve("gamma", 1.0)  # identity: the photo is the texture, quantised
    photo = Capture(jpeg=90).photograph(texture, curve, np.random.default_rng(0))
    buffer = io.BytesIO()
    Image.fromarray(np.round(texture * 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    expected = np.asarray(Image.open(buffer)).astype(np.float32) / 255
    assert np.abs(photo - expected).max() <= 1 / 255
