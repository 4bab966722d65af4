import warnings

import cv2
import numpy as np
import pytest
from conftest import data_file, exr_pixel_type
from PIL import Image

from hdrsyn import HdrsynError, read_hdr, read_ldr, write_hdr, write_ldr
from hdrsyn.io import exposure_from_exif


@pytest.fixture
def radiance():
    rng = np.random.default_rng(1)
    return (np.exp(rng.normal(0, 2, (13, 17, 3)))).astype(np.float32)


@pytest.mark.parametrize(
    "suffix, half, rtol",
    [(".exr", False, 0), (".exr", True, 1e-3), (".pfm", False, 0)],
)
def test_hdr_round_trip(tmp_path, radiance, suffix, half, rtol):
    path = tmp_path / f"image{suffix}"
    write_hdr(path, radiance, half=half)
    back = read_hdr(path)
    assert back.dtype == np.float32 and back.shape == radiance.shape
    np.testing.assert_allclose(back, radiance, rtol=rtol, atol=1e-30)


def test_half_exr_falls_back_to_float32_beyond_half_range(tmp_path, radiance):
    """``half`` stores 16-bit floats only where every value fits them: a sun at 10⁵ would
    become infinity, so that file is float32 (and reads back exactly)."""
    write_hdr(tmp_path / "fits.exr", radiance * (65504 / radiance.max()), half=True)
    assert exr_pixel_type(tmp_path / "fits.exr") == "float16"
    bright = radiance.copy()
    bright[0, 0] = 1e5
    write_hdr(tmp_path / "sun.exr", bright, half=True)
    assert exr_pixel_type(tmp_path / "sun.exr") == "float32"
    np.testing.assert_array_equal(read_hdr(tmp_path / "sun.exr"), bright)


def test_radiance_hdr_round_trip(tmp_path, radiance):
    write_hdr(tmp_path / "image.hdr", radiance)
    back = read_hdr(tmp_path / "image.hdr")
    # RGBE shares one exponent per pixel: 8 mantissa bits relative to the largest channel
    largest = radiance.max(axis=2, keepdims=True)
    assert np.all(np.abs(back - radiance) <= largest / 128)


def test_hdr_channel_order_from_a_hand_written_rgbe_file(tmp_path):
    """A Radiance file written byte by byte here (Ward's RGBE: value = mantissa · 2^(E − 136)),
    two pixels: pure red 1.0, pure blue 0.5. Read as RGB, red comes first; written back, the
    bytes decode the same way."""
    header = b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X 2\n"
    pixels = bytes([128, 0, 0, 129, 0, 0, 128, 128])  # (R, G, B, E) × 2, flat: width < 8
    (tmp_path / "hand.hdr").write_bytes(header + pixels)
    image = read_hdr(tmp_path / "hand.hdr")
    np.testing.assert_allclose(image[0], [[1.0, 0, 0], [0, 0, 0.5]], rtol=0.01, atol=1e-6)
    write_hdr(tmp_path / "back.hdr", image)
    data = (tmp_path / "back.hdr").read_bytes()
    body = data[data.index(b"+X 2\n") + 5 :]
    rgbe = np.frombuffer(body, np.uint8).reshape(2, 4).astype(float)
    decoded = rgbe[:, :3] * 2.0 ** (rgbe[:, 3:] - 136)
    np.testing.assert_allclose(decoded, image[0], rtol=0.01, atol=1e-6)


def test_reads_half_float_exr():
    image = read_hdr(data_file("city.exr"))
    assert image.shape == (128, 256, 3) and image.dtype == np.float32
    assert image.min() >= 0 and np.isfinite(image).all()


def test_ldr_8_and_16_bit(tmp_path):
    rng = np.random.default_rng(2)
    pixels16 = rng.integers(0, 65536, (9, 11, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "a.png"), pixels16[:, :, ::-1])
    cv2.imwrite(str(tmp_path / "a.tif"), pixels16[:, :, ::-1])
    for name in ("a.png", "a.tif"):
        np.testing.assert_array_equal(read_ldr(tmp_path / name), pixels16 / np.float32(65535))
    pixels8 = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    Image.fromarray(pixels8).save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_ldr(tmp_path / "b.png"), pixels8 / np.float32(255))


def test_ldr_write_round_trip(tmp_path):
    image = np.random.default_rng(3).random((8, 6, 3)).astype(np.float32)
    write_ldr(tmp_path / "x.png", image)
    np.testing.assert_allclose(read_ldr(tmp_path / "x.png"), image, atol=0.5 / 255 + 1e-7)
    write_ldr(tmp_path / "x.tif", image)
    np.testing.assert_allclose(read_ldr(tmp_path / "x.tif"), image, atol=0.5 / 65535 + 1e-7)


