"""The commands the Makefile's targets run, for tests that run them as the README tells a reader to."""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def recipe_command(target: str, program: str, port_flag: str, default_port: str, port: int) -> list[str]:
    """The line of `target`'s recipe that runs `$(VENV)/bin/<program>`, as words, with this venv's programs and
    `port` in place of the recipe's own (which must end the line: `<port_flag> <default_port>`)."""
    recipe = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", (REPO / "Makefile").read_text(), re.M)
    assert recipe, f"the Makefile has no {target} target"
    [line] = [line.strip() for line in recipe[1].splitlines() if f"/bin/{program} " in line]
    words = line.replace("$(VENV)/bin/", f"{BIN}/").split()
    assert words[-2:] == [port_flag, default_port], line
    return [*words[:-1], str(port)]
