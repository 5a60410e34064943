/* Every place a few fixed strings stand in a text, in one pass (see
 * ``pii_credentials.Needles``, whose Python ``_where`` is the reference).
 *
 * ``Needles(needles)`` takes ASCII strings of two characters or more; ``where(text)``
 * returns ``[(at, k), ...]``: each place ``at`` where needle ``k`` stands in ``text``
 * (overlapping ones too), by place, then by ``k``. The credentials' families are each
 * found after a fixed prefix or key word (``sk-``, ``password``); one pass for all of
 * them costs what one ``str.find`` of one of them did, and most texts have none.
 *
 * A place is looked at only when its character starts some needle (a byte per
 * character) and so do its two (a bit per ASCII pair), and then only the needles that
 * start with them are compared. In a 1-byte text (most texts), 16 places at a time
 * are first compared with the needles' first three characters (SSE2), which leaves
 * a few places a KB to look at.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

enum { MAX_HEADS = 32 };

typedef struct {
    PyObject_HEAD
    Py_ssize_t n;
    char **texts;           /* per needle, its ASCII characters */
    Py_ssize_t *lengths;    /* per needle */
    uint64_t pairs[128 * 2]; /* bit (a, b): some needle starts with a then b */
    uint8_t first[256];      /* 1: some needle starts with this character */
    /* By first character: the needles that start with it, ``order[by_first[a] ..
     * by_first[a + 1]]``, in index order. */
    Py_ssize_t by_first[129];
    Py_ssize_t *order;
    /* The distinct first ``width`` characters of the needles (three when every needle
     * has three; when there are at most ``MAX_HEADS``), which a 1-byte text is searched
     * for 16 places at a time. */
    int n_heads, width;
    unsigned char head[MAX_HEADS][3];
    unsigned char wide[MAX_HEADS][3][16]; /* each of them, 16 times */
} Needles;

static void Needles_clear(Needles *self) {
    if (self->texts != NULL)
        for (Py_ssize_t k = 0; k < self->n; k++) PyMem_Free(self->texts[k]);
    PyMem_Free(self->texts);
    PyMem_Free(self->lengths);
    PyMem_Free(self->order);
    memset((char *)self + sizeof(PyObject), 0, sizeof(Needles) - sizeof(PyObject));
}

