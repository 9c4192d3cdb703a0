"""A bordered box whose lines are drawn from its data at whatever width it has."""
from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.widget import Widget

from tui.format import bar

LABEL, VALUE = 5, 10  # columns for a meter's label and its figure (with a space before it)


class Panel(Widget):
    """show(data) with the panel's load object, or with a string saying why there is none."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"panel--bar", "panel--hot", "panel--note"}
    HOT = 0.9

    def __init__(self, title: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = title
        self.data: Any = "…"
        self.max_lines = 99

    def show(self, data: Any) -> None:
        """Redraw only when what the panel shows changed: the figures are read every second,
        most of them are the same as a second ago, or differ below what the panel shows."""
        if data == self.data:
            return
        before = self.render() if self.is_mounted else None
        self.data = data
        self.redraw(before)

    def set_max_lines(self, n: int) -> None:
        if n != self.max_lines:
            before = self.render() if self.is_mounted else None
            self.max_lines = n
            self.redraw(before)

    def redraw(self, before: Text | None) -> None:
        after = self.render() if self.is_mounted else None
        if before is None or after != before:
            # the layout only when the number of lines changed: the overview sizes its panels by them
            self.refresh(layout=before is None or after is None or after.plain.count("\n") != before.plain.count("\n"))

    def lines(self, width: int) -> list[Text]:
        raise NotImplementedError

    def render(self) -> Text:
        width = max(1, self.content_region.width)
        if isinstance(self.data, str):
            return Text(self.data, style=self.get_component_rich_style("panel--note"))
        text = Text("\n").join(self.fitted(width))
        text.no_wrap, text.overflow = True, "ellipsis"
        return text

    def fitted(self, width: int) -> list[Text]:
        """The lines, at most max_lines of them: the last says how many did not fit."""
        lines = self.lines(width)
        if len(lines) > self.max_lines:
            hidden = len(lines) - self.max_lines + 1
            lines = [*lines[: self.max_lines - 1],
                     Text(f"… {hidden} more", style=self.get_component_rich_style("panel--note"))]
        return lines

    def height_needed(self) -> int:
        return 1 if isinstance(self.data, str) else len(self.fitted(max(1, self.content_region.width)))

    def meter(self, label: str, fraction: float | None, value: str, width: int,
              marks: tuple[float, ...] = ()) -> Text:
        text = Text(f"{label:<{LABEL}.{LABEL - 1}}")
        text.append(bar(fraction, max(3, width - LABEL - VALUE), marks), self.style_for(fraction))
        text.append(f"{value:>{VALUE}}")
        return text

    def style_for(self, fraction: float | None):
        hot = fraction is not None and fraction >= self.HOT
        return self.get_component_rich_style("panel--hot" if hot else "panel--bar")
