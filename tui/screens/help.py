"""? : what each key does, and what the console is."""
from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
afbox console: the facility of the `afbox` commands, on one screen.

Overview
  ↑ ↓       select a service
  l enter   its log: f follow, / search, n N next/previous, esc back
  r         restart the selected service
  + -       add / remove a Dask worker
  j  c      show / copy the Jupyter URL with its token
  d         stop the facility (asks; notebooks and cache are kept)
  u         set up a facility (when none runs)
  n         next facility (when several run here)
  q         leave; the facility keeps running

Setup
  tab       next field        ctrl+s or enter   start
  ctrl+q    leave

Figures refresh about once a second; CPU and RSS include each
service's child processes. Errors read as the CLI prints them."""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,q,f1", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog"):
            yield Static(HELP, markup=False)
