import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hdrsyn import HdrsynError, read_hdr, read_ldr
from hdrsyn.cli import main
from hdrsyn.reconstruction import load_model, reconstruct, shipped_models

PHOTO = Path(__file__).resolve().parents[1] / "examples" / "interior" / "ev+0.jpg"


@pytest.fixture(scope="module")
def model():
    return load_model("small")


def test_shipped_small_model_loads_offline(model):
    assert "small" in shipped_models()
    assert not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_reconstruct_bundled_photo(model):
    photo = read_ldr(PHOTO)[:96, :160]
    result = reconstruct(photo, model)
    assert result.radiance.shape == (96, 160, 3) and result.stack.shape == (7, 96, 160, 3)
    assert result.evs == [-3, -2, -1, 0, 1, 2, 3]
    assert np.isfinite(result.radiance).all() and result.radiance.min() > 0
    np.testing.assert_array_equal(result.stack[3], photo)  # EV 0 is the photo


def test_trained_model_beats_the_physical_prior_in_the_blown_window(model):
    """The bundled photo's window is clipped (12 % of the pixels); the bundled true exposures
    show what is there. The trained stop-down net's EV −3…−1 are closer to them than the
    physical prior's (the untrained model's), which can only darken a flat white."""
    from hdrsyn.models import PRESETS, HDRSynthesizer

    photo = read_ldr(PHOTO)
    truth = np.stack([read_ldr(PHOTO.parent / f"ev{ev:+d}.jpg") for ev in (-3, -2, -1)])
    clipped = photo.max(axis=2) > 0.95
    trained = reconstruct(photo, model).stack[:3]
    physics = reconstruct(photo, HDRSynthesizer(PRESETS["small"]).eval()).stack[:3]
    for ours, prior, true in zip(trained, physics, truth, strict=True):
        assert np.abs(ours - true)[clipped].mean() < 0.92 * np.abs(prior - true)[clipped].mean()


def test_large_photos_run_at_reduced_size_without_changing_shape(model):
    photo = read_ldr(PHOTO)[:128, :192]
    direct = reconstruct(photo, model)
    reduced = reconstruct(photo, model, max_pixels=48 * 72)
    assert reduced.radiance.shape == direct.radiance.shape
    np.testing.assert_array_equal(reduced.stack[3], photo)  # full-resolution detail kept
    # the same tone, give or take what the networks see at a quarter of the size
    log_ratio = np.log(reduced.radiance) - np.log(direct.radiance)
    assert np.median(np.abs(log_ratio)) < 1e-3  # measured: 2·10⁻⁵


