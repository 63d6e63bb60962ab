"""Real SFTP servers for the feed tests: the sandbox's (asyncssh) and OpenSSH's own sshd."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import paramiko

from hub.core.processes import free_port

SSHD = "/usr/sbin/sshd"
# CI sets this so a missing sshd fails the run instead of skipping the OpenSSH tests.
REQUIRE_OPENSSH = "HUB_TEST_REQUIRE_OPENSSH"


@dataclass
class Server:
    """A running SFTP server: where it is, what it serves, the key it presents, how to log in."""

    kind: str
    port: int
    root: Path              # the served folder on this machine
    remote_root: str        # the same folder as a client names it
    host_key: str           # "ssh-ed25519 AAAA...", as a feed pins it
    user: str
    server: dict[str, Any]  # the feeds file's `sftp` entry (credentials as files)
    state: Any = None       # the sandbox server's state (scripted cuts); None for OpenSSH
    proc: Any = None

    def remote(self, *parts: str) -> str:
        return "/".join([self.remote_root.rstrip("/"), *parts])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def client_key(folder: Path) -> tuple[Path, str]:
    """An ed25519 key pair for the hub: (private key file, public line)."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    path = folder / "client_key"
    key.write_private_key(str(path))
    os.chmod(path, 0o600)
    return path, " ".join(key.export_public_key("openssh").decode().split()[:2])


def sandbox_server(tmp: Path, auth: str = "key") -> Server:
    """The sandbox's SFTP server on its own thread (asyncssh), serving tmp/root."""
    from sandbox import sftp

    tmp.mkdir(parents=True, exist_ok=True)
    key_path, public = client_key(tmp)
    (tmp / "authorized_keys").write_text(public + "\n")
    root = tmp / "root"
    root.mkdir(exist_ok=True)
    state = sftp.SFTPState(root=root, host_key=sftp.load_host_key(tmp / "host_key"),
                           authorized_keys=str(tmp / "authorized_keys"))
    sftp.serve(state)
    if auth == "key":
        creds: dict[str, Any] = {"key_file": str(key_path)}
    else:
        (tmp / "password").write_text(sftp.PASSWORD + "\n")
        creds = {"password_file": str(tmp / "password")}
    entry = {"host": "127.0.0.1", "port": state.port, "user": sftp.USER, "host_key": sftp.public_line(state.host_key),
             "timeout": 20, **creds}
    return Server("sandbox", state.port, root, "/", entry["host_key"], sftp.USER, entry, state=state)


def openssh_server(tmp: Path) -> Server:
    """OpenSSH's sshd on a free port with its own host key, authorized_keys and config."""
    import getpass

    tmp.mkdir(parents=True, exist_ok=True)
    key_path, public = client_key(tmp)
    (tmp / "authorized_keys").write_text(public + "\n")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / "host_key")], check=True)
    root = tmp / "root"
    root.mkdir(exist_ok=True)
    port = free_port()
    config = tmp / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {tmp / 'host_key'}",
        f"AuthorizedKeysFile {tmp / 'authorized_keys'}", f"PidFile {tmp / 'sshd.pid'}",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
        "PermitRootLogin prohibit-password", "StrictModes no", "UsePAM no",
        "Subsystem sftp internal-sftp", "LogLevel ERROR", ""]))
    Path("/run/sshd").mkdir(exist_ok=True)          # sshd's privilege-separation directory
    with open(tmp / "sshd.log", "wb") as log:
        proc = subprocess.Popen([shutil.which("sshd") or SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
    host_key = " ".join((tmp / "host_key.pub").read_text().split()[:2])
    user = getpass.getuser()
    entry = {"host": "127.0.0.1", "port": port, "user": user, "host_key": host_key, "key_file": str(key_path),
             "timeout": 20}
    server = Server("openssh", port, root, str(root), host_key, user, entry, proc=proc)
    wait_ready(server, tmp / "sshd.log")
    return server


def wait_ready(server: Server, log: Path, timeout: float = 30) -> None:
    """Until sshd accepts an SFTP login (it forks its listener after start)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {log.read_text()[-2000:]}")
        try:
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        except OSError:
            time.sleep(0.1)
            continue
        transport = paramiko.Transport(sock)
        try:
            transport.connect(username=server.user, pkey=paramiko.Ed25519Key.from_private_key_file(server.server["key_file"]))
            return
        except (paramiko.SSHException, OSError, EOFError):
            time.sleep(0.1)
        finally:
            transport.close()
            sock.close()
    raise RuntimeError(f"sshd did not accept a login within {timeout:.0f} s: {log.read_text()[-2000:]}")


def openssh_available() -> bool:
    return bool(shutil.which("sshd") or os.path.exists(SSHD)) and bool(shutil.which("ssh-keygen"))
