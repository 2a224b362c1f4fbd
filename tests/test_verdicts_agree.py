"""Every gate verdict is decided once (genoflow_dagster/verdicts.py), stored with its artifact, and read
everywhere: for each demo sample and each sample the gate tests build, the Dagster check result, the
report's gate table, the cohort row, the verdict table and the notifier payload say the same thing.

The unit tests at the end call verdicts.py alone, without Dagster.
"""

import json
import re
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from genoflow_dagster import verdicts, zones
from genoflow_dagster.assets.artifacts import write_sample_report
from genoflow_dagster.assets.ingestion import raw_files, validated_files
from genoflow_dagster.assets.qc import qc_metrics
from genoflow_dagster.assets.variants import aligned_reads, variant_calls
from genoflow_dagster.qc.profiles import load_profile
from genoflow_dagster.reports.cohort_tables import summary_row, verdict_rows
from genoflow_dagster.resources.notifier import WebhookNotifier, check_evaluation_event
from genoflow_dagster.resources.storage import LocalStorage
from genoflow_dagster.sample_record import read_parquet, read_sample
from tests.test_gates_materialize import B37_BAM, REALDATA, REALWORLD
from tests.test_gates_materialize import _materialize as materialize_gates
from tests.test_ingestion_assets import BROKEN
from tests.test_ingestion_assets import _materialize as materialize_ingestion
from tests.test_pipeline_e2e import demo_run  # noqa: F401  (the demo, run once for this module)
from tests.webhook_server import Webhook

DEMO_SAMPLES = ["SAMPLE_A", "SAMPLE_B", "SAMPLE_C"]
BUILT_SAMPLES = ["reads_of_another_genome", "grch37_bam_vs_sars_cov_2", "bam_without_reference", "only_bad_file"]


@pytest.fixture(scope="module")
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


