/*
 * The per-byte inner loops of FASTQ validation (formats/fastq.py) and QC (qc/fastq_kernel.py,
 * which says what the counters mean).
 *
 * Plain C over buffers the Python side has already checked (dtype, contiguity,
 * sizes): no allocation, no Python objects in the loop, the GIL released while
 * counting. Offsets come from numpy (record boundaries), so this file only adds.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_ADAPTERS 64

typedef struct {
    Py_buffer view;
    int held;
} buffer_t;

static int get(PyObject *obj, buffer_t *b, int writable, Py_ssize_t itemsize, const char *name) {
    int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &b->view, flags) < 0) {
        return -1;
    }
    b->held = 1;
    if (b->view.len % itemsize != 0) {
        PyErr_Format(PyExc_ValueError, "%s: buffer length is not a multiple of %zd", name, itemsize);
        return -1;
    }
    return 0;
}

static void release(buffer_t *bufs, int n) {
    for (int i = 0; i < n; i++) {
        if (bufs[i].held) {
            PyBuffer_Release(&bufs[i].view);
            bufs[i].held = 0;
        }
    }
}

/* count_records(buf, seq_starts, qual_starts, lengths, pos_qual, pos_base, seq_mean_q, acgt_out, gc_out,
 *               adapter_hist, adapter_code, adapter_filter, base_class) */
static PyObject *count_records(PyObject *self, PyObject *args) {
    PyObject *o[13];
    if (!PyArg_UnpackTuple(args, "count_records", 13, 13, &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6], &o[7],
                           &o[8], &o[9], &o[10], &o[11], &o[12])) {
        return NULL;
    }
    static const int writable[13] = {0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0};
    static const Py_ssize_t itemsize[13] = {1, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 1, 1};
    static const char *names[13] = {"buf", "seq_starts", "qual_starts", "lengths", "pos_qual", "pos_base",
                                    "seq_mean_q", "acgt_out", "gc_out", "adapter_hist", "adapter_code",
                                    "adapter_filter", "base_class"};
    buffer_t b[13];
    memset(b, 0, sizeof(b));
    for (int i = 0; i < 13; i++) {
        if (get(o[i], &b[i], writable[i], itemsize[i], names[i]) < 0) {
            release(b, 13);
            return NULL;
        }
    }
    const uint8_t *buf = b[0].view.buf;
    const Py_ssize_t buf_len = b[0].view.len;
    const int64_t *seq_starts = b[1].view.buf, *qual_starts = b[2].view.buf, *lengths = b[3].view.buf;
    const Py_ssize_t n = b[3].view.len / 8;
    int64_t *pos_qual = b[4].view.buf, *pos_base = b[5].view.buf, *seq_mean_q = b[6].view.buf;
    int64_t *acgt_out = b[7].view.buf, *gc_out = b[8].view.buf, *adapter_hist = b[9].view.buf;
    const int64_t *adapter_code = b[10].view.buf;
    const uint8_t *adapter_filter = b[11].view.buf, *base_class = b[12].view.buf;
    const Py_ssize_t cap = b[4].view.len / (8 * 256);
    const Py_ssize_t n_adapters = b[10].view.len / 8;
    const Py_ssize_t n_mean = b[6].view.len / 8;
    int ok = b[1].view.len / 8 == n && b[2].view.len / 8 == n && b[7].view.len / 8 >= n &&
             b[8].view.len / 8 >= n && cap > 0 && b[5].view.len / (8 * 6) == cap && n_mean > 0 &&
             b[9].view.len / 8 == n_adapters * cap && n_adapters <= MAX_ADAPTERS && b[11].view.len == 65536 &&
             b[12].view.len == 256;
    for (Py_ssize_t i = 0; ok && i < n; i++) {
        ok = lengths[i] >= 0 && seq_starts[i] >= 0 && qual_starts[i] >= 0 &&
             seq_starts[i] + lengths[i] <= buf_len && qual_starts[i] + lengths[i] <= buf_len;
    }
    if (!ok) {
        release(b, 13);
        PyErr_SetString(PyExc_ValueError, "count_records: inconsistent buffer sizes or offsets");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    const uint32_t mask = (1u << 24) - 1;
    uint8_t found[MAX_ADAPTERS];
    for (Py_ssize_t i = 0; i < n; i++) {
        const uint8_t *s = buf + seq_starts[i];
        const uint8_t *q = buf + qual_starts[i];
        const int64_t length = lengths[i];
        const int64_t head = length < cap ? length : cap;
        int64_t qsum = 0, acgt = 0, gc = 0;
        uint32_t code = 0;
        int64_t run = 0;
        Py_ssize_t left = length >= 12 ? n_adapters : 0;
        if (left) {
            memset(found, 0, (size_t)n_adapters);
        }
        for (int64_t j = 0; j < length; j++) {
            const int64_t p = j < head ? j : cap - 1;
            const uint8_t qb = q[j];
            pos_qual[p * 256 + qb]++;
            qsum += qb;
            const uint8_t v = base_class[s[j]];
            const uint8_t cls = v & 7;
            pos_base[p * 6 + cls]++;
            acgt += cls <= 3;
            gc += cls == 1 || cls == 2;
            if (left) {
                if (v & 8) {
                    code = ((code << 2) | (cls & 3)) & mask;
                    if (++run >= 12 && adapter_filter[code & 0xFFFF]) {
                        for (Py_ssize_t a = 0; a < n_adapters; a++) {
                            if (!found[a] && (int64_t)code == adapter_code[a]) {
                                found[a] = 1;
                                left--;
                                const int64_t start = j - 11;
                                adapter_hist[a * cap + (start < cap ? start : cap - 1)]++;
                            }
                        }
                    }
                } else {
                    run = 0;
                }
            }
        }
        if (length > 0) {
            const int64_t mean = qsum / length;
            seq_mean_q[mean < n_mean ? mean : n_mean - 1]++;
        }
        acgt_out[i] = acgt;
        gc_out[i] = gc;
    }
    Py_END_ALLOW_THREADS
    release(b, 13);
    Py_RETURN_NONE;
}

