"""Executing the course notebooks headless: every cell bounded, every wait for the kernel recorded.

The student-notebook tests, the stress run (``make stress``) and the instructors' re-execution of the
solutions run notebooks through :func:`execute_notebook`: nbclient with two changes.

* **The client never depends on a single wake-up.** nbclient waits for each kernel message on an
  asyncio ZeroMQ socket, which learns that a message has arrived from one readiness notification of
  the socket's file descriptor. Now and then that notification is lost: the kernel has replied, the
  reply sits in the client's socket, and the client sleeps until the cell's timeout runs out, then
  finds the reply and carries on as if nothing had happened (measured on Lab 04's ``interact`` cell;
  the upstream reports are nbclient #312 and nbconvert #2003, #2029). :class:`PollingChannel` polls
  in slices of :data:`POLL_SLICE_S` instead, so a lost notification costs at most one slice, and it
  counts every message it recovers that way. ``single_poll=True`` restores nbclient's own waiting, to
  measure the difference (``python -m labs_lib.authoring.execution --single-poll``).
* **A cell that does not finish fails, and says where.** A cell that runs past ``cell_timeout``
  raises :class:`CellTimeout` naming the notebook, the cell and its first line.

Per cell, :class:`CellRecord` keeps the kernel's own run time (its busy and idle timestamps) and the
lag between the kernel's last message and its receipt by the client: 120 s in a stalled run (the
cell limit), milliseconds otherwise.

nbval, which executes the solutions in ``make test``, uses jupyter_client's blocking client: its
polls ask ZeroMQ for the socket's state each time (level-triggered), so it cannot miss a message.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

import nbformat
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError
from traitlets import DottedObjectName, Type

from .notebooks import course_notebooks, read_notebook, store_widget_state_as_jupyterlab_does

# The longest cell of the course runs 47 s on the 2-core CPU (Lab 07's training); 120 s leaves room
# for a loaded machine and still fails a hanging cell within two minutes.
CELL_TIMEOUT_S = 120
# How long one poll of a ZeroMQ socket may wait before the socket is looked at again.
POLL_SLICE_S = 0.2
# A message that reaches the client this long after the kernel sent it is a stall: the client was
# not busy (it only waits), so a lag of seconds can only be a missed wake-up.
STALL_LAG_S = 2.0


def _sent_at(msg: dict[str, Any]) -> float:
    """The kernel's send time of a message, in seconds since the epoch."""
    date = msg["header"]["date"]
    if isinstance(date, str):
        date = dt.datetime.fromisoformat(date.replace("Z", "+00:00"))
    return date.timestamp()


class PollingChannel(AsyncZMQSocketChannel):
    """An asyncio ZeroMQ channel whose waits never depend on one readiness notification.

    ``get_msg(timeout)`` polls the socket for at most :data:`POLL_SLICE_S` at a time until a message
    is ready or ``timeout`` has passed. Each new poll reads the socket's state afresh, so a message whose
    notification was lost is found by the next slice. ``recovered`` counts those messages; ``lags``
    holds, per message, the seconds between the kernel's send time and its receipt here.
    """

    slice_s: float | None = POLL_SLICE_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recovered = 0
        # (message type, kernel's send time, receipt time) of every message, in order of receipt
        self.log: list[tuple[str, float, float]] = []

    async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:  # type: ignore[override]
        assert self.socket is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            wait = (remaining if self.slice_s is None
                    else min(self.slice_s, self.slice_s if remaining is None else remaining))
            started = time.time()
            ready = await self.socket.poll(None if wait is None else int(wait * 1000))
            if ready:
                msg = await self._recv()
                received, sent = time.time(), _sent_at(msg)
                # The poll ran out its whole wait, then found a message that had been waiting for a
                # while: the notification that should have woken it was lost.
                if wait and received - started >= 0.9 * wait and received - sent > 0.05:
                    self.recovered += 1
                self.log.append((msg["header"]["msg_type"], sent, received))
                return msg
            if deadline is not None and time.monotonic() >= deadline:
                raise Empty


class SinglePollChannel(PollingChannel):
    """nbclient's own behaviour (one poll per wait), kept to measure the stall it causes."""

    slice_s = None


class PollingKernelClient(AsyncKernelClient):
    shell_channel_class = Type(PollingChannel)  # type: ignore[assignment]
    iopub_channel_class = Type(PollingChannel)  # type: ignore[assignment]


class SinglePollKernelClient(AsyncKernelClient):
    shell_channel_class = Type(SinglePollChannel)  # type: ignore[assignment]
    iopub_channel_class = Type(SinglePollChannel)  # type: ignore[assignment]


class PollingKernelManager(AsyncKernelManager):
    client_class = DottedObjectName("labs_lib.authoring.execution.PollingKernelClient")
    client_factory = Type(klass=PollingKernelClient)  # type: ignore[assignment]


