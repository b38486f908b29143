"""The HTTP hardening in front of `serve`'s application: what a server on a network needs before any route runs.

    Guard                 ASGI middleware: the Host a server answers (DNS rebinding), another site's POST (its
                          Origin), the body's size as it arrives, the security headers on every response
    guarded_protocol      uvicorn's HTTP protocol with the request head bounded (size and time: header floods,
                          slowloris) and its own refusals in JSON like every other error
    served_hosts          which Host names a server bound to an address answers

Only the request *head* (request line and headers) is bounded by MAX_HEAD_BYTES; the body is the Guard's, up to
`max_upload_mb`. The head ends at its first empty line: the bytes after it in the same network read (an upload's
start, or all of a small upload) are body, never head.
"""

import json

from signvision.inference.batcher import RequestError

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; "
        b"style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; connect-src 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
]
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}


def served_hosts(host: str) -> set[str] | None:
    """The Host names a server bound to `host` answers: the loopback names when it listens on this machine
    only (a page elsewhere cannot reach it through DNS rebinding), any when bound to all interfaces or
    another address (then `allowed_hosts` narrows it)."""
    import ipaddress

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return set(LOOPBACK_NAMES) if loopback else None


def host_name(header: str) -> str:
    """The name in a Host header, without its port, in lower case (host names are: '[::1]:8000' -> '::1')."""
    header = header.lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


async def json_reply(send, status: int, message: str) -> None:
    """A whole JSON error response, sent from below the application."""
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *SECURITY_HEADERS]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware in front of the application: refuses a Host the server does not answer and a POST from
    another site's page (its Origin), refuses a
    body over `max_bytes` as it arrives (with or without a Content-Length, which must be a number) instead of
    after reading it whole, and adds the security headers (nosniff, a content security policy, no framing) to
    every response."""

    def __init__(self, app, *, max_bytes: int, hosts: set[str] | None):
        self.app, self.max_bytes, self.hosts = app, max_bytes, hosts

    def same_origin(self, origin: str, host: str) -> bool:
        """Whether a browser's Origin is this server's own page (or an allowed host's): a page of another site
        must not make the visitor's browser post to this server (simple cross-origin POSTs need no preflight)."""
        from urllib.parse import urlsplit

        name = host_name(urlsplit(origin).netloc)
        return urlsplit(origin).netloc.lower() == host.lower() or (
            self.hosts is not None and name in self.hosts - LOOPBACK_NAMES
        )

    @property
    def state(self):
        """The application's state (its batcher)."""
        return self.app.state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if sum(name == b"host" for name, _ in scope["headers"]) > 1:
            return await json_reply(send, 400, "two Host headers: one request names one host")
        host = headers.get(b"host", b"").decode("latin-1")
        if self.hosts is not None and host_name(host) not in self.hosts:
            allowed = ", ".join(sorted(self.hosts))
            return await json_reply(send, 400, f"Host {host!r} is not served here (this server answers {allowed})")
        origin = headers.get(b"origin", b"").decode("latin-1")
        if origin and scope["method"] not in ("GET", "HEAD") and not self.same_origin(origin, host):
            return await json_reply(send, 403, f"a request from the page of {origin!r} is refused (another site)")
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                return await json_reply(send, 400, f"Content-Length {declared.decode('latin-1')!r} is not a number")
            if int(declared) > self.max_bytes:
                limit = self.max_bytes / 1e6
                return await json_reply(
                    send, 413, f"the request is {int(declared) / 1e6:.1f} MB; the limit is {limit:.0f} MB"
                )
        received = 0

        async def capped_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise RequestError(413, f"the request is over the limit of {self.max_bytes / 1e6:.0f} MB")
            return message

        async def secure_send(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, capped_receive, secure_send)


MAX_HEAD_BYTES = 64 * 1024  # a request's line and headers at most: a header longer than this is an attack
HEAD_SECONDS = 10.0  # ... and the time they may take to arrive (a connection that never finishes them is closed)
HEAD_ENDS = (b"\r\n\r\n", b"\n\n", b"\n\r\n")  # the empty line that ends a head (CRLF, or bare LF)


def head_length(tail: bytes, data: bytes) -> int | None:
    """How many bytes of `data` still belong to a request head whose last bytes so far were `tail` (up to 3:
    the end may straddle two reads): up to and including the first empty line, or None if the head does not
    end in `data` (all of it is head)."""
    seen = tail + data
    ends = [i + len(end) for end in HEAD_ENDS if (i := seen.find(end)) >= 0]
    return max(0, min(ends) - len(tail)) if ends else None


def guarded_protocol():
    """uvicorn's HTTP protocol, with its answer to a malformed request (a bad Content-Length, a broken header)
    in JSON like every other error, not plain text; and with the request head bounded: over MAX_HEAD_BYTES is
    refused (431) as it arrives, and a head not complete within HEAD_SECONDS closes the connection (slowloris).
    Without httptools, uvicorn's h11 protocol keeps its own bound on an incomplete head."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        class JsonErrorH11(H11Protocol):
            def send_400_response(self, msg: str) -> None:
                refuse(self.transport, 400, "Bad Request", f"not a readable HTTP request ({msg.rstrip('.')})")

        return JsonErrorH11

    class GuardedProtocol(Base):
        def send_400_response(self, msg: str) -> None:
            refuse(self.transport, 400, "Bad Request", f"not a readable HTTP request ({msg.rstrip('.')})")

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._start_head()

        def _start_head(self) -> None:
            self._head_bytes, self._head_tail = 0, b""  # bytes of this head so far, its last 3
            self._head_timer = self.loop.call_later(HEAD_SECONDS, self._head_too_slow)

        def _head_too_slow(self) -> None:
            if self._head_bytes is not None and not self.transport.is_closing():
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            if self._head_bytes is not None:  # inside a head: count its bytes only, never the body after it
                length = head_length(self._head_tail, data)
                self._head_bytes += len(data) if length is None else length
                self._head_tail = (self._head_tail + data[-3:])[-3:]  # not a copy of the whole read
                if self._head_bytes > MAX_HEAD_BYTES:
                    refuse(
                        self.transport, 431, "Request Header Fields Too Large", "the request's headers are too large"
                    )
                    return
            super().data_received(data)  # parses: a head that completes here stops the count (on_headers_complete)

        def on_headers_complete(self) -> None:
            self._head_bytes = None  # the body is bounded by the Guard
            self._head_timer.cancel()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._start_head()  # a kept-alive connection's next request starts its head

        def connection_lost(self, exc) -> None:
            self._head_timer.cancel()
            super().connection_lost(exc)

    return GuardedProtocol


def refuse(transport, status: int, reason: str, message: str) -> None:
    """Answer a request the HTTP layer refuses with a JSON error, and close the connection."""
    if transport.is_closing():
        return
    body = json.dumps({"error": message}).encode()
    head = f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\nx-content-type-options: nosniff\r\n"
    transport.write(head.encode() + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body)
    transport.close()
