"""Only the compiled part of the package; everything else is declared in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "genoflow_dagster._fastq",
            sources=["genoflow_dagster/_fastq.c"],
            extra_compile_args=["-O3", "-std=c99"],
        )
    ]
)