class SinglePollKernelManager(AsyncKernelManager):
    client_class = DottedObjectName("labs_lib.authoring.execution.SinglePollKernelClient")
    client_factory = Type(klass=SinglePollKernelClient)  # type: ignore[assignment]


class CellTimeout(Exception):
    """A notebook cell did not finish within its limit; the message names the notebook and the cell."""


@dataclass
class CellRecord:
    """One executed code cell: ``index`` among all cells, ``kernel_s`` from the kernel's busy to idle
    timestamps, ``wall_s`` as the client saw it, ``lag_s`` from the kernel's last message to its receipt."""

    index: int
    first_line: str
    kernel_s: float
    wall_s: float
    lag_s: float
    # the message that reached the client latest after it was sent: "channel msg_type lag"
    latest: str = ""

    @property
    def stalled(self) -> bool:
        return self.lag_s > STALL_LAG_S


@dataclass
class Execution:
    """What :func:`execute_notebook` measured: per-cell records, recovered wake-ups, total seconds."""

    name: str
    seconds: float
    cells: list[CellRecord] = field(default_factory=list)
    recovered: int = 0

    @property
    def stalls(self) -> list[CellRecord]:
        return [c for c in self.cells if c.stalled]


def _first_line(source: str) -> str:
    lines = [line for line in source.strip().splitlines() if line.strip()]
    return (lines[0][:80] + ("…" if len(lines[0]) > 80 or len(lines) > 1 else "")) if lines else ""


def execute_notebook(nb: nbformat.NotebookNode, name: str, cwd: Path, *, cell_timeout: int = CELL_TIMEOUT_S,
                     allow_errors: bool = False, skip_tag: str | None = None,
                     single_poll: bool = False) -> Execution:
    """Execute ``nb`` in place (outputs stored in it) with the kernel started in ``cwd``.

    ``name`` is how errors name the notebook; ``skip_tag`` drops cells carrying that tag (the tests
    skip ``nbval-skip``, the Colab setup cell, as nbval does); ``single_poll`` restores nbclient's own
    waiting, to measure what :class:`PollingChannel` prevents. Raises :class:`CellTimeout` when a cell
    runs past ``cell_timeout`` seconds.
    """
    if skip_tag is not None:
        nb.cells = [c for c in nb.cells if skip_tag not in c.metadata.get("tags", [])]
    record = Execution(name, 0.0)
    started: dict[int, float] = {}
    channels: list[PollingChannel] = []

    def on_execute(cell: nbformat.NotebookNode, cell_index: int) -> None:
        started[cell_index] = time.time()
        if not channels and client.kc is not None:  # the kernel client exists from the first cell on
            channels.extend(ch for ch in (client.kc.shell_channel, client.kc.iopub_channel)
                            if isinstance(ch, PollingChannel))

    def on_executed(cell: nbformat.NotebookNode, cell_index: int, execute_reply: dict[str, Any]) -> None:
        now = time.time()
        stamps = cell.metadata.get("execution", {})
        times = {k: dt.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp() for k, v in stamps.items()}
        busy, idle = times.get("iopub.status.busy", now), times.get("iopub.status.idle", now)
        last_sent = max(idle, times.get("shell.execute_reply", idle))
        begin = started.get(cell_index, now)
        mine = [(recv - sent, f"{name} {kind} {recv - sent:.2f} s") for name, ch in zip(("shell", "iopub"), channels)
                for kind, sent, recv in ch.log if recv >= begin]
        record.cells.append(CellRecord(cell_index, _first_line(cell.source), idle - busy, now - begin,
                                       max(0.0, now - last_sent), max(mine)[1] if mine else ""))

    manager = SinglePollKernelManager if single_poll else PollingKernelManager
    client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3", allow_errors=allow_errors,
                            kernel_manager_class=manager, on_cell_execute=on_execute,
                            on_cell_executed=on_executed, resources={"metadata": {"path": str(cwd)}})
    t0 = time.perf_counter()
    try:
        client.execute()
    except CellTimeoutError:
        index = max(started, key=started.get) if started else -1
        cell = nb.cells[index] if index >= 0 else None
        code_no = sum(c.cell_type == "code" for c in nb.cells[:index + 1])
        raise CellTimeout(f"{name}: code cell {code_no} (cell {index}) did not finish within {cell_timeout} s: "
                          f"`{_first_line(cell.source) if cell else '?'}`") from None
    finally:
        record.seconds = time.perf_counter() - t0
        record.recovered = sum(ch.recovered for ch in channels)
    return record


