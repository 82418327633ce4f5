"""HTTP receivers the event tests run on loopback: a webhook endpoint that checks signatures
and deduplicates by Idempotency-Key (as a well-behaved receiver does), and a SOAP provisioning
gateway. Both run in a thread (ThreadingHTTPServer) so a dispatcher in another process or in
the test's event loop can reach them."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.etree import ElementTree

from ocs.plugins.webhook import SIGNATURE_HEADER, verify

SECRET = "test-secret-0123456789"


@dataclass
class Received:
    key: str
    event: dict[str, Any]
    signed: bool


@dataclass
class WebhookReceiver:
    secret: bytes = SECRET.encode()
    down: bool = False  # answer 503 (receiver down)
    refuse_subscriber: str = ""  # answer 503 for this subscriber's events only
    delay_s: float = 0.0  # hold each answer this long (a kill lands mid-delivery)
    posts: int = 0
    delivered: list[Received] = field(default_factory=list)  # first delivery per key, in order
    duplicates: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, headers: Any, body: bytes) -> int:
        if self.delay_s:
            time.sleep(self.delay_s)
        with self.lock:
            self.posts += 1
            event = json.loads(body)
            if self.down or event["subscriber"] == self.refuse_subscriber:
                return 503
            key = headers.get("Idempotency-Key", "")
            if any(r.key == key for r in self.delivered):
                self.duplicates += 1
                return 200
            signed = verify(self.secret, headers.get(SIGNATURE_HEADER, ""), body)
            self.delivered.append(Received(key, event, signed))
            return 200

    def keys(self) -> list[str]:
        with self.lock:
            return [r.key for r in self.delivered]


@dataclass
class HlrGateway:
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, headers: Any, body: bytes) -> tuple[int, bytes]:
        root = ElementTree.fromstring(body)
        env = "{http://schemas.xmlsoap.org/soap/envelope/}"
        operation = root.find(f"{env}Body")[0]  # type: ignore[index]
        fields = {child.tag.split("}")[1]: child.text or "" for child in operation}
        with self.lock:
            self.requests.append((operation.tag.split("}")[1], fields))
        reply = (
            f'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
            f"<Ack>{fields.get('RequestId', '')}</Ack></soap:Body></soap:Envelope>"
        )
        return 200, reply.encode()


class Server:
    """Serve one receiver on 127.0.0.1 (free port) until close()."""

    def __init__(self, receiver: WebhookReceiver | HlrGateway) -> None:
        target = receiver

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if isinstance(target, WebhookReceiver):
                    status, reply = target.handle(self.headers, body), b"{}"
                else:
                    status, reply = target.handle(self.headers, body)
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
