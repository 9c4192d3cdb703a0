"""Keys and what they ask of the data source, against fixed data (no facility needed)."""
from __future__ import annotations

import asyncio

from fakes import FakeSource
from tuitools import notes, select_service, wait_for

from afbox.errors import AfboxError, ServiceFailed
from tui.app import AfboxApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.screens.jupyter import JupyterScreen
from tui.screens.overview import OverviewScreen
from tui.screens.setup import SetupScreen
from tui.screens.sites import SitesScreen
from tui.widgets.start_progress import StartProgress


def run(source: FakeSource, script) -> AfboxApp:
    app = AfboxApp(source)

    async def main():
        async with app.run_test(size=(80, 24)) as pilot:
            await script(pilot)
    asyncio.run(main())
    return app


async def at_overview(pilot):
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, OverviewScreen) and pilot.app.screen.overview,
                   5, "the overview")


async def at_setup(pilot):
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, SetupScreen) and pilot.app.screen.info,
                   5, "the setup form")


def test_setup_starts_the_chosen_profile_with_only_the_changed_fields():
    src = FakeSource(running=None)

    async def script(pilot):
        await at_setup(pilot)
        await pilot.press("up")                       # laptop -> ci
        assert pilot.app.screen.profile == "ci"
        assert pilot.app.screen.query_one("#workdir").value == "~/afbox-work-ci"
        await pilot.press("tab", "tab", "tab", "ctrl+u", "3", "enter")   # origin, workdir, workers
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, OverviewScreen), 5, "the overview")
        assert [e.service for e in pilot.app.journal][:2] == ["dask-scheduler", "dask-scheduler"]
    run(src, script)
    assert src.calls[:2] == [("load", "ci", {"facility": {}, "dask": {"workers": 3}, "xcache": {}}), ("up", "ci")]


def test_setup_shows_a_config_error_as_the_cli_prints_it():
    src = FakeSource(running=None)

    async def script(pilot):
        await at_setup(pilot)
        pilot.app.screen.query_one("#origin").value = "http://not-xrootd"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: notes(pilot.app), 5, "a notification")
        text = notes(pilot.app)[0]
        assert text.startswith("error: command-line flags: xcache.origin: origin must look like root://")
        assert text in pilot.app.screen.query_one(StartProgress).text
    run(src, script)
    assert not any(c[0] == "up" for c in src.calls)


def test_a_failed_start_shows_the_log_tail_and_the_form_comes_back():
    class Failing(FakeSource):
        def up(self, fac):
            yield from super().up(fac)
            raise ServiceFailed("jupyter", "exited and could not be restarted", ["Traceback", "OSError: boom"],
                                "/x.log")

    async def script(pilot):
        await at_setup(pilot)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: notes(pilot.app), 5, "a notification")
        screen = pilot.app.screen
        assert isinstance(screen, SetupScreen) and not screen.starting
        assert "OSError: boom" in notes(pilot.app)[0] and notes(pilot.app)[0].startswith("error: service jupyter")
        assert "everything this run started has been stopped" in screen.query_one(StartProgress).text
        assert not screen.query_one("#start").disabled
    run(Failing(running=None), script)


def test_restart_acts_on_the_selected_service():
    src = FakeSource()

    async def script(pilot):
        await at_overview(pilot)
        await select_service(pilot, "jupyter")
        await pilot.press("r")
        await wait_for(pilot, lambda: any("restart jupyter: done" in e.message for e in pilot.app.journal), 5,
                       "the restart")
    run(src, script)
    assert ("restart", "ci", "jupyter") in src.calls


def test_action_errors_read_as_the_cli_prints_them():
    err = AfboxError("no service 'nope'", hint="services: a, b")

    class Broken(FakeSource):
        def restart(self, name, service):
            raise err

    async def script(pilot):
        await at_overview(pilot)
        await pilot.press("r")
        await wait_for(pilot, lambda: notes(pilot.app), 5, "a notification")
        assert notes(pilot.app) == [err.render()]
    run(Broken(), script)


def test_scale_adds_and_removes_one_cpu_worker():
    src = FakeSource()

    async def script(pilot):
        await at_overview(pilot)
        await pilot.press("plus")
        await wait_for(pilot, lambda: not pilot.app.screen.busy, 5, "scale up")
        await pilot.press("minus")
        await wait_for(pilot, lambda: not pilot.app.screen.busy, 5, "scale down")
    run(src, script)
    assert [c for c in src.calls if c[0] == "scale"] == [("scale", "ci", 3), ("scale", "ci", 1)]


def test_down_asks_first_and_no_is_the_default():
    src = FakeSource()

    async def script(pilot):
        await at_overview(pilot)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), 5, "the question")
        await pilot.press("enter")                  # the focused button is "No"
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, OverviewScreen), 5, "the overview again")
        assert not any(c[0] == "down" for c in src.calls)
        await pilot.press("d", "y")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SetupScreen), 5, "the setup screen")
    run(src, script)
    assert ("down", "ci") in src.calls


def test_jupyter_url_and_help_dialogs():
    async def script(pilot):
        await at_overview(pilot)
        await pilot.press("j")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, JupyterScreen), 5, "the Jupyter dialog")
        assert "token=0123456789abcdef" in str(pilot.app.screen.query_one("#url").render())
        await pilot.press("c")
        assert "Jupyter URL copied" in notes(pilot.app)
        await pilot.press("escape", "question_mark")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), 5, "help")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, OverviewScreen), 5, "the overview")
    run(FakeSource(), script)


def test_state_changes_between_refreshes_become_events():
    from fakes import status

    from tui.screens.overview import transitions
    before, after = status(), status()
    after.services[1] = after.services[1].model_copy(update={"state": "backoff", "health": "unknown"})
    (e,) = transitions(before, after)
    assert (e.service, e.message) == ("dask-worker-1", "running/healthy → backoff/unknown")


def test_sites_view_shows_each_trusted_site():
    async def script(pilot):
        await at_overview(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SitesScreen) and pilot.app.screen.sites, 5,
                       "the sites")
        table = pilot.app.screen.query_one("#sites")
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        assert rows[0][:4] == ["hpc", "https://hpc.example.org:8781", "yes", "21.4 ms"] and rows[0][6] == "42%"
        assert rows[1][2] == "no" and rows[1][-1] == "nothing"
        assert "connection refused" in str(pilot.app.screen.query_one("#sites-note").render())
        await pilot.press("escape")
        assert isinstance(pilot.app.screen, OverviewScreen)
    run(FakeSource(), script)
