"""A real HTTP server on 127.0.0.1 serving a folder, for the download tests."""

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def serving(root, handler_class: type[http.server.SimpleHTTPRequestHandler]) -> Iterator[str]:
    """Serves `root` with `handler_class` while the block runs; yields the base URL."""
    httpd = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(handler_class, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={'poll_interval': 0.05},
                              daemon=True)
    thread.start()
    try:
        yield 'http://127.0.0.1:%d/' % httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
