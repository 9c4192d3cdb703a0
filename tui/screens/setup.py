"""Setup: what this host has, a profile and a few choices, then Start runs `up` and shows it live."""
from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Input, Label, OptionList
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from afbox import events as ev
from afbox.errors import AfboxError, ServiceFailed

from tui.source import FormDefaults, SetupInfo
from tui.widgets.host_facts import HostFactsView
from tui.widgets.start_progress import StartProgress
from tui.widgets.title_bar import TitleBar
from tui.screens.base import BaseScreen, deliver, error_text

FIELDS = ("origin", "workdir", "workers", "port_base")
HINT = "Pick a profile (↑ ↓), check the fields (tab), then Start (ctrl+s)."


class SetupScreen(BaseScreen):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+s", "start", "Start"), Binding("f1", "app.help", "Help"),
                Binding("q", "app.quit", "Quit", show=False)]  # typing q in a field types it

    def __init__(self) -> None:
        super().__init__()
        self.info: SetupInfo | None = None
        self.starting = False
        self._filled: dict[str, str] = {}  # what we put in each field, so a user's own edit survives

    def compose(self) -> ComposeResult:
        yield TitleBar("no facility is running: set one up", id="title")
        with Vertical(id="setup"):
            yield HostFactsView(id="host-facts")
            yield OptionList(id="profiles", disabled=True)
            with Horizontal(classes="field"):
                yield Label("Origin", classes="label")
                yield Input(id="origin", placeholder="none: the facility serves its own data (root://host:port)",
                            compact=True)
            with Horizontal(classes="field"):
                yield Label("Workdir", classes="label")
                yield Input(id="workdir", compact=True)
            with Horizontal(classes="field"):
                yield Label("Workers", classes="label")
                yield Input(id="workers", type="integer", compact=True)
                yield Label("Port base", classes="label")
                yield Input(id="port_base", type="integer", compact=True)
                yield Button("Start", id="start", variant="primary", compact=True, disabled=True)
            yield StartProgress(HINT, id="progress")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#profiles").border_title = "profile"
        self.detect()

    @work(thread=True, group="detect")
    def detect(self) -> None:
        try:
            deliver(self, self.show_info, self.app.source.setup_info())
        except Exception as e:  # noqa: BLE001  (shown to the user, never a crash)
            deliver(self, self.detect_failed, e)

    def detect_failed(self, err: Exception) -> None:
        self.query_one(StartProgress).fail(error_text(err))
        self.fail(err)

    # -- the form ---------------------------------------------------------------------------
    def show_info(self, info: SetupInfo) -> None:
        self.info = info
        self.query_one(HostFactsView).show(info.host)
        profiles = self.query_one("#profiles", OptionList)
        profiles.clear_options()
        profiles.add_options(Option(self.profile_label(name, False), id=name) for name in info.profiles)
        profiles.disabled = False
        self.query_one("#start").disabled = False
        profiles.highlighted = list(info.profiles).index(info.profile)
        self.fill(info.defaults[info.profile])
        profiles.focus()

    def profile_label(self, name: str, chosen: bool) -> Text:
        """A marker as well as the highlight, so the choice shows without colour too."""
        assert self.info
        width = max(map(len, self.info.profiles))
        text = Text(f"{'›' if chosen else ' '} {name:<{width}}  ", no_wrap=True, overflow="ellipsis")
        return text.append(self.info.profiles[name], style="dim")

    def fill(self, d: FormDefaults) -> None:
        for key, value in zip(FIELDS, (d.origin, d.workdir, str(d.workers), str(d.port_base))):
            box = self.query_one(f"#{key}", Input)
            if box.value == self._filled.get(key, box.value):
                box.value = value
            self._filled[key] = value

    @property
    def profile(self) -> str | None:
        opt = self.query_one("#profiles", OptionList).highlighted_option
        return opt.id if opt else None

    @on(OptionList.OptionHighlighted, "#profiles")
    def _profile_changed(self, event: OptionList.OptionHighlighted) -> None:
        if self.info and event.option.id in self.info.defaults:
            for name in self.info.profiles:
                event.option_list.replace_option_prompt(name, self.profile_label(name, name == event.option.id))
            self.fill(self.info.defaults[event.option.id])

    @on(OptionList.OptionSelected, "#profiles")
    def _profile_chosen(self) -> None:
        self.focus_next()

    @on(Input.Submitted)
    @on(Button.Pressed, "#start")
    def _submit(self) -> None:
        self.action_start()

    def overrides(self) -> dict:
        """Only what differs from the profile, so its own sizing rules still apply otherwise."""
        assert self.info and self.profile
        d = self.info.defaults[self.profile]
        value = {k: self.query_one(f"#{k}", Input).value.strip() for k in FIELDS}
        over: dict = {"facility": {}, "dask": {}, "xcache": {}}
        if value["origin"] != d.origin:
            over["xcache"]["origin"] = value["origin"]
        if value["workdir"] != d.workdir:
            over["facility"]["workdir"] = value["workdir"]
        for section, key, field, default in (("dask", "workers", "workers", d.workers),
                                             ("facility", "port_base", "port_base", d.port_base)):
            if value[field] != str(default):
                try:
                    over[section][key] = int(value[field])
                except ValueError:
                    raise AfboxError(f"{field.replace('_', ' ')}: not a number: {value[field]!r}") from None
        return over

    # -- starting ---------------------------------------------------------------------------
    def action_start(self) -> None:
        if self.starting or not self.info or not self.profile:
            return
        try:
            fac = self.app.source.load(self.profile, self.overrides())
        except AfboxError as e:
            self.query_one(StartProgress).fail(error_text(e))
            self.fail(e)
            return
        self.starting = True
        self.set_form_enabled(False)
        self.query_one(StartProgress).reset(f"starting facility {fac.name!r} (profile {self.profile})")
        self.run_up(fac)

    def set_form_enabled(self, enabled: bool) -> None:
        for w in self.query("#profiles, Input, #start"):
            w.disabled = not enabled
        self.query_one("#profiles").display = enabled  # room for the progress of every service

    @work(thread=True, group="up")
    def run_up(self, fac) -> None:
        worker = get_current_worker()
        stream = self.app.source.up(fac)
        try:
            for e in stream:
                deliver(self, self.show_event, e)
                if worker.is_cancelled:  # quitting mid-start: closing the stream stops what started
                    stream.close()
                    return
        except Exception as e:  # noqa: BLE001
            deliver(self, self.start_failed, e)
            return
        deliver(self, self.started, fac.name)

    def show_event(self, e: ev.Event) -> None:
        self.query_one(StartProgress).add(e)
        self.app.note(e)

    def start_failed(self, err: Exception) -> None:
        self.starting = False
        if isinstance(err, ServiceFailed):
            self.show_event(ev.Event(ev.FAILED, err.service, err.reason, tuple(err.log_tail)))
        self.query_one(StartProgress).fail(error_text(err) + "\neverything this run started has been stopped")
        self.fail(err)
        self.set_form_enabled(True)

    def started(self, name: str) -> None:
        self.starting = False
        self.app.show_overview(name)
