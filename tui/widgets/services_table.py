"""The services table: one row per service of the facility, the selected row is what actions act on."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from afbox.render import service_endpoint

from ..format import duration, percent, short_bytes

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


def main_port(row: dict) -> str:
    urls = row.get("urls", {})
    for key in ("lab", "scheduler", "root"):
        if key in urls:
            return urls[key].rstrip("/").rsplit(":", 1)[-1].split("/")[0]
    ports = row.get("ports", {})
    return str(ports.get("worker") or next(iter(ports.values()), "-"))


def cells(row: dict, procs: dict, wide: bool) -> dict[str, Text | str]:
    cpu, rss = procs.get(row["name"], (None, None))
    return {
        "service": row["name"],
        "state": Text(row["state"], style=STYLE.get(row["state"], "bold")),
        "health": Text(row["health"], style=STYLE.get(row["health"], "bold")),
        "endpoint": service_endpoint(row) if wide else main_port(row),
        "restarts": Text(str(row["restarts"]), style="bold" if row["restarts"] else ""),
        "uptime": duration(row["uptime"]),
        "cpu": percent(cpu),
        "rss": short_bytes(rss),
    }


class ServicesTable(DataTable):
    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._shape: tuple = ()
        self._shown: dict[tuple[str, str], object] = {}

    @property
    def selected(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def show(self, services: list[dict], procs: dict) -> None:
        cols = columns(self.app.size.width)
        wide = cols is not NARROW_COLUMNS
        shape = (cols, tuple(r["name"] for r in services))
        if shape != self._shape:  # rebuild only when rows or columns change, so scroll and cursor stay put
            keep = self.selected
            self.clear(columns=True)
            for key, label, width in cols:
                self.add_column(label, width=width, key=key)
            for r in services:
                c = cells(r, procs, wide)
                self.add_row(*(c[k] for k, _, _ in cols), key=r["name"])
            names = shape[1]
            if keep in names:
                self.move_cursor(row=names.index(keep), animate=False)
            self._shape = shape
            self._shown = {}
            return
        for r in services:
            for key, value in cells(r, procs, wide).items():
                if self._shown.get((r["name"], key)) != value:
                    self.update_cell(r["name"], key, value)
                    self._shown[r["name"], key] = value
