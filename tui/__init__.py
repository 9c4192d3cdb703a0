"""The facility console (Textual): `afbox` with no arguments, or `afbox tui`."""
