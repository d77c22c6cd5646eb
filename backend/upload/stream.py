"""Stream one multipart/form-data file field straight to disk, with the size limit enforced while reading.

Starlette's request.form() spools uploads to /tmp and only then lets us look at the size; this module feeds
request.stream() into python-multipart's low-level parser instead, so memory stays flat, nothing is written
outside `dest`, and an oversized upload is cut off after at most one network chunk past the limit.
"""

import errno
import os
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import anyio.to_thread
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from backend.upload.errors import TooLarge, UploadError

if TYPE_CHECKING:  # a typing-only name in python-multipart
    from python_multipart.multipart import MultipartCallbacks

# Part headers and the other (ignored) form fields may add this much to the body beyond max_bytes.
FORM_OVERHEAD_BYTES = 1 << 20
# At most this many parts in the form, and this many bytes of part headers in all: 20 MB of empty parts (a
# million callbacks on the event loop) are refused after the first few instead of parsed to the end.
MAX_FORM_PARTS = 16
MAX_PART_HEADER_BYTES = 64 * 1024
# Buffered part data is handed to a worker thread in batches of about this size, keeping the loop free.
FLUSH_BYTES = 1 << 20


def upload_error_response(error: UploadError) -> JSONResponse:
    """The 4xx JSON answer for an UploadError, closing the connection.

    Without "Connection: close" uvicorn keeps the connection alive and reads (and discards) the rest of an
    oversized body after the response, so the cut-off would save disk but not bandwidth.
    """
    headers = {"Connection": "close"}
    return JSONResponse({"detail": error.detail}, status_code=error.status_code, headers=headers)


class _FieldSink:
    """Parser callbacks: route the `field` part's bytes to a buffer, count and drop everything else."""

    def __init__(self, dest: Path, field: str, max_bytes: int) -> None:
        self.dest = dest
        self.field = field.encode()
        self.max_bytes = max_bytes
        self.file: BinaryIO | None = None
        self.received = 0
        self.ignored = 0
        self.finished = False
        self.pending: list[memoryview] = []
        self.pending_bytes = 0
        self._in_field = False
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self.parts = 0
        self.header_bytes = 0

    def callbacks(self) -> "MultipartCallbacks":
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_val,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_FORM_PARTS:
            raise UploadError(413, f"more than {MAX_FORM_PARTS} parts in the form")
        self._headers.clear()
        self._in_field = False

    def _count_header(self, size: int) -> None:
        self.header_bytes += size
        if self.header_bytes > MAX_PART_HEADER_BYTES:
            raise UploadError(413, f"the form's part headers exceed {MAX_PART_HEADER_BYTES} bytes")

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._header_name += data[start:end]

    def _header_val(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._header_name).lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get(b"content-disposition"))
        if disposition != b"form-data" or options.get(b"name") != self.field:
            return
        if self.file is not None:
            raise UploadError(400, f"more than one '{self.field.decode()}' field in the form")
        # Never through a symlink planted at `dest`; the caller picks a fresh path inside its own folder.
        fd = os.open(self.dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        self.file = os.fdopen(fd, "wb")
        self._in_field = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        size = end - start
        if not self._in_field:
            self.ignored += size
            if self.ignored > FORM_OVERHEAD_BYTES:
                raise UploadError(413, f"other form fields exceed {FORM_OVERHEAD_BYTES} bytes")
            return
        self.received += size
        if self.received > self.max_bytes:
            raise TooLarge(f"upload larger than the limit of {self.max_bytes} bytes")
        # A view of an immutable chunk keeps it alive without a copy until the next flush writes it.
        self.pending.append(memoryview(data if isinstance(data, bytes) else bytes(data))[start:end])
        self.pending_bytes += size

    def _part_end(self) -> None:
        self._in_field = False

    def _end(self) -> None:
        self.finished = True

    async def flush(self) -> None:
        """Write buffered field bytes in a worker thread so a slow disk does not stall the event loop."""
        if not self.pending or self.file is None:
            return
        views, self.pending, self.pending_bytes = self.pending, [], 0
        try:
            await anyio.to_thread.run_sync(self.file.writelines, views)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise UploadError(507, "the server ran out of disk space during the upload") from exc
            raise


def _boundary(content_type: str | None) -> bytes:
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        raise UploadError(400, "expected a multipart/form-data body")
    boundary = options.get(b"boundary")
    if not boundary:
        raise UploadError(400, "multipart/form-data body without a boundary")
    return boundary


def _check_declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is None:
        return
    if not declared.isdigit():
        raise UploadError(400, "invalid Content-Length header")
    if int(declared) > limit:
        raise TooLarge(f"upload larger than the limit of {limit - FORM_OVERHEAD_BYTES} bytes")


async def receive_upload(request: Request, dest: Path, *, max_bytes: int, field: str = "file") -> int:
    """Stream the multipart `field` part of `request` into `dest`; return the number of bytes written.

    Raises UploadError: 413 as soon as more than `max_bytes` arrive (reading stops there), 422 if the field
    is missing, 400 for a wrong content type or a malformed or truncated body. The caller deletes `dest` on
    error. Other form fields are discarded, up to FORM_OVERHEAD_BYTES in total.
    """
    body_limit = max_bytes + FORM_OVERHEAD_BYTES
    _check_declared_length(request, body_limit)
    boundary = _boundary(request.headers.get("content-type"))
    sink = _FieldSink(dest, field, max_bytes)
    try:
        parser = MultipartParser(boundary, sink.callbacks())
        body_bytes = 0
        async for chunk in request.stream():
            body_bytes += len(chunk)
            if body_bytes > body_limit:
                raise TooLarge(f"upload larger than the limit of {max_bytes} bytes")
            parser.write(chunk)
            if sink.pending_bytes >= FLUSH_BYTES:
                await sink.flush()
        await sink.flush()
    except FormParserError as exc:
        raise UploadError(400, f"malformed multipart body: {exc}") from exc
    except ClientDisconnect as exc:
        raise UploadError(400, "client disconnected before the upload was complete") from exc
    finally:
        if sink.file is not None:
            try:
                sink.file.close()  # flushes the last buffered bytes: the disk may fill here too
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                raise UploadError(507, "the server ran out of disk space during the upload") from exc
    if not sink.finished:
        raise UploadError(400, "multipart body ended before its closing boundary (truncated upload)")
    if sink.file is None:
        raise UploadError(422, f"missing form field '{field}'")
    return sink.received
