"""Montage (imutils.build_montages), frame conversion, labels, display fallback, snapshots."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

import netgear.display as display_mod
from netgear import Packet
from netgear.display import Display, Montage, montage_grid, to_bgr, write_image
from netgear.stats import HubSnapshot, PortStats, ServerStats


def packet(port, server_id, frame, message=None):
    return Packet(port=port, frame=frame, message=message, has_message=message is not None,
                  server_id=server_id, topic=str(port), seq=1, sent_at=0.0, received_at=0.0)


def snapshot(*servers):
    ports = tuple(PortStats(s.port, f"tcp://*:{s.port}", {}) for s in servers)
    return HubSnapshot(at=0.0, pattern="reqrep", ended=False, ports=ports, servers=tuple(servers))


def stats(port, server_id, state="alive", reason=None, topic=None):
    return ServerStats(port=port, server_id=server_id, state=state, since=0.0, age=0.0, reason=reason, topic=topic)


@pytest.mark.parametrize(
    "frame",
    [
        np.full((10, 12), 7, np.uint8),
        np.full((10, 12, 1), 7, np.uint8),
        np.full((10, 12, 4), 7, np.uint8),
        np.full((10, 12), 7 * 257, np.uint16),
        np.full((10, 12, 3), 7 / 255, np.float32),
        np.ones((10, 12), bool),
    ],
)
def test_to_bgr_makes_8bit_three_channels(frame):
    out = to_bgr(frame)
    assert out.shape == (10, 12, 3) and out.dtype == np.uint8
    assert int(out[0, 0, 0]) in (7, 255)


def test_to_bgr_rejects_non_images():
    with pytest.raises(ValueError, match="not an image"):
        to_bgr(np.zeros((2, 3, 5)))


def test_grid_is_about_square():
    assert [montage_grid(n) for n in (1, 2, 4, 5, 9)] == [(1, 1), (2, 1), (2, 2), (3, 2), (3, 3)]


def tile_at(image, index, size=(64, 48), columns=2):
    w, h = size
    r, c = divmod(index, columns)
    return image[r * h:(r + 1) * h, c * w:(c + 1) * w]


def test_mixed_sizes_and_grayscale_tile_in_port_order():
    m = Montage(tile_size=(64, 48))
    m.update(packet(5567, "b", np.full((100, 200), 200, np.uint8)))  # grayscale, big
    m.update(packet(5566, "a", np.full((30, 40, 3), (255, 0, 0), np.uint8)))  # colour, small
    m.update(packet(5568, "c", np.full((48, 64, 3), (0, 0, 255), np.uint8)))
    image = m.render()
    assert image.shape == (96, 128, 3)  # 3 tiles on 2 x 2
    bottom = lambda t: t[-8:]  # below the label band
    assert tuple(bottom(tile_at(image, 0))[0, 0]) == (255, 0, 0)  # port 5566 first
    assert tuple(bottom(tile_at(image, 1))[0, 0]) == (200, 200, 200)  # then 5567
    assert tuple(bottom(tile_at(image, 2))[0, 0]) == (0, 0, 255)
    assert not tile_at(image, 3).any()  # the unused cell stays black
    assert m.keys() == [(5566, "a"), (5567, "b"), (5568, "c")]


def test_labels_are_written_on_a_band():
    m = Montage(tile_size=(160, 120))
    m.update(packet(5566, "a", np.full((120, 160, 3), 128, np.uint8)))
    image = m.render(snapshot(stats(5566, "a")), {(5566, "a"): 12.3})
    band, body = image[:30], image[60:]
    assert (body == 128).all()
    assert band.max() > 200 and band.min() < 60  # white text on a darkened band


def test_gone_servers_are_dimmed_and_waiting_ports_get_a_tile():
    m = Montage(tile_size=(64, 48))
    m.update(packet(5566, "a", np.full((48, 64, 3), 240, np.uint8)))
    m.update(packet(5567, "b", np.full((48, 64, 3), 240, np.uint8)))
    snap = snapshot(stats(5566, "a", "gone", "timeout"), stats(5567, "b"), stats(5568, None, "expected"))
    image = m.render(snap)
    assert m.keys(snap) == [(5566, "a"), (5567, "b"), (5568, None)]
    assert tile_at(image, 0)[-5:].max() <= 80  # dimmed
    assert (tile_at(image, 1)[-5:] == 240).all()  # alive: untouched
    waiting = tile_at(image, 2)
    assert waiting[-5:].max() <= 40 and waiting[:20].max() > 200  # dark, with a label


def test_filtered_servers_get_no_tile():
    m = Montage(tile_size=(64, 48), filter=["gate"])
    snap = snapshot(stats(5566, "a", topic="gate"), stats(5567, "b", topic="door"))
    assert m.keys(snap) == [(5566, "a")]


def test_message_only_packets_keep_the_last_frame():
    m = Montage(tile_size=(64, 48), messages=True)
    m.update(packet(5566, "a", np.full((48, 64, 3), 99, np.uint8)))
    m.update(packet(5566, "a", None, message={"temp": 21}))
    tile = m.tiles[(5566, "a")]
    assert tile.frame is not None and tile.frames == 2 and tile.message == {"temp": 21}
    assert m.render().shape == (48, 64, 3)


def test_display_degrades_without_gui(monkeypatch, caplog):
    monkeypatch.setattr(display_mod, "_gui", None)
    monkeypatch.setenv("NETGEAR_NO_GUI", "1")
    with Display() as d:
        assert not d.enabled
        assert d.show("x", np.zeros((10, 10, 3), np.uint8)) is True  # nothing shown, nothing fails
        assert d.poll() is True
    assert "no GUI available" in caplog.text
    assert Display(enabled=False).enabled is False


def test_no_gui_without_a_display_server(monkeypatch):
    monkeypatch.setattr(display_mod, "_gui", None)
    monkeypatch.delenv("NETGEAR_NO_GUI", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if not os.sys.platform.startswith("linux"):
        pytest.skip("the display-server check is Linux's")
    assert display_mod.gui_available() is False


def test_write_image_is_atomic_and_errors_are_oserrors(tmp_path):
    image = np.full((20, 30, 3), 77, np.uint8)
    path = write_image(tmp_path / "snap.png", image)
    assert (cv2.imread(str(path)) == 77).all()
    assert sorted(os.listdir(tmp_path)) == ["snap.png"]
    with pytest.raises(OSError):
        write_image(tmp_path / "missing-folder" / "snap.png", image)
    with pytest.raises(OSError):
        write_image(tmp_path / "snap.unknown-extension", image)
