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


REDACTED = "[redacted]"
# A PEM private key, whole or cut short (an error may quote only its start).
PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)", re.DOTALL
)
# A value after a key-ish name: kubeconfig's client-key-data, private_key, token, password...
SECRET_VALUE = re.compile(
    r"""(?P<name>[\w.-]*(?:key[-_]?data|private[-_]?key|secret|token|passphrase|password)"""
    r"""["']?\s*[:=]\s*["']?)(?P<value>[A-Za-z0-9+/_.~-]{8,}={0,2})""",
    re.IGNORECASE,
)
# Base64 of "-----BEGIN" (a PEM block inside *-data), wherever it appears alone.
BASE64_PEM = re.compile(r"LS0tLS1CRUdJT[A-Za-z0-9+/]*={0,2}")
# A fragment of one without its name (YAML cuts the line it quotes): a long base64 run mixing
# upper case, lower case and digits, which hex digests, paths and names do not.
BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{24,}={0,2}(?![A-Za-z0-9+/=])")


def _key_like(run: re.Match[str]) -> str:
    text = run.group()
    mixed = any(c.isupper() for c in text) and any(c.islower() for c in text)
    return REDACTED if mixed and any(c.isdigit() for c in text) else text


def scrub_secrets(text: str) -> str:
    """`text` with private keys and the values of key-ish names replaced by [redacted]."""
    text = PEM_PRIVATE_KEY.sub(lambda m: f"-----BEGIN {m.group(1)}PRIVATE KEY-----{REDACTED}", text)
    text = SECRET_VALUE.sub(lambda m: m.group("name") + REDACTED, text)
    return BASE64_RUN.sub(_key_like, BASE64_PEM.sub(REDACTED, text))
