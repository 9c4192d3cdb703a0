"""afbox's Jupyter server extension, enabled by the facility's Jupyter config (afbox.services.jupyter):
the Dask dashboards under JupyterLab's own origin (lab_dashboards), the facility's clusters in the Dask
panel (lab_clusters), and a login page that says the afbox way in (templates/login.html)."""
from __future__ import annotations

from pathlib import Path

from . import lab_clusters, lab_dashboards

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _jupyter_server_extension_points():
    return [{"module": "afbox.plugins.lab_extension"}]


def _load_jupyter_server_extension(server_app) -> None:
    web_app = server_app.web_app
    web_app.add_handlers(".*$", lab_dashboards.handlers(web_app.settings["base_url"]))
    # ahead of Jupyter's own templates: its login page tells people to run `jupyter server list`,
    # which prints nothing here (the runtime dir is private)
    loader = web_app.settings["jinja2_env"].loader
    if str(TEMPLATES) not in loader.searchpath:
        loader.searchpath.insert(0, str(TEMPLATES))
    lab_clusters.start()
    server_app.log.info("afbox: Dask dashboards under %sproxy/dask/, the facility's clusters in the Dask panel",
                        web_app.settings["base_url"])
