"""A student as a browser is to the hub: the login form (cookies, xsrf), the wait for their server,
a kernel, and cells run over the kernel's websocket. Used by the class tests and bench/bench_class.py
(what hubtraf does, in-process)."""
from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
import uuid
from urllib.parse import urlsplit

import httpx
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


class LoginRefused(Exception):
    def __init__(self, status: int, text: str):
        super().__init__(f"HTTP {status}: {text}")
        self.status, self.text = status, text


class Student:
    def __init__(self, base: str, name: str, ca_file: str | None = None):
        self.base, self.name, self.ca_file = base.rstrip("/"), name, ca_file
        verify = ssl.create_default_context(cafile=ca_file) if ca_file else False
        self.http = httpx.AsyncClient(base_url=self.base, verify=verify, follow_redirects=True, timeout=180)
        self.prefix = f"/user/{name}"

    async def close(self) -> None:
        await self.http.aclose()

    async def login(self, password: str, new_password: str = "") -> httpx.Response:
        page = await self.http.get("/hub/login")
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
        r = await self.http.post("/hub/login?next=", data={"_xsrf": xsrf, "username": self.name,
                                                           "password": password, "new_password": new_password})
        if r.status_code == 429 and "/hub/spawn" in str(r.url):
            return r  # logged in; the hub's concurrent spawn limit: wait_server asks again
        if r.status_code >= 400:
            err = re.search(r'class="login_error">([^<]*)<', r.text)
            raise LoginRefused(r.status_code, err.group(1) if err else r.text[-300:])
        return r

    async def wait_server(self, timeout: float = 180) -> None:
        """Until the student's JupyterLab answers (the OAuth handshake sets its cookie on the way)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r = await self.http.get("/hub/spawn")  # starts it if it is not running yet
            if r.status_code == 429:  # the hub's concurrent spawn limit: a browser would retry
                await asyncio.sleep(1)
                continue
            r = await self.http.get(f"{self.prefix}/lab")
            if r.status_code == 200 and urlsplit(str(r.url)).path.startswith(self.prefix):
                return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"{self.name}'s server did not come up in {timeout:.0f}s")

    async def stop_server(self, timeout: float = 90) -> None:
        """Stop the student's server (the hub home page's Stop button) and wait until it is gone."""
        xsrf = next((c.value for c in self.http.cookies.jar if c.name == "_xsrf" and (c.path or "").startswith("/hub")),
                    None)
        headers = {"X-XSRFToken": xsrf} if xsrf else {}
        r = await self.http.delete(f"/hub/api/users/{self.name}/server", headers=headers)
        if r.status_code not in (202, 204, 400):  # 400: it was not running
            r.raise_for_status()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r = await self.http.get(f"/hub/api/users/{self.name}", headers=headers)
            r.raise_for_status()
            user = r.json()
            assert "servers" in user, f"the hub does not show {self.name} their servers: {user}"
            if not user["servers"] and not user.get("pending"):
                return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"{self.name}'s server did not stop in {timeout:.0f}s")

    def _xsrf(self) -> dict[str, str]:
        token = next((c.value for c in self.http.cookies.jar if c.name == "_xsrf" and self.prefix in (c.path or "")),
                     None) or self.http.cookies.get("_xsrf")
        return {"X-XSRFToken": token} if token else {}

    async def api(self, method: str, path: str, **kw) -> httpx.Response:
        return await self.http.request(method, f"{self.prefix}/api{path}", headers=self._xsrf(), **kw)

    async def start_kernel(self) -> str:
        r = await self.api("POST", "/kernels", json={"name": "python3"})
        r.raise_for_status()
        return r.json()["id"]

    async def run(self, kernel: str, code: str, timeout: float = 120) -> str:
        """Execute code in the kernel over its websocket; its stdout (raises on an error reply)."""
        url = self.base.replace("https://", "wss://").replace("http://", "ws://")
        cookies = "; ".join(f"{c.name}={c.value}" for c in self.http.cookies.jar)
        req = HTTPRequest(f"{url}{self.prefix}/api/kernels/{kernel}/channels?session_id={uuid.uuid4().hex}",
                          headers={"Cookie": cookies, **self._xsrf()}, ca_certs=self.ca_file,
                          validate_cert=bool(self.ca_file), request_timeout=timeout)
        ws = await websocket_connect(req)
        msg_id = uuid.uuid4().hex
        ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": self.name, "session": msg_id,
                       "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        out, error, replied, idle = [], None, False, False
        try:
            while not (replied and idle):
                raw = await asyncio.wait_for(ws.read_message(), timeout)
                if raw is None:
                    raise ConnectionError("the kernel's websocket closed")
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["msg_type"]
                if kind == "stream":
                    out.append(msg["content"]["text"])
                elif kind == "error":
                    error = f"{msg['content']['ename']}: {msg['content']['evalue']}"
                elif kind == "execute_reply":
                    replied = True
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    idle = True
        finally:
            ws.close()
        if error:
            raise RuntimeError(f"{self.name}: {error}\n{''.join(out)}")
        return "".join(out)
