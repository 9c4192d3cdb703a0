"""afbox env create/list/rm and afbox cluster up/list/down: named software stacks."""
from __future__ import annotations

COMMANDS: list = []
