"""Widgets of the console; each draws from data it is given and does no I/O."""