def execute_file(path: Path, **kwargs: Any) -> tuple[nbformat.NotebookNode, Execution]:
    """Read the notebook at ``path`` and execute it in its own folder (see :func:`execute_notebook`).

    The notebook comes back with its widget state stored as JupyterLab would save it
    (:func:`~.notebooks.store_widget_state_as_jupyterlab_does`), so that opening and saving the
    written file changes nothing.
    """
    nb = read_notebook(path)
    name = f"{path.parent.name}/{path.name}"
    execution = execute_notebook(nb, name, path.parent, **kwargs)
    store_widget_state_as_jupyterlab_does(nb)
    return nb, execution


# --- the stress run: every notebook, N times --------------------------------------------------------


def _stress_one(path: str, single_poll: bool, cell_timeout: int) -> dict[str, Any]:
    """One execution for the stress run, in a worker process; a plain dict so it can travel back."""
    p = Path(path)
    student = p.parent.name != "solutions"
    try:
        _, ex = execute_file(p, allow_errors=student, skip_tag="nbval-skip", single_poll=single_poll,
                             cell_timeout=cell_timeout)
    except Exception as err:  # a failure is a result of the stress run, not the end of it
        return {"path": path, "seconds": None, "error": f"{type(err).__name__}: {err}"[:300],
                "stalls": [], "recovered": 0}
    return {"path": path, "seconds": ex.seconds, "error": None, "recovered": ex.recovered,
            "stalls": [(c.index, c.first_line, round(c.lag_s, 1), c.latest) for c in ex.stalls]}


def stress(paths: list[Path], runs: int, jobs: int = 1, single_poll: bool = False,
           cell_timeout: int = CELL_TIMEOUT_S) -> list[dict[str, Any]]:
    """Execute every notebook in ``paths`` ``runs`` times (``jobs`` at once); print each result as it
    comes and a table at the end; return the results."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from statistics import median

    order = [str(p.resolve()) for _ in range(runs) for p in paths]
    shown = {str(p.resolve()): f"{p.parent.name}/{p.name}" for p in paths}
    results = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_stress_one, p, single_poll, cell_timeout) for p in order]
        for k, fut in enumerate(as_completed(futures), 1):
            r = fut.result()
            results.append(r)
            status = r["error"] or (f"STALL at {r['stalls']}" if r["stalls"] else "ok")
            secs = f"{r['seconds']:6.1f} s" if r["seconds"] is not None else "   --   "
            print(f"[{k:4d}/{len(order)}] {shown[r['path']]:48s} {secs}  recovered {r['recovered']}  {status}",
                  flush=True)
    print(f"\n{'notebook':48s} runs  median    min    max  stalls  recovered  failures")
    for p in (str(p.resolve()) for p in paths):
        mine = [r for r in results if r["path"] == p]
        secs = [r["seconds"] for r in mine if r["seconds"] is not None] or [float("nan")]
        print(f"{shown[p]:48s} {len(mine):4d} {median(secs):6.1f} {min(secs):6.1f} {max(secs):6.1f} "
              f"{sum(len(r['stalls']) for r in mine):7d} {sum(r['recovered'] for r in mine):10d} "
              f"{sum(r['error'] is not None for r in mine):9d}")
    n_stalls = sum(len(r["stalls"]) for r in results)
    n_fail = sum(r["error"] is not None for r in results)
    print(f"\n{len(results)} executions, {n_stalls} stalls (a kernel message received more than {STALL_LAG_S:g} s "
          f"after it was sent), {sum(r['recovered'] for r in results)} lost wake-ups recovered, {n_fail} failures.")
    return results


def main(argv: list[str] | None = None) -> int:
    import argparse

    root = Path(__file__).resolve().parents[2]  # labs_lib/authoring/ → the course
    parser = argparse.ArgumentParser(prog="python -m labs_lib.authoring.execution", description=(
        "Execute every course notebook, solution and student version, N times; report stalls "
        "and the spread of run times."))
    parser.add_argument("--runs", type=int, default=20, help="executions of each notebook (default 20)")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks executed at once (default 1)")
    parser.add_argument("--only", nargs="*", default=[], help="notebook numbers to run, e.g. 04 05")
    parser.add_argument("--versions", nargs="*", default=["solutions", "notebooks"],
                        choices=["solutions", "notebooks"], help="which versions (default both)")
    parser.add_argument("--single-poll", action="store_true",
                        help="wait as nbclient does (one poll per wait), to measure the stall this module prevents")
    parser.add_argument("--cell-timeout", type=int, default=CELL_TIMEOUT_S)
    args = parser.parse_args(argv)
    if args.runs < 1 or args.jobs < 1:
        parser.error("--runs and --jobs must be at least 1")
    paths = [p for v in args.versions for p in course_notebooks(root / v) if not args.only or p.name[:2] in args.only]
    if not paths:
        parser.error(f"no notebooks match --only {' '.join(args.only)}")
    results = stress(paths, args.runs, args.jobs, args.single_poll, args.cell_timeout)
    return 1 if any(r["stalls"] or r["error"] for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
