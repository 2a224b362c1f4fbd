"""Partitions: one dynamic partition per sample id (added by the landing sensor or the CLI)."""

import dagster as dg

SAMPLES_PARTITION_NAME = "samples"

samples_partitions = dg.DynamicPartitionsDefinition(name=SAMPLES_PARTITION_NAME)
