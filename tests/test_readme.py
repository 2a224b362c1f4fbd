"""Every command in the README is run by a test.

The README's fenced blocks say what they hold: `sh` (commands), `python` (code), `text` and `csv` (no
commands). A block is named by the HTML comment right above it (`<!-- ...: lab-walkthrough -->`).

- The lab walkthrough (`lab-walkthrough`) runs here for real, line by line in one shell, in a temp dir (the
  lab's folder), its `../shared/realdata/` paths made absolute: the SARS-CoV-2 reference MN908947.3 and its
  GFF, and 100 read pairs of ERR5069949 (../shared/realdata: ENA ERR5069949 via nf-core test data,
  MN908947.3 via UPHL-BioNGS/Cecret). Each command must exit 0, the run must say PASS and the report must
  exist. The analyst's blocks (`analyst`: the cohort job, then polars and DuckDB) run after it, on the
  tables it produced.
- The automation block runs here against a temp instance, from the repository's folder as the README says.
- Every other command of an `sh` block is a key of COMMANDS, naming the test that runs it; the table test
  fails when a README command has no entry, an entry names no command of the README any more, or the named
  test does not exist. Each `genoflow` subcommand the command synopsis lists is mapped the same way.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
REALDATA = REPO.parent / "shared" / "realdata"
BIN = Path(sys.executable).parent

README_REALDATA = "../shared/realdata/"  # as the README names it, from the repository's folder

_SELF = "tests/test_readme.py"
_DEV = "tests/test_dev_no_click.py::test_a_sample_dropped_into_landing_runs_under_make_dev_without_a_click"
_PAGE_PEOPLE = "tests/test_portal_page.py::test_two_people_uploading_at_once_on_s3_get_their_own_files_and_history"
_WALKTHROUGH = f"{_SELF}::test_the_lab_walkthrough_runs_for_real_and_the_analyst_reads_its_tables"

# Every README command outside the lab walkthrough -> the test that runs it (file::function).
COMMANDS = {
    # `make demo` is `make install home` then `genoflow demo`; this test runs `genoflow demo`'s code (run_demo).
    "make demo": "tests/test_pipeline_e2e.py::test_demo_exits_zero_and_writes_reports",
    # `make test` is the command that runs this very table.
    "make test": f"{_SELF}::test_every_readme_command_is_run_by_a_test",
    # The dev test runs the Makefile's `dev` recipe (dagster dev) and this block's mkdir and cp.
    "make dev": _DEV,
    "mkdir -p data/landing/S2": _DEV,
    "cp S2_R1.fastq.gz S2_R2.fastq.gz data/landing/S2/": _DEV,
    ".venv/bin/dagster schedule start daily_cohort_schedule":
        f"{_SELF}::test_the_automation_commands_turn_sensors_and_schedules_on_and_off",
    ".venv/bin/dagster schedule start daily_maintenance_schedule":
        f"{_SELF}::test_the_automation_commands_turn_sensors_and_schedules_on_and_off",
    ".venv/bin/dagster sensor start quarantine_release_sensor":
        f"{_SELF}::test_the_automation_commands_turn_sensors_and_schedules_on_and_off",
    ".venv/bin/dagster sensor stop landing_zone_upload_sensor":
        f"{_SELF}::test_the_automation_commands_turn_sensors_and_schedules_on_and_off",
    ".venv/bin/dagster job execute -m genoflow_dagster.definitions -j cohort": _WALKTHROUGH,
    # The page tests start the Makefile's `portal` recipe and make their tokens with `genoflow token add`.
    '.venv/bin/genoflow token add "Front desk" --role uploader': _PAGE_PEOPLE,
    "make portal": _PAGE_PEOPLE,
}

_PORTAL_SERVER = "tests/test_portal_api.py::test_genoflow_portal_serves_over_http_and_survives_a_dropped_connection"

# Each `genoflow` subcommand of the README's command synopsis -> a test that runs it through the CLI.
SUBCOMMANDS = {
    "genoflow validate": "tests/test_cli.py::test_validate_exit_codes",
    "genoflow qc": "tests/test_cli.py::test_qc_json_has_the_fastq_fields",
    "genoflow upload": "tests/test_ingestion_assets.py::"
                       "test_genoflow_upload_refuses_a_file_over_the_limit_before_uploading_anything",
    "genoflow run": "tests/test_cli_run.py::test_genoflow_run_lands_runs_and_reports_a_real_sample",
    "genoflow status": "tests/test_cli_run.py::test_genoflow_run_lands_runs_and_reports_a_real_sample",
    "genoflow reference": "tests/test_reference_add.py::test_the_cli_adds_lists_and_says_how_to_use_the_reference",
    "genoflow doctor": "tests/test_doctor.py::test_a_misspelt_annotation_path_is_an_error_naming_the_file",
    "genoflow quarantine": "tests/test_quarantine.py::test_cli_lists_quarantine_and_exits_1_when_a_release_is_due",
    "genoflow demo": "tests/test_pipeline_e2e.py::test_demo_exits_zero_and_writes_reports",
    "genoflow portal": _PORTAL_SERVER,
    "genoflow token": _PORTAL_SERVER,
}

KNOWN_LANGUAGES = {"sh", "python", "text", "csv"}
_FENCE = re.compile(r"(?:<!--[^\n]*?:\s*(?P<name>[\w-]+)\s*-->\n)?^```(?P<lang>[^\n]*)\n(?P<body>.*?)^```\s*$",
                    re.M | re.S)


@dataclass(frozen=True)
class Block:
    lang: str
    name: str | None  # from the HTML comment right above the block
    body: str
    line: int  # 1-based line of the opening fence


def readme_blocks(text: str | None = None) -> list[Block]:
    text = README.read_text() if text is None else text
    blocks = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start("lang")) + 1
        blocks.append(Block(match["lang"].strip(), match["name"], match["body"], line))
    return blocks


def named_blocks(name: str) -> list[Block]:
    found = [b for b in readme_blocks() if b.name == name]
    assert found, f"README has no block named {name!r}"
    return found


def commands(block: Block) -> list[str]:
    """The block's command lines: comments (` # ...` or a whole `#` line) and blank lines dropped."""
    lines = []
    for raw in block.body.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if line:
            lines.append(re.sub(r"\s+", " ", line))
    return lines


