"""A token issuer for the OIDC tests: RSA signing keys, and a real loopback HTTP server publishing their
JWKS (what Auth0 does for a tenant); tokens are signed in the test."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

AUDIENCE = "https://oilspill.test/api"


class Issuer:
    """Signing keys, and the JWKS a loopback server publishes for them (what Auth0 does for a tenant)."""

    def __init__(self) -> None:
        self.keys: dict[str, RSAPrivateKey] = {"k1": self.new_key()}
        self.fetches = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.fetches += 1
                body = json.dumps(issuer.jwks()).encode()
                self.send_response(200 if self.path == "/.well-known/jwks.json" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def new_key() -> RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        found = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            found.append(jwk | {"kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": found}

    def token(
        self, sub: str | None, *, kid: str = "k1", key: RSAPrivateKey | None = None, **claims: Any
    ) -> str:
        now = int(time.time())
        payload = {"iss": self.url, "aud": AUDIENCE, "iat": now, "exp": now + 300} | claims
        if sub is not None:
            payload["sub"] = sub
        return jwt.encode(payload, key or self.keys[kid], algorithm="RS256", headers={"kid": kid})
