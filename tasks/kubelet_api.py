"""The kubelet's API seen from the network: does it refuse anonymous requests?

Whoever gets answers from a kubelet's API (port 10250) without credentials can list the
node's pods and exec into them. So the probe goes from the control machine, as a stranger
would: no client certificate, the kubelet's certificate not verified. 401 or 403 is the answer
wanted; any 2xx is CRITICAL; no answer, or another answer, is UNKNOWN with its cause.
The port, and whether a profile is probed at all, are profile data (kubelet_api_port in
templates/kubernetes/profiles.yaml).
"""

from __future__ import annotations

from kubenorn.cluster import IPAddress, url
from kubenorn.findings import Finding, Status
from kubenorn.https_probe import TIMEOUT, anonymous_get
from kubenorn.profiles import Profile

CHECK = "kubelet-anonymous"
PATH = "/pods"


def judge(status: int | None, cause: str, port: int) -> tuple[Status, str]:
    """The verdict on an anonymous GET's answer: its HTTP `status`, or None and the `cause`."""
    if status in (401, 403):
        return "OK", f"anonymous request refused ({status})"
    if status is not None and 200 <= status < 300:
        return "CRITICAL", (
            f"kubelet API answers anonymous requests (HTTP {status}): "
            f"anyone who reaches port {port} can exec into pods"
        )
    return "UNKNOWN", cause or f"HTTP {status}"


def anonymous_finding(
    host: str, address: IPAddress, port: int, *, timeout: float = TIMEOUT
) -> Finding:
    """GET /pods from the kubelet at `address`:`port` without credentials, and judge it."""
    status, cause = anonymous_get(str(address), port, PATH, timeout=timeout)
    verdict, detail = judge(status, cause, port)
    if verdict == "UNKNOWN":  # say where it asked
        detail = f"{url(address, port)}{PATH}: {detail}"
    return Finding(CHECK, host, verdict, detail)


def kubelet_anonymous(profile: Profile, host: str, address: IPAddress) -> list[Finding]:
    """The check for node `host` at `address`; none where `profile` names no kubelet API."""
    if profile.kubelet_api_port is None:
        return []
    return [anonymous_finding(host, address, profile.kubelet_api_port)]
