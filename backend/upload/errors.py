"""The one error of receiving and checking an upload: the 4xx the client gets, with the reason in words."""

from __future__ import annotations


class UploadError(Exception):
    """A client-side upload problem; `status_code` and `detail` become the 4xx JSON response."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


class TooLarge(UploadError):
    """The file is over the size limit it was received under (413): the caller may say whose limit it was."""

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail)
