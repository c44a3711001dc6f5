"""REQ/REP after an outage: a frame that can reach the hub only more than request_timeout
after it was first sent is dropped, not replayed late; the next frame goes through.

The server starts while no hub listens on its port (the outage), sends frame 1, and the hub
appears 1.5 s later, three times ``request_timeout`` (0.5 s): frame 1 must never be
delivered, frame 2 must be the hub's first packet.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

from helpers import LOCAL, free_ports, open_hub, open_server, wait_until
from netgear import RequestTimeout

pytestmark = pytest.mark.timeout(60)

OUTAGE = 1.5
TIMEOUT = 0.5


def first_send_during_outage(gears, bidirectional: bool):
    port = free_ports(1)[0]
    server = open_server(gears, port, 1, multiserver_mode=True, request_timeout=TIMEOUT, max_retries=20,
                         bidirectional_mode=bidirectional)
    outcome: dict = {}

    def send_first() -> None:
        try:
            outcome["value"] = server.send(np.full((4, 4), 1, np.uint8), message={"frame": 1})
        except Exception as exc:  # what the test asserts on
            outcome["error"] = exc

    sender = threading.Thread(target=send_first)
    sender.start()
    time.sleep(OUTAGE)  # holds the fault: nobody listens on the port
    hub = open_hub(gears, [port], 1, bidirectional_mode=bidirectional)
    sender.join(20)
    assert not sender.is_alive(), "send() still blocked after the hub came back"
    return hub, server, outcome


def test_a_frame_too_late_to_send_is_dropped_and_the_next_one_is_delivered(gears, caplog):
    caplog.set_level(logging.WARNING, logger="netgear")
    hub, server, outcome = first_send_during_outage(gears, bidirectional=False)
    assert outcome == {"value": None}
    assert any("dropped frames [1]" in r.getMessage() for r in caplog.records), caplog.text
    server.send(np.full((4, 4), 2, np.uint8), message={"frame": 2})
    packet = hub.recv_packet(timeout=10)
    assert packet.message == {"frame": 2} and packet.seq == 2  # frame 1 was never replayed
    assert int(packet.frame[0, 0]) == 2
    with pytest.raises(TimeoutError):
        hub.recv_packet(timeout=0.5)


def test_bidirectional_send_of_a_frame_too_late_raises_and_the_next_one_gets_its_answer(gears):
    hub, server, outcome = first_send_during_outage(gears, bidirectional=True)
    assert isinstance(outcome.get("error"), RequestTimeout), outcome
    assert "dropped, not sent late" in str(outcome["error"])
    answers: dict = {}

    def send_second() -> None:
        answers["reply"] = server.send(np.full((4, 4), 2, np.uint8), message={"frame": 2})

    sender = threading.Thread(target=send_second)
    sender.start()
    packet = hub.recv_packet(timeout=10)
    assert packet.message == {"frame": 2}
    assert packet.reply({"seen": packet.seq})
    wait_until(lambda: "reply" in answers, 10, "the answer to frame 2")
    sender.join(5)
    assert answers["reply"] == {"seen": 2}
