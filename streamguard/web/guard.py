"""The gate in front of every route: which Host names are answered, the CSRF header, security headers.

Requests that change something need the header ``X-Streamguard: 1``: a browser
will not send it cross-site without asking first (a CORS preflight this server
never grants), so another web site cannot upload to or cancel on this one.
Whatever the address listened on, only requests whose ``Host`` is a loopback
name or address, the address served on, or a name given with ``--allowed-host``
are answered: a DNS-rebinding page is same-origin for the browser, so the
header alone would not keep it out.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Guard", "host_name", "is_loopback_host"]

# Everything the page uses comes from this server: no CDN, works offline.
_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; script-src 'self'; "
    "style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_SECURITY_HEADERS = [
    (b"content-security-policy", _CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or address, brackets allowed) is this machine's loopback."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_of(header: str) -> str:
    """The host part of a Host header (``[::1]:8765`` -> ``::1``)."""
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def host_name(text: str) -> str:
    """A host name or address as compared: no port or brackets, lower case, no final dot."""
    return _host_of(text.strip()).strip("[]").rstrip(".").lower()


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
    return getattr(ip, "ipv4_mapped", None) or ip


class Guard:
    """Pure ASGI middleware (no body buffering): host check, CSRF header, security headers.

    The Host check applies whatever the address listened on: a DNS-rebinding page
    (its own name, resolved to this server) is same-origin for the browser, so it
    could send the CSRF header too. Answered are loopback names and addresses, the
    address a request came in on (rebinding needs a name, never an address) and
    the names in ``allowed_hosts``.
    """

    def __init__(self, app: ASGIApp, *, allowed_hosts: Collection[str] = ()) -> None:
        self.app = app
        self.allowed = frozenset(host_name(h) for h in allowed_hosts)

    def host_allowed(self, scope: Scope, name: str) -> bool:
        if not name:
            return False
        if name in self.allowed or is_loopback_host(name):
            return True
        server = scope.get("server")
        ip = _address(name)
        return ip is not None and server is not None and ip == _address(str(server[0]))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        name = host_name(headers.get(b"host", b"").decode("latin-1"))
        if not self.host_allowed(scope, name):
            why = f"this server does not answer to the name {name!r} (see streamguard serve --allowed-host)"
            await _reject(send, 421, why)
            return
        if scope["method"] not in ("GET", "HEAD", "OPTIONS") and headers.get(b"x-streamguard") != b"1":
            await _reject(send, 403, "missing header X-Streamguard: 1 (cross-site requests are refused)")
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in _SECURITY_HEADERS if k not in names]
                if b"cache-control" not in names:
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _reject(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
