/* The learned injection model's word features, weighed in one pass over a text.
 *
 * ``Table(words, weights, telling)`` holds the model's word weights in an
 * open-addressing hash table; ``Table.weigh(low)`` reads the lowered text once, splits
 * it into words exactly as ``model.words`` does (a word is a run of ASCII letters,
 * digits and ``_``, and of non-ASCII characters that are not whitespace), and returns
 * the sum of the weights of the distinct words it knows, with the indexes of those
 * that weigh more than ``telling`` (the evidence a reason quotes). ``model.words`` is
 * the reference: ``tests/orchestrator/test_injection_model.py`` checks that both agree
 * on every corpus text.
 *
 * In Python the same costs a set of ~125 fresh strings and a probe of each into a
 * 2.7k-entry dict per 1 KB text (~40 us); here it is one read of the text and no
 * object made but the result.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    uint64_t hash;
    Py_UCS4 *chars; /* NULL: an empty slot */
    Py_ssize_t length;
    double weight;
    Py_ssize_t index;  /* in the words given */
    uint64_t seen;     /* the call that last counted it */
} Entry;

typedef struct {
    PyObject_HEAD
    Entry *slots;
    size_t mask;
    double telling;
    uint64_t calls;
} Table;

static const uint64_t FNV_OFFSET = 14695981039346656037ULL;
static const uint64_t FNV_PRIME = 1099511628211ULL;

static unsigned char ascii_word[128];

static inline int is_word(Py_UCS4 c) {
    if (c < 128) return ascii_word[c];
    return !Py_UNICODE_ISSPACE(c);
}

static void Table_clear(Table *self) {
    if (self->slots != NULL) {
        for (size_t i = 0; i <= self->mask; i++) PyMem_Free(self->slots[i].chars);
        PyMem_Free(self->slots);
        self->slots = NULL;
    }
}

static void Table_dealloc(Table *self) {
    Table_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Table_init(Table *self, PyObject *args, PyObject *kwds) {
    static char *keywords[] = {"words", "weights", "telling", NULL};
    PyObject *words, *weights;
    double telling;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOd", keywords, &words, &weights, &telling))
        return -1;
    PyObject *ws = PySequence_Fast(words, "words must be a sequence");
    if (ws == NULL) return -1;
    PyObject *vs = PySequence_Fast(weights, "weights must be a sequence");
    if (vs == NULL) {
        Py_DECREF(ws);
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(ws);
    if (PySequence_Fast_GET_SIZE(vs) != n) {
        PyErr_SetString(PyExc_ValueError, "words and weights differ in length");
        goto fail;
    }
    Table_clear(self); /* __init__ called again */
    size_t size = 16;
    while (size < (size_t)n * 4) size <<= 1; /* a quarter full at most */
    self->slots = PyMem_Calloc(size, sizeof(Entry));
    if (self->slots == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    self->mask = size - 1;
    self->telling = telling;
    self->calls = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *word = PySequence_Fast_GET_ITEM(ws, i);
        double weight = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(vs, i));
        if (weight == -1.0 && PyErr_Occurred()) goto fail;
        if (!PyUnicode_Check(word)) {
            PyErr_SetString(PyExc_TypeError, "words must be strings");
            goto fail;
        }
        Py_UCS4 *chars = PyUnicode_AsUCS4Copy(word);
        if (chars == NULL) goto fail;
        Py_ssize_t length = PyUnicode_GET_LENGTH(word);
        uint64_t hash = FNV_OFFSET;
        for (Py_ssize_t k = 0; k < length; k++) hash = (hash ^ chars[k]) * FNV_PRIME;
        size_t at = hash & self->mask;
        while (self->slots[at].chars != NULL) {
            Entry *e = &self->slots[at];
            if (e->hash == hash && e->length == length &&
                memcmp(e->chars, chars, length * sizeof(Py_UCS4)) == 0)
                break; /* a repeated word: the later weight wins, as in a dict */
            at = (at + 1) & self->mask;
        }
        Entry *e = &self->slots[at];
        PyMem_Free(e->chars);
        *e = (Entry){hash, chars, length, weight, i, 0};
    }
    Py_DECREF(ws);
    Py_DECREF(vs);
    return 0;
fail:
    Py_DECREF(ws);
    Py_DECREF(vs);
    return -1;
}

/* The entry for the word text[start:end], or NULL. */
static inline Entry *lookup(Table *self, int kind, const void *data, Py_ssize_t start,
                            Py_ssize_t end, uint64_t hash) {
    Py_ssize_t length = end - start;
    size_t at = hash & self->mask;
    for (;;) {
        Entry *e = &self->slots[at];
        if (e->chars == NULL) return NULL;
        if (e->hash == hash && e->length == length) {
            Py_ssize_t k = 0;
            while (k < length && e->chars[k] == PyUnicode_READ(kind, data, start + k)) k++;
            if (k == length) return e;
        }
        at = (at + 1) & self->mask;
    }
}

static PyObject *Table_weigh(Table *self, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "weigh() takes a str");
        return NULL;
    }
    if (self->slots == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Table.__init__ was not called");
        return NULL;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    uint64_t call = ++self->calls;
    double total = 0.0;
    PyObject *telling = PyList_New(0);
    if (telling == NULL) return NULL;
    Py_ssize_t i = 0;
    while (i < n) {
        while (i < n && !is_word(PyUnicode_READ(kind, data, i))) i++;
        if (i >= n) break;
        Py_ssize_t start = i;
        uint64_t hash = FNV_OFFSET;
        Py_UCS4 c;
        while (i < n && is_word(c = PyUnicode_READ(kind, data, i))) {
            hash = (hash ^ c) * FNV_PRIME;
            i++;
        }
        Entry *e = lookup(self, kind, data, start, i, hash);
        if (e == NULL || e->seen == call) continue;
        e->seen = call;
        total += e->weight;
        if (e->weight > self->telling) {
            PyObject *index = PyLong_FromSsize_t(e->index);
            if (index == NULL || PyList_Append(telling, index) < 0) {
                Py_XDECREF(index);
                Py_DECREF(telling);
                return NULL;
            }
            Py_DECREF(index);
        }
    }
    PyObject *out = Py_BuildValue("(dN)", total, telling);
    return out;
}

