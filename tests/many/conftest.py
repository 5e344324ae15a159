"""A local HTTP server with Range requests, for remote reads (GDAL's /vsicurl/) without a network."""

from __future__ import annotations

import functools
import http.server
import re
import threading
from pathlib import Path

import pytest


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with HTTP Range requests (GDAL's /vsicurl/ reads by ranges; http.server alone does not)."""

    def log_message(self, *args) -> None:
        pass

    def _send(self, body: bool) -> None:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        size = path.stat().st_size
        first, last, code = 0, size - 1, 200
        m = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
        if m:
            first, last, code = int(m.group(1)), min(int(m.group(2) or size - 1), size - 1), 206
        self.send_response(code)
        self.send_header("Accept-Ranges", "bytes")
        if code == 206:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("Content-Length", str(last - first + 1))
        self.end_headers()
        if body:
            with path.open("rb") as fh:
                fh.seek(first)
                self.wfile.write(fh.read(last - first + 1))

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
        self._send(False)

    def do_GET(self) -> None:  # noqa: N802
        self._send(True)


@pytest.fixture
def http_root(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
