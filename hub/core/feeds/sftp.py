"""The SFTP client (paramiko): the server's host key is pinned, never learned.

A feed names the key it expects as an OpenSSH public-key line ("ssh-ed25519 AAAA...", as in
known_hosts or `ssh-keyscan`) or as its SHA256 fingerprint ("SHA256:...", as `ssh-keygen -lf`
prints it). An unknown or changed key ends the connection before any credential is sent.
"""
from __future__ import annotations

import base64
import hashlib
import io
import socket
import stat
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

import paramiko

from hub.core.feeds.config import FeedConfigError, secret


class SFTPError(Exception):
    """The server could not be reached, refused us, or failed mid-transfer; safe to retry."""


# What a transfer raises when the connection breaks (paramiko's own, the socket's, end of stream).
BROKEN = (paramiko.SSHException, OSError, EOFError)


class HostKeyMismatch(SFTPError):
    """The server presented a host key other than the pinned one: never retried silently."""


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint of a public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def check_host_key(pinned: str, key: paramiko.PKey, where: str) -> None:
    """Raise HostKeyMismatch unless `key` is the pinned one."""
    pinned = pinned.strip()
    if pinned.startswith("SHA256:"):
        ok = pinned == fingerprint(key)
    else:
        parts = pinned.split()
        ok = len(parts) >= 2 and parts[0] == key.get_name() and parts[1] == key.get_base64()
    if not ok:
        raise HostKeyMismatch(
            f"host key mismatch for {where}: the server presented {key.get_name()} {fingerprint(key)}, "
            f"the feed pins {pinned.split()[0]} "
            f"{pinned if pinned.startswith('SHA256:') else _pinned_fingerprint(pinned)}; "
            "refusing to connect (if the server's key really changed, update sftp.host_key)")


def _pinned_fingerprint(line: str) -> str:
    try:
        raw = base64.b64decode(line.split()[1])
    except (IndexError, ValueError):
        return "(unreadable key)"
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def private_key(text: str, passphrase: str | None) -> paramiko.PKey:
    """A private key in OpenSSH or PEM form, of any type paramiko reads."""
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text), password=passphrase)
        except paramiko.SSHException:
            continue
    raise FeedConfigError("the private key is not an OpenSSH/PEM ed25519, ECDSA or RSA key (or its passphrase is wrong)")


def authenticate(transport: paramiko.Transport, server: Mapping[str, Any]) -> None:
    import os

    password = secret(server, "password")
    try:
        if password is not None:
            transport.auth_password(server["user"], password)
            return
        key_text = secret(server, "key") or ""
        passphrase = os.environ.get(server["key_passphrase_env"]) if server.get("key_passphrase_env") else None
        transport.auth_publickey(server["user"], private_key(key_text, passphrase))
    except paramiko.AuthenticationException:
        raise SFTPError(f"{server['user']}@{server['host']}:{server['port']} refused the credentials") from None


@contextmanager
def connect(server: Mapping[str, Any]) -> Iterator[paramiko.SFTPClient]:
    """An SFTP session on `server`, after its host key matched the pin."""
    where = f"{server['host']}:{server['port']}"
    try:
        sock = socket.create_connection((server["host"], server["port"]), timeout=server.get("timeout", 30))
    except OSError as exc:
        raise SFTPError(f"cannot reach {where}: {exc.strerror or exc}") from None
    transport = paramiko.Transport(sock)
    try:
        try:
            transport.start_client(timeout=server.get("timeout", 30))
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise SFTPError(f"SSH handshake with {where} failed: {exc}") from None
        check_host_key(server["host_key"], transport.get_remote_server_key(), where)
        authenticate(transport, server)
        client = paramiko.SFTPClient.from_transport(transport)
        if client is None:
            raise SFTPError(f"{where} opened no SFTP session")
        client.get_channel().settimeout(server.get("timeout", 30))
        yield client
    finally:
        transport.close()


def listdir(client: paramiko.SFTPClient, folder: str) -> list[tuple[str, int, int]]:
    """(name, size, mtime) of the regular files in `folder`."""
    out = []
    for entry in client.listdir_attr(folder):
        if entry.st_mode is not None and stat.S_ISREG(entry.st_mode):
            out.append((entry.filename, int(entry.st_size or 0), int(entry.st_mtime or 0)))
    return out


class Reader(io.RawIOBase):
    """A remote file read a window at a time: each window's requests are pipelined (one round
    trip), and no more than one window sits in memory, however large the file. (paramiko's
    whole-file prefetch would buffer everything it receives until it is read.)"""

    def __init__(self, handle: paramiko.SFTPFile, size: int, window: int = 1 << 20) -> None:
        super().__init__()
        self.handle, self.size, self.window = handle, size, window
        self.offset = 0
        self.buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        """Bytes handed on so far (the progress of an import)."""
        return self.offset - len(self.buffer)

    def readinto(self, target: Any) -> int:
        if not len(self.buffer):
            if self.offset >= self.size:
                return 0
            length = min(self.window, self.size - self.offset)
            data = b"".join(self.handle.readv([(self.offset, length)]))
            if len(data) != length:
                raise EOFError(f"the file ended at byte {self.offset + len(data)} of {self.size}")
            self.offset += length
            self.buffer = memoryview(data)
        count = min(len(target), len(self.buffer))
        target[:count] = self.buffer[:count]
        self.buffer = self.buffer[count:]
        return count


@contextmanager
def open_reader(client: paramiko.SFTPClient, path: str, window: int = 1 << 20) -> Iterator[io.BufferedReader]:
    """`path` as a buffered binary stream, read in windows of `window` bytes."""
    with client.open(path, "rb") as handle:
        yield io.BufferedReader(Reader(handle, int(handle.stat().st_size or 0), window), buffer_size=1 << 16)


def ensure_dir(client: paramiko.SFTPClient, path: str) -> None:
    """Create `path` unless it exists; another worker creating it at the same moment is fine
    (SFTP answers a mkdir over an existing folder with a bare "Failure")."""
    try:
        client.stat(path)
        return
    except FileNotFoundError:
        pass
    try:
        client.mkdir(path)
    except OSError:
        client.stat(path)       # raises when the folder still is not there


def replace(client: paramiko.SFTPClient, source: str, target: str) -> None:
    """Rename `source` to `target`, replacing it: atomic where the server offers POSIX rename
    (OpenSSH's posix-rename@openssh.com extension; asyncssh's server offers it too)."""
    try:
        client.posix_rename(source, target)
    except OSError:
        try:
            client.remove(target)
        except FileNotFoundError:
            pass
        client.rename(source, target)
