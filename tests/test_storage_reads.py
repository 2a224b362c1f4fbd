"""Each raw byte fetched once (issue 12): a paired sample run on the S3 server from landing to calls downloads
each landed FASTQ once (raw_files, which hashes it on the way) and never the raw copy it uploaded: the
validation, pair check, QC and alignment read the local copy of that checksum-addressed object."""

import logging
import re
from collections import Counter

import dagster as dg

from genoflow_dagster import zones
from genoflow_dagster.assets.ingestion import raw_files, validated_files
from genoflow_dagster.assets.qc import qc_metrics
from genoflow_dagster.assets.variants import aligned_reads, variant_calls
from genoflow_dagster.demo.generate import generate_demo
from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME
from genoflow_dagster.resources.compute import Compute
from genoflow_dagster.resources.reference import ReferenceData
from tests.conftest import make_s3_storage


def test_a_paired_sample_downloads_each_raw_file_once(s3_endpoint, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("GENOFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GENOFLOW_REFERENCE_CACHE", str(tmp_path / "reference-cache"))
    monkeypatch.delenv("GENOFLOW_QC_PROFILE", raising=False)
    demo = generate_demo(tmp_path / "demo", contigs=(("chr1", 20_000),), coverage=8.0, n_snvs=4, n_indels=1,
                         low_quality_pairs=10)
    storage = make_s3_storage(s3_endpoint)
    r1, r2 = demo.samples["SAMPLE_A"]
    for path in (r1, r2):
        storage.put_file(path, zones.landing_key("S1", path.name))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(SAMPLES_PARTITION_NAME, ["S1"])
    with caplog.at_level(logging.INFO, logger="werkzeug"):  # the moto server logs every request it serves
        result = dg.materialize(
            [raw_files, validated_files, qc_metrics, aligned_reads, variant_calls], partition_key="S1",
            instance=instance, raise_on_error=False,
            resources={"storage": storage, "reference": ReferenceData(fasta_path=str(demo.reference_fasta)),
                       "compute": Compute(mode="in_process")})
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"raw_files", "validated_files", "qc_metrics", "aligned_reads", "variant_calls"} <= materialized
    gets = Counter()
    for record in caplog.records:
        if record.name != "werkzeug":
            continue
        match = re.search(rf'"GET /{storage.bucket}/(\S+) HTTP', record.getMessage())
        if match and "?" not in match.group(1):  # object GETs, not listings
            gets[match.group(1)] += 1
    fastq_gets = {key: n for key, n in gets.items() if key.endswith((".fastq", ".fastq.gz", ".fq.gz"))}
    assert fastq_gets == {zones.landing_key("S1", r1.name): 1, zones.landing_key("S1", r2.name): 1}, gets