def for_this_venv(command: str) -> str:
    """The README's `.venv/bin/...` as this interpreter's scripts folder (the test may run from another venv),
    and its `../shared/realdata/` as the real folder (the test runs elsewhere)."""
    command = re.sub(r"(^|\s)\.venv/bin/", lambda m: f"{m[1]}{BIN}/", command)
    return command.replace(README_REALDATA, f"{REALDATA}/")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENOFLOW_", "DAGSTER_"))}
    return {**env, **extra}


def run_lines(lines: list[str], cwd: Path, env: dict[str, str], logs: Path, timeout: float) -> list[tuple]:
    """Run `lines` in one bash (so `export` carries over), each line's exit code and output kept apart.

    Returns (line, exit code, stdout, stderr) per line, in order."""
    logs.mkdir(parents=True, exist_ok=True)
    script = []
    for i, line in enumerate(lines):
        script.append(f"{for_this_venv(line)} >{logs}/{i}.out 2>{logs}/{i}.err; echo $? >{logs}/{i}.rc")
    subprocess.run(["bash", "-c", "\n".join(script)], cwd=cwd, env=env, timeout=timeout, check=False)
    results = []
    for i, line in enumerate(lines):
        rc = (logs / f"{i}.rc").read_text().strip() if (logs / f"{i}.rc").exists() else "not run"
        results.append((line, int(rc) if rc.isdigit() else rc, (logs / f"{i}.out").read_text(errors="replace"),
                        (logs / f"{i}.err").read_text(errors="replace")))
    return results


def _failed(results: list[tuple]) -> str:
    return "\n".join(f"$ {line}\n-> exit {rc}\n{out[-2000:]}{err[-3000:]}" for line, rc, out, err in results
                     if rc != 0)


