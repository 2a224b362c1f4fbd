"""The upload page, driven in headless Chromium as lab staff use it (issue 15).

Each test starts the real portal (`genoflow portal`, uvicorn) on a free loopback port over a temporary data dir
and DAGSTER_HOME; the first one also starts `dagster-daemon run`, whose landing sensor starts the uploaded
samples' runs. The page's own Content-Security-Policy stays on, so the tests read the page with
`page.evaluate` (which the policy does not govern) and never ask Playwright to evaluate strings inside it.

Data: ../shared/realdata (ENA ERR5069949 read pairs via nf-core test data; MN908947.3 and its GFF via
UPHL-BioNGS/Cecret). The 5 GB file is sparse (zeros), so it costs no disk until the portal stores it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest

from genoflow_dagster.jobs import SAMPLE_PIPELINE_JOB
from tests.browser import VIEWPORT, chromium_browser, chromium_page, requires_browser
from tests.conftest import _free_port, make_s3_storage
from tests.makefile import recipe_command

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"
BIN = Path(sys.executable).parent
PAIR = (REALDATA / "ERR5069949_test_1.fastq.gz", REALDATA / "ERR5069949_test_2.fastq.gz")
RUN_TIMEOUT = 240  # the sensor ticks every 30 s; a run takes 10-40 s on two shared cores
BIG_FILE_BYTES = 5_000_000_000

pytestmark = [
    requires_browser,
    pytest.mark.integration,
    pytest.mark.skipif(not REALDATA.is_dir(), reason="../shared/realdata not present"),
]


# ---------------------------------------------------------------- servers


def lab_environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A lab's environment: empty instance and data dir, offline AI, a 2 s settle period, nothing inherited."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GENOFLOW_", "DAGSTER_"))}
    env.update({"DAGSTER_HOME": str(home), "GENOFLOW_DATA_DIR": str(tmp_path / "data"), "GENOFLOW_STORAGE": "local",
                "GENOFLOW_AI_PROVIDER": "offline", "GENOFLOW_LANDING_SETTLE_SECONDS": "2"})
    env.update(extra)
    return env


@contextmanager
def running(command: list[str], env: dict[str, str], log: Path, ready_url: str | None = None) -> Iterator[None]:
    """`command` in its own process group for the duration; waits until `ready_url` answers."""
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while ready_url is not None:
            if process.poll() is not None:
                raise AssertionError(f"{command[0]} exited ({process.returncode}):\n{log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(ready_url, timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{ready_url} did not answer:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.3)
        yield
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 15)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()


def make_portal_command(port: int) -> list[str]:
    """The command the Makefile's `portal` target runs (the README's `make portal`), on `port`."""
    return recipe_command("portal", "genoflow portal", "--port", "8000", port)


@contextmanager
def portal(env: dict[str, str], log: Path, *, tokens: bool = False) -> Iterator[str]:
    """`make portal`'s command on a free loopback port (with `--no-auth` unless `tokens`); yields its URL."""
    port = _free_port()
    command = make_portal_command(port)
    url = f"http://127.0.0.1:{port}/"
    with running(command + ([] if tokens else ["--no-auth"]), env, log, url + "supported_formats"):
        yield url


# ---------------------------------------------------------------- the page


