"""Sample records built by hand for tests of the readers (report, cohort table): real record types, holding
just the gate outcomes a test names and empty stages otherwise."""

from __future__ import annotations

from genoflow_dagster.sample_record import AlignmentManifest, QCSummary, SampleRecord, Validation
from genoflow_dagster.verdicts import GateOutcome, Headline

Gates = tuple[GateOutcome, ...]


def sample_record(sample_id: str = "S1", *, validation: Gates | None = None, qc: Gates | None = None,
                  aligned: Gates | None = None, profile: str = "standard",
                  profile_source: str = "environment default") -> SampleRecord:
    """A record whose stages (None: not run) stored these gate outcomes."""
    return SampleRecord(
        sample_id,
        validation=None if validation is None else Validation(
            sample_id=sample_id, validation_mode="default", files=(), warnings=[], read_groups=(), orphan_mates=(),
            pair_problems=(), samplesheet=None, validated_at="2026-12-01T00:00:00+00:00", gates=validation),
        qc=None if qc is None else QCSummary(
            sample_id=sample_id, status="pass", profile=profile, profile_version="1", profile_source=profile_source,
            profile_choice=profile, gates=qc, headline=Headline(), reference_consistency={}, files=(), pairs=[],
            failing=[], warnings=[], run_id="r"),
        aligned=None if aligned is None else AlignmentManifest(
            sample_id=sample_id, source="none", bam_key=None, index_key=None, verdict={}, gates=aligned),
    )


def sample_status(stages: dict[str, Gates | None]) -> tuple[str, str | None]:
    """The sample's (status, stopped_at) over the outcomes its stages stored."""
    verdict = sample_record(**stages).verdict()
    return verdict.status, verdict.stopped_at
