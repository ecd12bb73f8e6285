"""Bounded load driver for the orders-api test service (127.0.0.1 only).

Why bounded three ways (request count, wall time, request rate): a leak that exhausts the
pool makes requests hang, and a healthy endpoint answers in a millisecond; without all
three limits a driver either never ends or burns the two shared cores. Every request has
a client timeout, so blocked requests are abandoned (they stay as waiters in the dump,
which is exactly the evidence of exhaustion we want) and the driver always finishes.

    python3 tools/leakyservice/loadgen.py --base http://127.0.0.1:8080 \
        --mix orders=6,transfer=2,users=1,rates=1 --total 300 --rate 40 \
        --concurrency 8 --time-limit 10 --timeout 1

Importable too: ``drive(base, mix, ...) -> Stats``.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

#: Each endpoint of the service and a request for it: (method, path with query).
_ENDPOINTS: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "orders": lambda r: ("GET", f"/orders?customer={r.randint(1, 100)}"),
    "transfer": lambda r: (
        "POST",
        f"/transfer?from={r.randint(1, 100)}&to={r.randint(1, 100)}&cents={r.randint(1, 500)}",
    ),
    "users": lambda r: ("GET", f"/users?id={r.randint(1, 100)}"),
    "rates": lambda r: ("GET", f"/rates?currency={r.choice(['EUR', 'USD', 'GBP', 'JPY'])}"),
    # tools/pgxservice (inventory-api)
    "reserve": lambda r: ("POST", f"/reserve?sku={r.randint(1, 300)}"),
    # tools/grpcservice (pricing-gateway)
    "price": lambda r: ("GET", f"/price?sku={r.randint(1, 1000)}"),
    # tools/mysqlservice (catalog-api)
    "items": lambda r: ("GET", f"/items?cat={r.randint(1, 30)}"),
}

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Stats:
    """Outcome counts: per endpoint, and per result (HTTP status, 'timeout', 'error')."""

    sent: int = 0
    by_endpoint: Counter[str] = field(default_factory=Counter)
    by_result: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0

    def __str__(self) -> str:
        return (f"sent={self.sent} elapsed={self.elapsed:.1f}s "
                f"endpoints={dict(self.by_endpoint)} results={dict(self.by_result)}")


def parse_mix(text: str) -> dict[str, int]:
    """'orders=6,transfer=2' -> {'orders': 6, 'transfer': 2}; a bare name weighs 1."""
    mix: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        if name not in _ENDPOINTS:
            raise ValueError(f"unknown endpoint {name!r} (known: {', '.join(_ENDPOINTS)})")
        mix[name] = int(weight or 1)
    if not mix or sum(mix.values()) <= 0:
        raise ValueError("empty mix")
    return mix


def check_loopback(base: str) -> str:
    host = urllib.parse.urlsplit(base).hostname or ""
    if host not in _LOOPBACK:
        raise ValueError(f"refusing to send load to {host!r}: 127.0.0.1 only")
    return base.rstrip("/")


def _one(base: str, method: str, path: str, timeout: float) -> str:
    req = urllib.request.Request(base + path, method=method, data=b"" if method == "POST" else None)
    try:
        with _NO_PROXY.open(req, timeout=timeout) as resp:
            resp.read(1 << 16)
            return str(resp.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return str(exc.code)
    except (TimeoutError, urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        timed_out = isinstance(reason, TimeoutError) or "timed out" in str(reason)
        return "timeout" if timed_out else "error"


def drive(
    base: str,
    mix: Mapping[str, int] | str = "orders,transfer,users,rates",
    total: int = 200,
    rate: float = 40.0,
    concurrency: int = 8,
    time_limit: float = 10.0,
    timeout: float = 1.0,
    seed: int = 1,
    stop: threading.Event | None = None,
) -> Stats:
    """Send at most ``total`` requests at most ``rate`` per second for at most
    ``time_limit`` seconds (plus one ``timeout``), ``concurrency`` at a time."""
    base = check_loopback(base)
    weights = parse_mix(mix) if isinstance(mix, str) else dict(mix)
    names, cum = list(weights), list(weights.values())
    total = max(0, min(total, 100_000))
    concurrency = max(1, min(concurrency, 64))
    stop = stop or threading.Event()
    stats = Stats()
    lock = threading.Lock()
    start = time.monotonic()
    deadline = start + max(0.0, time_limit)
    rng = random.Random(seed)

    def next_request() -> tuple[str, str, str, float] | None:
        with lock:
            if stats.sent >= total or stop.is_set():
                return None
            due = start + stats.sent / rate if rate > 0 else start
            if due >= deadline or time.monotonic() >= deadline:
                return None
            name = rng.choices(names, weights=cum)[0]
            method, path = _ENDPOINTS[name](rng)
            stats.sent += 1
            stats.by_endpoint[name] += 1
            return name, method, path, due

    def worker() -> None:
        while (item := next_request()) is not None:
            _name, method, path, due = item
            delay = due - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
            result = _one(base, method, path, timeout)
            with lock:
                stats.by_result[result] += 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + timeout + 5)
    stats.elapsed = time.monotonic() - start
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Bounded load for the orders-api test service.")
    ap.add_argument("--base", required=True, help="app URL, e.g. http://127.0.0.1:8080")
    ap.add_argument("--mix", default="orders,transfer,users,rates")
    ap.add_argument("--total", type=int, default=200)
    ap.add_argument("--rate", type=float, default=40.0, help="requests per second")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--time-limit", type=float, default=10.0, help="seconds")
    ap.add_argument("--timeout", type=float, default=1.0, help="per-request seconds")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    stats = drive(a.base, a.mix, a.total, a.rate, a.concurrency, a.time_limit, a.timeout, a.seed)
    print(stats, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
