"""Screens of the console: setup, overview, logs, and the small dialogs."""
