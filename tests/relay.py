"""A loopback TCP relay: what `kubectl port-forward LOCAL:REMOTE` is to a browser, bytes copied both ways.

The client sees only the relay's own host and port, never the upstream's: any redirect that names
another host is a bug the browser would hit too.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

from tests.postgres_server import free_port


class TcpRelay:
    def __init__(self, upstream_port: int, listen_port: int | None = None) -> None:
        self.upstream_port = upstream_port
        self.port = listen_port or free_port()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._server.settimeout(0.5)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name=f"relay-{self.port}", daemon=True)

    def __enter__(self) -> TcpRelay:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._server.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, target), daemon=True).start()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
