// The upload portal's page: choose or drop files, send them in resumable chunks, follow each sample to its report.
//
// Everything goes through the portal's own API (relative URLs): GET me, supported_formats, upload_history, upload_status/<id>, results/<sample>; POST uploads,
// PUT uploads/<id>/chunks/<n>, POST uploads/<id>/complete. The checks made here (extension, size, empty name)
// answer with the server's own codes; the server checks again, and only its answer decides.
//
// Resuming: the upload id of a file being sent is kept in localStorage under (sample, name, size, modified
// time). Choosing the same file for the same sample again, after a broken connection or a closed tab, asks the
// server which chunks it holds and sends only the others.
"use strict";

(() => {
  const TOKEN_KEY = "genoflow.portal.token";
  const RESUME_PREFIX = "genoflow.portal.upload:";
  const PARALLEL_FILES = 2;
  const PARALLEL_CHUNKS = 3;
  const CHUNK_ATTEMPTS = 5;
  const REFRESH_MS = 3000;
  const HISTORY_LIMIT = 50;
  const STATUS_POLLED = 20; // unfinished uploads whose status is fetched on each refresh
  const FINAL = new Set(["completed", "failed", "cancelled"]);
  const SAMPLE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
  const RESULT_LABELS = {
    report_html: "Report (HTML)", report_pdf: "Report (PDF)", bam: "Alignments (BAM)",
    bam_index: "BAM index", vcf: "Variants (VCF)", vcf_index: "VCF index",
  };

  const $ = (id) => document.getElementById(id);
  let formats = null;
  let chosen = [];
  let refreshTimer = null;
  const rows = new Map(); // upload id -> {tr, shown}
  const finalStatus = new Map(); // upload id -> status answer that will not change any more
  const results = new Map(); // sample id -> results answer

  class PortalError extends Error {
    constructor(code, message, status, retryAfter) {
      super(message);
      this.code = code;
      this.status = status;
      this.retryAfter = retryAfter || 0;
    }
    get text() { return `${this.code}: ${this.message}`; }
  }

  // ------------------------------------------------------------------ API

  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

  function authHeaders(extra) {
    const headers = Object.assign({}, extra || {});
    if (token()) headers.Authorization = `Bearer ${token()}`;
    return headers;
  }

  function errorFrom(status, body, retryAfter) {
    const error = body && body.error;
    if (error && error.code) return new PortalError(error.code, error.message, status, retryAfter);
    return new PortalError(status >= 500 ? "INTERNAL_ERROR" : "VALIDATION_ERROR",
      `the portal answered with status ${status}`, status, retryAfter);
  }

  async function api(path, options) {
    const request = Object.assign({}, options || {});
    request.headers = authHeaders(request.headers);
    let response;
    try {
      response = await fetch(path, request);
    } catch (_) {
      throw new PortalError("CONNECTION_LOST", "the portal cannot be reached; check the network connection", 0);
    }
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      throw errorFrom(response.status, body, Number(response.headers.get("Retry-After")) || 0);
    }
    return body;
  }

  function postJson(path, data) {
    return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data) });
  }

  // ------------------------------------------------------------------ words and numbers

  function bytes(n) {
    if (n < 1000) return `${n} B`;
    const units = ["kB", "MB", "GB", "TB"];
    let value = n;
    let unit = -1;
    do { value /= 1000; unit += 1; } while (value >= 1000 && unit < units.length - 1);
    return `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
  }

  function grouped(n) { return n.toLocaleString("en-US"); }

  function when(seconds) {
    return new Date(seconds * 1000).toLocaleString(undefined, {
      year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }

  function element(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "className") node.className = value;
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function showError(id, text) {
    const node = $(id);
    node.textContent = text || "";
    node.hidden = !text;
  }

  function announce(text) { $("announcer").textContent = text; }

  // ------------------------------------------------------------------ the checks the server makes too

  function formatOf(name) {
    let lower = name.toLowerCase();
    const compressed = formats.suffixes.some((suffix) => lower.endsWith(suffix));
    if (compressed) lower = lower.slice(0, lower.lastIndexOf("."));
    const dot = lower.lastIndexOf(".");
    const format = formats.extensions.get(dot >= 0 ? lower.slice(dot) : "");
    if (!format) {
      return { error: new PortalError("INVALID_FILE_TYPE", `${name} does not end in an extension GenoFlow reads `
        + "(for example .fastq.gz, .bam, .vcf.gz); see the accepted formats above") };
    }
    if (compressed && !formats.compressible.has(format)) {
      return { error: new PortalError("INVALID_FILE_TYPE", `${name}: ${format.toUpperCase()} files are not `
        + "accepted compressed as a whole; send the file itself") };
    }
    return { format, compressed };
  }

  function checkFile(file) {
    if (!file.name || !file.name.trim()) return new PortalError("EMPTY_FILENAME", "the file has no name");
    const found = formatOf(file.name);
    if (found.error) return found.error;
    if (file.size > formats.maxBytes) {
      return new PortalError("FILE_TOO_LARGE", `the file is ${grouped(file.size)} bytes; the limit is `
        + `${grouped(formats.maxBytes)}`);
    }
    if (file.size === 0) {
      return new PortalError("VALIDATION_ERROR", "the file is empty (0 bytes): there is nothing to upload");
    }
    return null;
  }

  function checkSample(sample) {
    if (!sample) return "VALIDATION_ERROR: enter the sample ID first";
    if (sample.length > 64 || !SAMPLE_RE.test(sample)) {
      return "VALIDATION_ERROR: a sample ID has 1 to 64 letters, digits, dots, dashes or underscores and "
        + "starts with a letter or digit";
    }
    return null;
  }

  // ------------------------------------------------------------------ chosen files

  class ChosenFile {
    constructor(file) {
      this.file = file;
      this.problem = checkFile(file);
      this.done = false;
      const found = this.problem ? null : formatOf(file.name);
      const kind = found ? ` · ${found.format.toUpperCase()}${found.compressed ? " (compressed)" : ""}` : "";
      this.bar = element("progress", { max: "100", value: "0", "aria-label": `Upload progress of ${file.name}`,
        hidden: true });
      this.percent = element("span", { className: "file-percent" });
      this.status = element("p", { className: "file-status", "aria-live": "polite" });
      this.remove = element("button", { type: "button", className: "secondary",
        "aria-label": `Remove ${file.name}` }, "Remove");
      this.remove.addEventListener("click", () => {
        chosen = chosen.filter((item) => item !== this);
        this.li.remove();
        showChosen();
      });
      this.li = element("li", { "data-file": file.name },
        element("div", { className: "file-head" },
          element("span", { className: "file-name" }, file.name),
          element("span", {}, `${bytes(file.size)}${kind}`, " ", this.percent)),
        this.bar, this.status, this.remove);
      if (this.problem) this.say(this.problem.text, true);
    }

    say(text, isError) {
      this.status.textContent = text;
      this.status.classList.toggle("error", Boolean(isError));
    }

    progress(sent, total) {
      const percent = total ? Math.min(100, Math.floor((sent / total) * 100)) : 100;
      this.bar.hidden = false;
      this.bar.value = percent;
      this.bar.setAttribute("aria-valuetext", `${percent}% (${bytes(sent)} of ${bytes(total)})`);
      this.percent.textContent = `${percent}%`;
    }
  }

  function addFiles(files) {
    for (const file of files) {
      if (chosen.some((item) => !item.done && item.file.name === file.name && item.file.size === file.size)) continue;
      const item = new ChosenFile(file);
      chosen.push(item);
      $("file-list").append(item.li);
    }
    showChosen();
  }

  function showChosen() {
    $("no-files").hidden = chosen.length > 0;
  }

  // ------------------------------------------------------------------ sending

  function sendChunk(upload, file, number, onProgress) {
    const start = number * upload.chunk_size;
    const blob = file.slice(start, Math.min(file.size, start + upload.chunk_size));
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", `uploads/${upload.upload_id}/chunks/${number}`);
      for (const [name, value] of Object.entries(authHeaders({ "Content-Type": "application/octet-stream" }))) {
        xhr.setRequestHeader(name, value);
      }
      xhr.upload.onprogress = (event) => onProgress(event.loaded);
      xhr.onload = () => {
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch (_) { body = null; }
        if (xhr.status >= 200 && xhr.status < 300) resolve(body);
        else reject(errorFrom(xhr.status, body, Number(xhr.getResponseHeader("Retry-After")) || 0));
      };
      xhr.onerror = () => reject(new PortalError("CONNECTION_LOST", "the connection broke while sending", 0));
      xhr.onabort = xhr.onerror;
      xhr.send(blob);
    });
  }

  function pause(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

  function retriable(error) { return error.status === 0 || error.status === 429 || error.status >= 500; }

  async function sendChunkWithRetries(upload, file, number, onProgress) {
    let last = null;
    for (let attempt = 0; attempt < CHUNK_ATTEMPTS; attempt += 1) {
      try {
        return await sendChunk(upload, file, number, onProgress);
      } catch (error) {
        last = error;
        onProgress(0);
        if (!retriable(error)) throw error;
        await pause(error.retryAfter ? error.retryAfter * 1000 : 500 * 2 ** attempt);
      }
    }
    throw last;
  }

  async function startOrResume(sample, file) {
    const key = RESUME_PREFIX + [sample, file.name, file.size, file.lastModified].join("|");
    const known = localStorage.getItem(key);
    if (known) {
      try {
        const upload = await api(`uploads/${encodeURIComponent(known)}`);
        if (upload.state === "receiving" || upload.state === "failed") return { upload, key };
      } catch (_) { /* gone or not ours: start again */ }
      localStorage.removeItem(key);
    }
    let upload;
    try {
      upload = await postJson("uploads", { sample_id: sample, file_name: file.name, size: file.size });
    } catch (error) {
      // 409: this file is already being sent for this sample, from another tab or browser: resume that upload.
      const unfinished = error.status === 409 ? await unfinishedUpload(sample, file) : null;
      if (!unfinished) throw error;
      upload = await api(`uploads/${unfinished.upload_id}`);
    }
    localStorage.setItem(key, upload.upload_id);
    return { upload, key };
  }

  // The name the server stores a file under (zones.safe_name): unsafe characters become "_".
  function storedName(name) {
    const base = name.replaceAll("\\", "/").split("/").pop().normalize("NFKC");
    return base.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[._]+|[._]+$/g, "");
  }

  async function unfinishedUpload(sample, file) {
    const { uploads } = await api(`upload_history?limit=${HISTORY_LIMIT}`);
    return uploads.find((u) => (u.state === "receiving" || u.state === "failed") && u.sample_id === sample
      && u.size === file.size && u.file_name === storedName(file.name)) || null;
  }

  async function uploadFile(item, sample) {
    const file = item.file;
    item.remove.hidden = true;
    item.say("Starting…");
    const { upload, key } = await startOrResume(sample, file);
    const chunkSize = (n) => Math.min(upload.chunk_size, file.size - n * upload.chunk_size);
    let stored = upload.chunks_stored.reduce((sum, n) => sum + chunkSize(n), 0);
    const inFlight = new Map();
    const show = () => item.progress(stored + [...inFlight.values()].reduce((a, b) => a + b, 0), file.size);
    show();
    item.li.dataset.uploadId = upload.upload_id;
    if (upload.chunks_stored.length) {
      item.say(`Resuming: ${Math.floor((stored / file.size) * 100)}% was already received `
        + `(${upload.chunks_stored.length} of ${upload.chunk_count} pieces).`);
    } else {
      item.say("Sending…");
    }
    const queue = upload.chunks_missing.slice();
    let failure = null;
    const worker = async () => {
      while (queue.length && !failure) {
        const number = queue.shift();
        try {
          await sendChunkWithRetries(upload, file, number, (loaded) => { inFlight.set(number, loaded); show(); });
          stored += chunkSize(number);
        } catch (error) {
          failure = failure || error;
        } finally {
          inFlight.delete(number);
          show();
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_CHUNKS, queue.length) }, worker));
    if (failure) throw failure;
    item.say("All sent; the server checks and stores the file…");
    const landed = await api(`uploads/${upload.upload_id}/complete`, { method: "POST" });
    localStorage.removeItem(key);
    item.progress(file.size, file.size);
    item.done = true;
    item.landed = landed;
    item.status.replaceChildren("Uploaded as ", element("strong", {}, landed.file_name), ". SHA-256 ",
      element("span", { className: "checksum" }, landed.sha256), ".");
    item.status.classList.remove("error");
    return landed;
  }

  async function uploadOne(item, sample) {
    try {
      return await uploadFile(item, sample);
    } catch (error) {
      const text = error instanceof PortalError ? error.text : `INTERNAL_ERROR: ${error.message}`;
      const resumable = error instanceof PortalError && retriable(error);
      item.say(resumable ? `${text}. The pieces already received are kept: choose the same file for sample `
        + `${sample} again and press Upload to resume.` : text, true);
      item.remove.hidden = false;
      return null;
    }
  }

  async function inPool(items, size, work) {
    const queue = items.slice();
    const answers = new Map();
    const runner = async () => {
      while (queue.length) {
        const item = queue.shift();
        answers.set(item, await work(item));
      }
    };
    await Promise.all(Array.from({ length: Math.min(size, queue.length) }, runner));
    return items.map((item) => answers.get(item));
  }

  // A samplesheet row naming the files just sent (their names as stored), uploaded last: the landing sensor then
  // starts the sample as soon as all of them are there.
  function samplesheetFor(sample, landed, profile) {
    const byFormat = { fastq: [], bam: [], cram: [], vcf: [] };
    for (const upload of landed) {
      const found = formatOf(upload.file_name);
      if (found.format && byFormat[found.format]) byFormat[found.format].push(upload.file_name);
    }
    if (byFormat.fastq.length > 2 || byFormat.bam.length > 1 || byFormat.cram.length > 1 || byFormat.vcf.length > 1) {
      return { problem: "a samplesheet row names at most two FASTQ files and one BAM, CRAM and VCF each; "
        + "no samplesheet was sent (the sample starts once its uploads have settled)" };
    }
    byFormat.fastq.sort();
    const named = [["fastq_1", byFormat.fastq[0]], ["fastq_2", byFormat.fastq[1]], ["bam", byFormat.bam[0]],
      ["cram", byFormat.cram[0]], ["vcf", byFormat.vcf[0]]].filter(([, value]) => value);
    if (!named.length) return { problem: "none of the files are reads, alignments or calls" };
    if (profile) named.push(["qc_profile", profile]);
    const columns = ["sample", ...named.map(([column]) => column)];
    const values = [sample, ...named.map(([, value]) => value)];
    return { text: `${columns.join(",")}\n${values.join(",")}\n` };
  }

  async function onSubmit(event) {
    event.preventDefault();
    showError("form-error", "");
    const sampleInput = $("sample-id");
    const sample = sampleInput.value.trim();
    const sampleProblem = checkSample(sample);
    sampleInput.setAttribute("aria-invalid", sampleProblem ? "true" : "false");
    if (sampleProblem) {
      showError("form-error", sampleProblem);
      sampleInput.focus();
      return;
    }
    const ready = chosen.filter((item) => !item.problem && !item.done);
    if (!ready.length) {
      showError("form-error", chosen.length ? "VALIDATION_ERROR: none of the chosen files can be sent (see each "
        + "file's problem)" : "NO_FILE: no file was chosen: choose or drop files first");
      return;
    }
    const button = $("upload-button");
    button.disabled = true;
    button.textContent = "Uploading…";
    try {
      const landed = (await inPool(ready, PARALLEL_FILES, (item) => uploadOne(item, sample))).filter(Boolean);
      if ($("with-sheet").checked && landed.length === ready.length) {
        const sheet = samplesheetFor(sample, landed, $("qc-profile").value);
        if (sheet.problem) {
          showError("form-error", `Samplesheet: ${sheet.problem}`);
        } else {
          const item = new ChosenFile(new File([sheet.text], "samplesheet.csv", { type: "text/csv" }));
          item.remove.hidden = true;
          chosen.push(item);
          $("file-list").append(item.li);
          await uploadOne(item, sample);
        }
      }
      const failed = ready.filter((item) => !item.done).length;
      announce(failed ? `${failed} of ${ready.length} files were not uploaded; see each file's message.`
        : `All ${ready.length} files of sample ${sample} were uploaded.`);
    } finally {
      button.disabled = false;
      button.textContent = "Upload";
      refreshHistory();
    }
  }

  // ------------------------------------------------------------------ history and status

  function badge(state) { return element("span", { className: `badge ${state}` }, state); }

  function gateList(gates) {
    if (!gates || !gates.length) return null;
    const passed = gates.filter((gate) => gate.status === "pass");
    const others = gates.filter((gate) => gate.status !== "pass");
    const list = element("ul", { className: "gates" });
    for (const gate of others) {
      const problems = gate.problems && gate.problems.length
        ? element("ul", { className: "problems" }, gate.problems.map((p) => element("li", {}, p))) : null;
      const word = gate.status === "not_graded" ? "not graded" : gate.status;
      list.append(element("li", { "data-gate": gate.gate },
        element("span", { className: `badge ${gate.status === "fail" ? "failed" : "warn"}` }, word), " ",
        gate.gate.replaceAll("_", " "), gate.blocking && gate.status === "fail" ? " (stopped the sample)" : "",
        problems || (gate.summary ? `: ${gate.summary}` : "")));
    }
    if (passed.length) list.append(element("li", {}, `${passed.length} gate(s) passed`));
    return list;
  }

  function resultLinks(answer) {
    if (!answer || !answer.files || !answer.files.length) return null;
    const minutes = Math.round((answer.expires_in || 0) / 60);
    return element("div", {},
      element("ul", { className: "results", "aria-label": `Results of ${answer.sample_id}` },
        answer.files.map((f) => element("li", {},
          element("a", { href: f.url, target: f.kind === "report_html" ? "_blank" : null, rel: "noopener",
            "data-kind": f.kind }, RESULT_LABELS[f.kind] || f.name), ` (${bytes(f.size)})`))),
      minutes ? element("p", { className: "help" }, `Links valid for ${minutes} minutes.`) : null);
  }

  function details(upload, status) {
    const parts = [];
    if (upload.state === "failed" || upload.state === "cancelled") {
      if (upload.error_code) parts.push(element("p", { className: "error" }, `${upload.error_code}: ${upload.error_message}`));
      return parts;
    }
    if (upload.state !== "landed") {
      parts.push(element("p", {}, "Not complete: choose the same file for this sample again to resume."));
      return parts;
    }
    if (upload.sha256) parts.push(element("p", { className: "checksum" }, `SHA-256 ${upload.sha256}`));
    if (!status) return parts;
    if (status.run) {
      const step = status.run.step ? ` · now at: ${status.run.step.replaceAll("_", " ")}` : "";
      parts.push(element("p", {}, `Run ${status.run.run_id.slice(0, 8)}${step}`));
    } else if (status.state === "queued") {
      parts.push(element("p", {}, "Waiting for the pipeline to start (it starts once the sample's files have "
        + "settled, or at once when a samplesheet names them)."));
    }
    if (status.note) parts.push(element("p", { className: "help" }, status.note));
    const gates = gateList(status.gates);
    if (gates) parts.push(gates);
    const links = resultLinks(results.get(upload.sample_id));
    if (links) parts.push(links);
    else if (status.report_url) {
      parts.push(element("p", {}, element("a", { href: status.report_url, target: "_blank", rel: "noopener",
        "data-kind": "report_html" }, "Open the report")));
    }
    return parts;
  }

  function cell(label, ...content) { return element("td", { "data-label": label }, ...content); }

  function renderRow(upload, status) {
    const state = status ? status.state : (upload.state === "landed" ? "queued" : "uploading");
    const tr = element("tr", { "data-upload-id": upload.upload_id, "data-state": state },
      cell("Uploaded", when(upload.created)),
      cell("Sample", upload.sample_id),
      cell("File", upload.file_name),
      cell("Size", bytes(upload.size)),
      cell("Status", badge(state)),
      cell("Details", details(upload, status)));
    return tr;
  }

  async function statusOf(upload, poll) {
    if (finalStatus.has(upload.upload_id)) return finalStatus.get(upload.upload_id);
    if (!poll) return null;
    const status = await api(`upload_status/${upload.upload_id}`);
    if (FINAL.has(status.state)) {
      finalStatus.set(upload.upload_id, status);
      const previous = rows.get(upload.upload_id);
      if (previous && previous.state !== status.state) announce(`Sample ${upload.sample_id}: ${status.state}`);
    }
    return status;
  }

  // The sample's result links, fetched again a little before they expire (a page may stay open all day).
  async function refreshResults(sample) {
    const known = results.get(sample);
    if (known && Date.now() / 1000 < known.refreshAt) return;
    try {
      const answer = await api(`results/${encodeURIComponent(sample)}`);
      answer.refreshAt = Date.now() / 1000 + Math.max(30, (answer.expires_in || 0) - 120);
      results.set(sample, answer);
    } catch (_) { /* not this token's sample: the report link in the status is enough */ }
  }

  async function refreshHistory() {
    clearTimeout(refreshTimer);
    try {
      const { uploads } = await api(`upload_history?limit=${HISTORY_LIMIT}`);
      const body = $("history-table").tBodies[0];
      let polled = 0;
      const statuses = await Promise.all(uploads.map((upload) => {
        const poll = !finalStatus.has(upload.upload_id) && polled < STATUS_POLLED;
        if (poll) polled += 1;
        return statusOf(upload, poll).catch(() => null);
      }));
      const finished = new Set(uploads.filter((upload, index) => statuses[index]
        && (statuses[index].state === "completed" || statuses[index].results_available)).map((u) => u.sample_id));
      await Promise.all([...finished].map(refreshResults));
      uploads.forEach((upload, index) => {
        const status = statuses[index];
        const shown = JSON.stringify([upload, status, results.get(upload.sample_id) || null]);
        const known = rows.get(upload.upload_id);
        if (known && known.shown === shown) {
          body.append(known.tr); // keeps the order, and the focus of a link inside it
          return;
        }
        const tr = renderRow(upload, status);
        if (known) known.tr.replaceWith(tr);
        body.append(tr);
        rows.set(upload.upload_id, { tr, shown, state: tr.dataset.state });
      });
      $("history-empty").hidden = uploads.length > 0;
      showError("history-error", "");
    } catch (error) {
      showError("history-error", error instanceof PortalError ? error.text : String(error));
      if (error.status === 401) { signOut(); return; }
    }
    refreshTimer = setTimeout(refreshHistory, REFRESH_MS);
  }

  // ------------------------------------------------------------------ start

  async function loadFormats() {
    const answer = await api("supported_formats");
    const extensions = new Map();
    const compressible = new Set();
    for (const entry of answer.formats) {
      for (const extension of entry.extensions) extensions.set(extension, entry.format);
      if (entry.compressed_extensions.length) compressible.add(entry.format);
    }
    formats = { extensions, compressible, suffixes: answer.compression_suffixes, maxBytes: answer.max_file_bytes };
    const names = answer.formats.map((entry) => entry.format.toUpperCase()).join(", ");
    $("formats").textContent = `Accepted: ${names}; gzip or BGZF compressed where the format allows `
      + `(${answer.compression_suffixes.join(", ")}); up to ${bytes(answer.max_file_bytes)} per file.`;
  }

  function signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    clearTimeout(refreshTimer);
    $("upload").hidden = true;
    $("history").hidden = true;
    $("who").hidden = true;
    $("sign-in").hidden = false;
    $("token").focus();
  }

  async function start() {
    let me;
    try {
      me = await api("me");
    } catch (error) {
      if (error.status === 401) {
        if (token()) showError("token-error", "This token is not valid (or it was revoked); check it with your administrator.");
        signOut();
        return;
      }
      showError("form-error", error instanceof PortalError ? error.text : String(error));
      $("upload").hidden = false;
      return;
    }
    showError("token-error", "");
    $("sign-in").hidden = true;
    const who = $("who");
    who.replaceChildren(`Signed in as ${me.name} (${me.role}).`);
    if (me.via === "token") {
      const out = element("button", { type: "button", className: "secondary" }, "Sign out");
      out.addEventListener("click", signOut);
      who.append(" ", out);
    }
    who.hidden = false;
    $("history-scope").textContent = me.role === "uploader" ? "Your uploads only." : "Every upload.";
    await loadFormats();
    $("upload").hidden = false;
    $("history").hidden = false;
    refreshHistory();
  }

  function wire() {
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("token").value.trim();
      if (!value) { showError("token-error", "Enter the token first."); return; }
      sessionStorage.setItem(TOKEN_KEY, value);
      $("token").value = "";
      start();
    });
    $("upload-form").addEventListener("submit", onSubmit);
    $("files").addEventListener("change", (event) => {
      addFiles(event.target.files);
      event.target.value = "";
    });
    $("with-sheet").addEventListener("change", (event) => { $("qc-profile").disabled = !event.target.checked; });
    const zone = $("drop-zone");
    for (const name of ["dragenter", "dragover"]) {
      zone.addEventListener(name, (event) => { event.preventDefault(); zone.classList.add("dragging"); });
    }
    zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
      if (event.dataTransfer && event.dataTransfer.files) addFiles(event.dataTransfer.files);
    });
    // A file dropped next to the zone must not make the browser leave the page.
    window.addEventListener("dragover", (event) => event.preventDefault());
    window.addEventListener("drop", (event) => event.preventDefault());
  }

  wire();
  start();
})();
