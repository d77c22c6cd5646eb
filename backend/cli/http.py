"""What every command of the CLI shares: its exit codes, its error, and the API's refusals in words."""

from __future__ import annotations

import httpx

EXIT_JOB_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_REFUSED = 1, 2, 3, 4


class CLIError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def detail(response: httpx.Response) -> str:
    """The API's `detail`, else the start of its body."""
    try:
        found = response.json().get("detail")
    except (ValueError, AttributeError):
        found = None
    return str(found) if found else (response.text[:300] or response.reason_phrase)


def check(response: httpx.Response) -> httpx.Response:
    """`response` if it is not an error; CLIError (EXIT_REFUSED) with the API's reason otherwise."""
    if response.is_error:
        response.read()
        raise CLIError(f"HTTP {response.status_code}: {detail(response)}", EXIT_REFUSED)
    return response
