"""Heavy steps by name, with JSON-able arguments, so they can run in-process or in another process.

Plain Python (no Dagster): the `compute` resource and the Pipes worker both call `run_task`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Log = Callable[[str], None]


def _align(kwargs: dict[str, Any], log: Log) -> dict[str, Any]:
    from genoflow_dagster.variants.align import align_reads

    return align_reads(
        kwargs["reference"], kwargs["r1"], kwargs.get("r2"), kwargs["out_bam"],
        sample_id=kwargs["sample_id"], reference_fasta=kwargs["reference_fasta"],
        threads=int(kwargs.get("threads", 1)), log=log,
    )


def _call(kwargs: dict[str, Any], log: Log) -> dict[str, Any]:
    from genoflow_dagster.variants.call import call_variants

    log(f"calling variants on {kwargs['bam']}")
    return call_variants(kwargs["reference_fasta"], kwargs["bam"], kwargs["out_vcf_gz"],
                         sample_id=kwargs["sample_id"], targets_bed=kwargs.get("targets_bed"),
                         threads=int(kwargs.get("threads", 1)), log=log)


TASKS: dict[str, Callable[[dict[str, Any], Log], dict[str, Any]]] = {
    "align_reads": _align,
    "call_variants": _call,
}


def run_task(task: str, kwargs: dict[str, Any], log: Log = print) -> dict[str, Any]:
    if task not in TASKS:
        raise ValueError(f"unknown compute task {task!r}; known: {', '.join(sorted(TASKS))}")
    result = TASKS[task](kwargs, log)
    return {k: (str(v) if not isinstance(v, int | float | str | bool | type(None) | list | dict) else v)
            for k, v in result.items()}