@pytest.mark.slow
@pytest.mark.skipif(not REALDATA.is_dir(), reason="../shared/realdata not present")
def test_the_lab_walkthrough_runs_for_real_and_the_analyst_reads_its_tables(tmp_path):
    work = tmp_path / "lab"
    work.mkdir()
    # The defaults `make` uses, made explicit: the instance and the data in the folder the lab works in.
    env = clean_env(DAGSTER_HOME=str(work / ".dagster_home"), GENOFLOW_DATA_DIR=str(work / "data"))
    [walkthrough] = named_blocks("lab-walkthrough")
    analyst = named_blocks("analyst")
    lines = commands(walkthrough) + [line for block in analyst if block.lang == "sh" for line in commands(block)]

    results = run_lines(lines, work, env, tmp_path / "logs", timeout=900)
    assert all(rc == 0 for _, rc, _, _ in results), _failed(results)

    def output_of(words: str) -> tuple[str, str]:
        [(out, err)] = [(out, err) for line, _, out, err in results if words in line]
        return out, err

    assert "* sarscov2" in "".join(output_of("genoflow reference list"))
    assert "configuration OK" in "".join(output_of("genoflow doctor"))
    run_out, run_err = output_of("genoflow run --sample")
    assert "ERR5069949: PASS (run SUCCESS)" in run_out, run_out + run_err
    report = Path(re.search(r"^report: (.+)$", run_out, re.M)[1].removeprefix("file://"))
    assert report == work / "data" / "reports" / "ERR5069949" / "report.html" and report.stat().st_size > 10_000
    assert "aligned_reads: done in" in run_err
    status_out = output_of("genoflow status")[0]
    assert "ERR5069949" in status_out and "SUCCESS" in status_out, status_out
    assert "report.html" in output_of("ls data/reports/ERR5069949/")[0]

    cohort = work / "data" / "processed" / "cohort"
    for block in analyst:
        if block.lang != "python":
            continue
        done = subprocess.run([sys.executable, "-c", block.body], cwd=work, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, f"README line {block.line}:\n{done.stderr}"
        assert "ERR5069949" in done.stdout, done.stdout
    assert {p.name for p in cohort.iterdir()} >= {"qc_summary.parquet", "qc_verdict.parquet",
                                                   "variant_catalog.parquet"}


@pytest.mark.slow
def test_the_automation_commands_turn_sensors_and_schedules_on_and_off(tmp_path):
    """The README's sensor and schedule commands, run from the repository's folder as it says, change the
    state the daemon of `make dev` reads: the code location `genoflow`'s, in the instance of DAGSTER_HOME."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    env = clean_env(DAGSTER_HOME=str(home), GENOFLOW_DATA_DIR=str(tmp_path / "data"))
    [block] = named_blocks("automation")
    results = run_lines(commands(block), REPO, env, tmp_path / "logs", timeout=300)
    assert all(rc == 0 for _, rc, _, _ in results), _failed(results)

    os.environ["DAGSTER_HOME"], previous = str(home), os.environ.get("DAGSTER_HOME")
    try:
        with dg.DagsterInstance.get() as instance:
            states = {s.instigator_name: s for s in instance.all_instigator_state()}
    finally:
        if previous is None:
            del os.environ["DAGSTER_HOME"]
        else:
            os.environ["DAGSTER_HOME"] = previous
    wanted = {"daily_cohort_schedule": "RUNNING", "daily_maintenance_schedule": "RUNNING",
              "quarantine_release_sensor": "RUNNING", "landing_zone_upload_sensor": "STOPPED"}
    assert {name: states[name].status.value for name in wanted if name in states} == wanted
    for name in wanted:
        assert states[name].origin.repository_origin.code_location_origin.location_name == "genoflow"


def test_every_readme_command_is_run_by_a_test():
    blocks = readme_blocks()
    unknown = [(b.line, b.lang) for b in blocks if b.lang not in KNOWN_LANGUAGES]
    assert not unknown, f"README blocks need one of {sorted(KNOWN_LANGUAGES)} as their language: {unknown}"
    unexecuted = [b.line for b in blocks if b.lang == "python" and b.name != "analyst"]
    assert not unexecuted, f"README python blocks at lines {unexecuted} are run by no test"

    in_readme = {line for b in blocks if b.lang == "sh" and b.name != "lab-walkthrough" for line in commands(b)}
    missing = sorted(in_readme - set(COMMANDS))
    assert not missing, f"README commands with no test in COMMANDS: {missing}"
    stale = sorted(set(COMMANDS) - in_readme)
    assert not stale, f"COMMANDS entries the README no longer has: {stale}"

    [synopsis] = [b for b in blocks if b.lang == "text" and b.body.startswith("genoflow ")]
    listed = {" ".join(line.split()[:2]) for line in synopsis.body.splitlines() if line.startswith("genoflow ")}
    assert listed == set(SUBCOMMANDS), (sorted(listed - set(SUBCOMMANDS)), sorted(set(SUBCOMMANDS) - listed))

    for where in {**COMMANDS, **SUBCOMMANDS}.values():
        path, name = where.split("::")
        assert (REPO / path).is_file(), f"{where}: no such file"
        assert re.search(rf"^def {re.escape(name)}\(", (REPO / path).read_text(), re.M), f"{where}: no such test"


def test_the_block_parser_reads_names_languages_and_comments():
    text = ("intro\n\n<!-- x runs this: lab-walkthrough -->\n```sh\na --b   c   # why\n\n# note\nd\n```\n"
            "```text\ngenoflow x\n```\n")
    first, second = readme_blocks(text)
    assert (first.lang, first.name, first.line, commands(first)) == ("sh", "lab-walkthrough", 4, ["a --b c", "d"])
    assert (second.lang, second.name) == ("text", None)
    assert for_this_venv(".venv/bin/genoflow run") == f"{BIN}/genoflow run"
