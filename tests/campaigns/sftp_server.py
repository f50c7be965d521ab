"""A real SFTP server on loopback for the tests: asyncssh, in-process, serving a tmp directory.

It has its own host key and lets in one user by an authorised client key or by a password; the
tests point SFTP intake and delivery folders at it and can stop it (a server that is down) and
start it again on the same port.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import warnings
from pathlib import Path
from typing import Any

from cryptography.utils import CryptographyDeprecationWarning

with warnings.catch_warnings():
    # asyncssh still names DSA keys in its type hints; we use none.
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    import asyncssh

# A line per channel event would bury a failing test's output.
logging.getLogger("asyncssh").setLevel(logging.WARNING)

USERNAME = "partner"
PASSWORD = "correct horse battery staple"


class _Server(asyncssh.SSHServer):
    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == USERNAME and password == PASSWORD


class SftpTestServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sftp-test-server", daemon=True)
        self._thread.start()
        self._acceptor: Any = None

    # What an admin stores for this server.
    @property
    def host_key_line(self) -> str:
        return self.host_key.export_public_key().decode().strip()

    @property
    def client_private_key(self) -> str:
        return self.client_key.export_private_key("openssh").decode()

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=15)

    async def _listen(self) -> Any:
        return await asyncssh.listen(
            "127.0.0.1",
            self.port,
            server_host_keys=[self.host_key],
            authorized_client_keys=asyncssh.import_authorized_keys(self.client_key.export_public_key().decode()),
            server_factory=_Server,
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(self.root)),
            allow_scp=False,
            reuse_address=True,
        )

    def start(self) -> None:
        self._acceptor = self._run(self._listen())
        self.port = self._acceptor.get_port()

    async def _close(self) -> None:
        self._acceptor.close()
        await self._acceptor.wait_closed()

    def stop(self) -> None:
        """Down: nothing listens on the port any more (it stays reserved for `start`)."""
        if self._acceptor is not None:
            self._run(self._close())
            self._acceptor = None

    def shutdown(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
