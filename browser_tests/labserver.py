"""Start JupyterLab the way README says (``make lab``), wait until it answers, stop it for sure.

The server gets fresh, temporary Jupyter config, data, runtime, settings and workspace
directories, so the user's own Jupyter setup is neither read nor changed; it runs with
JupyterLab's default settings, as a student's does.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class LabServerError(RuntimeError):
    """The server did not start; the message carries the tail of its log."""


@dataclass(frozen=True)
class LabServer:
    """A running JupyterLab server: where it answers and the token that opens it."""

    base_url: str
    token: str
    log_path: Path

    def url(self, path: str) -> str:
        """The URL of ``path`` (e.g. ``lab/tree/x.ipynb``) with the token, as a user opens it."""
        return f"{self.base_url}/{path.lstrip('/')}?token={self.token}"

    def api(self, path: str, method: str = "GET", token: bool = True) -> int:
        """HTTP status of a REST call; ``token=False`` sends no credentials at all."""
        request = urllib.request.Request(f"{self.base_url}/api/{path}", method=method)
        if token:
            request.add_header("Authorization", f"token {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as err:
            return err.code

    def log_tail(self, lines: int | None = 60) -> str:
        """The last ``lines`` lines of the server's log (all of it for None), for failure messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:] if lines is not None else text.splitlines())


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _kill_leftover_kernels(runtime_dir: Path) -> None:
    """Kill, by pid, the kernels whose connection file lies in this server's runtime dir.

    jupyter_client starts each kernel in a session of its own, so stopping the server's process
    group does not reach them. A clean shutdown stops them; this is the fallback after another.
    """
    marker = str(runtime_dir).encode()
    for proc_dir in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc_dir / "cmdline").read_bytes()
        except OSError:
            continue  # ended meanwhile, or not ours to read
        if marker in cmdline:
            try:
                os.kill(int(proc_dir.name), signal.SIGKILL)
            except OSError:
                pass


def _stop(proc: subprocess.Popen, server: LabServer, runtime_dir: Path) -> None:
    """Stop the server: through its API, else its process group, and then any kernel left."""
    if proc.poll() is None:
        try:
            server.api("shutdown", method="POST")  # shuts its kernels down cleanly too
            proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            pass
    for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)  # make, and the jupyter it started
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            pass
    _kill_leftover_kernels(runtime_dir)


@contextmanager
def running_lab(home: Path, log_path: Path, start_timeout_s: float) -> Iterator[LabServer]:
    """``make lab`` on a free port of 127.0.0.1 with a random token, until the block ends.

    ``home`` (an empty directory) receives the server's Jupyter directories; its output goes to
    ``log_path``. Token login stays on: the token reaches the server through JUPYTER_TOKEN, not
    the command line, where any user's ``ps`` would show it.
    """
    runtime_dir = home / "runtime"
    token = secrets.token_hex(24)
    port = _free_port()
    # A fresh `make lab`, not a sub-make of `make test-browser` (whose jobserver is not ours).
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env.update(
        JUPYTER_TOKEN=token,
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(runtime_dir),
        JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        IPYTHONDIR=str(home / "ipython"),
        MPLCONFIGDIR=str(home / "matplotlib"),
    )
    # JupyterLab's default settings, as a student has them (with the course's overrides.json,
    # which `make setup` installs into the environment): no settings of the test's own.
    lab_args = f"--no-browser --port={port} --ServerApp.port_retries=0"
    server = LabServer(base_url=f"http://127.0.0.1:{port}", token=token, log_path=log_path)
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            ["make", "--no-print-directory", "lab", f"LAB_ARGS={lab_args}"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)  # a process group of its own, for the teardown
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if proc.poll() is not None:
                raise LabServerError(f"`make lab` exited with status {proc.returncode} before "
                                     f"answering; its log ({log_path}) ends:\n{server.log_tail()}")
            try:
                if server.api("status") == 200:
                    break
            except OSError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise LabServerError(f"JupyterLab did not answer on {server.base_url} within "
                                     f"{start_timeout_s:.0f} s; its log ({log_path}) ends:\n"
                                     f"{server.log_tail()}")
            time.sleep(0.5)
        yield server
    finally:
        _stop(proc, server, runtime_dir)
