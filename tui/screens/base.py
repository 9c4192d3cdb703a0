"""What every screen shares: handing results from thread workers back to the UI, and error text."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.message import Message
from textual.message_pump import MessagePump
from textual.screen import Screen

from afbox.errors import AfboxError


class Deliver(Message):
    """A result computed in a thread, to be applied on the UI thread."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        super().__init__()
        self.fn, self.args = fn, args


def deliver(target: MessagePump, fn: Callable[..., Any], *args: Any) -> None:
    # post_message never blocks; call_from_thread would wait forever on an app that is shutting down
    try:
        target.post_message(Deliver(fn, *args))
    except RuntimeError:
        pass


def error_text(err: BaseException) -> str:
    """The text the CLI prints for this error."""
    return err.render() if isinstance(err, AfboxError) else f"error: {type(err).__name__}: {err}"


class BaseScreen(Screen):
    def on_deliver(self, message: Deliver) -> None:
        message.fn(*message.args)

    def fail(self, err: BaseException) -> None:
        self.notify(error_text(err), severity="error", timeout=12, markup=False)
