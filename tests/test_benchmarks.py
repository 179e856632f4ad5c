"""The benchmarks compare like with like, and their README bookkeeping works."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import torch

import labs_lib as ll
from benchmarks import course, simulators
from benchmarks.timing import interleaved, table


def test_plain_em_loop_computes_what_labs_lib_computes():
    x0 = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    ts = ll.time_grid(40)
    torch.manual_seed(1)
    plain = simulators._plain_em(x0, ts, 1.5, 0.7)
    torch.manual_seed(1)
    ours = ll.EulerMaruyamaSimulator(ll.OrnsteinUhlenbeck(1.5, 0.7)).simulate(x0, ts)
    assert torch.allclose(plain, ours, atol=1e-6)
    torch.manual_seed(1)
    plain_traj = simulators._plain_em(x0, ts, 1.5, 0.7, every=10)
    torch.manual_seed(1)
    ours_traj = ll.EulerMaruyamaSimulator(ll.OrnsteinUhlenbeck(1.5, 0.7)).simulate_with_trajectory(x0, ts, every=10)
    assert torch.allclose(plain_traj, ours_traj.states, atol=1e-6)


def test_plain_ode_loops_compute_what_labs_lib_computes():
    ode = ll.LinearODE.spiral()
    x0 = torch.randn(30, 2, generator=torch.Generator().manual_seed(0))
    ts = ll.time_grid(20)
    for method, cls in [("euler", ll.EulerSimulator), ("heun", ll.HeunSimulator)]:
        assert torch.allclose(simulators._plain_ode(ode.drift, x0, ts, method), cls(ode).simulate(x0, ts), atol=1e-6)
        traj = cls(ode).simulate_with_trajectory(x0, ts, every=10).states
        assert torch.allclose(simulators._plain_ode(ode.drift, x0, ts, method, every=10), traj, atol=1e-6)


def test_interleaved_ratios_are_per_round():
    timings = interleaved({"base": lambda: sum(range(1000)), "other": lambda: sum(range(1000))}, "base", rounds=3)
    assert [t.name for t in timings] == ["base", "other"]
    assert timings[0].ratios == [1.0, 1.0, 1.0]
    assert "| other |" in table("t", timings)


def test_interleaved_compares_a_case_with_its_own_baseline():
    cases = {"base": lambda: sum(range(100)), "slow": lambda: sum(range(20000)), "slow too": lambda: sum(range(20000))}
    timings = {t.name: t for t in interleaved(cases, "base", rounds=3, baselines={"slow too": "slow"})}
    assert timings["slow"].against == "base" and timings["slow"].ratio > 5
    assert timings["slow too"].against == "slow" and 0.2 < timings["slow too"].ratio < 5
    with pytest.raises(ValueError, match="not timed"):
        interleaved(cases, "base", rounds=1, baselines={"slow too": "missing"})


def _notebook(tmp_path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    c1 = nbformat.v4.new_code_cell("print('W2 = 0.5 (noise floor 0.4, ratio 1.25)')")
    c1.metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00.000Z",
                                "shell.execute_reply": "2026-01-01T00:00:03.000Z"}
    c1.outputs = [nbformat.v4.new_output("stream", name="stdout", text="W2 = 0.5 (noise floor 0.4, ratio 1.25)\n")]
    c2 = nbformat.v4.new_code_cell("1")
    c2.metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:05.000Z",
                                "shell.execute_reply": "2026-01-01T00:00:12.500Z"}
    nb.cells = [c1, c2]
    path = tmp_path / "01_demo.ipynb"
    nbformat.write(nb, path)
    return path


def test_course_reads_times_and_quality_from_stored_notebooks(tmp_path):
    path = _notebook(tmp_path)
    assert course.notebook_seconds(nbformat.read(path, as_version=4)) == 12.5
    assert course.quality_lines(path) == ["W2 = 0.5 (noise floor 0.4, ratio 1.25)"]
    text, times = course.run(tmp_path)
    assert times == {"01_demo.ipynb": 12.5} and "12 s" in text and "ratio 1.25" in text


def _printing_notebook(path, *printed: tuple[str, ...]):
    """A notebook at ``path`` whose code cells printed ``printed[k]``, one stream output per string
    (as a loop prints one row per call)."""
    nb = nbformat.v4.new_notebook()
    for texts in printed:
        cell = nbformat.v4.new_code_cell("print(...)")
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=t) for t in texts]
        nb.cells.append(cell)
    nbformat.write(nb, path)
    return path


def test_course_quality_keeps_the_rows_of_a_printed_quality_table(tmp_path):
    path = _printing_notebook(tmp_path / "07_demo.ipynb",
                              ("   w   accuracy   W2/floor\n", " 0.0     11.3%   1.20\n", " 1.5    100.0%   1.01\n",
                               "done\n", " 9 not a row of the table\n"))
    assert course.quality_lines(path) == ["w   accuracy   W2/floor", "0.0     11.3%   1.20", "1.5    100.0%   1.01"]


def test_course_quality_keeps_named_rows_with_verdicts_or_figures(tmp_path):
    path = _printing_notebook(tmp_path / "10_demo.ipynb",
                              ("× floor, Euler steps:   1    2\n", "\n", "  exact field  666.7 ✗  147.1 ✗\n",
                               "  network, OT   49.5 ✗   15.4 ✗\n", "the end of the table\n"),
                              ("          two-sample   conf.\n   pixels   0.83   0.95\nsee above\n",))
    assert course.quality_lines(path) == ["× floor, Euler steps:   1    2", "exact field  666.7 ✗  147.1 ✗",
                                          "network, OT   49.5 ✗   15.4 ✗", "two-sample   conf.", "pixels   0.83   0.95"]


def test_seed_table_reports_median_worst_and_passes(monkeypatch):
    from benchmarks import seeds

    def fake(seed):
        return seeds.Outcome({"off-support": [0.1, 0.5, 0.2][seed], "spread": [0.9, 1.05, 0.99][seed]},
                             passed=seed != 1, seconds=1.0 + seed)

    monkeypatch.setattr(seeds, "models", lambda: [("toy model", fake)])
    table = seeds.run(n_seeds=3)
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]  # after the header
    assert rows[0].startswith("| toy model | 2 / 3 | off-support | 0.200 | 0.500 | 0.100, 0.500, 0.200 | 2 s |")
    assert rows[1].startswith("| | | spread | 0.990 | 0.900 |")  # the worst spread is the farthest from 1
    assert seeds._worst("accuracy", [90.0, 99.0]) == 90.0


def test_course_only_run_replaces_just_the_course_part_of_the_benchmark_block():
    from benchmarks.__main__ import BEGIN, END, replace_course_section

    readme = (f"intro\n{BEGIN}\nMeasured...\n\n**OU SDE** table\n\n**Solution notebooks: execution time on this "
              f"machine** (old)\n\n| old |\n{END}\nafter\n")
    new = "**Solution notebooks: execution time on this machine** (new)\n\n| new |"
    out = replace_course_section(readme, new)
    assert "**OU SDE** table" in out and "| new |" in out and "| old |" not in out
    assert out.startswith("intro\n") and out.endswith(f"{END}\nafter\n")


def test_seeds_only_run_replaces_just_the_seeds_table():
    from benchmarks.__main__ import BEGIN, COURSE_HEADING, END, replace_part

    readme = (f"intro\n{BEGIN}\nMeasured...\n\n**OU SDE** table\n\n**Every model the notebooks train, with 5 "
              f"seeds** (old)\n\n| old seeds |\n\n{COURSE_HEADING} on this machine** (kept)\n\n| course |\n"
              f"{END}\nafter\n")
    new = "**Every model the notebooks train, with 5 seeds** (new)\n\n| new seeds |"
    out = replace_part(readme, new, next_heading=COURSE_HEADING)
    assert "| old seeds |" not in out and "| new seeds |" in out
    assert "**OU SDE** table" in out and "| course |" in out  # the other parts are kept, in their order
    assert out.index("| new seeds |") < out.index(COURSE_HEADING)
    assert out.startswith("intro\n") and out.endswith(f"{END}\nafter\n")
    # a README without a seeds table gets one, before the course part
    added = replace_part(readme.replace(readme[readme.index("**Every"):readme.index(COURSE_HEADING)], ""), new,
                         next_heading=COURSE_HEADING)
    assert added.index("**OU SDE**") < added.index("| new seeds |") < added.index(COURSE_HEADING)


def test_seed_table_rows_re_measures_only_the_chosen_models(monkeypatch):
    from benchmarks import seeds

    calls = []

    def fake(name):
        def judge(seed):
            calls.append((name, seed))
            return seeds.Outcome({"spread": 1.0, "features": 1.1}, passed=True, seconds=2.0)
        return judge

    monkeypatch.setattr(seeds, "models", lambda: [(n, fake(n)) for n in ("05 a", "07 b", "07 c", "08 new")])
    previous = ("| model | passes | figure | median | worst | all seeds | training (median) |\n|---|\n"
                "| 05 a | 1 / 2 | levels | 0.1 | 0.2 | 0.1, 0.2 | 9 s |\n| | | regions | 0.3 | 0.4 | 0.3, 0.4 | |\n"
                "| 07 b | 0 / 2 | spread | 0.8 | 0.7 | 0.8, 0.7 | 9 s |\n"
                "| 06 gone | 0 / 2 | spread | 0.8 | 0.7 | 0.8, 0.7 | 9 s |\n")
    table = seeds.run(n_seeds=2, rows=["07"], previous=previous)
    assert sorted(calls) == [("07 b", 0), ("07 b", 1), ("07 c", 0), ("07 c", 1)]  # only the chosen models ran
    body = [line for line in table.splitlines() if line.startswith("| ")][1:]
    assert body[:2] == previous.splitlines()[2:4]  # 05 a kept as it was, both its lines
    assert body[2].startswith("| 07 b | 2 / 2 | spread | 1.000 |") and body[4].startswith("| 07 c | 2 / 2 |")
    assert not any("06 gone" in line or "08 new" in line for line in body)  # not a model / never measured
    with pytest.raises(SystemExit, match="no model's name starts with 09"):
        seeds.run(n_seeds=2, rows=["09"], previous=previous)


def test_a_row_of_draws_is_judged_once_per_draw(monkeypatch):
    from benchmarks import seeds

    def judge(draw):
        return seeds.Outcome({"features": float(draw)}, passed=draw < 12, seconds=3.0)

    judge.runs = [10, 11, 12]
    monkeypatch.setattr(seeds, "models", lambda: [("draws", judge)])
    rows = [line for line in seeds.run(n_seeds=5).splitlines() if line.startswith("| draws")]
    assert rows == ["| draws | 2 / 3 | features | 11.000 | 12.000 | 10.000, 11.000, 12.000 | 3 s |"]


def test_nfe_only_run_adds_its_tables_before_the_seeds_table_and_replaces_them_later():
    from benchmarks.__main__ import BEGIN, COURSE_HEADING, END, SEEDS_HEADING, replace_part

    readme = (f"intro\n{BEGIN}\nMeasured...\n\n**OU SDE** table\n\n{SEEDS_HEADING}, with 5 seeds** (kept)\n\n"
              f"| seeds |\n\n{COURSE_HEADING} on this machine** (kept)\n\n| course |\n{END}\nafter\n")
    first = "**Lab 09's samplers against NFE, exact field** (one)\n\n| one |"
    out = replace_part(readme, first, next_heading=SEEDS_HEADING)
    assert out.index("**OU SDE**") < out.index("| one |") < out.index(SEEDS_HEADING) < out.index("| course |")
    again = replace_part(out, first.replace("one", "two"), next_heading=SEEDS_HEADING)
    assert "| one |" not in again and "| two |" in again and "| seeds |" in again and "| course |" in again


def test_nfe_cell_reports_the_median_ratio_and_the_passing_seeds():
    from benchmarks import nfe

    target = ll.GaussianMixture.symmetric_2d(3, radius=3.0, std=0.5)
    yardstick = ll.Yardstick(target, n=2000, floor_repeats=5, reference_size=20_000)
    exact = lambda x, n: target.sample(len(x), generator=torch.Generator().manual_seed(int(1000 * x[0, 0].abs())))  # noqa: E731
    collapsed = lambda x, n: torch.zeros_like(x)  # noqa: E731  (every sample at the origin, between the modes)
    assert nfe._cell(lambda x, n: None, 1, yardstick, (1, 2)) == "—"
    assert nfe._cell(collapsed, 4, yardstick, (1, 2, 3)).endswith("(0/3)")
    assert nfe._cell(exact, 4, yardstick, (1, 2, 3)).endswith("(3/3)")
