"""HTTP checks asked from a host itself with curl: one URL, or many in one command."""

from __future__ import annotations

from collections.abc import Sequence

from nornir.core.task import Task

from tasks.ssh import run


def http_status(task: Task, url: str, ca_file: str | None = None) -> tuple[int, str]:
    """(HTTP status, body) of a GET of `url` from the host itself; status 0 if nothing answered.

    With `ca_file` the server certificate is verified against it; without, an https URL is
    fetched without verification (the components' own self-signed health endpoints).
    """
    tls = ["--cacert", ca_file] if ca_file else (["-k"] if url.startswith("https") else [])
    argv = ["curl", "-sS", "--max-time", "5", *tls, "-w", "\n%{http_code}", url]
    result = run(task, argv, ok_codes=range(256), timeout=15)
    body, _, code = result.stdout.rpartition("\n")
    if result.rc != 0:
        return 0, (result.stderr.strip() or f"curl exited {result.rc}")[-300:]
    return int(code or 0), body.strip()[-300:]


# $@: CA URL pairs (CA "-": plain or unverified as the URL's scheme says); per URL a line
# "== RC URL", then curl's output (the body and the status code, or its error).
STATUSES = r"""
while [ "$#" -gt 1 ]; do
  ca=$1 url=$2
  shift 2
  case $ca in
    -) case $url in https*) out=$(curl -sS --max-time 5 -k -w '\n%{http_code}' "$url" 2>&1) ;;
                     *) out=$(curl -sS --max-time 5 -w '\n%{http_code}' "$url" 2>&1) ;; esac ;;
    *) out=$(curl -sS --max-time 5 --cacert "$ca" -w '\n%{http_code}' "$url" 2>&1) ;;
  esac
  printf '== %s %s\n%s\n' "$?" "$url" "$out"
done
"""


def http_statuses(task: Task, checks: Sequence[tuple[str, str | None]]) -> list[tuple[int, str]]:
    """`http_status` of each (URL, CA file or None), asked in one command."""
    if len(checks) <= 1:
        return [http_status(task, *check) for check in checks]
    pairs = [word for url, ca_file in checks for word in (ca_file or "-", url)]
    # Each curl gives up after 5 s: the command as a whole has that much per URL, and some.
    timeout = 10 + 6 * len(checks)
    output = run(task, ["sh", "-c", STATUSES, "sh", *pairs], ok_codes=range(256), timeout=timeout)
    answers: list[tuple[int, str]] = []
    for section in output.stdout.split("\n== ")[: len(checks)]:
        header, _, out = section.removeprefix("== ").partition("\n")
        rc = header.split(" ", 1)[0]
        body, _, code = out.rstrip("\n").rpartition("\n")
        if rc != "0" or not code.strip().isdigit():
            answers.append((0, (out.strip() or f"curl exited {rc}")[-300:]))
        else:
            answers.append((int(code), body.strip()[-300:]))
    answers += [(0, "no answer")] * (len(checks) - len(answers))
    return answers
