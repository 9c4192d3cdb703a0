"""The class sheet: one printable card per student with the hub's address, their username, one-time
code and a QR code that opens the login page with both filled in.

The code travels after '#' in the QR link: browsers never send that part to a server, so it lands
in no log. The sheet holds live codes: it is written 0600.
"""
from __future__ import annotations

import html
from urllib.parse import quote

import segno

from .roster import Accounts


def login_link(hub: str, name: str, code: str | None) -> str:
    link = f"{hub.rstrip('/')}/hub/login?username={quote(name)}"
    return f"{link}#code={quote(code)}" if code else link


def qr_svg(text: str) -> str:
    return segno.make(text, error="m").svg_inline(scale=3, border=2)


def render(accts: Accounts, hub: str, title: str, tutors: bool = False) -> str:
    cards = []
    for a in sorted(accts.accounts.values(), key=lambda a: (a.role != "student", a.name)):
        if a.role == "tutor" and not tutors:
            continue
        link = login_link(hub, a.name, a.code)
        secret = (f'<p class="code">one-time code <b>{html.escape(a.code)}</b></p>' if a.code else
                  '<p class="code used">code used: the password is set (afbox class reset for a new code)</p>')
        cards.append(f"""<section class="card">
  <h2>{html.escape(a.display_name or a.name)}</h2>
  <p>username <b>{html.escape(a.name)}</b></p>
  {secret}
  <p class="url">{html.escape(hub.rstrip('/'))}/hub/login</p>
  {qr_svg(link) if a.code else ''}
  <p class="how">Scan or open the address, type the code as password and choose your own password.</p>
</section>""")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
 body {{ font-family: sans-serif; margin: 1cm; }}
 .cards {{ display: grid; grid-template-columns: 1fr 1fr; gap: 0.6cm; }}
 .card {{ border: 1px dashed #888; padding: 0.4cm; break-inside: avoid; }}
 .card h2 {{ margin: 0 0 0.2cm; font-size: 14pt; }}
 .code b {{ font-family: monospace; font-size: 15pt; letter-spacing: 1px; }}
 .used {{ color: #777; }}
 .url {{ font-family: monospace; }}
 .how {{ font-size: 9pt; color: #444; }}
</style></head>
<body><h1>{html.escape(title)}</h1>
<div class="cards">
{chr(10).join(cards)}
</div></body></html>
"""


def main(argv: list[str] | None = None) -> None:
    """python -m afbox.hub.sheet CONFIG HUB_URL [--tutors]: the sheet of the class whose hub reads
    CONFIG, on stdout (k3s: `afbox class sheet` runs this in the hub's pod, where the accounts are)."""
    import argparse
    from pathlib import Path

    from .roster import load
    from .setup import load_settings, paths_of
    ap = argparse.ArgumentParser(prog="python -m afbox.hub.sheet")
    ap.add_argument("config")
    ap.add_argument("hub")
    ap.add_argument("--tutors", action="store_true")
    a = ap.parse_args(argv)
    settings = load_settings(Path(a.config))
    accts = load(paths_of(settings).accounts)
    print(render(accts, a.hub, f"{settings['facility']}: class sheet", a.tutors), end="")


if __name__ == "__main__":
    main()
