"""How a benchmark ends: timings are reported, never failed on; a wrong answer fails the run."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def exit_code(problems: Sequence[str]) -> int:
    """Prints each wrong answer to stderr; 1 if there was any, else 0."""
    for problem in problems:
        print(f"WRONG: {problem}", file=sys.stderr)
    return 1 if problems else 0
