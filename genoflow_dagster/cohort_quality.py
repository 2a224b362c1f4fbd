"""Contracts on the cohort tables: a pandera schema and a Great Expectations suite. Plain Python.

pandera states the shape (columns, types, ranges); the GX suite states what a
healthy cohort looks like (unique samples, statuses from the known set, sane
percentages) and is where a lab adds its own expectations. GX is imported
lazily: it costs about 3 s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pandera.pandas as pa

STATUSES = ["pass", "warn", "fail", "not_run"]

COHORT_SUMMARY_SCHEMA = pa.DataFrameSchema(
    {
        "sample_id": pa.Column(str, unique=True, nullable=False,
                               checks=pa.Check.str_matches(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")),
        "status": pa.Column(str, pa.Check.isin(STATUSES)),
        "stopped_at": pa.Column(str, nullable=True),
        "failing": pa.Column(str, nullable=True),
        "not_graded": pa.Column(str, nullable=True),  # gates that could not judge this sample, and why
        "files": pa.Column(int, pa.Check.ge(0)),
        "quarantined": pa.Column(int, pa.Check.ge(0)),
        "total_reads": pa.Column(float, pa.Check.ge(0), nullable=True),
        "q30_percent": pa.Column(float, pa.Check.in_range(0, 100), nullable=True),
        "gc_percent": pa.Column(float, pa.Check.in_range(0, 100), nullable=True),
        "contamination_percent": pa.Column(float, pa.Check.in_range(0, 100), nullable=True),
        "mapped_percent": pa.Column(float, pa.Check.in_range(0, 100), nullable=True),
        "mean_depth": pa.Column(float, pa.Check.ge(0), nullable=True),
        "variants": pa.Column(float, pa.Check.ge(0), nullable=True),
        "ts_tv": pa.Column(float, pa.Check.ge(0), nullable=True),
        "profile": pa.Column(str, nullable=True),
    },
    strict=True,
    coerce=True,
)


def schema_failures(frame: pd.DataFrame) -> list[dict[str, str]]:
    """The pandera failure cases (column, check, failing value, row), empty when the frame conforms."""
    try:
        COHORT_SUMMARY_SCHEMA.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases.head(50)
        return cases[["column", "check", "failure_case", "index"]].astype(str).to_dict("records")
    return []


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str
    column: str | None
    success: bool
    unexpected: int | None


def run_cohort_expectations(frame: pd.DataFrame) -> list[ExpectationOutcome]:
    """Validate the cohort summary with an ephemeral GX 1.x context (no files written)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    source = context.data_sources.add_pandas("genoflow_cohort")
    batch = (
        source.add_dataframe_asset("cohort_qc_summary")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = gx.ExpectationSuite(name="cohort_qc_summary")
    ex = gx.expectations
    for expectation in (
        ex.ExpectColumnValuesToNotBeNull(column="sample_id"),
        ex.ExpectColumnValuesToBeUnique(column="sample_id"),
        ex.ExpectColumnValuesToBeInSet(column="status", value_set=STATUSES),
        ex.ExpectColumnValuesToBeBetween(column="q30_percent", min_value=0, max_value=100),
        ex.ExpectColumnValuesToBeBetween(column="mapped_percent", min_value=0, max_value=100),
        ex.ExpectColumnValuesToBeBetween(column="gc_percent", min_value=0, max_value=100),
        ex.ExpectColumnValuesToBeBetween(column="contamination_percent", min_value=0, max_value=100),
        ex.ExpectColumnValuesToBeBetween(column="mean_depth", min_value=0),
    ):
        suite.add_expectation(expectation)
    result = batch.validate(suite)
    outcomes = []
    for item in result.results:
        config: Any = item.expectation_config
        outcomes.append(
            ExpectationOutcome(
                expectation=config.type,
                column=config.kwargs.get("column"),
                success=bool(item.success),
                unexpected=(item.result or {}).get("unexpected_count"),
            )
        )
    return outcomes
