"""A TCP proxy between ``rlmpc hil --port socket://…`` and an emulated board, for fault tests.

It forwards both directions chunk by chunk and can go silent (keep both connections open but
forward nothing), drop frames, or call a hook when the n-th STEP frame passes.  Drops are per
request (the host writes one frame per chunk): with probability ``drop_rate`` either the
request or its whole reply (the device's bytes until the next request) is dropped.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable

import numpy as np

from rlmpc.codegen.protocol_spec import SYNC, MsgType

STEP_HEADER = bytes([SYNC[0], SYNC[1], int(MsgType.STEP)])


class LinkProxy:
    """Listens on ``url`` (``socket://127.0.0.1:P``), forwards to ``upstream`` (host, port)."""

    def __init__(self, upstream: tuple[str, int], *, drop_rate: float = 0.0, seed: int = 0,
                 silent_after: int | None = None, on_step: tuple[int, Callable[[], None]] | None = None) -> None:
        self.upstream = upstream
        self.drop_rate, self.rng = drop_rate, np.random.default_rng(seed)
        self.silent_after, self.on_step = silent_after, on_step
        self.steps = 0
        self.dropped = 0
        self._drop_reply = False
        self.silent_since: float | None = None
        self.event_time: float | None = None  # when the on_step hook ran
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.url = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            client, _ = self.server.accept()
        except OSError:
            return
        device = socket.create_connection(self.upstream)
        for s in (client, device):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([client, device], [], [], 0.05)
                for s in ready:
                    data = s.recv(4096)
                    if not data:
                        return  # one side closed: close the other (a dead board closes the link)
                    if s is client:
                        self._count(data)
                    if self.silent_since is not None:
                        continue
                    if s is client:
                        self._drop_reply = False
                        r = self.rng.random() if self.drop_rate else 1.0
                        if r < self.drop_rate:
                            self.dropped += 1
                            if r < self.drop_rate / 2:
                                continue  # the request is lost
                            self._drop_reply = True  # its reply is lost
                        device.sendall(data)
                    elif not self._drop_reply:
                        client.sendall(data)
        except OSError:
            return
        finally:
            client.close()
            device.close()

    def _count(self, data: bytes) -> None:
        n = data.count(STEP_HEADER)
        for _ in range(n):
            self.steps += 1
            if self.silent_after is not None and self.steps > self.silent_after and self.silent_since is None:
                self.silent_since = time.monotonic()
            if self.on_step is not None and self.steps == self.on_step[0]:
                self.event_time = time.monotonic()
                self.on_step[1]()

    def close(self) -> None:
        self._stop.set()
        self.server.close()
        self._thread.join(timeout=2)
