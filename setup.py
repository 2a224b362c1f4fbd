"""Only the compiled part of the package; everything else is declared in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "genoflow_dagster.qc._fastq_counts",
            sources=["genoflow_dagster/qc/_fastq_counts.c"],
            extra_compile_args=["-O3", "-std=c99"],
        )
    ]
)
