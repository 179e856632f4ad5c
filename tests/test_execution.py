"""How the course executes notebooks: a lost wake-up costs a fraction of a second instead of a whole
timeout, a hanging cell fails fast and names its notebook and cell (in our runner and under nbval),
and the limits in the Makefile and in labs_lib.authoring.execution agree."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import zmq
import zmq.asyncio
from jupyter_client.session import Session

from labs_lib.authoring import execution
from labs_lib.authoring.execution import (CELL_TIMEOUT_S, POLL_SLICE_S, CellTimeout, PollingChannel, SinglePollChannel,
                                          execute_notebook)

ROOT = Path(__file__).resolve().parents[1]


def _lost_wakeup_receive(channel_class: type) -> tuple[float, PollingChannel]:
    """Send one message to a channel whose socket never hears about it (its reader is removed from
    the event loop, as when a readiness notification is lost) and time how long get_msg takes."""

    async def scenario() -> tuple[float, PollingChannel]:
        ctx = zmq.asyncio.Context()
        recv_sock, send_sock = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
        port = recv_sock.bind_to_random_port("tcp://127.0.0.1")
        send_sock.connect(f"tcp://127.0.0.1:{port}")
        session = Session(key=b"")
        channel = channel_class(recv_sock, session)
        try:
            start = time.perf_counter()
            waiting = asyncio.ensure_future(channel.get_msg(timeout=3.0))
            await asyncio.sleep(0.05)  # the channel now waits on the socket's reader ...
            asyncio.get_running_loop().remove_reader(recv_sock.FD)  # ... which is lost
            session.send(send_sock, "status", {"execution_state": "idle"})
            msg = await waiting
            assert msg["msg_type"] == "status"
            return time.perf_counter() - start, channel
        finally:
            recv_sock.close(linger=0)
            send_sock.close(linger=0)
            ctx.term()

    return asyncio.run(scenario())


def test_a_lost_wakeup_stalls_a_single_poll_until_its_timeout():
    """The failure this module exists for, reproduced deterministically: the message is there, the
    notification is not, and nbclient's single poll sleeps out its whole timeout."""
    seconds, channel = _lost_wakeup_receive(SinglePollChannel)
    assert seconds > 2.5
    assert channel.recovered == 1  # found by the final check at the end of the wait


def test_the_polling_channel_recovers_a_lost_wakeup_within_one_slice():
    seconds, channel = _lost_wakeup_receive(PollingChannel)
    assert seconds < POLL_SLICE_S + 0.3
    assert channel.recovered == 1
    assert [kind for kind, _, _ in channel.log] == ["status"]


def _notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# a test notebook")] + [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def test_a_hanging_cell_fails_fast_and_names_notebook_and_cell(tmp_path):
    nb = _notebook("x = 1", "import time\ntime.sleep(600)", "y = 2")
    start = time.perf_counter()
    with pytest.raises(CellTimeout) as err:
        execute_notebook(nb, "solutions/99_hang.ipynb", tmp_path, cell_timeout=3)
    assert time.perf_counter() - start < 60
    assert str(err.value) == ("solutions/99_hang.ipynb: code cell 2 (cell 2) did not finish within 3 s: "
                              "`import time…`")


def test_an_execution_records_every_cell(tmp_path):
    nb = _notebook("import time\ntime.sleep(0.3)", "print('hi')")
    run = execute_notebook(nb, "x.ipynb", tmp_path)
    assert [c.index for c in run.cells] == [1, 2]
    assert run.cells[0].kernel_s >= 0.25 and not run.stalls
    assert all(c.lag_s < 1.0 for c in run.cells)
    assert nb.cells[2].outputs[0]["text"] == "hi\n"
    # the kernel's messages went through PollingChannel, whose log names the latest of each cell
    assert run.cells[1].latest.startswith(("shell ", "iopub "))


def test_an_unfinished_exercise_stops_run_all_with_one_short_message(tmp_path):
    # In a real kernel: the cell that reaches the stub fails (Run All stops there) with a short error
    # that names the exercise, instead of the traceback through every frame that led to it.
    setup = ("from labs_lib.checks import explain_unfinished_exercises\nexplain_unfinished_exercises()\n"
             "def step(x):\n    raise NotImplementedError('Exercise: MyEulerSimulator.step')")
    nb = _notebook(setup, "def simulate(x):\n    return step(x)\n\nsimulate(1)", "raise NotImplementedError('other')")
    execute_notebook(nb, "x.ipynb", tmp_path, allow_errors=True)
    stopped, (other_error,) = nb.cells[2].outputs, nb.cells[3].outputs
    (stub_error,) = [o for o in stopped if o.output_type == "error"]
    # and, before the error, the line of JavaScript that brings the stopped cell into view
    (scroll,) = [o for o in stopped if o.output_type == "display_data"]
    assert "scrollIntoView" in scroll.data["application/javascript"]
    assert stub_error.ename == "NotImplementedError"
    assert stub_error.evalue.startswith("Exercise: MyEulerSimulator.step is not written yet")
    assert len(stub_error.traceback) <= 2 and "simulate" not in "".join(stub_error.traceback)
    other_text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(other_error.traceback))  # without the colour codes
    assert "Traceback (most recent call last)" in other_text and "----> 1 raise" in other_text, other_text
    with pytest.raises(Exception, match="MyEulerSimulator.step is not written yet"):
        execute_notebook(_notebook(setup, "step(1)", "print('not reached')"), "y.ipynb", tmp_path)


def test_the_managers_hand_out_their_channels():
    assert isinstance(execution.PollingKernelManager().client().shell_channel, PollingChannel)
    assert isinstance(execution.PollingKernelManager().client().iopub_channel, PollingChannel)
    assert isinstance(execution.SinglePollKernelManager().client().shell_channel, SinglePollChannel)


def test_a_hanging_cell_fails_nbval_fast_and_names_notebook_and_cell(tmp_path):
    """What `make test` runs over solutions/: nbval with the Makefile's cell limit (here 3 s)."""
    path = tmp_path / "99_hang.ipynb"
    nbformat.write(_notebook("x = 1", "import time\ntime.sleep(600)"), path)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", str(path), "--nbval", "--nbval-current-env",
                           "--nbval-cell-timeout=3", "-p", "no:cacheprovider", "-q"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert time.perf_counter() - start < 90
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "99_hang.ipynb::Cell 1" in out and "Timeout" in out and "time.sleep(600)" in out, out[-2000:]


def test_the_makefile_and_the_runner_share_one_cell_limit():
    makefile = (ROOT / "Makefile").read_text()
    limit = re.search(r"^NBVAL_CELL_TIMEOUT \?= (\d+)$", makefile, re.M)
    assert limit and int(limit.group(1)) == CELL_TIMEOUT_S


def test_the_stress_command_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        execution.main(["--runs", "0"])
    with pytest.raises(SystemExit):
        execution.main(["--only", "98"])
    assert "no notebooks match" in capsys.readouterr().err
