"""A real S3-compatible server for the tests: moto's standalone server in a subprocess, behind
a thin verifying front in a thread.

moto does not verify presigned URLs (signature, expiry) nor `Content-MD5`. The front does,
for every request that carries a presigned SigV4 query (`X-Amz-Signature`): it recomputes the
signature from the canonical request with the test credentials, refuses an expired link (its
clock can be moved forward with `clock_offset`), and checks `Content-MD5` against the body, as
S3 does, before forwarding to moto. Requests FieldSync signs itself in headers (boto3 API
calls) are forwarded unchecked. What this covers and does not: docs/blobs.md.

The front also forwards writes of one object one at a time. moto 5 answers 500 when two PUTs
of the same key overlap (the second disposes of the first's buffer while the first computes
its ETag: "I/O operation on closed file"); S3 itself takes both, last writer wins. Writes of
different keys, and all reads, still reach moto at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote

import httpx

from tests.ops_support import free_port

ACCESS_KEY = "fieldsync-test-key"
SECRET_KEY = "fieldsync-test-secret"
REGION = "us-east-1"
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection"}


def _sign(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def _signing_key(date: str, region: str, service: str) -> bytes:
    key = _sign(("AWS4" + SECRET_KEY).encode(), date)
    return _sign(_sign(_sign(key, region), service), "aws4_request")


def presigned_problem(
    method: str, raw_path: str, raw_query: str, headers: dict[str, str], now: float
) -> str | None:
    """Why a presigned SigV4 request must be refused (an S3 error code), or None."""
    pairs = parse_qsl(raw_query, keep_blank_values=True)
    params = dict(pairs)
    try:
        access_key, date, region, service, _ = params["X-Amz-Credential"].split("/")
        amz_date = params["X-Amz-Date"]
        expires = int(params["X-Amz-Expires"])
        signed_headers = params["X-Amz-SignedHeaders"].split(";")
        given = params["X-Amz-Signature"]
    except (KeyError, ValueError):
        return "AuthorizationQueryParametersError"
    if access_key != ACCESS_KEY:
        return "InvalidAccessKeyId"
    signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    if now > signed_at + expires:
        return "AccessDenied"  # "Request has expired"
    query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
        for k, v in sorted(pairs)
        if k != "X-Amz-Signature"
    )
    lower = {k.lower(): v for k, v in headers.items()}
    canonical_headers = "".join(
        f"{name}:{' '.join(lower.get(name, '').split())}\n" for name in signed_headers
    )
    canonical = "\n".join(
        [method, raw_path, query, canonical_headers, ";".join(signed_headers), "UNSIGNED-PAYLOAD"]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{digest}"
    expected = hmac.new(
        _signing_key(date, region, service), to_sign.encode(), hashlib.sha256
    ).hexdigest()
    return None if hmac.compare_digest(expected, given) else "SignatureDoesNotMatch"


class VerifyingFront:
    """The in-thread HTTP front: verify presigned requests, then forward to moto."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.clock_offset = 0.0
        self.refused: list[str] = []
        self._key_locks: dict[str, threading.Lock] = {}
        self._key_locks_guard = threading.Lock()
        front = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                front.handle(self)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        raw_path, _, raw_query = request.path.partition("?")
        headers = {k: v for k, v in request.headers.items()}
        if "X-Amz-Signature=" in raw_query:
            problem = presigned_problem(
                request.command, raw_path, raw_query, headers, time.time() + self.clock_offset
            )
            if problem is not None:
                self.refused.append(problem)
                return self._reply(request, 403, problem)
        md5 = headers.get("Content-MD5") or headers.get("content-md5")
        if md5 is not None and base64.b64encode(hashlib.md5(body).digest()).decode() != md5:
            self.refused.append("BadDigest")
            return self._reply(request, 400, "BadDigest")
        if request.command in ("GET", "HEAD"):
            return self._forward(request, body, headers)
        with self._key_lock(raw_path):
            self._forward(request, body, headers)

    def _key_lock(self, raw_path: str) -> threading.Lock:
        with self._key_locks_guard:
            return self._key_locks.setdefault(raw_path, threading.Lock())

    def _forward(
        self, request: BaseHTTPRequestHandler, body: bytes, headers: dict[str, str]
    ) -> None:
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=120)
        try:
            upstream.request(request.command, request.path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            content = answer.read()
            request.send_response(answer.status)
            head = request.command == "HEAD"
            for name, value in answer.getheaders():
                if name.lower() in _HOP_HEADERS or (name.lower() == "content-length" and not head):
                    continue
                request.send_header(name, value)
            if not head:
                request.send_header("Content-Length", str(len(content)))
            request.end_headers()
            if request.command != "HEAD":
                request.wfile.write(content)
        finally:
            upstream.close()

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, code: str) -> None:
        body = f"<Error><Code>{code}</Code><Message>{code}</Message></Error>".encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/xml")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class S3Server:
    """moto (`moto_url`) and its verifying front (`url`, the endpoint FieldSync is given)."""

    process: subprocess.Popen[bytes]
    moto_url: str
    front: VerifyingFront

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.front.port}"

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_ENDPOINT_URL_S3": self.url,
            "AWS_REGION": REGION,
        }

    def stop(self) -> None:
        self.front.stop()
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_s3_server() -> S3Server:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    moto_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError("moto server exited at start")
        try:
            httpx.get(moto_url + "/moto-api/", timeout=1)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.1)
    return S3Server(process, moto_url, VerifyingFront(port))
