"""The cohort table's contracts: pandera schema and Great Expectations suite, on good and bad rows."""

import pandas as pd

from genoflow_dagster.cohort_quality import COHORT_SUMMARY_SCHEMA, run_cohort_expectations, schema_failures


def _row(sample_id: str, **overrides):
    row = {"sample_id": sample_id, "status": "pass", "stopped_at": None, "failing": None, "files": 2,
           "quarantined": 0, "total_reads": 1000.0, "q30_percent": 92.5, "gc_percent": 45.0,
           "contamination_percent": 0.4,
           "mapped_percent": 99.1, "mean_depth": 30.2, "variants": 20.0, "ts_tv": 2.1, "profile": "standard"}
    row.update(overrides)
    return row


def test_a_healthy_cohort_passes_both_contracts():
    frame = pd.DataFrame([_row("A"), _row("B", status="fail", stopped_at="qc_metrics_within_profile",
                                          mapped_percent=None, mean_depth=None)],
                         columns=list(COHORT_SUMMARY_SCHEMA.columns))
    assert schema_failures(frame) == []
    assert all(outcome.success for outcome in run_cohort_expectations(frame))


def test_bad_rows_are_named_by_column():
    frame = pd.DataFrame([_row("A"), _row("A", status="bogus", q30_percent=130.0)])
    failed_columns = {case["column"] for case in schema_failures(frame)}
    assert {"sample_id", "status", "q30_percent"} <= failed_columns
    outcomes = {(o.expectation, o.column): o for o in run_cohort_expectations(frame)}
    assert not outcomes[("expect_column_values_to_be_unique", "sample_id")].success
    assert outcomes[("expect_column_values_to_be_in_set", "status")].unexpected == 1
    assert not outcomes[("expect_column_values_to_be_between", "q30_percent")].success
