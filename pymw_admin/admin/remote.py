"""One Host interface over SSH (fabric) and a local twin: run, sudo, put, get, read and write files.

Provisioning steps talk to a :class:`Host`, never to paramiko. Commands are shell strings run by the
remote user's shell; ``sudo=True`` wraps them in ``sudo -n`` (never prompts: CI has no stdin) unless
we already are root. Secrets travel on a command's standard input (``stdin=``) or through
:meth:`Host.write_file`, never in argv. Every failure to reach, log in or become root is a
:class:`~pymw_admin.errors.RemoteError` with a one-line message.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pymw_admin.errors import RemoteError, UsageError

if TYPE_CHECKING:
    from paramiko import Channel  # paramiko loads only when a connection is made

T = TypeVar("T")


class ConnectionLost(RemoteError):
    """The SSH connection dropped in the middle of a command: what it did on the host is
    unknown, so the caller says which step it was and that a re-run converges."""


@dataclass(frozen=True)
class Result:
    """What one command did on a host."""

    command: str
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def last_lines(self, count: int = 3, limit: int = 400) -> str:
        """The last ``count`` lines of stderr (of stdout when stderr is empty) on one line,
        joined by " | ", at most ``limit`` characters (the end kept: that is where errors are)."""
        for text in (self.stderr, self.stdout):
            lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
            if lines:
                joined = " | ".join(lines[-count:])
                return joined if len(joined) <= limit else "..." + joined[-limit:]
        return "no output"


@dataclass(frozen=True)
class HostSpec:
    """How to reach a host: an address or ssh-config alias, and optional user, port and key."""

    host: str
    user: str | None = None
    port: int | None = None
    key: str | None = None
    ssh_config: str | None = None
    connect_timeout: float = 10.0

    @property
    def is_local(self) -> bool:
        return self.host in ("local", "localhost-local")


def _sudo_wrap(command: str, user: str | None) -> str:
    as_user = f"-u {shlex.quote(user)} " if user else ""
    # -H: the target user's HOME; sh -c keeps cd/pipes/redirections inside the privileged shell
    return f"sudo -n -H {as_user}-- sh -c {shlex.quote(command)}"


READ_SECONDS = 30  # reading a file: a FIFO or a stalled mount ends with an error, not a hang


def root_only_parents(path: str) -> str:
    """Shell that fails unless every existing directory above ``path`` is root's and writable
    by root alone: only there may root read or write (elsewhere its user could swap in a link).
    """
    return (
        f"d=$(dirname -- {shlex.quote(path)}); while :; do "
        'if [ -e "$d" ] && { [ "$(stat -c %u -- "$d")" != 0 ] || '
        '[ -n "$(find "$d" -maxdepth 0 -perm /022)" ]; }; then '
        'echo "refusing to touch it as root: $d is writable by others than root" >&2; exit 1; fi; '
        '[ "$d" = / ] && break; d=$(dirname -- "$d"); done'
    )


_NO_SUDO_MARKERS = ("a password is required", "is not in the sudoers", "not allowed to execute",
                    "may not run sudo", "sudo: command not found", "sudo: not found")


class Host:
    """A machine we provision. Subclasses implement :meth:`_exec`, :meth:`put`, :meth:`get`."""

    name: str
    login_user: str
    address: str = "localhost"  # the host's network address, for default URLs

    def __init__(self) -> None:
        self.facts: dict[str, Any] = {}
        self._is_root: bool | None = None

    # -- to implement -------------------------------------------------------------------------
    def _exec(self, command: str, stdin: bytes | None, timeout: float | None) -> Result:
        raise NotImplementedError

    def put(self, local: str | Path, remote: str) -> None:
        raise NotImplementedError

    def get(self, remote: str, local: str | Path) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the connection (a no-op locally)."""

    # -- commands -----------------------------------------------------------------------------
    def run(
        self,
        command: str,
        *,
        sudo: bool = False,
        user: str | None = None,
        stdin: str | bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
        what: str = "",
        redact: Sequence[str] = (),
    ) -> Result:
        """Run a shell command; ``sudo`` as root (or ``user``); raise RemoteError if it fails.

        ``redact``: secrets the command's stdin carries. A program's error line may quote its
        input (MariaDB quotes the statement), so each is shown as ``***`` in an error; such a
        command needs ``what`` to name it.
        """
        if redact and not what:
            raise ValueError("a command whose stdin carries a secret needs what=")
        wrapped = command
        if sudo or user:
            if user and user != "root":
                wrapped = _sudo_wrap(command, user)
            elif not self.is_root():
                wrapped = _sudo_wrap(command, None)
        data = stdin.encode() if isinstance(stdin, str) else stdin
        label = what or command.split("\n", 1)[0][:80]
        try:
            result = self._exec(wrapped, data, timeout)
        except ConnectionLost as exc:
            # still a ConnectionLost: a plan says a re-run converges
            raise ConnectionLost(f"{label}, on {exc}") from None
        except RemoteError as exc:
            if not what or "timed out" not in str(exc):
                raise
            # a timeout names `what`, never the command line
            raise RemoteError(f"{self.name}: {what} timed out after {timeout or 0:.0f} s"
                              ) from None
        if sudo or user:
            self._check_sudo(result)
        if check and not result.ok:
            # the step, the exit status and the command's own last words: enough to act on
            lines = result.last_lines()
            for secret in redact:
                if secret:
                    lines = lines.replace(secret, "***")
            raise RemoteError(f"{label} failed on {self.name} (exit {result.exit_code}): {lines}")
        return Result(command, result.exit_code, result.stdout, result.stderr)

    def sudo(self, command: str, **kwargs: Any) -> Result:
        return self.run(command, sudo=True, **kwargs)

    def stream(self, command: str, write: Callable[[bytes], object], *, sudo: bool = False,
               user: str | None = None) -> int:
        """Run a command, passing its output (stdout and stderr merged) to ``write`` as it comes;
        return its exit status. For following logs; Ctrl-C stops only the local end."""
        wrapped = command
        if user and user != "root":
            wrapped = _sudo_wrap(command, user)
        elif (sudo or user) and not self.is_root():
            wrapped = _sudo_wrap(command, None)
        return self._stream(wrapped, write)

    def _stream(self, command: str, write: Callable[[bytes], object]) -> int:
        raise NotImplementedError

    def is_root(self) -> bool:
        if self._is_root is None:
            self._is_root = self._exec("id -u", None, 30).stdout.strip() == "0"
        return self._is_root

    def _check_sudo(self, result: Result) -> None:
        if result.ok or self.is_root():
            return
        if any(marker in result.stderr for marker in _NO_SUDO_MARKERS):
            raise RemoteError(
                f"{self.login_user}@{self.name} cannot use sudo without a password; give that "
                "user passwordless sudo (or connect as root with --user root)"
            )

    def check_sudo(self) -> None:
        """Fail early, with one line, when we cannot become root."""
        self.run("true", sudo=True, what="sudo")

    # -- files ----------------------------------------------------------------------------------
    def exists(self, path: str, *, sudo: bool = True) -> bool:
        return self.run(f"test -e {shlex.quote(path)}", sudo=sudo, check=False).ok

    def read_text(self, path: str, *, sudo: bool = True, user: str | None = None) -> str | None:
        """The file's text, or None when it does not exist.

        ``user``: read it as that user, for a file in a tree the user controls (the project's
        owner): root never follows a link planted there. As root, the file's directories must be
        root's alone. Only a regular file is read, and never for long (a FIFO does not hang us).
        """
        q = shlex.quote(path)
        script = (f'if [ -e {q} ] && [ ! -f {q} ]; then echo "{path}: not a regular file" >&2; '
                  f"exit 1; fi; timeout {READ_SECONDS} cat -- {q}")
        if user is None and sudo:
            script = root_only_parents(path) + " && " + script
        result = self.run(script, sudo=sudo and user is None, user=user, check=False)
        if not result.ok:
            if "No such file" in result.stderr or "Not a directory" in result.stderr:
                return None
            if user is not None and f"unknown user {user}" in result.stderr:
                return None  # an account not made yet owns no file (a dry run's facts)
            raise RemoteError(f"reading {path} failed on {self.name} (exit {result.exit_code}): "
                              f"{result.last_lines()}")
        return result.stdout

    def write_file(
        self,
        path: str,
        content: str | bytes,
        *,
        mode: int = 0o644,
        owner: str = "root",
        group: str | None = None,
        sudo: bool = True,
    ) -> None:
        """Write a file atomically through stdin: it is never readable by others, even briefly.

        A file for another ``owner`` is written by that user (its directory is theirs: were root
        to write there, a link swapped in for the temporary file would hand them any file).
        Root writes only where the directories are root's alone, and refuses otherwise.
        """
        q = shlex.quote(path)
        if sudo and owner != "root":
            chgrp = f'chgrp {shlex.quote(group)} "$f" && ' if group else ""
            script = (
                f'f=$(mktemp {q}.XXXXXX) && cat > "$f" && {chgrp}chmod {mode:o} "$f" '
                f'&& mv -f "$f" {q} || {{ rm -f "$f"; exit 1; }}'
            )
            self.run(script, user=owner, stdin=content, what=f"writing {path}")
            return
        og = shlex.quote(f"{owner}:{group or owner}")
        script = (
            f'f=$(mktemp {q}.XXXXXX) && cat > "$f" && chown {og} "$f" '
            f'&& chmod {mode:o} "$f" && mv -f "$f" {q} || {{ rm -f "$f"; exit 1; }}'
        )
        if sudo:
            script = root_only_parents(path) + " && { " + script + "; }"
        self.run(script, sudo=sudo, stdin=content, what=f"writing {path}")

    def fact(self, name: str, read: Callable[[], T]) -> T:
        """A cached reading of the host; :meth:`forget` drops it after a change."""
        if name not in self.facts:
            self.facts[name] = read()
        return self.facts[name]  # type: ignore[no-any-return,unused-ignore]

    def forget(self, *names: str) -> None:
        for name in names or list(self.facts):
            self.facts.pop(name, None)