def test_reconstruct_cli(tmp_path, capsys):
    out = tmp_path / "room.exr"
    code = main(["reconstruct", str(PHOTO), "-o", str(out), "--preview", str(tmp_path / "p.png"),
                 "--stack-dir", str(tmp_path), "--max-pixels", "20000"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    assert lines[:3] == [f"wrote {out}", f"wrote {tmp_path / 'p.png'}",
                         f"wrote 7 exposures to {tmp_path}/"]  # fmt: skip
    assert re.fullmatch(r"done: 9 files in \d+\.\d s", lines[3]) and len(lines) == 4
    assert read_hdr(out).shape == (320, 600, 3)
    assert read_ldr(tmp_path / "p.png").shape == (320, 600, 3)
    assert sorted(p.name for p in tmp_path.glob("ev+0_ev*.png")) == sorted(
        f"ev+0_ev{ev:+d}.png" for ev in range(-3, 4)
    )


def test_reconstruct_cli_highlights_raises_only_the_blown_window(tmp_path, capsys):
    """The default highlight boost on the bundled photo (a blown window) against
    ``--no-highlights``: the shipped region model's boost makes the window brighter and leaves
    every pixel below level 0.9 as it was; ``--highlights`` is the default."""
    plain, raised, default = tmp_path / "plain.exr", tmp_path / "raised.exr", tmp_path / "d.exr"
    for out, extra in ((plain, ["--no-highlights"]), (raised, ["--highlights"]), (default, [])):
        code = main(["reconstruct", str(PHOTO), "-o", str(out), "--max-pixels", "20000",
                     "--float32", *extra])  # fmt: skip
        assert code == 0, capsys.readouterr().err
    before, after = read_hdr(plain), read_hdr(raised)
    np.testing.assert_array_equal(read_hdr(default), after)
    photo = read_ldr(PHOTO)
    clipped = photo.max(axis=2) >= 254.5 / 255
    assert clipped.mean() > 0.02
    assert (after >= before * (1 - 1e-6)).all()
    assert np.median(after[clipped] / before[clipped]) > 1.05
    from scipy import ndimage

    from hdrsyn.highlights import ANALYSIS_PIXELS

    # the boost map is softened on the analysis copy (a Gaussian truncated at 4 of its pixels)
    # and upsampled bilinearly (one more), its zone found on the area-averaged copy (one more)
    pixel = (photo.shape[0] * photo.shape[1] / ANALYSIS_PIXELS) ** 0.5  # photo pixels each
    far = ndimage.distance_transform_edt(photo.max(axis=2) < 0.9) > 6 * pixel
    np.testing.assert_array_equal(after[far], before[far])


def test_reconstruct_makes_a_new_stack_folder(tmp_path, capsys):
    code = main(["reconstruct", str(PHOTO), "-o", str(tmp_path / "r.exr"), "--max-pixels", "5000",
                 "--stack-dir", str(tmp_path / "stack")])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert len(list((tmp_path / "stack").glob("ev+0_ev*.png"))) == 7


def test_reconstruct_folder(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (photos / name).write_bytes(PHOTO.read_bytes())
    out = tmp_path / "out"  # a new folder: made, as --stack-dir and --preview are
    code = main(["reconstruct", str(photos), "-o", str(out), "--max-pixels", "10000",
                 "--preview", str(tmp_path / "previews")])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert sorted(p.name for p in out.iterdir()) == ["a.exr", "b.exr"]
    assert sorted(p.name for p in (tmp_path / "previews").iterdir()) == ["a.png", "b.png"]
    assert f"wrote {out / 'a.exr'}" in captured.out  # few of a kind: each path
    assert f"wrote {tmp_path / 'previews' / 'b.png'}" in captured.out


def test_same_stem_photos_are_refused_before_any_work(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "shot.jpg").write_bytes(PHOTO.read_bytes())
    Image.open(PHOTO).save(photos / "shot.png")
    code = main(["reconstruct", str(photos), "-o", str(tmp_path / "out"), "--force"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "shot.jpg" in err[0] and "shot.png" in err[0]
    assert not (tmp_path / "out").exists()


def test_an_unreadable_photo_does_not_stop_the_others(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.jpg", "c.jpg"):
        (photos / name).write_bytes(PHOTO.read_bytes())
    (photos / "b.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    code = main(["reconstruct", str(photos), "-o", str(out), "--max-pixels", "10000"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "1 of 3 photos failed" in err[0] and "b.jpg" in err[0]
    assert sorted(p.name for p in out.iterdir()) == ["a.exr", "c.exr"]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["{d}/missing.jpg", "-o", "{d}/o.exr"], "no such file"),
        ([str(PHOTO), "-o", "{d}/o.exr", "--model", "{d}/nope.safetensors"], "no such weights"),
        ([str(PHOTO), "-o", "{d}/o.exr", "--evs", "0", "1.5"], "not a whole stop"),
        ([str(PHOTO), "-o", "{d}/o.exr", "--evs", "1", "2"], "must hold 0"),
        ([str(PHOTO), "-o", "{d}/exists.exr"], "--force"),
        ([str(PHOTO), str(PHOTO), "-o", "{d}/o.exr"], "same name"),
        ([str(PHOTO), "{d}/copy.jpg", "-o", "{d}/no/such"], "-o (several inputs)"),
        ([str(PHOTO), "-o", "{d}/o.exr", "--stack-dir", "{d}/no/such"], "stack-dir"),
        ([str(PHOTO), "-o", "{d}/o.exr", "--stack-dir", "{d}/exists.exr"], "stack-dir"),
        (["{d}/bad.safetensors", "-o", "{d}/o.exr"], "not a readable image"),
    ],
)
def test_reconstruct_bad_input(tmp_path, capsys, argv, needle):
    (tmp_path / "exists.exr").write_bytes(b"keep")
    (tmp_path / "bad.safetensors").write_bytes(b"junk")
    (tmp_path / "copy.jpg").write_bytes(PHOTO.read_bytes())
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(["reconstruct", *[a.replace("{d}", str(tmp_path)) for a in argv]])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_load_model_rejects_foreign_files(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(HdrsynError, match="metadata"):
        load_model(tmp_path / "other.safetensors")


def test_a_known_srgb_curve_replaces_the_estimate():
    """``curve="srgb"``: an untrained curve-estimating model (physics only) then returns the
    photo decoded through sRGB where it is well exposed, whatever its estimate; so does the
    default (hybrid) for a photo with no bright pixels."""
    from hdrsyn.models import HDRSynthesizer, ModelConfig
    from hdrsyn.reconstruction import HYBRID_BRIGHT
    from hdrsyn.tonemap import srgb_decode

    torch.manual_seed(0)
    tiny = {"global_base": 4, "global_levels": 2, "local_base": 4, "local_levels": 2,
            "refine_base": 4, "refine_levels": 2, "max_width": 8}  # fmt: skip
    model = HDRSynthesizer(ModelConfig(**tiny, prior="estimated", merge="estimated")).eval()
    photo = np.random.default_rng(0).uniform(0.1, 0.9, (24, 32, 3)).astype(np.float32)
    photo = np.round(photo * 255) / 255
    known = reconstruct(photo, model, curve="srgb")
    expected = srgb_decode(torch.from_numpy(photo).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    ratio = known.radiance / expected
    np.testing.assert_allclose(ratio / np.median(ratio), 1.0, rtol=2e-2)
    dim = np.minimum(photo, HYBRID_BRIGHT)  # no pixel above it: the default reads sRGB
    hybrid = reconstruct(dim, model)
    np.testing.assert_array_equal(hybrid.photo_curve, known.photo_curve)
    np.testing.assert_allclose(hybrid.radiance, reconstruct(dim, model, curve="srgb").radiance)
    estimated = reconstruct(photo, model, curve="estimated")  # untrained: the mean curve
    assert not np.allclose(estimated.radiance / np.median(estimated.radiance / expected),
                           expected, rtol=2e-2)  # fmt: skip
    with pytest.raises(HdrsynError, match="curve"):
        reconstruct(photo, model, curve="linear")


def test_the_hybrid_curve_is_srgb_below_its_level_and_adds_a_share_of_the_excess_above():
    """Checked against the formula written out in NumPy, for a roll-off estimate, an sRGB one
    and one that rises less than sRGB near white (read as sRGB)."""
    from hdrsyn.curves import ResponseCurve, normalised, srgb_log_inverse
    from hdrsyn.reconstruction import hybrid_curve

    srgb = normalised(srgb_log_inverse()).double().numpy()
    roll_off = ResponseCurve("hable", white=4.0).log_inverse()
    estimate = roll_off - roll_off[128]
    flat = srgb.copy()
    k = round(0.7 * 255)
    flat[k:] = srgb[k] + 0.5 * (srgb[k:] - srgb[k])  # rises half as much as sRGB
    curves = torch.from_numpy(np.stack([estimate, srgb, flat]))
    hybrid = hybrid_curve(curves, 1.5, 0.7).numpy()
    expected = srgb.copy()
    excess = (estimate[k:] - estimate[k]) - (srgb[k:] - srgb[k])
    expected[k:] = srgb[k:] + 1.5 * np.maximum(excess, 0)
    np.testing.assert_allclose(hybrid[0], expected, atol=1e-12)
    np.testing.assert_allclose(hybrid[1], srgb, atol=1e-12)  # an sRGB estimate: sRGB
    np.testing.assert_allclose(hybrid[2], srgb, atol=1e-12)  # less than sRGB: sRGB
    assert hybrid[0, 128] == 0 and (np.diff(hybrid[0]) >= 0).all()
    assert hybrid[0, 255] > srgb[255] + 0.1  # a roll-off reads white as more light
    shares = hybrid_curve(curves[:2], torch.tensor([0.0, 1.5]), 0.7).numpy()  # one per curve
    np.testing.assert_allclose(shares[0], srgb, atol=1e-12)
    with pytest.raises(HdrsynError, match="level"):
        hybrid_curve(torch.from_numpy(estimate), 1.0, 0.3)


def test_the_hybrid_share_needs_enough_bright_pixels():
    """CurveNet's reading near white counts only for photos with at least HYBRID_EVIDENCE of
    their pixels above HYBRID_BRIGHT in some channel; the rest keep sRGB (share 0)."""
    from hdrsyn import reconstruction as r

    photos = torch.full((3, 3, 20, 20), 0.5)
    bright = round(r.HYBRID_EVIDENCE * 400)  # pixels of 400
    photos[0, 1].view(-1)[:bright] = r.HYBRID_BRIGHT + 0.01  # just enough, in green only
    photos[1, 0].view(-1)[: bright - 1] = 1.0  # one too few
    photos[2].view(3, -1)[:, :bright] = r.HYBRID_BRIGHT  # at the level: not above it
    np.testing.assert_array_equal(r.hybrid_share(photos).numpy(), [r.HYBRID_SHARE, 0.0, 0.0])


def test_bad_max_pixels_and_evs_beyond_the_trained_steps_are_refused():
    from hdrsyn.models import HDRSynthesizer, ModelConfig

    tiny = {"global_base": 4, "global_levels": 2, "local_base": 4, "local_levels": 2,
            "refine_base": 4, "refine_levels": 2, "max_width": 8}  # fmt: skip
    model = HDRSynthesizer(ModelConfig(**tiny)).eval()
    photo = np.full((16, 16, 3), 0.5, np.float32)
    for bad in (-5, 0, 2.5):
        with pytest.raises(HdrsynError, match="max_pixels"):
            reconstruct(photo, model, max_pixels=bad)
    with pytest.raises(HdrsynError, match="beyond ±3"):
        reconstruct(photo, model, evs=(-4, -3, -2, -1, 0))
    assert reconstruct(photo, model, evs=(-3, -2, -1, 0, 1)).evs == [-3, -2, -1, 0, 1]


def test_photos_as_uint8_or_uint16_levels_and_out_of_range_floats_refused(model):
    """Levels straight from PIL or OpenCV are scaled like read_ldr's; floats outside [0, 1]
    and other types are refused naming the photo (and saying what to pass), not read as
    radiance or failing deep inside the merge."""
    photo = read_ldr(PHOTO)[:64, :96]
    levels = np.round(photo * 255).astype(np.uint8)
    expected = reconstruct(photo, model).radiance
    np.testing.assert_array_equal(reconstruct(levels, model).radiance, expected)
    deep = levels.astype(np.uint16) * 257  # 16 bits: 255 → 65535
    np.testing.assert_array_equal(reconstruct(deep, model).radiance, expected)
    for bad, needle in ((levels.astype(np.float32), "got 85…161 .*pass them as uint8"),
                        (photo - 0.5, "must lie in \\[0, 1\\]"), (photo * np.nan, "must lie in"),
                        (levels.astype(np.int64), "int64 values"),
                        (photo[:, :0], "expected an \\(H, W, 3\\) image")):  # fmt: skip
        with pytest.raises(HdrsynError, match=f"^photo: .*{needle}"):
            reconstruct(bad, model)


def test_8_bit_photos_take_the_per_level_prior_with_the_same_result(model, monkeypatch):
    """Large 8-bit photos re-expose through a 256-entry table per EV instead of decoding and
    encoding every pixel (issue 14); the radiance is the same within 1e-3 in log."""
    import hdrsyn.reconstruction as module
    photo = read_ldr(PHOTO)
    fast = reconstruct(photo, model, max_pixels=100 * 100)
    assert module._levels_of(torch.from_numpy(photo)) is not None
    monkeypatch.setattr(module, "_levels_of", lambda image: None)
    direct = reconstruct(photo, model, max_pixels=100 * 100)
    log_ratio = np.log(fast.radiance) - np.log(direct.radiance)
    assert np.abs(log_ratio).max() < 1e-3
    np.testing.assert_allclose(fast.stack, direct.stack, atol=1e-5)
    monkeypatch.undo()
    noisy = (photo + 1e-4).astype(np.float32)  # not 8-bit levels: the direct path
    assert module._levels_of(torch.from_numpy(noisy)) is None


def test_public_names_are_the_functions_whatever_was_imported_first():
    """The package loads its public names lazily; a submodule imported first must not stand in
    for a function of the same name (the module is hdrsyn.reconstruction, the function
    hdrsyn.reconstruct)."""
    import subprocess
    import sys

    script = ("import hdrsyn.evaluate, hdrsyn\n"
              "from hdrsyn import load_model, reconstruct, merge_exposures\n"
              "print(all(callable(f) and not isinstance(f, type(hdrsyn)) for f in "
              "(hdrsyn.reconstruct, reconstruct, load_model, merge_exposures)))")  # fmt: skip
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert run.stdout.strip() == "True"


def _hue_and_brightness_steps(radiance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the jump of ln chromaticity (summed over RGB) and of ln brightness to the
    right and below neighbours."""
    chroma = np.log(radiance / radiance.mean(axis=2, keepdims=True))
    brightness = np.log(radiance.mean(axis=2))
    hue = (np.abs(np.diff(chroma, axis=1))[:-1] + np.abs(np.diff(chroma, axis=0))[:, :-1]).sum(2)
    steps = np.abs(np.diff(brightness, axis=1))[:-1] + np.abs(np.diff(brightness, axis=0))[:, :-1]
    return hue, steps


def test_a_blown_jpeg_gradient_stays_smooth_without_new_hue_edges(model, monkeypatch):
    """A smooth near-white gradient with a little noise, half of it clipped, through JPEG q92
    (blocking): the result may brighten it but adds no hue edges or brightness steps the
    photo does not have, with the highlight boost or without. Measured here without
    reconstruct's hand-over (the merge as the networks were trained): 30 hue jumps over 0.1
    (the photo 0), 99.9th percentile 0.097 (the photo 0.048)."""
    import cv2

    from hdrsyn import highlights, reconstruction
    from hdrsyn.baselines import linearised
    from hdrsyn.tonemap import srgb_encode

    rng = np.random.default_rng(0)
    ramp = np.geomspace(0.5, 2.0, 256)[None, :] * np.linspace(1.0, 0.9, 128)[:, None]
    radiance = ramp[..., None] * np.array([0.92, 0.97, 1.0])
    radiance = cv2.GaussianBlur(radiance * (1 + 0.02 * rng.standard_normal(radiance.shape)),
                                (0, 0), 0.7)  # fmt: skip
    encoded = srgb_encode(torch.from_numpy(radiance).permute(2, 0, 1).float()).clamp(0, 1)
    levels = np.round(encoded.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    _, jpeg = cv2.imencode(".jpg", levels[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
    photo = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255
    assert 0.4 < (photo.max(axis=2) > 0.99).mean() < 0.6
    plain = linearised(torch.from_numpy(photo).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    photo_hue, photo_steps = _hue_and_brightness_steps(np.maximum(plain, 1e-6))
    # the boost as a net that raises every clipped region by 1 (ln): its painting, not its
    # prediction (the shipped one predicts little for this flat white), is what is checked
    from test_highlights import _constant_net

    shipped = highlights.load_boost()
    monkeypatch.setattr(highlights, "_SHIPPED", shipped._replace(net=_constant_net(1.0), kappa=1.0))
    results = [reconstruct(photo, model, highlights=h).radiance for h in (False, True)]
    assert (results[1] > results[0] * 1.05).mean() > 0.3  # the boost raised the clipped half
    for radiance in results:
        hue, steps = _hue_and_brightness_steps(radiance)
        assert (hue > 0.1).sum() <= (photo_hue > 0.1).sum() + 2
        assert np.percentile(hue, 99.9) < 1.2 * np.percentile(photo_hue, 99.9)
        assert (steps > 0.1).sum() <= (photo_steps > 0.1).sum() + 3
    # the merge as the networks were trained, without the hand-over, fails the same checks
    monkeypatch.setattr(reconstruction, "_hand_over", lambda *args: None)
    hue, _ = _hue_and_brightness_steps(reconstruct(photo, model).radiance)
    assert (hue > 0.1).sum() > (photo_hue > 0.1).sum() + 10
    assert np.percentile(hue, 99.9) > 1.5 * np.percentile(photo_hue, 99.9)
