"""Recording: one writer per port, opened lazily from the first frame's size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from netgear.record import Recorder, RecordError
from netgear.sources import Synthetic


def frames_of(path):
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        out.append(frame)
    cap.release()
    return out


def test_one_file_per_port_sized_by_its_first_frame(tmp_path):
    with Recorder(tmp_path / "rec", fps=10) as rec:
        assert rec.files == {}  # nothing opened before the first frame
        for frame in Synthetic((160, 120), fps=None, frames=6):
            rec.write(5566, frame)
        for i in range(4):
            rec.write(5567, np.full((50, 80), 40 * i, np.uint8))  # grayscale
        rec.write(5567, np.zeros((100, 100, 3), np.uint8))  # another size: resized to the first
        rec.write(5567, None)  # message-only packets have no frame: ignored
    assert rec.counts == {5566: 6, 5567: 5}
    a, b = frames_of(rec.files[5566]), frames_of(rec.files[5567])
    assert len(a) == 6 and a[0].shape == (120, 160, 3)
    assert len(b) == 5 and all(f.shape == (50, 80, 3) for f in b)
    assert rec.files[5566].name == "port-5566.mp4"
    assert abs(int(b[3].mean()) - 120) <= 8  # grayscale content survived (lossy codec)


def test_odd_sizes_are_cropped_to_even(tmp_path):
    with Recorder(tmp_path) as rec:
        rec.write(1, np.full((31, 45, 3), 200, np.uint8))
    (frame,) = frames_of(rec.files[1])
    assert frame.shape == (30, 44, 3)


def test_falls_back_to_the_next_format(tmp_path):
    with Recorder(tmp_path, formats=(("XXXX", ".nothing"), ("MJPG", ".avi"))) as rec:
        rec.write(7, np.zeros((16, 16, 3), np.uint8))
    assert rec.files[7].name == "port-7.avi" and len(frames_of(rec.files[7])) == 1


def test_unusable_folder_or_writer_is_a_record_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RecordError, match="cannot create the recording folder"):
        Recorder(blocker / "sub")
    rec = Recorder(tmp_path, formats=(("XXXX", ".nothing"),))
    with pytest.raises(RecordError, match="cannot open a video writer for port 3"):
        rec.write(3, np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ValueError):
        Recorder(tmp_path, fps=0)
