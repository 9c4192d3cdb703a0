"""A token check in front of a tornado HTTP server that has none of its own (the Dask dashboards).

It wraps the server's request callback, so every request (pages, JSON, bokeh's websockets) is
checked on its headers before any handler sees it. The token comes as `Authorization: Bearer`, as
the `afbox_token` cookie, or once as `?token=` (answered with a redirect that sets the cookie and
drops the token from the URL). Open: `/health` (the process is alive) and `/individual-plots.json`
(the names of the plots, which dask-labextension's server-side check asks for without a token).
"""
from __future__ import annotations

import logging
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode, urlsplit

from tornado import httputil

from ..auth.validate import TokenRejected, Validator, bearer

log = logging.getLogger("afbox.http_guard")
COOKIE = "afbox_token"
OPEN_PATHS = ("/health", "/individual-plots.json")
# what a browser shows on refusal: what to do there, no shell syntax
REFUSED_PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Dask dashboard: log in first</title></head>
<body style="font-family: sans-serif; max-width: 46em; margin: 2em auto">
<h1>This Dask dashboard needs a facility token</h1>
<p>Open JupyterLab first, with the link <code>afbox up</code> printed, under the same host name as this
page (both <code>127.0.0.1</code> or both <code>localhost</code>): the link logs you into the
dashboards too. Inside JupyterLab the Dask panel shows this dashboard without another login.</p>
<p>Lost the link? Run <code>afbox up</code> again: on a running facility it only prints the link again.
Or add <code>?token=</code> and a token from <code>afbox token</code> to this page's address once.</p>
</body></html>
"""
REFUSED_TEXT = b"a facility token is required: send Authorization: Bearer TOKEN (afbox token prints one)\n"


def request_token(target: str, headers: httputil.HTTPHeaders) -> tuple[str | None, bool]:
    """The token a request carries and whether it came in the URL."""
    if token := bearer(headers.get("Authorization")):
        return token, False
    query = dict(parse_qsl(urlsplit(target).query))
    if query.get("token"):
        return query["token"], True
    cookie = SimpleCookie(headers.get("Cookie", ""))
    return (cookie[COOKIE].value if COOKIE in cookie else None), False


def without_token(target: str) -> str:
    parts = urlsplit(target)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "token"])
    return parts.path + (f"?{query}" if query else "")


class Guard(httputil.HTTPServerConnectionDelegate):
    def __init__(self, inner: httputil.HTTPServerConnectionDelegate, validator: Validator, scope: str,
                 subject: str | None = None):
        self.inner, self.validator, self.scope, self.subject = inner, validator, scope, subject

    def start_request(self, server_conn, request_conn):
        return _Checked(self, self.inner.start_request(server_conn, request_conn), request_conn)

    def on_close(self, server_conn) -> None:
        self.inner.on_close(server_conn)


class _Checked(httputil.HTTPMessageDelegate):
    """Passes a request on once its token is valid; otherwise answers it here (401, or 302 + cookie)."""

    def __init__(self, guard: Guard, inner: httputil.HTTPMessageDelegate, conn):
        self.guard, self.inner, self.conn = guard, inner, conn
        self.answered = False

    def headers_received(self, start_line, headers):
        if urlsplit(start_line.path).path in OPEN_PATHS:
            return self.inner.headers_received(start_line, headers)
        token, in_url = request_token(start_line.path, headers)
        try:
            claims = self.guard.validator.validate(token, self.guard.scope)
            if self.guard.subject and claims.subject != self.guard.subject:
                raise TokenRejected(f"a token of {claims.subject!r}, not of the owner")
        except TokenRejected as e:
            log.warning("refused %s %s: %s", start_line.method, urlsplit(start_line.path).path, e.reason)
            html = "text/html" in headers.get("Accept", "")
            return self._answer(401, "Unauthorized", {"WWW-Authenticate": 'Bearer realm="afbox"'},
                                REFUSED_PAGE if html else REFUSED_TEXT, "text/html; charset=utf-8" if html else None)
        if in_url:
            cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
            return self._answer(302, "Found", {"Location": without_token(start_line.path), "Set-Cookie": cookie}, b"")
        return self.inner.headers_received(start_line, headers)

    def _answer(self, code: int, reason: str, extra: dict, body: bytes, content_type: str | None = None):
        self.answered = True
        headers = httputil.HTTPHeaders({"Content-Type": content_type or "text/plain", "Content-Length": str(len(body)),
                                        **extra})
        self.conn.write_headers(httputil.ResponseStartLine("HTTP/1.1", code, reason), headers, body)
        self.conn.finish()

    def data_received(self, chunk):
        if not self.answered:
            return self.inner.data_received(chunk)

    def finish(self) -> None:
        if not self.answered:
            self.inner.finish()

    def on_connection_close(self) -> None:
        if not self.answered:
            self.inner.on_connection_close()