def until(page, script: str, timeout: float, what: str):
    """Poll `script` (a JS expression) in the page until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = page.evaluate(script)
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"waited {timeout:.0f} s for {what}; the page says:\n{page.inner_text('body')[-3000:]}")


def drop(page, paths: list[Path]) -> None:
    """Drop `paths` on the drop zone as a browser does: a DataTransfer with the files, dragenter/over/drop."""
    files = [{"name": p.name, "data": base64.b64encode(p.read_bytes()).decode()} for p in paths]
    page.evaluate("""(files) => {
        const transfer = new DataTransfer();
        for (const f of files) {
            const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
            transfer.items.add(new File([bytes], f.name));
        }
        const zone = document.getElementById("drop-zone");
        for (const type of ["dragenter", "dragover", "drop"]) {
            zone.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
        }
    }""", files)


def file_row(name: str) -> str:
    return f"[...document.querySelectorAll('#file-list li')].filter((li) => li.dataset.file === {name!r}).pop()"


def uploaded(page, name: str, timeout: float = 60) -> str:
    """Wait for `name`'s bar to reach 100% and its "Uploaded as" line; the SHA-256 the page shows."""
    until(page, f"(() => {{ const li = {file_row(name)}; return li && li.querySelector('progress').value === 100"
                f" && li.querySelector('.file-status').textContent.startsWith('Uploaded as'); }})()",
          timeout, f"{name} to be uploaded")
    return page.evaluate(f"{file_row(name)}.querySelector('.checksum').textContent")