/* count_basic(buf, seq_starts, qual_starts, lengths, qual_hist, base_hist, base_class) */
static PyObject *count_basic(PyObject *self, PyObject *args) {
    PyObject *o[7];
    if (!PyArg_UnpackTuple(args, "count_basic", 7, 7, &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6])) {
        return NULL;
    }
    static const int writable[7] = {0, 0, 0, 0, 1, 1, 0};
    static const Py_ssize_t itemsize[7] = {1, 8, 8, 8, 8, 8, 1};
    static const char *names[7] = {"buf", "seq_starts", "qual_starts", "lengths", "qual_hist", "base_hist",
                                   "base_class"};
    buffer_t b[7];
    memset(b, 0, sizeof(b));
    for (int i = 0; i < 7; i++) {
        if (get(o[i], &b[i], writable[i], itemsize[i], names[i]) < 0) {
            release(b, 7);
            return NULL;
        }
    }
    const uint8_t *buf = b[0].view.buf;
    const Py_ssize_t buf_len = b[0].view.len;
    const int64_t *seq_starts = b[1].view.buf, *qual_starts = b[2].view.buf, *lengths = b[3].view.buf;
    const Py_ssize_t n = b[3].view.len / 8;
    int64_t *qual_hist = b[4].view.buf, *base_hist = b[5].view.buf;
    const uint8_t *base_class = b[6].view.buf;
    int ok = b[1].view.len / 8 == n && b[2].view.len / 8 == n && b[4].view.len == 256 * 8 &&
             b[5].view.len == 6 * 8 && b[6].view.len == 256;
    for (Py_ssize_t i = 0; ok && i < n; i++) {
        ok = lengths[i] >= 0 && seq_starts[i] >= 0 && qual_starts[i] >= 0 &&
             seq_starts[i] + lengths[i] <= buf_len && qual_starts[i] + lengths[i] <= buf_len;
    }
    if (!ok) {
        release(b, 7);
        PyErr_SetString(PyExc_ValueError, "count_basic: inconsistent buffer sizes or offsets");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        const uint8_t *s = buf + seq_starts[i];
        const uint8_t *q = buf + qual_starts[i];
        for (int64_t j = 0; j < lengths[i]; j++) {
            qual_hist[q[j]]++;
            base_hist[base_class[s[j]] & 7]++;
        }
    }
    Py_END_ALLOW_THREADS
    release(b, 7);
    Py_RETURN_NONE;
}

