"""An httpx transport over urllib3's connection pool, for the worker's calls to the ML service.

A POST /segment/batch of 16 tiles moves a 1 MB request and a 1.1 MB answer. Through httpx's own transport
(httpcore and h11, pure Python) that cost the worker 3.6-5.3 ms of CPU; through this one, which hands the
bytes to urllib3 and the standard library's http.client, 1.8-2.2 ms (measured: docs/benchmarks.md). The
client keeps httpx's API, and its tests their MockTransport; urllib3's errors are raised as the httpx errors
they correspond to, so the retry policy in backend.worker.ml_client is unchanged.
"""

from __future__ import annotations

import httpx
import urllib3
from urllib3 import exceptions


class Urllib3Transport(httpx.BaseTransport):
    """Send each request on a pooled keep-alive connection (urllib3 replaces one the server has closed)."""

    def __init__(self, base_url: str, *, timeout: float, connect_timeout: float, connections: int) -> None:
        self._pool = urllib3.connection_from_url(
            base_url,
            maxsize=connections,
            timeout=urllib3.Timeout(connect=connect_timeout, read=timeout),
            retries=False,  # ml_client decides what to retry, with backoff
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()  # the encoded form, one buffer: a single send instead of a write per part
        try:
            answer = self._pool.urlopen(
                request.method,
                request.url.raw_path.decode("ascii"),
                body=body,
                headers=dict(request.headers),
                retries=False,
                redirect=False,
                preload_content=True,
                decode_content=False,  # httpx decodes by the answer's headers
            )
        except exceptions.NewConnectionError as exc:  # before its base class, ConnectTimeoutError
            raise httpx.ConnectError(str(exc), request=request) from exc
        except exceptions.ConnectTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc), request=request) from exc
        except exceptions.ReadTimeoutError as exc:
            raise httpx.ReadTimeout(str(exc), request=request) from exc
        except exceptions.ProtocolError as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except exceptions.HTTPError as exc:
            raise httpx.TransportError(str(exc), request=request) from exc
        return httpx.Response(
            answer.status, headers=list(answer.headers.items()), content=answer.data, request=request
        )

    def close(self) -> None:
        self._pool.close()
