"""File formats: detection, streaming readers and validators. No Dagster imports."""

FORMATS: tuple[str, ...] = (
    "fastq", "fasta", "sam", "bam", "cram", "vcf", "bed", "gff", "gtf", "csv", "tsv", "xlsx",
)
