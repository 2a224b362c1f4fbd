"""The MultiQC cohort report at 100 and 1,000 samples: build time, page weight, time to open in Chromium.

The per-sample MultiQC inputs are rendered from real stored artifacts: the demo's three samples (a passing
one with alignment and calls, a gate-stopped one with FastQC only, a VCF-only one), written once by
`reports.multiqc_inputs.write_sample_inputs` exactly as the `cohort_multiqc_report` asset does. For N
samples those three folders are cloned under new sample names (names replaced in file names and contents),
so a cohort of 1,000 has ~333 of each kind. Then `build_multiqc_report` runs MultiQC over them (flat plots
above 100 samples, MultiQC's own switch) and the page is opened in headless Chromium until the verdict
table has all its rows.

    .venv/bin/python benchmarks/multiqc_scale.py                    # runs the demo into a temp dir first
    .venv/bin/python benchmarks/multiqc_scale.py --data data --sizes 100 --no-write
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_md import replace_section

from genoflow_dagster.reports.multiqc_inputs import (
    VERDICT_SECTION_ID,
    build_multiqc_report,
    read_sample_artifacts,
    write_sample_inputs,
)
from genoflow_dagster.resources.storage import LocalStorage

HERE = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("GENOFLOW_TEST_CHROMIUM", "/usr/bin/chromium")


def demo_data(workdir: Path) -> Path:
    """Run `genoflow demo` into a throwaway instance and data dir; returns the data dir."""
    env = {**os.environ, "DAGSTER_HOME": str(workdir / "home"), "GENOFLOW_DATA_DIR": str(workdir / "data")}
    env.pop("GENOFLOW_REFERENCE", None)
    subprocess.run([str(Path(sys.executable).with_name("genoflow")), "demo", "--fresh"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return workdir / "data"


def template_inputs(data: Path, out: Path) -> tuple[list[str], float]:
    """Each stored sample's MultiQC inputs under out/<sample>/; returns the samples and seconds per sample."""
    storage = LocalStorage(base_dir=str(data))
    samples = sorted(p.name for p in (data / "processed").iterdir() if p.is_dir())
    started = time.perf_counter()
    written = []
    for sample_id in samples:
        artifacts = read_sample_artifacts(storage, sample_id)
        if artifacts.validation is None and artifacts.qc is None:
            continue
        write_sample_inputs(artifacts, out)
        written.append(sample_id)
    return written, (time.perf_counter() - started) / max(1, len(written))


def clone_cohort(template: Path, samples: list[str], n: int, out: Path) -> None:
    """n sample folders, the template samples in turn, each renamed GEN00001... in names and contents."""
    for i in range(n):
        source = samples[i % len(samples)]
        name = f"GEN{i + 1:05d}"
        folder = out / name
        folder.mkdir(parents=True)
        for path in (template / source).iterdir():
            text = path.read_text().replace(source, name)
            (folder / path.name.replace(source, name)).write_text(text)


def open_in_chromium(report: Path, rows: int) -> float | None:
    """Seconds until the verdict table shows all its rows in headless Chromium (None without a browser)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not Path(CHROMIUM).is_file():
        return None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        page = browser.new_page()
        started = time.perf_counter()
        page.goto(report.as_uri(), timeout=300_000)
        page.wait_for_function(
            f"n => document.querySelectorAll('#{VERDICT_SECTION_ID}_table_table tbody tr').length >= n",
            arg=rows, timeout=300_000)
        seconds = time.perf_counter() - started
        browser.close()
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="a data dir with processed samples (default: run the demo)")
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="multiqc-scale-") as tmp:
        work = Path(tmp)
        data = args.data or demo_data(work)
        samples, per_sample = template_inputs(data, work / "template")
        print(f"inputs of {len(samples)} stored samples: {per_sample * 1000:.0f} ms per sample")
        for n in sizes:
            inputs, out = work / f"inputs-{n}", work / f"out-{n}"
            clone_cohort(work / "template", samples, n, inputs)
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            started = time.perf_counter()
            report = build_multiqc_report(inputs, out, title=f"GenoFlow cohort QC ({n} samples)")
            seconds = time.perf_counter() - started
            peak_mb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
            page_mb = report.stat().st_size / 1e6
            opened = open_in_chromium(report, n)
            rows.append((n, seconds, page_mb, peak_mb, opened))
            print(f"{n} samples: built in {seconds:.1f} s, page {page_mb:.1f} MB, MultiQC peak {peak_mb:.0f} MB, "
                  f"opened in {opened if opened is None else f'{opened:.1f} s'}")
            shutil.rmtree(inputs)
    if not args.no_write:
        lines = ["## MultiQC cohort report at scale", "",
                 "`benchmarks/multiqc_scale.py`: the `cohort_multiqc_report` asset's two steps on N samples cloned "
                 "from the demo's three stored samples (pass with alignment and calls, gate-stopped with FastQC only, "
                 "VCF only): MultiQC inputs rendered from stored JSON "
                 f"({per_sample * 1000:.0f} ms per sample), then MultiQC {_multiqc_version()} in its own process "
                 "(flat plots above 100 samples). \"Opened\" is headless Chromium until the verdict table shows every "
                 "row. 2 cores.", "",
                 "| samples | MultiQC build (s) | page (MB) | MultiQC peak memory (MB) | opened in Chromium (s) |",
                 "|---:|---:|---:|---:|---:|"]
        for n, seconds, page_mb, peak_mb, opened in rows:
            lines.append(f"| {n:,} | {seconds:.1f} | {page_mb:.1f} | {peak_mb:.0f} | "
                         f"{'-' if opened is None else f'{opened:.1f}'} |")
        replace_section("## MultiQC cohort report at scale", "\n".join(lines) + "\n")
    return 0


def _multiqc_version() -> str:
    from importlib.metadata import version

    return version("multiqc")


if __name__ == "__main__":
    raise SystemExit(main())
