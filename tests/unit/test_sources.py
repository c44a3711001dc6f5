"""Frame sources: synthetic pattern, pacing, video file, image folder, camera errors."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from netgear.sources import (
    Camera,
    ImageFolder,
    SourceError,
    Synthetic,
    VideoFile,
    block_box,
    open_source,
    paced,
    synthetic,
)
from netgear import NetGearError


def test_synthetic_frames_shape_count_and_block_position():
    frames = list(Synthetic((160, 120), fps=None, seed=3, frames=5))
    assert len(frames) == 5
    for i, frame in enumerate(frames):
        assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8 and frame.flags.writeable
        x, y, w, h = block_box(i, (160, 120), seed=3)
        assert (frame[y:y + h, x:x + w] == 255).all()
        assert not (frame[y:y + h, x + w:x + w + 4] == 255).all()  # just right of the block is not white
    assert block_box(1, (160, 120), 3)[0] - block_box(0, (160, 120), 3)[0] == 4  # 4 px per frame


def test_synthetic_servers_differ_by_colour_and_block_row():
    a, b = next(synthetic((320, 240), None, seed=0)), next(synthetic((320, 240), None, seed=1))
    assert block_box(0, (320, 240), 0)[1] != block_box(0, (320, 240), 1)[1]
    assert not np.array_equal(a, b)


def test_synthetic_counter_bits_and_label():
    source = Synthetic((320, 240), fps=None, label="cam-9")
    side = 30
    five = source.frame(5)  # 0b101: squares 0 and 2 lit, 1 dark
    lit = [bool((five[: side // 2, b * side: b * side + side // 2] == (0, 255, 255)).all()) for b in range(3)]
    assert lit == [True, False, True]
    unlabelled = Synthetic((320, 240), fps=None).frame(5)
    assert not np.array_equal(five[-30:], unlabelled[-30:])  # the label text is drawn at the bottom


def test_synthetic_is_paced_without_drift():
    start = time.monotonic()
    stamps = [time.monotonic() - start for _ in Synthetic((32, 32), fps=100, frames=20)]
    assert stamps[-1] >= 19 / 100 - 0.002  # never early
    assert stamps[-1] < 19 / 100 + 0.15  # not slower than asked (generous for a loaded machine)


def test_paced_catches_up_after_a_slow_consumer():
    start = time.monotonic()
    out = []
    for i, item in enumerate(paced(range(30), 50)):
        out.append(item)
        if i == 2:
            time.sleep(0.6)  # the consumer stalls for 30 frame periods...
    elapsed = time.monotonic() - start
    assert out == list(range(30))
    # ...and the schedule did not slip by the stall: the 27 frames it held up are all
    # due by then and follow at once (0.64 s in all); a schedule restarted after the
    # stall would take 27 more periods (1.18 s). The bound is halfway.
    assert elapsed < 0.64 + 0.27


def test_synthetic_rejects_tiny_sizes():
    with pytest.raises(ValueError, match="16x16"):
        Synthetic((8, 8))


def _write_video(path, frames, size=(64, 48)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, size)
    for frame in Synthetic(size, fps=None, frames=frames):
        writer.write(frame)
    writer.release()


def test_video_file_reads_every_frame_and_loops(tmp_path):
    path = tmp_path / "clip.avi"
    _write_video(path, 5)
    once = list(VideoFile(path, fps=0))
    assert len(once) == 5 and once[0].shape == (48, 64, 3)
    looped = list(VideoFile(path, fps=0, loop=True, frames=12))
    assert len(looped) == 12
    resized = list(VideoFile(path, fps=0, size=(32, 24)))
    assert resized[0].shape == (24, 32, 3)
    assert VideoFile(path).fps == pytest.approx(25)  # paced at the file's own rate by default


def test_video_file_errors(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        VideoFile(tmp_path / "nope.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(SourceError, match="not a readable video file") as info:
        VideoFile(bad)
    assert isinstance(info.value, NetGearError) and isinstance(info.value, OSError)


def test_image_folder_in_name_order_skipping_non_images_and_broken_ones(tmp_path, caplog):
    for i, name in enumerate(["b.png", "a.png", "c.jpg"]):
        cv2.imwrite(str(tmp_path / name), np.full((20, 30, 3), 10 * (i + 1), np.uint8))
    (tmp_path / "readme.txt").write_text("hello")
    (tmp_path / "d.png").write_bytes(b"not really a png")
    gray = tmp_path / "e.png"
    cv2.imwrite(str(gray), np.full((20, 30), 200, np.uint8))
    frames = list(ImageFolder(tmp_path, fps=None))
    assert [int(f.mean()) for f in frames] == [20, 10, 30, 200]  # a, b, c, (d skipped), e
    assert frames[-1].ndim == 2  # grayscale stays grayscale
    assert "d.png: cannot decode" in caplog.text
    assert len(list(ImageFolder(tmp_path, fps=None, loop=True, frames=9))) == 9


def test_image_folder_errors(tmp_path):
    with pytest.raises(SourceError, match="no such folder"):
        ImageFolder(tmp_path / "missing")
    with pytest.raises(SourceError, match="no image files"):
        ImageFolder(tmp_path)
    (tmp_path / "x.png").write_bytes(b"broken")
    with pytest.raises(SourceError, match="none of its 1 images can be decoded"):
        list(ImageFolder(tmp_path, fps=None))


def test_missing_camera_is_a_source_error():
    with pytest.raises(SourceError, match="camera 97: cannot open it"):
        Camera(97)


def test_open_source_picks_the_kind(tmp_path):
    assert isinstance(open_source("synthetic", size=(64, 48)), Synthetic)
    assert open_source("synthetic").size == (640, 480) and open_source("synthetic").fps == 30
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    assert isinstance(open_source(str(tmp_path)), ImageFolder)
    _write_video(tmp_path / "v.avi", 2)
    assert isinstance(open_source(str(tmp_path / "v.avi")), VideoFile)
    with pytest.raises(SourceError, match="no such file or folder"):
        open_source(str(tmp_path / "nothing-here"))
    with pytest.raises(SourceError, match="camera 98"):
        open_source("98")


def test_docstring_examples_of_the_command_modules_run():
    import doctest

    import netgear.display
    import netgear.record
    import netgear.sources
    import netgear.stats_view

    for module in (netgear.sources, netgear.display, netgear.record, netgear.stats_view):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__
