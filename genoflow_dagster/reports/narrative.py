"""What an AI provider may see, how it is asked, and the offline narrative.

Only aggregate numbers and QC module names pass `deidentify_summary`: no
sample id, file name, path, read name, sequence or free text. It is an
allow-list, so a field added to the summary later stays private until someone
decides otherwise here.
"""

from __future__ import annotations

import json
import math
from typing import Any

from genoflow_dagster import verdicts

NUMERIC_FIELDS = (
    "total_reads", "q30_percent", "gc_percent", "mean_quality", "duplication_percent",
    "mapped_percent", "properly_paired_percent", "mean_depth", "breadth_10x",
    "variants_total", "variants_snvs", "variants_indels", "variants_ts_tv", "variants_het", "variants_hom_alt",
    "variants_het_hom_ratio", "variants_known", "variants_novel", "variants_genes_hit",
)
CATEGORICAL_FIELDS = {"qc_status": {"pass", "warn", "fail"}, "qc_profile": {"standard", "strict", "custom"},
                      "stopped_at": set(verdicts.GATE_ASSETS)}  # the gate that stopped the sample (public names)
MODULE_LIST_FIELDS = ("qc_failing_modules", "qc_warning_modules")
KNOWN_MODULES = {
    "basic statistics", "per base sequence quality", "per sequence quality scores", "per base sequence content",
    "per sequence GC content", "per base N content", "sequence length distribution",
    "sequence duplication levels", "overrepresented sequences", "adapter content", "mapped reads",
    "properly paired", "mean depth", "ts/tv", "het/hom ratio", "call rate",
}

SYSTEM_PROMPT = (
    "You write the interpretive paragraph of a sequencing QC report for a clinical laboratory reviewer. "
    "Use only the numbers given. Be factual and brief (at most 120 words). Say what passed, what failed and "
    "what a reviewer should check. Do not speculate about the patient. End with: 'Requires review and sign-off.'"
)


def deidentify_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """Keep allow-listed aggregate fields only; round numbers so nothing identifies a file by its exact counts."""
    clean: dict[str, Any] = {}
    for key in NUMERIC_FIELDS:
        value = summary.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            continue
        clean[key] = round(float(value), 2) if isinstance(value, float) else int(value)
    for key, allowed in CATEGORICAL_FIELDS.items():
        value = summary.get(key)
        if isinstance(value, str) and value in allowed:
            clean[key] = value
        elif key == "qc_profile" and isinstance(value, str):
            clean[key] = "custom"
    for key in MODULE_LIST_FIELDS:
        values = summary.get(key) or []
        clean[key] = sorted({v for v in values if isinstance(v, str) and v in KNOWN_MODULES})
    return clean


def build_prompt(deidentified: dict[str, Any]) -> tuple[str, str]:
    user = "Aggregate QC and variant metrics of one sequencing sample (JSON):\n" + json.dumps(
        deidentified, sort_keys=True)
    return SYSTEM_PROMPT, user


_STOPPED = {
    verdicts.USABLE_INPUTS: "The sample was stopped at validation: it has no usable input (no valid reads, "
    "alignments or call set, or an incomplete read pair or samplesheet row); see the quality gates.",
    verdicts.REFERENCE_CONSISTENT: "The sample was stopped before alignment: an uploaded alignment or call set "
    "does not match the configured reference.",
    verdicts.QC_WITHIN_PROFILE: "The sample failed its QC profile ({modules}) and was stopped before alignment; "
    "re-sequencing or a profile review is needed.",
    verdicts.ALIGNMENT_WITHIN_PROFILE: "The sample was stopped before variant calling: its aligned reads miss the "
    "profile's alignment floors (is this the right reference?).",
}


def offline_narrative(d: dict[str, Any]) -> str:
    """Deterministic prose from the same de-identified numbers an AI provider would get."""
    parts: list[str] = []
    status = d.get("qc_status")
    stopped_at = d.get("stopped_at")
    if stopped_at in _STOPPED:
        parts.append(_STOPPED[stopped_at].format(modules=", ".join(d.get("qc_failing_modules") or ["?"])))
    elif status == "fail":
        parts.append("The sample failed a blocking quality gate and was stopped.")
    elif status == "warn":
        parts.append("The sample passed QC with warnings (" + ", ".join(d.get("qc_warning_modules") or []) + ").")
    elif status == "pass":
        parts.append("The sample passed every QC module of its profile.")
    if "total_reads" in d:
        text = f"{d['total_reads']:,} reads"
        if "q30_percent" in d:
            text += f", {d['q30_percent']:.1f}% of bases at Q30 or better"
        if "gc_percent" in d:
            text += f", GC {d['gc_percent']:.1f}%"
        parts.append(text[0].upper() + text[1:] + ".")
    if "mapped_percent" in d:
        text = f"{d['mapped_percent']:.1f}% of reads mapped to the reference"
        if "mean_depth" in d:
            text += f" at a mean depth of {d['mean_depth']:.1f}x"
        parts.append(text + ".")
    if "variants_total" in d:
        text = f"{d['variants_total']:,} variants were reported"
        if "variants_snvs" in d or "variants_indels" in d:
            text += f" ({d.get('variants_snvs', 0):,} SNVs, {d.get('variants_indels', 0):,} indels)"
        if "variants_novel" in d:
            text += f", {d['variants_novel']:,} not in the known-sites set"
        parts.append(text + ".")
        if "variants_ts_tv" in d:
            tstv = d["variants_ts_tv"]
            note = "within" if 1.8 <= tstv <= 3.3 else "outside"
            parts.append(f"Ts/Tv is {tstv:.2f}, {note} the range usually seen for germline SNVs "
                         "(about 2.0-2.1 genome-wide, higher in exomes); small call sets vary widely.")
    parts.append("Research use only. Requires review and sign-off.")
    return " ".join(parts)
