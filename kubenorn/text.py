"""Text from hosts made safe to show: no terminal escapes, nothing XML 1.0 forbids, no markup.

Messages quote remote output: ANSI colour codes, stray control characters, `[/var/lib/etcd]`.
Every output goes through here: `printable` for files (JUnit, JSON stays as is), `for_console`
for anything rich prints (rich would read brackets as markup and pass escapes to the terminal).
"""

from __future__ import annotations

import re

from rich.markup import escape

# CSI and other ESC sequences (colours, cursor moves, titles ended by BEL or ST).
ANSI_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
# What XML 1.0 forbids (and what a terminal would act on): C0 controls but tab, LF and CR;
# DEL and C1 controls; lone surrogates; U+FFFE and U+FFFF.
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def printable(text: str) -> str:
    """`text` without ANSI escapes, its other control characters shown as `\\xNN`."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", ANSI_ESCAPE.sub("", text))


def for_console(text: str) -> str:
    """`text` made printable and escaped, so rich prints it as it is, never as markup."""
    return escape(printable(text))
