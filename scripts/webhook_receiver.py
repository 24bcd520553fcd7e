"""A local webhook receiver: collects the alerts the example DAGs post, so no outside service is needed.

Run by the compose service `webhook-receiver` (`python /opt/airflow/scripts/webhook_receiver.py --port
8080`), and started in a thread by the unit tests. Python standard library only.
- POST <any path> with a JSON body: stored in memory (the last --max-items, 1000 by default), answered
  200 {"ok": true}; one JSON line per request is printed to stdout. A body that is not JSON: 400.
- GET /received: the stored requests, oldest first: [{"path": ..., "body": {...}, "received_at": ...}].
- DELETE /received: forget them (tests start from a clean slate).
- GET /health: 200 {"status": "ok"}.
SIGTERM and SIGINT stop it cleanly (requests in progress are finished).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections import deque
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY_BYTES = 1024 * 1024


class ReceiverServer(ThreadingHTTPServer):
    """A threading HTTP server holding the last `max_items` received requests."""

    # Non-daemon handler threads, joined by server_close(): a request in progress is answered on SIGTERM.
    daemon_threads = False

    def __init__(self, address: tuple[str, int], max_items: int = 1000) -> None:
        super().__init__(address, ReceiverHandler)
        self.received: deque[dict[str, Any]] = deque(maxlen=max_items)
        self.lock = threading.Lock()

    def store(self, record: dict[str, Any]) -> None:
        with self.lock:
            self.received.append(record)

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.received)

    def clear(self) -> None:
        with self.lock:
            self.received.clear()


class ReceiverHandler(BaseHTTPRequestHandler):
    server: ReceiverServer
    server_version = "webhook-receiver/1"
    timeout = 10  # seconds a client may stall mid-request: bounds how long a shutdown can wait

    def _reply(self, status: HTTPStatus, payload: object) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/health":
            self._reply(HTTPStatus.OK, {"status": "ok"})
        elif path == "/received":
            self._reply(HTTPStatus.OK, self.server.snapshot())
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such path {path}: use /received or /health"})

    def do_DELETE(self) -> None:
        if self.path.split("?", 1)[0] != "/received":
            self._reply(HTTPStatus.NOT_FOUND, {"error": "only /received can be deleted"})
            return
        self.server.clear()
        self._reply(HTTPStatus.OK, {"ok": True})

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": "invalid Content-Length"})
            return
        if length > MAX_BODY_BYTES:
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body over {MAX_BODY_BYTES} bytes"})
            return
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": f"body is not JSON: {error}"})
            return
        record = {"path": self.path, "body": body, "received_at": datetime.now(UTC).isoformat()}
        self.server.store(record)
        print(json.dumps(record), flush=True)
        self._reply(HTTPStatus.OK, {"ok": True})

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: every POST is already printed as one JSON line."""


def make_server(host: str = "0.0.0.0", port: int = 8080, max_items: int = 1000) -> ReceiverServer:
    """A server bound to host:port (port 0: any free port; see server.server_address)."""
    return ReceiverServer((host, port), max_items=max_items)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0", help="address to bind (default: all)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080)")
    parser.add_argument("--max-items", type=int, default=1000, help="requests kept in memory")
    args = parser.parse_args(argv)

    server = make_server(args.host, args.port, args.max_items)

    def stop(signum: int, _frame: object) -> None:
        print(json.dumps({"event": "stopping", "signal": signal.Signals(signum).name}), flush=True)
        # shutdown() waits for serve_forever() to return: call it from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(json.dumps({"event": "listening", "host": args.host, "port": server.server_address[1]}), flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
