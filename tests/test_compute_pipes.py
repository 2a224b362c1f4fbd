"""The `compute` resource runs a heavy step through Dagster Pipes in a child process, with real data."""

import dagster as dg
import pysam
import pytest

from genoflow_dagster.demo.generate import generate_demo
from genoflow_dagster.resources.compute import RUNNERS, Compute, ComputeRunner

pytestmark = pytest.mark.slow


def test_alignment_runs_in_a_pipes_subprocess_and_reports_back(tmp_path):
    demo = generate_demo(tmp_path / "demo", coverage=3.0, low_quality_pairs=100)
    r1, r2 = sorted(p for p in demo.samples["SAMPLE_A"] if "_R" in p.name)
    out = tmp_path / "out.bam"

    @dg.asset
    def aligned(context: dg.AssetExecutionContext, compute: Compute) -> dg.MaterializeResult:
        stats = compute.run(context, "align_reads", reference=demo.reference_fasta, r1=r1, r2=r2, out_bam=out,
                            sample_id="SAMPLE_A", reference_fasta=demo.reference_fasta, threads=1)
        return dg.MaterializeResult(metadata={"mapped": stats["mapped"], "reads": stats["reads"]})

    result = dg.materialize([aligned], resources={"compute": Compute(mode="subprocess")})
    assert result.success
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["reads"].value > 0 and metadata["mapped"].value > 0.95 * metadata["reads"].value
    with pysam.AlignmentFile(str(out)) as bam:
        assert bam.header.to_dict()["HD"]["SO"] == "coordinate"
        assert sum(1 for _ in bam.fetch(until_eof=True)) == metadata["reads"].value


def test_each_mode_is_one_runner_and_another_mode_is_refused():
    assert {mode: type(runner).__name__ for mode, runner in RUNNERS.items()} == {
        "in_process": "InProcessRunner", "subprocess": "PipesSubprocessRunner"}
    assert all(isinstance(runner, ComputeRunner) for runner in RUNNERS.values())
    with pytest.raises(ValueError, match="compute mode must be 'in_process' or 'subprocess', not 'cloud'"):
        Compute(mode="cloud").run(None, "align_reads", threads=1)
