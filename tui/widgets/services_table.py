"""The services table: one row per service of the facility, the selected row is what actions act on."""
from __future__ import annotations

from collections.abc import Hashable

from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

from afbox.lifecycle import ServiceRow

from tui.format import duration, percent, short_bytes

WIDE = 110  # from this terminal width on, whole URLs fit
NARROW_COLUMNS = (("service", "SERVICE", 14), ("state", "STATE", 11), ("health", "HEALTH", 9),
                  ("endpoint", "PORT", 6), ("restarts", "RST", 3), ("uptime", "UP", 6),
                  ("cpu", "CPU", 4), ("rss", "RSS", 5))
STYLE = {"running": "", "starting": "italic", "stopped": "dim", "unavailable": "dim",
         "healthy": "", "unknown": "dim", "n/a": "dim"}  # anything else is trouble: bold


def columns(width: int) -> tuple[tuple[str, str, int], ...]:
    if width < WIDE:
        return NARROW_COLUMNS
    return tuple(("endpoint", "URL/PORT", 32) if key == "endpoint" else (key, label, w)
                 for key, label, w in NARROW_COLUMNS)


def main_port(row: ServiceRow) -> str:
    if row.primary and ":" in row.primary.split("://", 1)[-1]:
        return row.primary.rstrip("/").rsplit(":", 1)[-1].split("/")[0]
    return str(row.ports.get("worker") or next(iter(row.ports.values()), "-"))


def cells(row: ServiceRow, procs: dict, wide: bool) -> dict[str, Text | str]:
    cpu, rss = procs.get(row.name, (None, None))
    return {
        "service": row.name,
        "state": Text(row.state, style=STYLE.get(row.state, "bold")),
        "health": Text(row.health, style=STYLE.get(row.health, "bold")),
        "endpoint": row.endpoint() if wide else main_port(row),
        "restarts": Text(str(row.restarts), style="bold" if row.restarts else ""),
        "uptime": duration(row.uptime),
        "cpu": percent(cpu),
        "rss": short_bytes(rss),
    }


def _signature(value: object) -> Hashable:
    """What a cell's drawing depends on, hashable (rich Text is not)."""
    if isinstance(value, Text):
        return (value.plain, str(value.style), value.justify, value.no_wrap, value.overflow,
                tuple((s.start, s.end, str(s.style)) for s in value.spans))
    return value if isinstance(value, Hashable) else repr(value)


class ServicesTable(DataTable):
    """A DataTable that redraws only the cells whose content changed.

    DataTable keys all its render caches on one update counter, so updating one cell (an uptime,
    once a second) redraws every cell of the table through rich, the console's largest idle cost.
    Here drawn cells are kept by their content: a cell redraws when it, its width, or its styling
    (cursor, hover, focus, theme) changed."""

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._shape: tuple = ()
        self._shown: dict[tuple[str, str], object] = {}
        self._drawn: LRUCache[tuple, list] = LRUCache(2000)

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._drawn.clear()

    def notify_style_update(self) -> None:
        self._drawn.clear()
        super().notify_style_update()

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False) -> list:
        try:
            column_key = self._column_locations.get_key(column_index)
            if row_index == -1:
                value = self.columns[column_key].label
            else:
                value = self._data[self._row_locations.get_key(row_index)][column_key]
        except (KeyError, IndexError):
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        key = (row_index, column_index, _signature(value), base_style, width, cursor, hover,
               self._show_hover_cursor, self._pseudo_class_state, self.show_cursor, self.fixed_rows,
               self.fixed_columns, self.app.theme)
        lines = self._drawn.get(key)
        if lines is None:
            lines = self._drawn[key] = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        return lines

    @property
    def selected(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def show(self, services: list[ServiceRow], procs: dict) -> None:
        cols = columns(self.app.size.width)
        wide = cols is not NARROW_COLUMNS
        shape = (cols, tuple(r.name for r in services))
        if shape != self._shape:  # rebuild only when rows or columns change, so scroll and cursor stay put
            keep = self.selected
            self.clear(columns=True)
            for key, label, width in cols:
                self.add_column(label, width=width, key=key)
            self._shown = {}
            for r in services:
                c = cells(r, procs, wide)
                self.add_row(*(c[k] for k, _, _ in cols), key=r.name)
                self._shown.update(((r.name, k), v) for k, v in c.items())
            names = shape[1]
            if keep in names:
                self.move_cursor(row=names.index(keep), animate=False)
            self._shape = shape
            return
        changed = False
        for r in services:
            row = self._data[RowKey(r.name)]
            for key, value in cells(r, procs, wide).items():
                if self._shown.get((r.name, key)) != value:
                    # what update_cell() does, with one redraw for all the cells that changed
                    row[ColumnKey(key)] = self._shown[r.name, key] = value
                    changed = True
        if changed:
            self._update_count += 1
            self.refresh()
