"""Availability while something changes: each endpoint asked every INTERVAL in its own thread.

A check is any callable answering (ok, detail); `https_check` asks an HTTPS (or plain HTTP)
URL from the control machine. Each answer is kept with its time; the report gives, per
endpoint, the requests, the failures, the availability and the longest outage (from the first
failed answer of a run of failures to the next good one, or to the last answer).
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from kubenorn.https_probe import PROBE_ERRORS, cause

INTERVAL = 0.5
TIMEOUT = 2.0
Check = Callable[[], tuple[bool, str]]


@dataclass(frozen=True)
class Sample:
    """One answer: when it was asked (monotonic seconds, and the wall clock's epoch seconds),
    whether it was good, and why not."""

    at: float
    ok: bool
    detail: str = ""
    wall: float = 0.0


@dataclass(frozen=True)
class Availability:
    """One endpoint's record over the probed time."""

    endpoint: str
    requests: int
    failures: int
    longest_outage: float  # seconds
    first_failure: str = ""
    outage_began: float = 0.0  # the longest outage's first failed answer (epoch seconds)

    @property
    def percent(self) -> float:
        return (
            100.0 if not self.requests else 100.0 * (self.requests - self.failures) / self.requests
        )

    def line(self) -> str:
        why = f"; first failure: {self.first_failure}" if self.first_failure else ""
        began = ""
        if self.longest_outage and self.outage_began:
            began = f" from {datetime.fromtimestamp(self.outage_began, UTC):%H:%M:%S} UTC"
        return (
            f"{self.endpoint}: {self.requests} requests, {self.failures} failed, "
            f"{self.percent:.2f}% available, longest outage {self.longest_outage:.1f}s{began}{why}"
        )


def summarize(endpoint: str, samples: list[Sample]) -> Availability:
    """`samples` (in time order) as requests, failures and the longest outage."""
    longest, longest_began = 0.0, 0.0
    began: Sample | None = None
    for sample in [*samples, Sample(samples[-1].at, True)] if samples else []:
        if not sample.ok and began is None:
            began = sample
        elif sample.ok and began is not None:
            if sample.at - began.at > longest:
                longest, longest_began = sample.at - began.at, began.wall
            began = None
    failed = [s for s in samples if not s.ok]
    first = failed[0].detail if failed else ""
    return Availability(endpoint, len(samples), len(failed), longest, first, longest_began)


class Prober:
    """Checks each endpoint every `interval` seconds in a thread of its own until stopped."""

    def __init__(self, checks: Mapping[str, Check], interval: float = INTERVAL) -> None:
        self.checks, self.interval = dict(checks), interval
        self.samples: dict[str, list[Sample]] = {name: [] for name in checks}
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._probe, args=(name,), name=f"probe-{name}", daemon=True)
            for name in checks
        ]

    def _probe(self, name: str) -> None:
        check = self.checks[name]
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                ok, detail = check()
            except Exception as error:  # noqa: BLE001 - a check that breaks is a failed answer
                ok, detail = False, f"{type(error).__name__}: {error}"
            self.samples[name].append(Sample(started, ok, detail, wall=time.time()))
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> list[Availability]:
        """Stop probing (each thread finishes its answer in flight); the report."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        return self.report()

    def report(self) -> list[Availability]:
        return [summarize(name, list(samples)) for name, samples in self.samples.items()]


@contextmanager
def probing(checks: Mapping[str, Check], interval: float = INTERVAL) -> Iterator[Prober]:
    """A started Prober, stopped on the way out whatever happened."""
    prober = Prober(checks, interval)
    prober.start()
    try:
        yield prober
    finally:
        prober.stop()


def https_check(
    address: str,
    port: int,
    path: str,
    context: ssl.SSLContext | None,
    *,
    timeout: float = TIMEOUT,
) -> Check:
    """A check: a GET of `path` answers 200 (`context` None: plain HTTP)."""

    def check() -> tuple[bool, str]:
        connection = (
            http.client.HTTPConnection(address, port, timeout=timeout)
            if context is None
            else http.client.HTTPSConnection(address, port, context=context, timeout=timeout)
        )
        try:
            connection.request("GET", path)
            status = connection.getresponse().status
        except PROBE_ERRORS as error:
            return False, cause(error, timeout)
        finally:
            connection.close()
        return status == 200, f"HTTP {status}"

    return check


def ca_context(ca_file: str) -> ssl.SSLContext:
    """TLS verifying the server against `ca_file` (any name: the address may be an IP)."""
    context = ssl.create_default_context(cafile=ca_file)
    context.check_hostname = False
    return context