/* scan_records(buf, n_bytes, quality_range, sequence_ok) -> (consumed, records, irregular)
 *
 * Checks whole 4-line records from the start of `buf[:n_bytes]`: '@' title, sequence bytes
 * allowed by the 256-entry table `sequence_ok`, a bare '+' line, a quality line as long as
 * the sequence with bytes 33-126, '\n' line ends. Stops at the first record that is
 * incomplete (irregular = 0: more data needed) or breaks any of those rules, CR line ends
 * included (irregular = 1: the exact line parser takes over at `consumed` and names the
 * problem). quality_range (int64[2]) keeps the lowest and highest quality byte seen. */
static PyObject *scan_records(PyObject *self, PyObject *args) {
    Py_buffer data, range, table;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "y*nw*y*", &data, &n, &range, &table)) {
        return NULL;
    }
    if (n < 0 || n > data.len || range.len != 16 || table.len != 256) {
        PyBuffer_Release(&data);
        PyBuffer_Release(&range);
        PyBuffer_Release(&table);
        PyErr_SetString(PyExc_ValueError, "scan_records: bad sizes");
        return NULL;
    }
    const uint8_t *p = data.buf, *ok = table.buf;
    int64_t *qrange = range.buf;
    Py_ssize_t pos = 0, records = 0;
    int irregular = 0;
    Py_BEGIN_ALLOW_THREADS
    uint8_t qmin = (uint8_t)qrange[0], qmax = (uint8_t)qrange[1];
    for (;;) {
        const uint8_t *title = p + pos, *end = p + n;
        if (title == end) {
            break;
        }
        if (*title != '@') {
            irregular = 1;
            break;
        }
        const uint8_t *nl1 = memchr(title, '\n', (size_t)(end - title));
        if (!nl1) {
            break;
        }
        if (nl1[-1] == '\r') {
            irregular = 1;
            break;
        }
        const uint8_t *seq = nl1 + 1;
        const uint8_t *nl2 = memchr(seq, '\n', (size_t)(end - seq));
        if (!nl2) {
            break;
        }
        const Py_ssize_t len = nl2 - seq;
        int bad = 0;
        for (Py_ssize_t j = 0; j < len; j++) {
            bad |= !ok[seq[j]];
        }
        if (bad) {
            irregular = 1;
            break;
        }
        if (end - nl2 < 3) {
            break;
        }
        if (nl2[1] != '+' || nl2[2] != '\n') {
            irregular = 1;
            break;
        }
        const uint8_t *qual = nl2 + 3;
        if (end - qual < len + 1) {
            /* incomplete, unless a line break already shows the quality line is the wrong length */
            if (memchr(qual, '\n', (size_t)(end - qual))) {
                irregular = 1;
            }
            break;
        }
        if (qual[len] != '\n') {
            irregular = 1;
            break;
        }
        uint8_t lo = 255, hi = 0;
        for (Py_ssize_t j = 0; j < len; j++) {
            const uint8_t c = qual[j];
            lo = c < lo ? c : lo;
            hi = c > hi ? c : hi;
        }
        if (len && (lo < 33 || hi > 126)) {
            irregular = 1;
            break;
        }
        if (len) {
            qmin = lo < qmin ? lo : qmin;
            qmax = hi > qmax ? hi : qmax;
        }
        pos = (qual + len + 1) - p;
        records++;
    }
    qrange[0] = qmin;
    qrange[1] = qmax;
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    PyBuffer_Release(&range);
    PyBuffer_Release(&table);
    return Py_BuildValue("nni", pos, records, irregular);
}

static PyMethodDef methods[] = {
    {"scan_records", scan_records, METH_VARARGS, "Validate whole 4-line FASTQ records from the start of a buffer."},
    {"count_records", count_records, METH_VARARGS, "Per-position quality/base counts, read GC and adapters."},
    {"count_basic", count_basic, METH_VARARGS, "Whole-file quality and base histograms."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastq", NULL, -1, methods};

PyMODINIT_FUNC PyInit__fastq(void) { return PyModule_Create(&module); }
