"""The worker's urllib3 transport against a real HTTP server on a free port: answers and errors as httpx's."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from backend.worker.ml_transport import Urllib3Transport


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path.startswith("/slow"):
            time.sleep(1.0)
        if self.path.startswith("/cut"):
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
            self.close_connection = True
            return
        answer = f"{self.path} {self.headers.get('Content-Type', '').split(';')[0]} {len(body)}".encode()
        self.send_response(200)
        self.send_header("X-Echo", "yes")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


class Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the slow answer finds its client gone: expected here


@pytest.fixture
def server() -> Iterator[str]:
    httpd = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def client(base_url: str, timeout: float = 5.0) -> httpx.Client:
    transport = Urllib3Transport(base_url, timeout=timeout, connect_timeout=2.0, connections=2)
    return httpx.Client(base_url=base_url, transport=transport)


def test_a_multipart_post_and_its_answer_go_through_one_kept_alive_connection(server: str) -> None:
    with client(server) as c:
        for _ in range(3):
            response = c.post(
                "/segment/batch", params={"overlay": "true"}, files=[("files", ("a.png", b"x" * 10))]
            )
            assert response.status_code == 200
            assert response.headers["X-Echo"] == "yes"
            path, kind, size = response.text.split()
            assert (path, kind) == ("/segment/batch?overlay=true", "multipart/form-data")
            assert int(size) > 10  # the file inside its multipart framing
        pool = c._transport._pool
        assert pool.num_connections == 1


def test_errors_are_httpx_transport_errors(server: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    with client(f"http://127.0.0.1:{closed_port}") as c, pytest.raises(httpx.ConnectError):
        c.post("/segment", content=b"x")
    with client(server, timeout=0.2) as c, pytest.raises(httpx.ReadTimeout):
        c.post("/slow", content=b"x")
    with client(server) as c, pytest.raises(httpx.TransportError):
        c.post("/cut", content=b"x")
