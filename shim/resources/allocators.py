"""Service ClusterIP and NodePort allocation: a value is never handed out twice while held.

The held sets are rebuilt from the stored Services at start-up and kept current by
the services strategy (allocate on create/update, release on delete).
"""
from __future__ import annotations

import ipaddress
import random


class IPAllocator:
    def __init__(self, cidr: str):
        self.net = ipaddress.ip_network(cidr, strict=False)
        self.held: set[str] = set()
        # network address and broadcast are never used; the first host is the kubernetes service
        self._size = self.net.num_addresses

    @property
    def first(self) -> str:
        return str(self.net.network_address + 1)

    def contains(self, ip: str) -> bool:
        try:
            return ipaddress.ip_address(ip) in self.net
        except ValueError:
            return False

    def allocate(self, ip: str | None = None) -> str:
        """Take `ip` (ValueError if taken/outside) or the next free one (RuntimeError if full)."""
        if ip:
            if not self.contains(ip):
                raise ValueError(f"the provided IP ({ip}) is not in the valid range. The range of "
                                 f"valid IPs is {self.net}")
            if ip in self.held:
                raise ValueError("provided IP is already allocated")
            self.held.add(ip)
            return ip
        n = self._size - 2
        start = random.randrange(n)
        # skip the first host (reserved for the kubernetes service) when picking at random
        for i in range(n):
            off = 1 + (start + i) % n
            if off == 1:
                continue
            cand = str(self.net.network_address + off)
            if cand not in self.held:
                self.held.add(cand)
                return cand
        raise RuntimeError("range is full")

    def release(self, ip: str | None) -> None:
        if ip:
            self.held.discard(ip)


class PortAllocator:
    def __init__(self, lo: int = 30000, hi: int = 32767):
        self.lo, self.hi = lo, hi
        self.held: set[int] = set()

    def allocate(self, port: int | None = None) -> int:
        if port:
            if not self.lo <= port <= self.hi:
                raise ValueError(f"provided port is not in the valid range. The range of valid "
                                 f"ports is {self.lo}-{self.hi}")
            if port in self.held:
                raise ValueError("provided port is already allocated")
            self.held.add(port)
            return port
        n = self.hi - self.lo + 1
        start = random.randrange(n)
        for i in range(n):
            cand = self.lo + (start + i) % n
            if cand not in self.held:
                self.held.add(cand)
                return cand
        raise RuntimeError("range is full")

    def release(self, port: int | None) -> None:
        if port:
            self.held.discard(port)