class LocalHost(Host):
    """This machine, through /bin/sh: the twin of :class:`SSHHost` for local provisioning."""

    def __init__(self) -> None:
        super().__init__()
        self.name = "localhost"
        self.login_user = os.environ.get("USER") or str(os.getuid())

    def _exec(self, command: str, stdin: bytes | None, timeout: float | None) -> Result:
        try:
            proc = subprocess.run(
                ["/bin/sh", "-c", command],
                input=stdin if stdin is not None else b"",
                capture_output=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise RemoteError(
                f"localhost: timed out after {timeout:.0f} s: {command[:80]}"
            ) from exc
        return Result(
            command,
            proc.returncode,
            proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace"),
        )

    def _stream(self, command: str, write: Callable[[bytes], object]) -> int:
        proc = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        try:
            while chunk := os.read(proc.stdout.fileno(), 65536):
                write(chunk)
            return proc.wait()
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
            proc.stdout.close()

    def put(self, local: str | Path, remote: str) -> None:
        self.run(f"cp {shlex.quote(str(local))} {shlex.quote(remote)}")

    def get(self, remote: str, local: str | Path) -> None:
        self.run(f"cp {shlex.quote(remote)} {shlex.quote(str(local))}")


@dataclass
class SSHHost(Host):
    """A host over SSH: fabric makes the connection (ssh config aliases, keys, agent)."""

    spec: HostSpec
    _conn: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        Host.__init__(self)
        self.name = self.spec.host
        self.login_user = self.spec.user or ""

    def connect(self) -> SSHHost:
        import paramiko
        from fabric import Config, Connection

        spec = self.spec
        if spec.key and not Path(spec.key).expanduser().is_file():
            raise UsageError(f"no such key file: {spec.key}")
        if spec.ssh_config and not Path(spec.ssh_config).expanduser().is_file():
            raise UsageError(f"no such ssh config file: {spec.ssh_config}")
        config = Config(runtime_ssh_path=spec.ssh_config) if spec.ssh_config else Config()
        kwargs: dict[str, Any] = {"banner_timeout": 15,
                                  "auth_timeout": 15}
        if spec.key:
            kwargs["key_filename"] = [str(Path(spec.key).expanduser())]
            kwargs["look_for_keys"] = False
        conn = Connection(spec.host, user=spec.user, port=spec.port, config=config,
                          connect_kwargs=kwargs, connect_timeout=spec.connect_timeout)
        where = f"{conn.user}@{conn.host}:{conn.port}"
        self.login_user = conn.user
        self.address = conn.host
        self.name = conn.host if spec.host == conn.host else f"{spec.host} ({conn.host})"
        try:
            conn.open()
        except paramiko.AuthenticationException as exc:
            raise RemoteError(
                f"{where} refused our key ({exc}); check --user and --key, or the ssh agent"
            ) from None
        except paramiko.SSHException as exc:
            text = str(exc)
            if "private key" in text.lower() or "not a valid" in text.lower():
                raise RemoteError(f"cannot use the key for {where}: {text}") from None
            raise RemoteError(f"ssh to {where} failed: {text}") from None
        except (TimeoutError, OSError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            if isinstance(exc, TimeoutError | socket.timeout):
                reason = f"no answer within {spec.connect_timeout:.0f} s"
            raise RemoteError(f"cannot reach {where}: {reason}") from None
        self._conn = conn
        return self

    def _open_channel(self) -> Channel:
        """A new session channel on the (re)used connection."""
        if self._conn is None:
            self.connect()
        assert self._conn is not None
        transport = self._conn.client.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectionLost(f"{self.name}: the ssh connection was lost")
        try:
            return transport.open_session()
        except (EOFError, OSError, _ssh_exception()) as exc:
            raise self._lost(exc) from None

    def _lost(self, exc: BaseException | None = None) -> ConnectionLost:
        # the system's reason ("Connection reset by peer"), never paramiko's own words
        # ("Socket is closed"), which tell a user nothing
        why = getattr(exc, "strerror", None)
        return ConnectionLost(f"{self.name}: the ssh connection was lost"
                              + (f" ({why})" if why else ""))

    def _exec(self, command: str, stdin: bytes | None, timeout: float | None) -> Result:
        try:
            return self._exec_on_channel(command, stdin, timeout)
        except (EOFError, OSError, _ssh_exception()) as exc:
            raise self._lost(exc) from None

    def _exec_on_channel(self, command: str, stdin: bytes | None,
                         timeout: float | None) -> Result:
        chan = self._open_channel()
        try:
            chan.exec_command(command)
            if stdin:
                # the command may end, or close its stdin, before reading it all: its exit
                # status and stderr, read below, then say why
                with contextlib.suppress(OSError):
                    chan.sendall(stdin)
            if not chan.closed:
                chan.shutdown_write()
            out, err = bytearray(), bytearray()
            deadline = time.monotonic() + timeout if timeout else None
            while True:
                busy = False
                while chan.recv_ready():
                    out += chan.recv(65536)
                    busy = True
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                    busy = True
                pending = chan.recv_ready() or chan.recv_stderr_ready()
                if chan.exit_status_ready() and not pending:
                    break
                if deadline and time.monotonic() > deadline:
                    raise RemoteError(
                        f"{self.name}: timed out after {timeout:.0f} s: {command[:80]}"
                    )
                if not busy:
                    time.sleep(0.002)
            code = chan.recv_exit_status()
            transport = chan.get_transport()
            if code == -1 and (transport is None or not transport.is_active()):
                raise self._lost()  # closed under the command: no exit status came
        finally:
            chan.close()
        return Result(command, code, out.decode(errors="replace"), err.decode(errors="replace"))

    def _stream(self, command: str, write: Callable[[bytes], object]) -> int:
        try:
            return self._stream_on_channel(command, write)
        except (EOFError, OSError, _ssh_exception()) as exc:
            raise self._lost(exc) from None

    def _stream_on_channel(self, command: str, write: Callable[[bytes], object]) -> int:
        chan = self._open_channel()
        try:
            chan.set_combine_stderr(True)
            chan.exec_command(command)
            chan.shutdown_write()
            chan.settimeout(1.0)
            while True:
                try:
                    chunk = chan.recv(65536)
                except TimeoutError:
                    if not chan.get_transport().is_active():
                        raise RemoteError(f"{self.name}: the ssh connection was lost") from None
                    continue
                if not chunk:
                    break
                write(chunk)
            if not chan.exit_status_ready() and not chan.get_transport().is_active():
                raise RemoteError(f"{self.name}: the ssh connection was lost")
            return chan.recv_exit_status()
        finally:
            chan.close()

    def put(self, local: str | Path, remote: str) -> None:
        if self._conn is None:
            self.connect()
        self._transfer(f"copying {local} to {self.name}:{remote}",
                       lambda: self._conn.put(str(local), remote))

    def get(self, remote: str, local: str | Path) -> None:
        if self._conn is None:
            self.connect()
        self._transfer(f"copying {self.name}:{remote} to {local}",
                       lambda: self._conn.get(remote, str(local)))

    def _transfer(self, what: str, copy: Callable[[], object]) -> None:
        try:
            copy()
        except (EOFError, OSError, _ssh_exception()) as exc:
            reason = getattr(exc, "strerror", None) or (
                "the ssh connection was lost" if not isinstance(exc, FileNotFoundError)
                else "no such file")
            raise RemoteError(f"{what} failed: {reason}") from None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _ssh_exception() -> type[Exception]:
    import paramiko

    return paramiko.SSHException


def connect(spec: HostSpec) -> Host:
    """Open a Host for ``spec``: ``local`` means this machine, anything else SSH."""
    if spec.is_local:
        return LocalHost()
    return SSHHost(spec).connect()
