"""A local HTTP file server for download tests: serves in-memory files on
127.0.0.1, honours ``Range: bytes=N-``, records every request, and can be
told to misbehave the ways real servers and networks do."""
from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional

_RANGE = re.compile(r"bytes=(\d+)-$")


@dataclass
class Served:
    path: str
    range: Optional[str]  # the Range header as received, None if absent
    status: int
    sent: int  # body bytes sent before the response ended (or was cut)


class FileServer:
    def __init__(self) -> None:
        self.files: Dict[str, bytes] = {}
        self.requests: List[Served] = []
        # Close the connection after this many body bytes of the next
        # response only, while its Content-Length promises them all.
        self.cut_after: Optional[int] = None
        # Answer every request with 200 and the whole file, as servers
        # without range support do.
        self.ignore_range = False
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        # A short poll keeps shutdown, and so each test's teardown, quick.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    def url(self, path: str) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/{path.lstrip('/')}"

    def start(self) -> "FileServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _take_cut(self) -> Optional[int]:
        with self._lock:
            cut, self.cut_after = self.cut_after, None
            return cut

    def _record(self, served: Served) -> None:
        with self._lock:
            self.requests.append(served)


def _handler_for(server: FileServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.lstrip("/")
            header = self.headers.get("Range")
            body = server.files.get(path)
            if body is None:
                self._reply(path, header, 404, b"not found", {})
                return
            match = _RANGE.match(header or "")
            if match is None or server.ignore_range:
                self._reply(path, header, 200, body, {})
                return
            start = int(match.group(1))
            if start >= len(body):
                self._reply(path, header, 416, b"", {"Content-Range": f"bytes */{len(body)}"})
                return
            extra = {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"}
            self._reply(path, header, 206, body[start:], extra)

        def _reply(self, path: str, header: Optional[str], status: int, body: bytes, extra: Dict[str, str]) -> None:
            cut = server._take_cut() if status in (200, 206) else None
            payload = body if cut is None else body[:cut]
            # Recorded before anything is sent: a client that has its answer
            # (a 416 is complete with its headers) can already see the record.
            server._record(Served(path, header, status, len(payload)))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
            if cut is not None:
                # Drop the connection mid-body: the client sees fewer bytes
                # than Content-Length, as after a network failure.
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

        def log_message(self, *args) -> None:
            pass

    return Handler