static void Needles_dealloc(Needles *self) {
    Needles_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Needles_init(Needles *self, PyObject *args, PyObject *kwds) {
    static char *keywords[] = {"needles", NULL};
    PyObject *given;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O", keywords, &given)) return -1;
    PyObject *needles = PySequence_Tuple(given);
    if (needles == NULL) return -1;
    Needles_clear(self);
    Py_ssize_t n = PyTuple_GET_SIZE(needles);
    self->texts = PyMem_Calloc(n + 1, sizeof(char *));
    self->lengths = PyMem_Calloc(n + 1, sizeof(Py_ssize_t));
    self->order = PyMem_Calloc(n + 1, sizeof(Py_ssize_t));
    if (!self->texts || !self->lengths || !self->order) {
        PyErr_NoMemory();
        goto fail;
    }
    self->n = n;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *needle = PyTuple_GET_ITEM(needles, k);
        if (!PyUnicode_Check(needle) || !PyUnicode_IS_ASCII(needle) ||
            PyUnicode_GET_LENGTH(needle) < 2) {
            PyErr_SetString(PyExc_ValueError, "a needle is an ASCII str of 2 characters or more");
            goto fail;
        }
        Py_ssize_t length = PyUnicode_GET_LENGTH(needle);
        self->texts[k] = PyMem_Malloc(length);
        if (self->texts[k] == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
        memcpy(self->texts[k], PyUnicode_DATA(needle), length);
        self->lengths[k] = length;
        unsigned char a = (unsigned char)self->texts[k][0], b = (unsigned char)self->texts[k][1];
        self->pairs[a * 2 + (b >> 6)] |= 1ULL << (b & 63);
        self->first[a] = 1;
        self->by_first[a + 1]++;
    }
    self->width = 3;
    for (Py_ssize_t k = 0; k < n; k++)
        if (self->lengths[k] < 3) self->width = 2;
    for (Py_ssize_t k = 0; k < n && self->n_heads <= MAX_HEADS; k++) {
        int h = 0;
        while (h < self->n_heads && memcmp(self->head[h], self->texts[k], self->width) != 0) h++;
        if (h < self->n_heads) continue;
        if (h == MAX_HEADS) { /* too many to compare at once: a character at a time */
            self->n_heads++;
            break;
        }
        memcpy(self->head[h], self->texts[k], self->width);
        for (int c = 0; c < self->width; c++) memset(self->wide[h][c], self->texts[k][c], 16);
        self->n_heads++;
    }
    for (int a = 0; a < 128; a++) self->by_first[a + 1] += self->by_first[a];
    Py_ssize_t cursor[128];
    memcpy(cursor, self->by_first, sizeof(cursor));
    for (Py_ssize_t k = 0; k < n; k++) self->order[cursor[(unsigned char)self->texts[k][0]]++] = k;
    Py_DECREF(needles);
    return 0;
fail:
    Needles_clear(self);
    Py_DECREF(needles);
    return -1;
}

/* Appends (at, k) to ``out``; -1 on error. */
static int add(PyObject *out, Py_ssize_t at, Py_ssize_t k) {
    PyObject *item = Py_BuildValue("(nn)", at, k);
    if (item == NULL) return -1;
    int failed = PyList_Append(out, item);
    Py_DECREF(item);
    return failed;
}

/* The needles at place ``i`` of ``data`` (``n`` characters of ``kind``), onto ``out``. */
static inline __attribute__((always_inline)) int place(Needles *self, int kind, const void *data,
                                                       Py_ssize_t n, Py_ssize_t i, PyObject *out) {
    Py_UCS4 a = PyUnicode_READ(kind, data, i);
    if (a >= 128 || !self->first[a]) return 0;
    Py_UCS4 b = PyUnicode_READ(kind, data, i + 1);
    if (b >= 128 || !((self->pairs[a * 2 + (b >> 6)] >> (b & 63)) & 1)) return 0;
    for (Py_ssize_t j = self->by_first[a]; j < self->by_first[a + 1]; j++) {
        Py_ssize_t k = self->order[j], length = self->lengths[k];
        if (i + length > n) continue;
        const char *needle = self->texts[k];
        Py_ssize_t c = 1;
        while (c < length && (Py_UCS4)(unsigned char)needle[c] == PyUnicode_READ(kind, data, i + c))
            c++;
        if (c == length && add(out, i, k) < 0) return -1;
    }
    return 0;
}

/* The needles at each place of ``data`` (``n`` characters of ``kind``), onto ``out``.
 * Inlined once per kind, so that a 1-byte text, most texts, is read without a switch
 * on its kind per character; and there, 16 places at a time are compared with the
 * needles' first characters, and only the places where some stand are looked at (the
 * needles start with common letters: a byte at a time, the branch on them was
 * mispredicted often). */
static inline __attribute__((always_inline)) int scan(Needles *self, int kind, const void *data,
                                                      Py_ssize_t n, PyObject *out) {
    Py_ssize_t i = 0;
#ifdef __SSE2__
    if (kind == PyUnicode_1BYTE_KIND && self->n_heads <= MAX_HEADS) {
        const unsigned char *bytes = data;
        const int width = self->width;
        for (; i + 16 + width - 1 <= n; i += 16) {
            __m128i one = _mm_loadu_si128((const __m128i *)(bytes + i));
            __m128i two = _mm_loadu_si128((const __m128i *)(bytes + i + 1));
            __m128i three = _mm_loadu_si128((const __m128i *)(bytes + i + width - 1));
            __m128i any = _mm_setzero_si128();
            for (int h = 0; h < self->n_heads; h++) {
                const __m128i *head = (const __m128i *)self->wide[h];
                __m128i here = _mm_and_si128(_mm_cmpeq_epi8(one, _mm_loadu_si128(head)),
                                             _mm_cmpeq_epi8(two, _mm_loadu_si128(head + 1)));
                if (width == 3)
                    here = _mm_and_si128(here, _mm_cmpeq_epi8(three, _mm_loadu_si128(head + 2)));
                any = _mm_or_si128(any, here);
            }
            for (unsigned at = (unsigned)_mm_movemask_epi8(any); at; at &= at - 1)
                if (place(self, kind, data, n, i + __builtin_ctz(at), out) < 0) return -1;
        }
    }
#endif
    for (; i + 1 < n; i++)
        if (place(self, kind, data, n, i, out) < 0) return -1;
    return 0;
}

static PyObject *Needles_where(Needles *self, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "where() takes a str");
        return NULL;
    }
    if (self->texts == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Needles.__init__ was not called");
        return NULL;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    int failed = kind == PyUnicode_1BYTE_KIND   ? scan(self, PyUnicode_1BYTE_KIND, data, n, out)
                 : kind == PyUnicode_2BYTE_KIND ? scan(self, PyUnicode_2BYTE_KIND, data, n, out)
                                                : scan(self, PyUnicode_4BYTE_KIND, data, n, out);
    if (failed) Py_CLEAR(out);
    return out;
}

static PyMethodDef Needles_methods[] = {
    {"where", (PyCFunction)Needles_where, METH_O,
     "where(text) -> [(at, k), ...]: where each needle stands, by place, then needle"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject NeedlesType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "orchestrator._needles.Needles",
    .tp_doc = "A few fixed ASCII strings, found in one pass over a text.",
    .tp_basicsize = sizeof(Needles),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Needles_init,
    .tp_dealloc = (destructor)Needles_dealloc,
    .tp_methods = Needles_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_needles", "Fixed strings found in one pass, in C.", -1,
    NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__needles(void) {
    if (PyType_Ready(&NeedlesType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&NeedlesType);
    if (PyModule_AddObject(m, "Needles", (PyObject *)&NeedlesType) < 0) {
        Py_DECREF(&NeedlesType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
