"""CLI test helpers: every user error is exactly one readable line on stderr."""

from __future__ import annotations

import re

import pytest


@pytest.fixture
def expect_error(run_cli):
    """``expect_error(*args, match=REGEX, code=1)`` runs ``nnf ARGS`` and checks the error line.

    Returns the line (without the ``error: `` prefix).
    """
    def check(*args: object, match: str, code: int = 1) -> str:
        result = run_cli(*args)
        assert result.code == code, (result.code, result.err)
        lines = result.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.err
        assert "Traceback" not in result.err
        assert re.search(match, lines[0]), lines[0]
        return lines[0][len("error: "):]

    return check
