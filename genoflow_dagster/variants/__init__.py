"""Alignment (minimap2 via mappy), calling (bcftools via pysam) and annotation: plain Python, no Dagster."""