def test_grey_becomes_rgb_and_alpha_is_dropped_with_warning(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(grey).save(tmp_path / "grey.png")
    image = read_ldr(tmp_path / "grey.png")
    assert image.shape == (3, 4, 3)
    np.testing.assert_array_equal(image[:, :, 0], image[:, :, 2])
    rgba = np.dstack([np.full((3, 4, 3), 200, np.uint8), np.full((3, 4), 7, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    with pytest.warns(UserWarning, match="alpha"):
        image = read_ldr(tmp_path / "rgba.png")
    assert image.shape == (3, 4, 3) and np.all(image == np.float32(200 / 255))


def test_exif_orientation_applied(tmp_path):
    pixels = np.zeros((2, 3, 3), np.uint8)
    pixels[0, 0] = 255  # top-left marker
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs 90° clockwise
    Image.fromarray(pixels).save(tmp_path / "o.png", exif=exif)
    image = read_ldr(tmp_path / "o.png")
    assert image.shape == (3, 2, 3)
    assert image[0, 1, 0] == 1.0  # top-left moved to top-right


def test_exposure_from_exif_bundled_example():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "examples" / "interior"
    evs = [exposure_from_exif(folder / f"ev{ev:+d}.jpg") for ev in range(-3, 4)]
    assert np.allclose(np.diff(evs), 1.0)


def test_bad_files(tmp_path):
    with pytest.raises(HdrsynError, match="no such file"):
        read_ldr(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(HdrsynError, match="empty"):
        read_ldr(tmp_path / "empty.png")
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(HdrsynError, match="not a readable image"):
        read_ldr(tmp_path / "text.jpg")
    (tmp_path / "text.exr").write_text("not an image")
    with pytest.raises(HdrsynError, match="OpenEXR"):
        read_hdr(tmp_path / "text.exr")


def test_truncated_files(tmp_path, radiance):
    write_hdr(tmp_path / "a.exr", radiance)
    data = (tmp_path / "a.exr").read_bytes()
    (tmp_path / "cut.exr").write_bytes(data[: len(data) // 2])
    with pytest.raises(HdrsynError, match="cut.exr"):
        read_hdr(tmp_path / "cut.exr")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "b.png")
    data = (tmp_path / "b.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:40])
    with pytest.raises(HdrsynError, match="cut.png"):
        read_ldr(tmp_path / "cut.png")


def test_non_finite_hdr_rejected(tmp_path, radiance):
    radiance[2, 3, 1] = np.nan
    radiance[4, 5, 0] = np.inf
    cv2.imwrite(str(tmp_path / "bad.pfm"), radiance[:, :, ::-1])
    with pytest.raises(HdrsynError, match="bad.pfm: 2 pixels are NaN or infinite"):
        read_hdr(tmp_path / "bad.pfm")
    with pytest.raises(HdrsynError, match="NaN"):
        write_hdr(tmp_path / "out.exr", radiance)
    assert not (tmp_path / "out.exr").exists()


def test_no_overwrite_and_no_partial_files(tmp_path, radiance):
    path = tmp_path / "out.exr"
    write_hdr(path, radiance)
    before = path.read_bytes()
    with pytest.raises(HdrsynError, match="already exists"):
        write_hdr(path, radiance * 2)
    assert path.read_bytes() == before
    write_hdr(path, radiance * 2, overwrite=True)
    assert path.read_bytes() != before
    with pytest.raises(HdrsynError, match="does not exist"):
        write_hdr(tmp_path / "nowhere" / "x.exr", radiance)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.exr"]


def test_no_warning_for_plain_rgb(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "c.jpg")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_ldr(tmp_path / "c.jpg")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    """All eight EXIF orientations come out as Pillow's ``ImageOps.exif_transpose`` shows them."""
    from PIL import Image, ImageOps

    pixels = np.random.default_rng(orientation).integers(0, 256, (5, 8, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = orientation
    for suffix in (".png", ".tif"):
        path = tmp_path / f"o{orientation}{suffix}"
        image.save(path, exif=exif.tobytes())
        with Image.open(path) as opened:
            expected = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
        np.testing.assert_array_equal(read_ldr(path), expected / np.float32(255))


def _log_luminance(image: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(image @ np.array([0.2126, 0.7152, 0.0722]), 1e-6))


def test_ultrahdr_jpeg_round_trip_keeps_radiance_and_headroom(tmp_path):
    """An Ultra HDR JPEG: libultrahdr recognises it, any JPEG reader opens its SDR base at full
    size, and decoding it gives the radiance back (up to one scale) with highlights above SDR
    white, capped at ``max_boost`` stops."""
    import imagecodecs
    from PIL import Image

    rng = np.random.default_rng(0)
    radiance = np.exp(rng.normal(0, 1.5, (96, 128, 3))).astype(np.float32)
    write_hdr(tmp_path / "hdr.jpg", radiance)
    data = (tmp_path / "hdr.jpg").read_bytes()
    assert imagecodecs.ultrahdr_check(data)
    with Image.open(tmp_path / "hdr.jpg") as base:
        assert base.size == (128, 96) and base.format in ("JPEG", "MPO")  # MPO: JPEG + gain map
        base.load()
    decoded = read_hdr(tmp_path / "hdr.jpg")
    assert decoded.shape == radiance.shape and decoded.dtype == np.float32
    difference = _log_luminance(decoded) - _log_luminance(radiance)
    below_cap = _log_luminance(radiance) < np.quantile(_log_luminance(radiance), 0.9)
    difference = difference[below_cap]
    assert np.sqrt(np.mean((difference - np.median(difference)) ** 2)) < 0.15
    assert decoded.max() > 4  # headroom: up to 8× SDR white by default
    write_hdr(tmp_path / "low.jpg", radiance, max_boost=1.0)
    assert read_hdr(tmp_path / "low.jpg").max() < 2.5  # capped near 2× SDR white


def test_a_plain_jpeg_is_not_hdr(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "plain.jpg")
    with pytest.raises(HdrsynError, match="not an Ultra HDR JPEG"):
        read_hdr(tmp_path / "plain.jpg")


def test_hdr_avif_is_10_bit_bt2100_pq_and_round_trips(tmp_path):
    """.avif: 10-bit, CICP 9/16/9 (BT.2020 primaries, SMPTE ST 2084 PQ, BT.2020 matrix) in its
    colour box, SDR white at 203 cd/m² (BT.2408); decoding gives the radiance back up to one
    scale, with the headroom (up to ``max_boost`` stops above SDR white); an SDR AVIF is
    refused as not HDR."""
    import imagecodecs

    from hdrsyn.io import SDR_WHITE_NITS, _pq_decode, _pq_encode, avif_cicp

    # PQ by its published anchors: 10 000 cd/m² is 1, 100 cd/m² is 0.508 (ST 2084 tables)
    np.testing.assert_allclose(_pq_encode(np.array([10000.0, 100.0])), [1.0, 0.508], atol=1e-3)
    np.testing.assert_allclose(_pq_decode(_pq_encode(np.array([0.1, 203.0, 4000.0]))),
                               [0.1, 203.0, 4000.0], rtol=1e-6)  # fmt: skip
    rng = np.random.default_rng(0)
    radiance = np.kron(np.exp(rng.normal(0, 1.5, (12, 16, 3))), np.ones((8, 8, 1)))
    write_hdr(tmp_path / "hdr.avif", radiance.astype(np.float32))
    data = (tmp_path / "hdr.avif").read_bytes()
    assert avif_cicp(data) == (9, 16, 9)
    assert imagecodecs.avif_decode(data).dtype == np.uint16  # 10 bits in 16
    decoded = read_hdr(tmp_path / "hdr.avif")
    difference = _log_luminance(decoded) - _log_luminance(radiance)
    below_cap = _log_luminance(radiance) < np.quantile(_log_luminance(radiance), 0.9)
    difference = difference[below_cap]
    assert np.sqrt(np.mean((difference - np.median(difference)) ** 2)) < 0.02
    assert 7.5 < decoded.max() <= 8.1  # clipped at 2^3 × SDR white (203 cd/m²)
    assert SDR_WHITE_NITS == 203.0
    sdr = imagecodecs.avif_encode(np.zeros((8, 8, 3), np.uint8), 90)
    (tmp_path / "sdr.avif").write_bytes(bytes(sdr))
    with pytest.raises(HdrsynError, match="not an HDR AVIF"):
        read_hdr(tmp_path / "sdr.avif")


def test_empty_and_cut_jpegs_are_not_ultrahdr_and_do_not_crash(tmp_path):
    """libultrahdr's check crashes the process on empty data; an empty or truncated .jpg in a
    data folder is just not HDR, and reading it as HDR is a clean refusal."""
    from hdrsyn.io import is_hdr_file

    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "cut.jpg").write_bytes(b"\xff\xd8\xff" + bytes(100))
    for name in ("empty.jpg", "cut.jpg"):
        assert not is_hdr_file(tmp_path / name)
        with pytest.raises(HdrsynError, match=name):
            read_hdr(tmp_path / name)
