"""A real HTTP or HTTPS server on 127.0.0.1 serving a folder, for the download tests."""

import contextlib
import datetime
import functools
import http.server
import ipaddress
import os
import re
import ssl
import threading
from collections.abc import Iterator

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class FolderHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the folder quietly, with ranges and redirects.

    A path in the server's `redirects` is answered with a 302 to its URL;
    `Range: bytes=N-` with the rest of the file (206). Every request's
    (path, Range header or None) is appended to the server's `requests`.
    """

    def do_GET(self) -> None:  # pylint: disable=invalid-name
        self.server.requests.append((self.path, self.headers.get('Range')))
        location = self.server.redirects.get(self.path)
        if location is not None:
            self.send_response(302)
            self.send_header('Location', location)
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        requested = re.fullmatch(r'bytes=(\d+)-', self.headers.get('Range', ''))
        path = self.translate_path(self.path)
        if requested is None or not os.path.isfile(path):
            super().do_GET()
            return
        with open(path, 'rb') as served:
            size = os.fstat(served.fileno()).st_size
            start = int(requested.group(1))
            served.seek(start)
            data = served.read()
        self.send_response(206)
        self.send_header('Content-Length', str(len(data)))
        self.send_header('Content-Range', 'bytes %d-%d/%d' % (start, size - 1, size))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        del args  # Keeps test output quiet.


@contextlib.contextmanager
def serving(root, handler_class: type[http.server.SimpleHTTPRequestHandler] = FolderHandler,
            redirects: dict[str, str] | None = None, requests: list | None = None,
            certificate: str | None = None) -> Iterator[str]:
    """Serves `root` with `handler_class` while the block runs; yields the base URL.

    Args:
        root: the folder served.
        handler_class: answers the requests.
        redirects: {path: URL} that a `FolderHandler` redirects (read while
            serving, so it may be filled in after the URL is known).
        requests: where a `FolderHandler` records (path, Range header).
        certificate: a PEM file holding a key and its certificate: serves
            HTTPS with them (see `self_signed_certificate`).
    """
    httpd = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(handler_class, directory=str(root)))
    httpd.redirects = {} if redirects is None else redirects
    httpd.requests = [] if requests is None else requests
    scheme = 'http'
    if certificate is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        scheme = 'https'
    thread = threading.Thread(target=httpd.serve_forever, kwargs={'poll_interval': 0.05},
                              daemon=True)
    thread.start()
    try:
        yield '%s://127.0.0.1:%d/' % (scheme, httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def self_signed_certificate(directory) -> str:
    """Makes a key and a self-signed certificate for 127.0.0.1, valid for a day either side
    of now.

    Returns:
        The PEM file holding both: `serving`'s `certificate`, and what a
        client trusts through SSL_CERT_FILE.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, '127.0.0.1')])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder()
                   .subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName(
                       [x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]), critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                  critical=True)
                   .sign(key, hashes.SHA256()))
    combined = os.path.join(directory, 'key_and_cert.pem')
    with open(combined, 'wb') as output:
        output.write(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
        output.write(certificate.public_bytes(serialization.Encoding.PEM))
    return combined