def _latest_evaluations(instance: dg.DagsterInstance) -> dict[tuple[str, str], tuple[object, str]]:
    """(sample, check) -> (the latest evaluation, its run id), read from the event log as the notifier sensor
    reads it."""
    records = instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION), ascending=True)
    latest = {}
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        latest[(evaluation.partition, evaluation.check_name)] = (evaluation, record.event_log_entry.run_id)
    return latest


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The samples the gate tests build, each on its own ephemeral instance, materialized once."""
    if not REALWORLD.is_dir() or not REALDATA.is_dir():
        pytest.skip("../shared/realworld and ../shared/realdata not present")
    from genoflow_dagster.demo.generate import generate_demo

    samples = {}
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("built")
        mp.setenv("GENOFLOW_REFERENCE_CACHE", str(root / "reference-cache"))
        mp.delenv("GENOFLOW_QC_PROFILE", raising=False)
        sars = root / "MN908947.3.fasta"
        sars.write_bytes((REALDATA / "MN908947.3.fasta").read_bytes())

        def gates_case(name, files, reference, assets):
            case = root / name
            case.mkdir()
            mp.setenv("GENOFLOW_DATA_DIR", str(case / "data"))
            storage, checks, _ = materialize_gates(case, files, reference, assets=assets)
            samples[name] = (storage, checks)

        demo = generate_demo(root / "demo", contigs=(("chr1", 20_000),), coverage=8.0, n_snvs=4, n_indels=1,
                             low_quality_pairs=10)
        r1, r2 = demo.samples["SAMPLE_A"]
        pipeline = [raw_files, validated_files, qc_metrics, aligned_reads, variant_calls]
        gates_case("reads_of_another_genome", {"S1_R1.fastq.gz": r1, "S1_R2.fastq.gz": r2}, sars, pipeline)
        gates_case("grch37_bam_vs_sars_cov_2", {"NA12891.bam": B37_BAM}, sars, pipeline)
        gates_case("bam_without_reference", {"NA12891.bam": B37_BAM}, root / "missing.fa",
                   [raw_files, validated_files, qc_metrics])
        case = root / "only_bad_file"
        case.mkdir()
        mp.setenv("GENOFLOW_DATA_DIR", str(case / "data"))
        storage, result = materialize_ingestion(case, {"bad.fastq": BROKEN})
        samples["only_bad_file"] = (storage, {e.check_name: e for e in result.get_asset_check_evaluations()})
    return samples


def _text(value) -> str | None:
    """A cohort cell as text: parquet gives NaN for a missing string."""
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else value


def _report_gates(page: str) -> tuple[str, list[tuple[str, str]]]:
    """The report's header status and its gate table's (gate, status) rows, as rendered."""
    header = re.search(r'QC <span class="badge ([a-z_]+)">', page).group(1)
    table = page.split("<h2>Quality gates</h2>", 1)[1].split("</table>", 1)[0]
    return header, re.findall(r'<tr><td>([a-z_]+)</td><td>[^<]*</td>\s*<td><span class="badge ([a-z_]+)">', table)


def _assert_agree(sample_id: str, storage, checks: dict, cohort_row: dict, verdict_table: pd.DataFrame,
                  hook: Webhook, run_ids: dict[str, str]):
    sample = read_sample(storage, sample_id)
    outcomes = sample.gate_outcomes()
    verdict = verdicts.sample_verdict(outcomes)
    assert outcomes, "every sample has stored gate outcomes"
    stored = {o.gate: o for o in outcomes}
    if sample.qc:  # one profile choice: every later grading used the profile qc_metrics chose and stored
        assert {o.profile for o in outcomes if o.profile} <= {sample.qc.profile_label}

    # 1. the Dagster check results: one per stored outcome, the sample's own partition, same verdict
    assert set(checks) == set(stored)
    for gate, outcome in stored.items():
        evaluation = checks[gate]
        assert evaluation.partition == sample_id
        assert evaluation.passed == outcome.passed
        assert evaluation.severity.value == outcome.severity
        assert evaluation.metadata["status"].value == outcome.status
        assert verdicts.GateOutcome.from_dict(evaluation.metadata["outcome"].value) == outcome
        if not outcome.graded:
            assert not evaluation.passed, "not graded never reads as pass"

    # 2. the report (written by sample_report, or by the stage whose gate stopped the sample)
    page = storage.get_bytes(zones.report_key(sample_id, "report.html")).decode()
    header, rows = _report_gates(page)
    assert header == verdict.status
    assert rows == [(o.gate, o.status) for o in outcomes]
    if verdict.stopped_at:
        assert header == "fail" and f"<h2>Stopped: {verdict.stopped_at}</h2>" in page
        for problem in verdict.stopped_by.problems:
            assert problem.replace("<", "&lt;").replace(">", "&gt;") in page

    # 3. the cohort row
    assert cohort_row["status"] == verdict.status
    assert _text(cohort_row["stopped_at"]) == verdict.stopped_at
    for problem in verdict.problems():
        assert problem in _text(cohort_row["failing"])
    not_graded = [o.gate for o in outcomes if not o.graded]
    assert all(gate in (_text(cohort_row["not_graded"]) or "") for gate in not_graded)
    headline = sample.headline()
    for name in ("q30_percent", "gc_percent", "ts_tv", "mapped_percent"):
        expected = getattr(headline, name)
        if expected is None:
            assert cohort_row[name] is None or pd.isna(cohort_row[name]), name
        else:
            assert cohort_row[name] == pytest.approx(expected), name

    # 4. the verdict table's gate rows
    gate_rows = verdict_table[(verdict_table["sample_id"] == sample_id) & verdict_table["module"].isna()]
    assert list(zip(gate_rows["gate"], gate_rows["gate_status"], strict=True)) == \
        [(o.gate, o.status) for o in outcomes]

    # 5. the notifier payload, built from the recorded evaluation and posted to a real webhook
    notifier = WebhookNotifier(webhook_urls=[hook.url])
    for gate, outcome in stored.items():
        payload = check_evaluation_event(checks[gate], run_id=run_ids.get(gate))
        if outcome.passed:
            assert payload is None
            continue
        hook.bodies.clear()
        assert notifier.notify(payload)
        body = hook.bodies[-1]
        assert (body["check"], body["sample_id"], body["status"]) == (gate, sample_id, outcome.status)
        assert body["stopped_sample"] == outcome.stops_sample == (verdict.stopped_at == gate)
        assert body["event"] == ("check_not_graded" if not outcome.graded else "check_failed")
        assert body["problems"] == list(outcome.problems)


@pytest.mark.slow
@pytest.mark.parametrize("sample_id", DEMO_SAMPLES + BUILT_SAMPLES)
def test_every_reader_agrees_with_the_stored_gate_outcomes(sample_id, request, webhook):
    if sample_id in DEMO_SAMPLES:
        _, data, instance = request.getfixturevalue("demo_run")
        storage = LocalStorage(base_dir=str(data))
        latest = _latest_evaluations(instance)
        checks = {check: e for (partition, check), (e, _) in latest.items() if partition == sample_id}
        run_ids = {check: run for (partition, check), (_, run) in latest.items() if partition == sample_id}
        cohort = pd.read_parquet(Path(data) / "processed" / "cohort" / "qc_summary.parquet")
        row = cohort.set_index("sample_id").loc[sample_id].to_dict()
        table = pd.read_parquet(Path(data) / "processed" / "cohort" / "qc_verdict.parquet")
    else:
        storage, checks = request.getfixturevalue("built")[sample_id]
        sample_id, run_ids = "S1", {}
        sample = read_sample(storage, sample_id)
        row = summary_row(sample)
        modules_key = zones.verdict_table_key(sample_id)
        modules = read_parquet(storage, modules_key) if storage.exists(modules_key) else None
        table = pd.DataFrame(verdict_rows(sample, modules))
        if not sample.verdict().stopped_at:  # sample_report is not in these runs
            write_sample_report(storage, sample_id, run_id="test", narrator=None)
    _assert_agree(sample_id, storage, checks, row, table, webhook, run_ids)


@pytest.mark.slow
def test_the_demo_stops_sample_b_at_its_qc_gate_with_a_fail_report(request):
    _, data, instance = request.getfixturevalue("demo_run")
    page = (Path(data) / "reports" / "SAMPLE_B" / "report.html").read_text()
    assert 'QC <span class="badge fail">FAIL</span>' in page
    assert "<h2>Stopped: qc_metrics_within_profile</h2>" in page
    assert "per base sequence quality" in page.split("<h2>Quality gates</h2>")[0]
    latest = _latest_evaluations(instance)
    assert not latest[("SAMPLE_B", "qc_metrics_within_profile")][0].passed
    assert latest[("SAMPLE_A", "qc_metrics_within_profile")][0].passed, "each sample keeps its own result"


# ---------------------------------------------------------------- verdicts.py alone, no Dagster

def test_usable_inputs_names_every_problem():
    ok = verdicts.usable_inputs(analysable_files=2)
    assert (ok.status, ok.passed, ok.blocking, ok.problems) == ("pass", True, True, ())
    bad = verdicts.usable_inputs(analysable_files=0, orphan_mates=["x_R1.fq"], samplesheet_problems=["sheet: no row"])
    assert bad.stops_sample and bad.severity == "ERROR" and not bad.passed
    assert bad.problems == ("no valid reads, alignments or call set", "x_R1.fq: mate file missing", "sheet: no row")


def test_a_quarantined_file_warns_without_blocking():
    outcome = verdicts.all_files_valid([{"path": "a.fq", "valid": True},
                                        {"path": "b.fq", "valid": False, "reason": "FASTQ_X", "line": 4,
                                         "message": "short quality"}])
    assert (outcome.status, outcome.passed, outcome.stops_sample, outcome.severity) == ("warn", False, False, "WARN")
    assert outcome.problems == ("b.fq: quarantined, FASTQ_X at line 4: short quality",)


def test_not_graded_is_never_a_pass():
    outcome = verdicts.reference_consistent({"status": "not_graded", "message": "not graded: no reference FASTA"})
    assert outcome.status == "not_graded" and not outcome.graded and not outcome.passed
    assert not outcome.stops_sample and outcome.severity == "WARN" and outcome.label == "NOT GRADED"
    fields = outcome.check_fields()
    assert fields["description"] == "NOT GRADED: no reference FASTA" and fields["passed"] is False
    assert verdicts.qc_within_profile([], "standard v1").status == "not_graded"
    assert verdicts.alignment_within_profile({"status": "not_graded", "profile": "standard", "profile_version": "1",
                                              "modules": [], "message": "not graded: nothing to align"}).status \
        == "not_graded"
    assert verdicts.callset_within_profile(None, load_profile("standard"))[0].not_graded_reason == \
        "no call set for this sample"
    # a sample with only not-graded gates beyond its passing QC is a pass, not a warning
    verdict = verdicts.sample_verdict([verdicts.GateOutcome(verdicts.QC_WITHIN_PROFILE, "pass", "ok"), outcome])
    assert (verdict.status, verdict.stopped_at) == ("pass", None)


def test_too_few_snps_leave_the_call_set_not_graded_and_a_graded_range_warns():
    standard = load_profile("standard")
    few = {"records": 5, "snps": 4, "ts_tv": 9.0, "het_hom_ratio": 9.0, "call_rate": 1.0}
    outcome, _ = verdicts.callset_within_profile({**few, "call_rate": None}, standard)
    assert outcome.status == "not_graded" and "too few snps" in outcome.not_graded_reason
    outcome, _ = verdicts.callset_within_profile(few, standard)  # only call rate graded, and it passes
    assert outcome.status == "pass" and "not graded (too few snps)" in outcome.summary
    many = {"records": 100, "snps": 100, "ts_tv": 1.2, "het_hom_ratio": 1.5, "call_rate": 1.0}
    outcome, _ = verdicts.callset_within_profile(many, standard)
    assert (outcome.status, outcome.passed, outcome.blocking) == ("warn", False, False)
    assert outcome.modules[0].module == "transition/transversion ratio" and outcome.modules[0].threshold == [1.6, 3.5]
    assert verdicts.sample_verdict([verdicts.GateOutcome(verdicts.QC_WITHIN_PROFILE, "pass", "ok"),
                                    outcome]).status == "warn", "a Ts/Tv warning never reads QC PASS"


def test_the_qc_gate_lists_each_failed_module_with_value_and_threshold():
    files = [{"name": "B_R1.fq", "verdict": {"modules": [
        {"name": "per base sequence quality", "status": "fail", "value": 12.0, "warn": 25, "fail": 20,
         "message": "median 12 < fail threshold 20"},
        {"name": "adapter content", "status": "warn", "value": 6.0, "warn": 5, "fail": 10, "message": "6 > 5"}]}}]
    outcome = verdicts.qc_within_profile(files, "strict v1")
    assert outcome.stops_sample and outcome.profile == "strict v1"
    assert outcome.problems == ("B_R1.fq: per base sequence quality: median 12 < fail threshold 20",)
    failed = [(m.module, m.value, m.threshold) for m in outcome.modules if m.status == "fail"]
    assert failed == [("per base sequence quality", 12.0, 20)]
    assert verdicts.GateOutcome.from_dict(json.loads(json.dumps(outcome.to_dict()))) == outcome


def test_the_first_blocking_failure_stops_the_sample():
    stop = verdicts.GateOutcome(verdicts.REFERENCE_CONSISTENT, "fail", "off", problems=("a.bam: off",))
    later = verdicts.GateOutcome(verdicts.QC_WITHIN_PROFILE, "fail", "bad", problems=("q: bad",))
    ordered = verdicts.stored_outcomes({"gates": [later.to_dict(), stop.to_dict()]})
    verdict = verdicts.sample_verdict(ordered)
    assert (verdict.status, verdict.stopped_at, verdict.problems()) == ("fail", "qc_metrics_reference_consistent",
                                                                        ["a.bam: off", "q: bad"])
    assert verdicts.sample_verdict([]).status == "not_run"


def test_the_profile_is_chosen_once_and_read_back():
    choice, profile = verdicts.choose_profile(None, {"qc_profile": "strict", "line": 2}, "standard")
    assert (choice.choice, choice.label, choice.source) == ("strict", "strict v1", "samplesheet line 2")
    assert profile.name == "strict"
    assert verdicts.choose_profile("exome", {"qc_profile": "strict", "line": 2}, "standard")[0].source == "run config"
    assert verdicts.choose_profile(None, None, "panel")[0].source == "environment default"
    stored = {"profile": "strict", "profile_version": "1", "profile_choice": "strict"}
    assert verdicts.stored_profile(stored).name == "strict"
    with pytest.raises(ValueError, match="re-run qc_metrics"):
        verdicts.stored_profile({**stored, "profile_version": "0"})


def test_headline_numbers_weigh_r1_and_r2_by_bases_and_take_the_graded_call_set_ratios():
    r1 = {"total_reads": 100, "total_bases": 10_000, "q30_percent": 90.0, "gc_percent": 40.0, "mean_quality": 35.0}
    r2 = {"total_reads": 100, "total_bases": 30_000, "q30_percent": 70.0, "gc_percent": 44.0, "mean_quality": 31.0}
    callset = {"ts_tv": 2.1, "het_hom_ratio": 1.2857, "snps": 16,
               "per_sample": {"S": {"het": 9, "hom_alt": 7, "indels": 6}}}
    table_summary = {"variants": 22, "het": 13, "hom_alt": 9, "het_hom_ratio": 1.4444}  # indels counted too
    headline = verdicts.headline_numbers([r1, r2], {"mapped_percent": 99.0}, callset, table_summary)
    assert (headline.total_reads, headline.q30_percent, headline.gc_percent, headline.mean_quality) == \
        (200, 75.0, 43.0, 32.0)
    assert (headline.het, headline.hom_alt, headline.het_hom_ratio) == (9, 7, 1.2857), "the graded figures"
    assert (headline.ts_tv, headline.variants, headline.snvs) == (2.1, 22, 16)
    assert verdicts.headline_numbers().to_dict() == dict.fromkeys(verdicts.Headline().to_dict())


def test_graded_flag_decides_and_old_stored_json_falls_back_to_the_message():
    flagged = {"name": "m", "status": "pass", "value": 4.0, "message": "ts/tv 4", "graded": False,
               "not_graded_reason": "too few snps"}
    assert not verdicts.module_graded(flagged), "the flag, not the message text, says it was not graded"
    assert verdicts.module_graded({**flagged, "graded": True, "message": "x: not graded (y)"})
    # qc.json / calls.json stored before the flag: only the message text tells
    old = {"name": "m", "status": "pass", "value": 4.0, "message": "ts/tv: not graded (too few snps)"}
    assert not verdicts.module_graded(old)
    assert verdicts.module_graded({**old, "message": "ts/tv 2.1"})
    stored = {"status": "not_graded", "message": "reference check skipped", "not_graded_reason": "no reference FASTA"}
    assert verdicts.reference_consistent(stored).not_graded_reason == "no reference FASTA"
    assert verdicts.reference_consistent({"status": "not_graded", "message": "not graded: no reference FASTA"}
                                         ).not_graded_reason == "no reference FASTA"
