import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import exr_pixel_type
from PIL import Image

from hdrsyn import read_hdr, read_ldr, write_hdr
from hdrsyn.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "interior"
STACK = [EXAMPLE / f"ev{ev:+d}.jpg" for ev in range(-3, 4)]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_clean_error(code, err, *needles):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_merge_bundled_example_from_exif(tmp_path, capsys):
    out = tmp_path / "room.exr"
    code, stdout, err = run(
        capsys,
        "merge",
        *STACK,
        "-o",
        out,
        "--preview",
        tmp_path / "p.png",
        "--plot-crf",
        tmp_path / "crf.png",
    )
    assert code == 0, err
    # every file written is named, the preview and the plot too
    assert stdout.split("\n")[:3] == [f"wrote {out}", f"wrote {tmp_path / 'p.png'}",
                                      f"wrote {tmp_path / 'crf.png'}"]  # fmt: skip
    radiance = read_hdr(out)
    assert radiance.shape == (320, 600, 3) and np.isfinite(radiance).all()
    # the window is far brighter than the room: a real high dynamic range was recovered
    assert np.log2(np.percentile(radiance, 99.9) / np.percentile(radiance, 1)) > 8
    assert read_ldr(tmp_path / "p.png").shape == (320, 600, 3)
    assert Image.open(tmp_path / "crf.png").format == "PNG"


def test_merge_with_explicit_evs_matches_exif(tmp_path, capsys):
    run(capsys, "merge", *STACK, "-o", tmp_path / "a.pfm")
    evs = [str(ev) for ev in range(-3, 4)]
    code, _, err = run(capsys, "merge", *STACK, "--ev", *evs, "-o", tmp_path / "b.pfm")
    assert code == 0, err
    np.testing.assert_allclose(
        read_hdr(tmp_path / "a.pfm"), read_hdr(tmp_path / "b.pfm"), rtol=1e-5
    )


def test_tonemap(tmp_path, capsys):
    rng = np.random.default_rng(0)
    write_hdr(tmp_path / "in.exr", np.exp(rng.normal(0, 2, (16, 24, 3))).astype(np.float32))
    code, _, err = run(capsys, "tonemap", tmp_path / "in.exr", "-o", tmp_path / "out.jpg")
    assert code == 0, err
    assert read_ldr(tmp_path / "out.jpg").shape == (16, 24, 3)


