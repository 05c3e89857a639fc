"""Pod IPs: each pod its own loopback address 127.X.Y.N (X.Y random per run), so every replica
keeps the same containerPort; .1 is the Service's."""

from __future__ import annotations

import random
import socket

from harness.backends.base import BackendError


def _port_free(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((ip, port))
            return True
        except OSError:
            return False


class LoopbackIPAM:
    def __init__(self) -> None:
        self.block = f"127.{random.randint(16, 250)}.{random.randint(1, 250)}"
        self._next = 2

    @property
    def service_ip(self) -> str:
        return f"{self.block}.1"

    def allocate(self, in_use: set[str], ports: list[int]) -> str:
        """An address not in use whose container ports are free (another process may hold one)."""
        for _ in range(250):
            n = self._next
            self._next = 2 + (self._next - 1) % 253
            ip = f"{self.block}.{n}"
            if ip in in_use:
                continue
            if all(_port_free(ip, port) for port in ports):
                return ip
        raise BackendError("no free loopback pod IP")
