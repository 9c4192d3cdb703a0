"""The Jupyter URL with its token, to copy or select, and how to reach it from another machine."""
from __future__ import annotations

import socket
from typing import ClassVar
from urllib.parse import urlsplit

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static


def tunnel_hint(url: str) -> str:
    port = urlsplit(url).port
    return f"from another machine:  ssh -L {port}:127.0.0.1:{port} {socket.gethostname()}"


class JupyterScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("c", "copy", "Copy"), Binding("escape,q,j", "dismiss", "Close")]

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("JupyterLab (the token is the password: keep it to yourself)", id="question")
            yield Static(self.url, id="url", markup=False)
            yield Label(tunnel_hint(self.url), classes="detail", markup=False)
            yield Label("c copies it (through the terminal)  ·  esc closes", classes="detail")

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.url)
        self.notify("Jupyter URL copied", timeout=3)
