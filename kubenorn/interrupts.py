"""Ctrl-C deferred: what is in flight finishes, and the caller decides when to stop."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from rich.console import Console


@contextmanager
def ctrl_c_deferred(console: Console, doing: str) -> Iterator[list[int]]:
    """Ctrl-C is noted (in the list yielded), not raised, while the block runs.

    Only where Ctrl-C would raise KeyboardInterrupt: in the main thread (the only one given
    signals), unless SIGINT is ignored or an outer block defers it already (that one notes it).
    """
    pressed: list[int] = []
    here = threading.current_thread() is threading.main_thread()
    if not here or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield pressed
        return

    def note(signum: int, frame: FrameType | None) -> None:
        pressed.append(signum)
        console.print(f"Ctrl-C: {doing}")

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield pressed
    finally:
        # Python runs a pending handler (this one) before it installs the next.
        signal.signal(signal.SIGINT, previous)