/* ``fold(low)``: a lowered text with zero-width characters dropped and typographic ones
 * made ASCII, and its word view: ``(low, norm)``. The two tables copy ``views``'
 * ``_ZERO_WIDTH`` and ``_TYPOGRAPHIC``; ``test_the_compiled_views_are_the_python_ones``
 * runs every character of those through both. */
static const Py_UCS4 ZERO_WIDTH[] = {0x200b, 0x200c, 0x200d, 0x2060, 0xfeff, 0x00ad};
static const Py_UCS4 TYPOGRAPHIC[][2] = {
    {0x2019, '\''}, {0x2018, '\''}, {0x201c, '"'}, {0x201d, '"'}, {0x2014, '-'},
    {0x2013, '-'},  {0x2010, '-'},  {0x2011, '-'}, {0x2026, '.'}, {0x00a0, ' '},
    {0x202f, ' '},  {0x2022, '*'},  {0x00b7, '*'}, {0x2192, '>'}, {0x00d7, 'x'},
};
static unsigned char before_word[128]; /* what the word view makes a space */

static PyObject *fold(PyObject *module, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "fold() takes a str");
        return NULL;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), m = 0;
    Py_UCS4 *low = PyMem_Malloc((n + 1) * sizeof(Py_UCS4));
    Py_UCS4 *norm = PyMem_Malloc((n + 1) * sizeof(Py_UCS4));
    if (low == NULL || norm == NULL) {
        PyMem_Free(low);
        PyMem_Free(norm);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c >= 128) {
            int dropped = 0;
            for (size_t z = 0; z < sizeof(ZERO_WIDTH) / sizeof(ZERO_WIDTH[0]); z++)
                dropped |= c == ZERO_WIDTH[z];
            if (dropped) continue;
            for (size_t t = 0; t < sizeof(TYPOGRAPHIC) / sizeof(TYPOGRAPHIC[0]); t++)
                if (c == TYPOGRAPHIC[t][0]) {
                    c = TYPOGRAPHIC[t][1];
                    break;
                }
        }
        low[m] = c;
        if (c < 128)
            norm[m] = before_word[c] ? ' ' : c;
        else
            norm[m] = Py_UNICODE_ISALNUM(c) ? c : ' ';
        m++;
    }
    PyObject *out = NULL;
    PyObject *a = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, low, m);
    PyObject *b = a ? PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, norm, m) : NULL;
    if (b != NULL) out = PyTuple_Pack(2, a, b);
    Py_XDECREF(a);
    Py_XDECREF(b);
    PyMem_Free(low);
    PyMem_Free(norm);
    return out;
}

static PyMethodDef module_methods[] = {
    {"fold", (PyCFunction)fold, METH_O,
     "fold(low) -> (low without zero-width characters, typographic ones made ASCII; "
     "its word view)"},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef Table_methods[] = {
    {"weigh", (PyCFunction)Table_weigh, METH_O,
     "weigh(low) -> (sum of the distinct known words' weights, indexes of the telling ones)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "orchestrator.injection._words.Table",
    .tp_doc = "The model's word weights, to weigh a text's words in one pass.",
    .tp_basicsize = sizeof(Table),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Table_init,
    .tp_dealloc = (destructor)Table_dealloc,
    .tp_methods = Table_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_words",
    "The injection model's word features, and a text's views, in C.", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__words(void) {
    for (int c = 0; c < 128; c++)
        ascii_word[c] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                        (c >= 'A' && c <= 'Z') || c == '_';
    for (const char *c = "\n\t\r'\"`([{<*#-/|>\\="; *c; c++) before_word[(unsigned char)*c] = 1;
    if (PyType_Ready(&TableType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&TableType);
    if (PyModule_AddObject(m, "Table", (PyObject *)&TableType) < 0) {
        Py_DECREF(&TableType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