def test_console_script_end_to_end(tmp_path):
    beside = Path(sys.executable).with_name("hdrsyn")
    hdrsyn = str(beside) if beside.exists() else shutil.which("hdrsyn")
    if hdrsyn is None:
        pytest.skip("hdrsyn console script not installed")
    result = subprocess.run(
        [hdrsyn, "merge", *map(str, STACK[2:5]), "-o", str(tmp_path / "x.hdr")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert read_hdr(tmp_path / "x.hdr").shape == (320, 600, 3)
    result = subprocess.run(
        [hdrsyn, "tonemap", str(tmp_path / "missing.exr"), "-o", str(tmp_path / "y.png")],
        capture_output=True,
        text=True,
    )
    assert_clean_error(result.returncode, result.stderr, "missing.exr", "no such file")


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("hdrsyn ")
    for command in ("merge", "tonemap"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "examples:" in capsys.readouterr().out


@pytest.fixture
def bad_files(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.png").write_text("hello")
    (tmp_path / "cut.jpg").write_bytes(STACK[0].read_bytes()[:300])
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "small.png")
    Image.fromarray(np.zeros((320, 600, 3), np.uint8)).save(tmp_path / "noexif.png")
    bad = np.ones((4, 4, 3), np.float32)
    bad[1, 1, 1] = np.nan
    import cv2

    cv2.imwrite(str(tmp_path / "nan.pfm"), bad)
    (tmp_path / "exists.exr").write_bytes(b"precious")
    (tmp_path / "folder").mkdir()
    config = (Path(__file__).parents[1] / "configs" / "small.toml").read_text()
    source = re.search(r"^source = \[.*?\]", config, re.MULTILINE | re.DOTALL)
    assert source and "lr = 2e-4" in config
    (tmp_path / "nodata.toml").write_text(
        config.replace(source.group(), f'source = "{tmp_path / "nothing"}"')
    )
    (tmp_path / "slow.toml").write_text(config.replace("lr = 2e-4", 'lr = "fast"'))
    return tmp_path


@pytest.mark.parametrize(
    "argv, needles",
    [
        (
            ["merge", "{d}/missing.jpg", STACK[1], "-o", "{d}/o.exr"],
            ["missing.jpg", "no such file"],
        ),
        (
            ["merge", "{d}/empty.jpg", STACK[1], "--ev", "0", "1", "-o", "{d}/o.exr"],
            ["empty.jpg", "empty"],
        ),
        (
            ["merge", "{d}/notes.png", STACK[1], "--ev", "0", "1", "-o", "{d}/o.exr"],
            ["notes.png", "not a readable"],
        ),
        (["merge", "{d}/cut.jpg", STACK[1], "--ev", "0", "1", "-o", "{d}/o.exr"], ["cut.jpg"]),
        (
            ["merge", STACK[0], "{d}/small.png", "--ev", "0", "1", "-o", "{d}/o.exr"],
            ["small.png", "differs"],
        ),
        (["merge", *STACK[:3], "--ev", "0", "1", "-o", "{d}/o.exr"], ["3 images but 2 EVs"]),
        (
            ["merge", *STACK[:3], "--ev", "0", "1", "1", "-o", "{d}/o.exr"],
            ["ev-1.jpg", "same exposure"],
        ),
        (["merge", *STACK[:2], "--ev", "0", "nan", "-o", "{d}/o.exr"], ["ev-2.jpg", "not finite"]),
        (["merge", *STACK[:2], "--ev", "0", "inf", "-o", "{d}/o.exr"], ["not finite"]),
        (["merge", STACK[0], "-o", "{d}/o.exr"], ["at least 2 images"]),
        (["merge", STACK[0], "{d}/noexif.png", "-o", "{d}/o.exr"], ["noexif.png", "--ev"]),
        (["merge", *STACK[:2], "-o", "{d}/nowhere/o.exr"], ["nowhere", "does not exist"]),
        (["merge", *STACK[:2], "-o", "{d}/exists.exr"], ["exists.exr", "--force"]),
        (["merge", *STACK[:2], "-o", "{d}/o.png"], ["o.png", "unsupported"]),
        (["tonemap", "{d}/nan.pfm", "-o", "{d}/o.png"], ["nan.pfm", "NaN"]),
        (["tonemap", "{d}/notes.png", "-o", "{d}/o.png"], ["notes.png", "unknown HDR format"]),
        (["tonemap", "{d}/nan.pfm", "-o", "{d}/exists.exr"], ["exists.exr"]),
        (["merge", *STACK[:2]], ["--output"]),
        # numeric options: refused before any work (argparse), never a traceback
        (["reconstruct", STACK[3], "-o", "{d}/o.exr", "--max-pixels", "-5"],
         ["--max-pixels", "positive integer"]),
        (["reconstruct", STACK[3], "-o", "{d}/o.exr", "--max-pixels", "0"], ["--max-pixels"]),
        (["reconstruct", STACK[3], "-o", "{d}/o.exr", "--key", "0"], ["--key", "positive"]),
        (["reconstruct", STACK[3], "-o", "{d}/o.exr", "--evs", "-5", "-4", "-3", "-2", "-1", "0"],
         ["-5, -4 are beyond ±3", "--evs -3 -2 -1 0 1 2 3"]),
        (["reconstruct", STACK[3], "-o", "{d}/o.exr", "--evs", "-2", "0", "2"],
         ["whole stops from -3 to +3", "it skips -1, +1"]),
        (["reconstruct", STACK[3], "-o", "{d}/o.exr", "--evs", "-4", "0", "4"],
         ["-4, +4 are beyond ±3"]),
        (["merge", *STACK[:2], "--ev", "0", "1", "-o", "{d}/o.exr", "--smoothness", "-1"],
         ["--smoothness", "≥ 0"]),
        (["merge", *STACK[:2], "--ev", "0", "1", "-o", "{d}/o.exr", "--key", "nan"], ["--key"]),
        (["tonemap", "{d}/nan.pfm", "-o", "{d}/o.png", "--white", "-2"], ["--white"]),
        (["evaluate", "--data", "{d}", "-o", "{d}/report", "--size", "0"], ["--size"]),
        (["evaluate", "--data", "{d}", "-o", "{d}/report", "--views", "-1"], ["--views"]),
        (["preview-data", "{d}", "-o", "{d}/p.png", "--count", "0"], ["--count"]),
        (["train", "--config", "configs/small.toml", "--run-dir", "{d}/run", "--time-limit",
          "-3"], ["--time-limit"]),
        (["train", "--config", str(Path(__file__).parents[1] / "configs" / "small.toml"),
          "--run-dir", "{d}/run", "--init", "{d}/missing.safetensors"],
         ["missing.safetensors", "no such weights file"]),
        # a config that names missing data, or has a value of the wrong type: no run folder
        (["train", "--config", "{d}/nodata.toml", "--run-dir", "{d}/run"],
         ["nothing", "no such file or folder"]),
        (["train", "--config", "{d}/slow.toml", "--run-dir", "{d}/run"],
         ["slow.toml [optim]", "lr = 'fast': expected float"]),
        (["train", "--resume", "--run-dir", "{d}/run"], ["run", "no config.json"]),
        (["export", "{d}/run", "-o", "{d}/w.safetensors"], ["run", "not found"]),
        (["export", str(Path(__file__).parents[1] / "src" / "hdrsyn" / "weights"
                        / "small.safetensors"), "-o", "{d}/exists.exr"],
         ["exists.exr", "unsupported"]),
        (["preview-data", "{d}/nothing", "-o", "{d}/p.png"], ["nothing", "no such file"]),
        (["preview-data", "{d}", "-o", "{d}/p.png"], ["folder", "0 exposure images"]),
        (["preview-data", "{d}/folder", "-o", "{d}/p.png"], ["folder", "no .exr, .hdr, .pfm"]),
        (["reconstruct", "{d}/folder", "-o", "{d}/out"], ["folder", "no images in it"]),
        (["evaluate", "--data", "{d}/nothing", "-o", "{d}/report"], ["nothing", "no such"]),
        (["evaluate", "--data", "{d}", "-o", "{d}/exists.exr"], ["exists.exr", "not a folder"]),
        (["evaluate", "--data", "{d}", "-o", "{d}/r", "--baselines", "magic"], ["magic"]),
        (["tonemap", "{d}/missing.exr", "-o", "{d}/o.png"], ["missing.exr", "no such file"]),
        (["tonemap", "{d}/exists.exr", "-o", "{d}/o.png"], ["exists.exr", "not a readable"]),
        (["reconstruct", "{d}/missing.jpg", "-o", "{d}/o.exr"], ["missing.jpg", "no such"]),
        (["reconstruct", "{d}/notes.png", "-o", "{d}/o.exr"], ["notes.png", "not a readable"]),
        (["reconstruct", STACK[3], "-o", "{d}/o.png"], ["o.png", "unsupported"]),
        (["reconstruct", STACK[3], "-o", "{d}/o.exr", "--model", "{d}/notes.png"],
         ["notes.png"]),
        (["reconstruct", STACK[3], "-o", "{d}/o.exr", "--evs", "0", "0.5"],
         ["+0.5 is not a whole stop"]),
        (["reconstruct", STACK[3], "-o", "{d}/o.exr", "--max-boost", "-1"], ["--max-boost"]),
        (["merge", *STACK[:2], "-o", "{d}/o.exr", "--plot-crf", "{d}/c.txt"], ["c.txt"]),
    ],
)
def test_bad_input_is_one_clean_line(bad_files, capsys, argv, needles):
    before = sorted(p.name for p in bad_files.iterdir())
    argv = [str(a).replace("{d}", str(bad_files)) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exit_info:  # argparse usage errors
        code = exit_info.code
    assert_clean_error(code, capsys.readouterr().err, *needles)
    assert sorted(p.name for p in bad_files.iterdir()) == before
    assert (bad_files / "exists.exr").read_bytes() == b"precious"


def test_force_overwrites(tmp_path, capsys):
    out = tmp_path / "o.exr"
    out.write_bytes(b"old")
    code, _, err = run(capsys, "merge", *STACK[2:5], "-o", out, "--force")
    assert code == 0, err
    assert read_hdr(out).shape == (320, 600, 3)


def test_python_module_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "hdrsyn", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout.startswith("hdrsyn")


def test_merge_and_reconstruct_write_ultrahdr_jpegs_matching_their_exr(tmp_path, capsys):
    """``-o out.jpg``: an Ultra HDR JPEG whose decoded radiance is the ``.exr`` one for the same
    input (log-luminance RMSE < 0.15 after one scale, on the photo's well-exposed pixels), with
    headroom above SDR white; ``tonemap`` reads it as HDR."""
    import imagecodecs

    photo = read_ldr(STACK[3])
    well = ((photo > 0.05) & (photo < 0.95)).all(axis=2)
    jobs = {"merge": [*map(str, STACK)], "reconstruct": [str(STACK[3]), "--max-pixels", "20000"]}
    for command, arguments in jobs.items():
        for suffix in (".exr", ".jpg"):
            code, _, err = run(capsys, command, *arguments, "-o", tmp_path / f"{command}{suffix}")
            assert code == 0, err
        assert imagecodecs.ultrahdr_check((tmp_path / f"{command}.jpg").read_bytes())
        exr, jpeg = (read_hdr(tmp_path / f"{command}{s}") for s in (".exr", ".jpg"))
        luma = np.array([0.2126, 0.7152, 0.0722])
        difference = (np.log(np.maximum(jpeg @ luma, 1e-6)) - np.log(exr @ luma))[well]
        assert np.sqrt(np.mean((difference - np.median(difference)) ** 2)) < 0.15
        assert jpeg.max() > 2  # the window keeps its headroom above SDR white
    code, _, err = run(capsys, "tonemap", tmp_path / "merge.jpg", "-o", tmp_path / "tm.png")
    assert code == 0, err


def test_exr_outputs_are_half_floats_unless_float32(tmp_path, capsys):
    """The commands write .exr in half floats (a 12 MP reconstruction: 10 MB, not 71 MB, and
    2 s sooner); ``--float32`` keeps 32 bits; the values agree to half's rounding."""
    stored = {}
    for name, extra in (("half", []), ("full", ["--float32"])):
        path = tmp_path / f"{name}.exr"
        code, _, err = run(capsys, "merge", *STACK, "-o", path, *extra)
        assert code == 0, err
        stored[name] = exr_pixel_type(path)
    assert stored == {"half": "float16", "full": "float32"}
    half, full = read_hdr(tmp_path / "half.exr"), read_hdr(tmp_path / "full.exr")
    np.testing.assert_allclose(half, full, rtol=2**-11, atol=1e-7)
    code, _, err = run(capsys, "reconstruct", STACK[3], "-o", tmp_path / "r.exr",
                       "--max-pixels", "20000", "--float32")  # fmt: skip
    assert code == 0, err
    assert exr_pixel_type(tmp_path / "r.exr") == "float32"


def test_merge_align_undoes_handheld_shifts(tmp_path, capsys):
    """Frames shifted by up to 6 pixels, merged with --align, match the tripod merge away from
    the borders; without --align they do not, and the response solve says it looks wrong."""
    import warnings

    from PIL import Image

    shifts = [(3, -5), (-6, 4), (0, 6), (0, 0), (5, 5), (-4, -2), (2, -6)]  # (dy, dx) per EV
    frames = []
    for path, (dy, dx) in zip(STACK, shifts, strict=True):
        pixels = np.round(read_ldr(path) * 255).astype(np.uint8)
        moved = np.roll(pixels, (dy, dx), axis=(0, 1))
        frames.append(tmp_path / f"{path.stem}.png")
        Image.fromarray(moved).save(frames[-1])
    evs = ["--ev", *map(str, range(-3, 4))]
    backwards = ["--ev", *map(str, range(3, -4, -1))]  # the same frames given brightest first
    printed, warned = {}, {}
    for name, inputs, extra in (("tripod", STACK, evs), ("aligned", frames, [*evs, "--align"]),
                                ("backwards", frames[::-1], [*backwards, "--align"]),
                                ("shifted", frames, evs)):  # fmt: skip
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code, printed[name], err = run(capsys, "merge", *inputs, *extra, "-o",
                                           tmp_path / f"{name}.exr")  # fmt: skip
        warned[name] = [str(w.message) for w in caught]
        assert code == 0, err
    assert warned["tripod"] == warned["aligned"] == []
    assert any(line.startswith("the frames are up to 6 pixels apart")
               and line.endswith("try --align") for line in warned["shifted"]), warned
    tripod, aligned, backwards, shifted = (
        np.log(read_hdr(tmp_path / f"{n}.exr")[10:-10, 10:-10])
        for n in ("tripod", "aligned", "backwards", "shifted"))  # fmt: skip
    error = np.median(np.abs(aligned - tripod))
    assert error < 0.005  # measured 0.0015 (0.116 unaligned)
    assert np.median(np.abs(shifted - tripod)) > 5 * error
    # aligned in order of exposure onto the middle one (EV 0) whatever the order given
    assert np.median(np.abs(backwards - aligned)) < 0.005
    # the shifts found are reported: each frame moved back by what moved it
    expected = ", ".join(f"{path.name} ({-dx:+d}, {-dy:+d})"
                         for path, (dy, dx) in zip(frames, shifts, strict=True))  # fmt: skip
    assert printed["aligned"].splitlines()[0].endswith(expected)
    assert "shifts" not in printed["tripod"]


def test_merge_takes_a_folder_and_names_an_empty_one(tmp_path, capsys):
    folder = tmp_path / "bracket"
    folder.mkdir()
    code, _, err = run(capsys, "merge", folder, "-o", tmp_path / "o.exr")
    assert code == 2 and err.strip() == f"hdrsyn: error: {folder}: no images in it (PNG, JPEG or TIFF)"  # noqa: E501
    code, _, err = run(capsys, "merge", folder / "*.jpg", "-o", tmp_path / "o.exr")
    assert code == 2 and "*.jpg: no such file" in err
    for path in STACK:
        (folder / path.name).write_bytes(path.read_bytes())
    code, stdout, err = run(capsys, "merge", folder, "-o", tmp_path / "o.exr")
    assert code == 0 and stdout.splitlines()[0] == f"wrote {tmp_path / 'o.exr'}", err


def test_help_and_the_library_import_do_not_load_torch():
    """``hdrsyn --help``, refused commands and ``import hdrsyn`` stay light: PyTorch (≈ 1.5 s
    to import) loads only when a command gets to work or a public name is used."""
    photo = str(STACK[3])
    script = (
        "import sys, contextlib, io\n"
        "import hdrsyn\n"
        "from hdrsyn.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "with contextlib.redirect_stderr(io.StringIO()):\n"
        "    assert main(['reconstruct', 'missing.jpg', '-o', 'x.exr']) == 2\n"
        f"    assert main(['reconstruct', {photo!r}, '-o', 'x.exr', '--evs', '-2', '0', '2'])"
        " == 2\n"
        "    assert main(['merge', 'missing.jpg', 'b.jpg', '-o', 'x.exr']) == 2\n"
        "print('torch' in sys.modules)\n"
        "hdrsyn.merge_exposures\n"
        "print('torch' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert run.stdout.split() == ["False", "True"]


def _stderr_on_a_terminal(argv: list[str]) -> tuple[int, str, str]:
    """Run the console script with stderr on a pseudo-terminal (stdout a pipe)."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()  # 160 columns: a new pty has none, and tqdm fits its line
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "hdrsyn", *argv], stdout=subprocess.PIPE,
                               stderr=follower, text=True)  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        chunks.append(chunk)
    stdout = process.stdout.read()
    code = process.wait()
    os.close(leader)
    return code, stdout, b"".join(chunks).decode(errors="replace")


def test_progress_shows_each_stage_on_a_terminal_only(tmp_path):
    photo = tmp_path / "small.jpg"
    Image.fromarray(np.round(read_ldr(STACK[3])[:64, :96] * 255).astype(np.uint8)).save(photo)
    argv = ["reconstruct", str(photo), "-o", str(tmp_path / "o.exr"), "--force"]
    code, stdout, stderr = _stderr_on_a_terminal(argv)
    assert code == 0, stderr
    for name in ("read", "curve", "networks", "merge", "write"):
        assert f"small.jpg: {name}" in stderr
    assert stdout.splitlines()[-1].startswith("done: 1 file in ")
    code, _, stderr = _stderr_on_a_terminal([*argv, "--quiet"])
    assert code == 0 and "small.jpg" not in stderr
    run = subprocess.run([sys.executable, "-m", "hdrsyn", *argv], capture_output=True, text=True)
    assert run.returncode == 0 and run.stderr == ""  # not a terminal: silent
    code, stdout, stderr = _stderr_on_a_terminal(
        ["merge", *map(str, STACK), "-o", str(tmp_path / "m.exr"), "--align"])  # fmt: skip
    assert code == 0 and "align" in stderr and "read ev+0.jpg" in stderr
    assert stdout.splitlines()[-1].startswith("done: 1 file in ")
