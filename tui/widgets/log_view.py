"""A log viewer: only the visible lines are drawn, so a long log stays cheap; matches of a search are
shown reversed (readable without colour) and the current match's line in bold."""
from __future__ import annotations

import re

from rich.cells import cell_len
from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

MAX_LINES = 100_000
CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]")


def clean(line: str) -> str:
    return CONTROL.sub("", line.expandtabs())


class LogView(ScrollView, can_focus=True):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lines: list[str] = []
        self.term = ""
        self.current: int | None = None   # index of the line with the current match
        self.follow = True
        self._widest = 0

    def append(self, lines: list[str]) -> None:
        new = [clean(ln) for ln in lines]
        self.lines.extend(new)
        if len(self.lines) > MAX_LINES:
            drop = len(self.lines) - MAX_LINES
            del self.lines[:drop]
            self.current = None if self.current is None or self.current < drop else self.current - drop
        self._widest = max([self._widest, *(cell_len(ln) for ln in new)])
        self.virtual_size = Size(self._widest, len(self.lines))
        if self.follow:  # after the refresh, when the new size is known
            self.call_after_refresh(self.scroll_end, animate=False, immediate=True, x_axis=False)
        self.refresh()

    def matches(self) -> list[int]:
        t = self.term.lower()
        return [i for i, ln in enumerate(self.lines) if t in ln.lower()] if t else []

    def search(self, term: str, forward: bool = True) -> tuple[int, int] | None:
        """Move to the next (or previous) line containing term; (its rank, matches) or None."""
        self.term = term
        hits = self.matches()
        if not hits:
            self.current = None
            self.refresh()
            return None
        start = self.current if self.current is not None else self.scroll_offset.y - (1 if forward else 0)
        after = [i for i in hits if i > start] if forward else [i for i in hits if i < start]
        self.current = (after[0] if after else hits[0]) if forward else (after[-1] if after else hits[-1])
        self.follow = False
        self.scroll_to(y=max(0, self.current - self.size.height // 2), animate=False)
        self.refresh()
        return hits.index(self.current) + 1, len(hits)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.size.width
        base = self.rich_style
        if index >= len(self.lines):
            return Strip.blank(width, base)
        text = Text(self.lines[index], no_wrap=True, end="")
        if index == self.current:
            text.stylize("bold underline")
        if self.term:
            text.highlight_words([self.term], style="reverse", case_sensitive=False)
        # rich leaves an unstyled line's segment without a style; every segment needs one (NO_COLOR filter)
        strip = Strip(text.render(self.app.console), cell_len(self.lines[index])).apply_style(base)
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    # Scrolling back stops following, like `less +F`; going to the end resumes it.
    def action_scroll_up(self) -> None:
        self.follow = False
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self.follow = False
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self.follow = False
        super().action_scroll_home()

    def action_scroll_end(self) -> None:
        self.follow = True
        super().action_scroll_end()

    def on_mouse_scroll_up(self) -> None:
        self.follow = False
