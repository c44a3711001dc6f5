"""A user-space TCP proxy on loopback that delays every byte by a fixed time each way.

``tc netem`` is not available here; this gives the same effect for one TCP stream:
``listen`` -> ``target`` with ``delay`` seconds added in each direction (so the round trip
grows by ``2 * delay``), without limiting bandwidth.
"""

from __future__ import annotations

import collections
import socket
import threading
import time
from typing import Deque, List, Tuple


class DelayProxy:
    """Accept on 127.0.0.1:``port`` (0: kernel-chosen) and forward to ``target_port``."""

    def __init__(self, target_port: int, delay: float, port: int = 0) -> None:
        self.delay = delay
        self.target_port = target_port
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", port))
        self._server.listen(16)
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._sockets: List[socket.socket] = []
        threading.Thread(target=self._accept, name="delay-proxy", daemon=True).start()

    def _accept(self) -> None:
        self._server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._sockets.append(sock)
            self._pipe(client, upstream)
            self._pipe(upstream, client)

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        queue: Deque[Tuple[float, bytes]] = collections.deque()
        cond = threading.Condition()

        def reader() -> None:
            while not self._stop.is_set():
                try:
                    data = src.recv(1 << 20)
                except OSError:
                    data = b""
                with cond:
                    queue.append((time.monotonic() + self.delay, data))
                    cond.notify()
                if not data:
                    return

        def writer() -> None:
            while True:
                with cond:
                    while not queue:
                        cond.wait()
                    due, data = queue.popleft()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if not data:
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    return
                try:
                    dst.sendall(data)
                except OSError:
                    return

        threading.Thread(target=reader, daemon=True).start()
        threading.Thread(target=writer, daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        for sock in self._sockets:
            try:
                sock.close()
            except OSError:
                pass
