"""SFTP: the partners' file drops (intake CSVs in, the reconciled file out), through paramiko.

Every connection pins the server's host key: the key the admin stored for the server must be the
one the server presents, or nothing is read or written. An unknown key is never accepted (that
would let anyone between us and the partner collect the day's file). Authentication is by private
key or password, whichever the admin stored; no agent and no key files from the machine.

Errors become one `IntegrationError`: a server that cannot be reached, or times out, is temporary
(the next poll or retry may succeed); a host key that does not match or credentials the server
refuses are permanent until a person changes the settings — but either way nothing is lost: a
file is moved or written only after everything before it succeeded.

Reference: https://docs.paramiko.org/en/stable/api/client.html
Reference: https://docs.paramiko.org/en/stable/api/sftp.html
"""

from __future__ import annotations

import base64
import binascii
import io
import posixpath
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import paramiko

from integrations.http import IntegrationError

VENDOR = "sftp"
CONNECT_TIMEOUT = 15.0
# Reading a directory or a file on a slow link: beyond this the server is treated as down.
CHANNEL_TIMEOUT = 60.0
KEY_CLASSES: tuple[type[paramiko.PKey], ...] = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


@dataclass(frozen=True)
class SftpServer:
    """Where to connect and how to prove who we are; `host_key` is the pinned public key as an
    OpenSSH line ("ssh-ed25519 AAAA…", optionally with the host name first, as in known_hosts)."""

    host: str
    port: int
    username: str
    host_key: str
    password: str = ""
    private_key: str = ""

    def __str__(self) -> str:
        return f"{self.username}@{self.host}:{self.port}"


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int


def host_key_parse(line: str) -> paramiko.PKey:
    """The public key of an OpenSSH line: "type base64 [comment]" or "host type base64"."""
    parts = line.strip().split()
    for i in range(len(parts) - 1):
        if parts[i].startswith(("ssh-", "ecdsa-")):
            try:
                return paramiko.PKey.from_type_string(parts[i], base64.b64decode(parts[i + 1]))
            except (binascii.Error, ValueError, paramiko.SSHException) as exc:
                raise ValueError(f"The host key is not a valid public key ({exc}).") from None
    raise ValueError('The host key must look like "ssh-ed25519 AAAA…" (one line of the server\'s public key).')


def private_key_parse(text: str, *, passphrase: str | None = None) -> paramiko.PKey:
    """A private key in OpenSSH or PEM form (Ed25519, ECDSA or RSA)."""
    last: Exception | None = None
    for key_class in KEY_CLASSES:
        try:
            return key_class.from_private_key(io.StringIO(text.strip() + "\n"), password=passphrase)
        except paramiko.PasswordRequiredException:
            raise ValueError("The private key is protected by a passphrase; store a key without one.") from None
        except (paramiko.SSHException, ValueError) as exc:
            last = exc
    raise ValueError(f"The private key could not be read ({last}).")


class _PinnedHostKey(paramiko.MissingHostKeyPolicy):
    """The only key paramiko has is the pinned one, so any other key lands here: refuse it."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise paramiko.BadHostKeyException(hostname, key, key)


def _error(server: SftpServer, message: str, *, permanent: bool) -> IntegrationError:
    return IntegrationError(f"{server}: {message}", permanent=permanent, vendor=VENDOR)


@contextmanager
def session(server: SftpServer) -> Iterator[paramiko.SFTPClient]:
    """An open SFTP session to the server, its host key checked against the pinned one."""
    try:
        pinned = host_key_parse(server.host_key)
    except ValueError as exc:
        raise _error(server, str(exc), permanent=True) from None
    pkey = None
    if server.private_key:
        try:
            pkey = private_key_parse(server.private_key)
        except ValueError as exc:
            raise _error(server, str(exc), permanent=True) from None
    if pkey is None and not server.password:
        raise _error(server, "no private key or password is stored for this server.", permanent=True)
    client = paramiko.SSHClient()
    host_entry = server.host if server.port == 22 else f"[{server.host}]:{server.port}"
    client.get_host_keys().add(host_entry, pinned.get_name(), pinned)
    client.set_missing_host_key_policy(_PinnedHostKey())
    try:
        try:
            client.connect(
                server.host,
                port=server.port,
                username=server.username,
                password=server.password or None,
                pkey=pkey,
                timeout=CONNECT_TIMEOUT,
                banner_timeout=CONNECT_TIMEOUT,
                auth_timeout=CONNECT_TIMEOUT,
                channel_timeout=CHANNEL_TIMEOUT,
                allow_agent=False,
                # paramiko asks first for the pinned key's type, so a server holding several
                # host keys presents the one we can check.
                look_for_keys=False,
            )
        except paramiko.BadHostKeyException as exc:
            raise _error(
                server,
                f"the server presented a {exc.key.get_name()} host key ({exc.key.fingerprint}) that is not the "
                "stored one; nothing was read or written. Check with the partner before changing the stored host key.",
                permanent=True,
            ) from None
        except paramiko.AuthenticationException:
            raise _error(server, "the server refused our key or password.", permanent=True) from None
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise _error(server, f"could not connect ({exc or type(exc).__name__}).", permanent=False) from None
        sftp = client.open_sftp()
        sftp.get_channel().settimeout(CHANNEL_TIMEOUT)  # type: ignore[union-attr]
        try:
            yield sftp
        except (OSError, EOFError, socket.timeout, paramiko.SSHException) as exc:
            raise _error(server, f"the session failed ({exc or type(exc).__name__}).", permanent=False) from None
        finally:
            sftp.close()
    finally:
        client.close()


def list_files(sftp: paramiko.SFTPClient, directory: str) -> list[RemoteFile]:
    """Regular files of a directory (not its subdirectories), by name."""
    return sorted(
        (
            RemoteFile(name=entry.filename, size=entry.st_size or 0)
            for entry in sftp.listdir_attr(directory)
            if entry.st_mode is not None and stat.S_ISREG(entry.st_mode)
        ),
        key=lambda f: f.name,
    )


def read_bytes(sftp: paramiko.SFTPClient, path: str, *, limit: int) -> bytes:
    """At most `limit` + 1 bytes of a file (so a caller can tell a file is too large)."""
    with sftp.open(path, "rb") as handle:
        handle.prefetch()
        return handle.read(limit + 1)


def write_bytes(sftp: paramiko.SFTPClient, path: str, data: bytes) -> None:
    """Write a file whole: to a temporary name first, renamed once complete, so the partner never
    picks up half a file."""
    partial = f"{path}.part"
    with sftp.open(partial, "wb") as handle:
        handle.write(data)
    try:
        sftp.remove(path)
    except FileNotFoundError:
        pass
    sftp.rename(partial, path)


def exists(sftp: paramiko.SFTPClient, path: str) -> bool:
    try:
        sftp.stat(path)
    except FileNotFoundError:
        return False
    return True


def ensure_directory(sftp: paramiko.SFTPClient, path: str) -> None:
    try:
        sftp.stat(path)
    except FileNotFoundError:
        sftp.mkdir(path)


def move(sftp: paramiko.SFTPClient, source: str, target: str) -> None:
    """Rename, replacing a file already at the target (SFTP v3 rename refuses to overwrite)."""
    try:
        sftp.remove(target)
    except FileNotFoundError:
        pass
    sftp.rename(source, target)


def join(*parts: str) -> str:
    return posixpath.join(*parts)