def history_row(page, sample: str, state: str, timeout: float) -> str:
    """Wait until the history shows `sample` in `state`; that row's text."""
    script = (f"[...document.querySelectorAll('#history-table tbody tr')].filter((tr) => "
              f"tr.cells[1].textContent === {sample!r} && tr.dataset.state === {state!r}).map((tr) => tr.innerText)[0]")
    return until(page, script, timeout, f"sample {sample} to be {state}")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(8 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- tests


@pytest.mark.slow
def test_a_dropped_pair_goes_from_the_page_to_its_report_and_a_bad_file_shows_its_code_and_line(tmp_path,
                                                                                               monkeypatch):
    env = lab_environment(tmp_path, GENOFLOW_REFERENCE="sarscov2")
    for key, value in env.items():
        if key.startswith(("GENOFLOW_", "DAGSTER_")):
            monkeypatch.setenv(key, value)
    from genoflow_dagster.references import add_reference

    add_reference(REALDATA / "MN908947.3.fasta", name="sarscov2", annotation=REALDATA / "MN908947.3.gff")
    bad = tmp_path / "BAD_R1.fastq"  # the third record's quality (line 12) is 4 characters for 8 bases
    bad.write_text("@r1\nACGTACGT\n+\nIIIIIIII\n@r2\nACGTACGT\n+\nIIIIIIII\n@r3\nACGTACGT\n+\nIIII\n")

    daemon = [str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")]
    with running(daemon, env, tmp_path / "daemon.log"), portal(env, tmp_path / "portal.log") as url, \
            chromium_page() as page:
        page.goto(url)
        page.get_by_label("Sample ID").fill("S1")
        drop(page, list(PAIR))
        page.get_by_label("Add a samplesheet row for these files").check()
        page.get_by_label("QC profile").select_option("amplicon")
        page.get_by_role("button", name="Upload", exact=True).click()
        for path in PAIR:
            assert uploaded(page, path.name) == sha256_of(path)
        until(page, f"{file_row('samplesheet.csv')}?.querySelector('progress').value === 100", 30, "the samplesheet")

        page.get_by_label("Sample ID").fill("BAD")
        page.set_input_files("#files", str(bad))
        page.get_by_role("button", name="Upload", exact=True).click()
        assert uploaded(page, bad.name) == sha256_of(bad)

        seen = []  # what S1's row said while its run went on: the step it was at, while processing
        deadline = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < deadline and not any("\tcompleted\t" in text for text in seen):
            seen += page.evaluate("[...document.querySelectorAll('#history-table tbody tr')].filter((tr) => "
                                  "tr.cells[1].textContent === 'S1').map((tr) => tr.innerText)")
            time.sleep(0.5)
        assert any("processing" in text and "now at: " in text for text in seen), seen
        done = history_row(page, "S1", "completed", 5)
        assert "Report (HTML)" in done and "Variants (VCF)" in done and "Alignments (BAM)" in done, done
        refused = history_row(page, "BAD", "failed", RUN_TIMEOUT)
        assert "FASTQ_QUALITY_LENGTH_MISMATCH" in refused and "line 12" in refused, refused

        with page.expect_popup() as popup:
            page.locator("#history-table tr", has_text="S1").first.locator("a[data-kind=report_html]").click()
        report = popup.value
        report.wait_for_load_state()
        assert "S1" in report.title() + report.inner_text("body")
        assert "MN908947.3" in report.inner_text("body")

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        runs = instance.get_runs(dg.RunsFilter(job_name=SAMPLE_PIPELINE_JOB, tags={"dagster/partition": "S1"}))
        assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS]
        assert runs[0].tags["genoflow/trigger"] == "landing"


@pytest.mark.slow
def test_a_5_gb_upload_interrupted_at_half_way_resumes_where_it_stopped(tmp_path):
    env = lab_environment(tmp_path)
    big = tmp_path / "big_R1.fastq.gz"
    with big.open("wb") as handle:
        handle.truncate(BIG_FILE_BYTES)
    landing = tmp_path / "data" / "landing" / "BIG"
    try:
        with portal(env, tmp_path / "portal.log") as url, chromium_page() as page:
            page.goto(url)
            page.get_by_label("Sample ID").fill("BIG")
            page.set_input_files("#files", str(big))  # a local path: Chromium reads it, nothing is copied
            page.get_by_role("button", name="Upload", exact=True).click()
            until(page, f"{file_row(big.name)}.querySelector('progress').value >= 50", 300, "50%")
            page.reload()  # the tab is closed half way: every request in flight is dropped
            assert not landing.exists() or not any(landing.iterdir()), "a partial file appeared under landing/"

            sent_again: list[str] = []
            page.on("request", lambda r: sent_again.append(r.url) if r.method == "PUT" else None)
            page.get_by_label("Sample ID").fill("BIG")
            page.set_input_files("#files", str(big))
            page.get_by_role("button", name="Upload", exact=True).click()
            resumed = until(page, f"(() => {{ const t = {file_row(big.name)}.querySelector('.file-status')"
                                  ".textContent; return t.startsWith('Resuming') && t; })()", 30, "the resume")
            percent, stored, count = _resume_numbers(resumed)
            assert percent >= 50
            shown = uploaded(page, big.name, timeout=600)
        assert len(set(sent_again)) == count - stored == len(sent_again), "chunks the server held were sent again"
        assert [p.name for p in landing.iterdir()] == [big.name]
        assert (landing / big.name).stat().st_size == BIG_FILE_BYTES
        assert shown == _sha256_of_zeros(BIG_FILE_BYTES)
        assert not any((tmp_path / "data" / ".portal" / "chunks").iterdir()), "chunks were left behind"
    finally:
        shutil.rmtree(tmp_path / "data", ignore_errors=True)  # 5 GB: not left for pytest's kept temp dirs


def _resume_numbers(text: str) -> tuple[int, int, int]:
    """(percent, chunks stored, chunk count) from "Resuming: 51% was already received (304 of 597 pieces)."."""
    found = re.search(r"(\d+)% was already received \((\d+) of (\d+) pieces\)", text)
    assert found, text
    return int(found[1]), int(found[2]), int(found[3])


def _sha256_of_zeros(size: int) -> str:
    digest, block = hashlib.sha256(), bytes(16 * 1024 * 1024)
    for _ in range(size // len(block)):
        digest.update(block)
    digest.update(bytes(size % len(block)))
    return digest.hexdigest()


@pytest.fixture
def s3_portal(tmp_path, s3_endpoint) -> Iterator[tuple[str, object, dict[str, str]]]:
    """The portal over S3 (moto's server) with tokens required and a 64 MB limit: (URL, storage, env)."""
    storage = make_s3_storage(s3_endpoint)
    env = lab_environment(tmp_path, GENOFLOW_STORAGE="s3", GENOFLOW_S3_BUCKET=storage.bucket,
                          GENOFLOW_S3_ENDPOINT_URL=s3_endpoint, AWS_ACCESS_KEY_ID="testing",
                          AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1",
                          GENOFLOW_MAX_FILE_BYTES=str(64 * 1024 * 1024))
    with portal(env, tmp_path / "portal.log", tokens=True) as url:
        yield url, storage, env


def new_token(env: dict[str, str], name: str, role: str) -> str:
    """The README's `genoflow token add NAME --role ROLE`; the token it prints once."""
    answer = subprocess.run([str(BIN / "genoflow"), "token", "add", name, "--role", role], env=env, check=True,
                            capture_output=True, text=True)
    return answer.stdout.strip()


def sign_in(page, url: str, token: str) -> None:
    page.goto(url)
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_label("Sample ID").wait_for()


def test_two_people_uploading_at_once_on_s3_get_their_own_files_and_history(s3_portal, tmp_path):
    url, storage, env = s3_portal
    files = {}
    for sample in ("ALPHA", "BETA"):  # 24 MB each: three 8 MiB chunks, sent while the other page sends
        files[sample] = tmp_path / f"{sample}_R1.fastq.gz"
        files[sample].write_bytes(os.urandom(24 * 1024 * 1024))
    with chromium_browser() as browser:
        pages = {sample: browser.new_context(viewport=VIEWPORT).new_page() for sample in files}
        for sample, page in pages.items():
            sign_in(page, url, new_token(env, f"bench {sample}", "uploader"))
            page.get_by_label("Sample ID").fill(sample)
            page.set_input_files("#files", str(files[sample]))
        for page in pages.values():
            page.get_by_role("button", name="Upload", exact=True).click()
        for sample, page in pages.items():
            assert uploaded(page, files[sample].name) == sha256_of(files[sample])
        for sample, page in pages.items():
            with storage.open_read(f"landing/{sample}/{files[sample].name}") as landed:
                assert hashlib.sha256(landed.read()).hexdigest() == sha256_of(files[sample])
            history_row(page, sample, "queued", 30)
            samples_shown = page.evaluate("[...document.querySelectorAll('#history-table tbody tr')]"
                                          ".map((tr) => tr.cells[1].textContent)")
            assert samples_shown == [sample], "an uploader sees another token's upload"


def test_the_page_checks_files_with_the_servers_codes_before_sending(s3_portal, tmp_path):
    url, storage, env = s3_portal
    empty = tmp_path / "empty_R1.fastq"
    empty.write_bytes(b"")
    wrong = tmp_path / "notes.docx"
    wrong.write_bytes(b"minutes of the lab meeting")
    compressed_bam = tmp_path / "reads.bam.gz"
    compressed_bam.write_bytes(b"\x1f\x8b")
    huge = tmp_path / "huge_R1.fastq.gz"
    with huge.open("wb") as handle:
        handle.truncate(64 * 1024 * 1024 + 1)
    expected = {empty.name: "VALIDATION_ERROR", wrong.name: "INVALID_FILE_TYPE",
                compressed_bam.name: "INVALID_FILE_TYPE", huge.name: "FILE_TOO_LARGE"}
    with chromium_page() as page:
        sign_in(page, url, new_token(env, "front desk", "uploader"))
        page.get_by_label("Sample ID").fill("CHECKS")
        page.get_by_role("button", name="Upload", exact=True).click()
        assert page.locator("#form-error").inner_text().startswith("NO_FILE:")
        page.set_input_files("#files", [str(p) for p in (empty, wrong, compressed_bam, huge)])
        shown = page.evaluate("Object.fromEntries([...document.querySelectorAll('#file-list li')].map((li) => "
                              "[li.dataset.file, li.querySelector('.file-status').textContent]))")
        page.get_by_role("button", name="Upload", exact=True).click()
        assert page.locator("#form-error").inner_text().startswith("VALIDATION_ERROR:")
    for name, code in expected.items():
        assert shown[name].startswith(f"{code}: "), shown[name]
    assert list(storage.list("landing/")) == [], "a refused file was sent"

    # The server answers the same codes for the same files.
    import httpx

    token = new_token(env, "api check", "uploader")
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as api:
        for path, code in ((wrong, "INVALID_FILE_TYPE"), (compressed_bam, "INVALID_FILE_TYPE"),
                           (huge, "FILE_TOO_LARGE"), (empty, "VALIDATION_ERROR")):
            answer = api.post("uploads", json={"sample_id": "CHECKS", "file_name": path.name,
                                               "size": path.stat().st_size})
            assert answer.json()["error"]["code"] == code, (path.name, answer.text)


def _contrast(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio of two CSS rgb()/rgba() colours."""
    def luminance(css: str) -> float:
        channels = [float(v) / 255 for v in css[css.index("(") + 1:css.index(")")].split(",")[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_page_is_usable_by_keyboard_and_on_a_phone_with_readable_contrast(s3_portal, tmp_path):
    url, _, env = s3_portal
    token = new_token(env, "phone", "uploader")
    with chromium_page(viewport={"width": 375, "height": 740}) as page:
        page.goto(url)
        page.get_by_label("API token").wait_for()
        # Keyboard only: the token field has the focus, Enter signs in, Tab reaches every control in order.
        assert page.evaluate("document.activeElement.id") == "token"
        page.keyboard.type(token)
        page.keyboard.press("Enter")
        page.get_by_label("Sample ID").wait_for()
        page.get_by_label("Sample ID").focus()
        order = []
        for _ in range(6):
            order.append(page.evaluate("document.activeElement.id || document.activeElement.textContent"))
            page.keyboard.press("Tab")
        assert order[:3] == ["sample-id", "files", "with-sheet"], order
        assert "upload-button" in order, order
        page.keyboard.press("Shift+Tab")
        focus_ring = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert focus_ring != "none"

        unlabelled = page.evaluate("""[...document.querySelectorAll('input, select, button, progress')]
            .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                            && !(el.textContent || '').trim())
            .map((el) => el.outerHTML)""")
        assert unlabelled == []
        assert page.evaluate("document.documentElement.lang") == "en"

        # A phone: nothing wider than the screen, touch-sized buttons, the history as cards.
        page.set_input_files("#files", str(PAIR[0]))
        page.get_by_label("Sample ID").fill("PHONE")
        page.get_by_role("button", name="Upload", exact=True).click()
        uploaded(page, PAIR[0].name)
        history_row(page, "PHONE", "queued", 30)
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        assert page.locator("#upload-button").bounding_box()["height"] >= 44
        assert page.evaluate("getComputedStyle(document.querySelector('#history-table thead')).display") == "none"

        # Text colours against white: 4.5:1 at least (WCAG AA), for every kind of text the page shows.
        page.evaluate("""() => { const p = document.getElementById('form-error'); p.hidden = false;
                                 p.textContent = 'VALIDATION_ERROR: example'; }""")
        colours = page.evaluate("""[...document.querySelectorAll(
                'h1, h2, .help, label, .badge, .error, a, .file-status, td, #upload-button')]
            .filter((el) => el.offsetParent !== null)
            .map((el) => { let bg = 'rgba(0, 0, 0, 0)', node = el;
                           while (node && bg === 'rgba(0, 0, 0, 0)') {
                               bg = getComputedStyle(node).backgroundColor; node = node.parentElement; }
                           return [el.tagName + '.' + el.className, getComputedStyle(el).color,
                                   bg === 'rgba(0, 0, 0, 0)' ? 'rgb(255, 255, 255)' : bg]; })""")
    assert len(colours) > 10
    for what, foreground, background in colours:
        assert _contrast(foreground, background) >= 4.5, (what, foreground, background)
