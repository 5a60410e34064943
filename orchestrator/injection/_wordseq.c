/* Word chains found in one pass over a text's word view (see ``wordseq.py``).
 *
 * ``Scanner(conds, uses, chains)``: ``conds[c]`` is ``(text, exact)``, a token that is
 * ``text`` or starts with it; ``uses[c]`` the ``(chain, word)`` pairs whose word takes
 * that cond; ``chains[k]`` is ``(signal, gaps, lead, alternative)``.
 *
 * ``scan(norm)`` splits the text into tokens (runs of characters that are not
 * whitespace, as ``str.split`` sees it). A token whose first two characters start no
 * cond is skipped; otherwise the running hash of its characters is looked up as a
 * prefix cond at every length some prefix cond has, and the whole token as an exact
 * one. Each cond taken moves every chain word that takes it on, keeping per word the
 * latest token the chain up to that word ended at (the best one for the gaps still to
 * come), and the one before it (for a word after it taken by the same token). It
 * returns ``[(signal, alternatives, [place, ...]), ...]`` for the signals
 * with a chain found, in signal order: ``alternatives`` has bit n for each top-level
 * alternative n (bit 63 for any later one) with a chain found; the places (sorted) are
 * the whitespace right before each token a found chain's first word was at (when the
 * chain was found ending at most its span of tokens later), or up to ``lead`` tokens
 * before it. ``wordseq.Chains._scan`` is the reference; the tests hold both to it.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t hash; /* of the cond's text, with its kind; 0: an empty slot */
    int32_t cond;
} Slot;

typedef struct {
    int32_t word;  /* in words[]: the chain's word that takes the cond */
    int32_t chain;
    int32_t gap;   /* the most tokens from the chain's word before */
    uint8_t first, last;
} Use;

typedef struct {
    uint32_t stamp;   /* the scan that set latest */
    int32_t latest;   /* the latest token the chain up to this word ended at */
    int32_t previous; /* the one before it, or -1: a token can take a word of a chain
                         and the word before (``log*``, ``logs*``) */
} Progress;

typedef struct {
    PyObject_HEAD
    Slot *slots; /* the conds, by the hash of their text and kind */
    size_t mask;
    Py_UCS4 **texts; /* per cond */
    Py_ssize_t *lengths;
    uint64_t prefix_lengths; /* bit n: some prefix cond is n characters long (n < 64) */
    uint64_t starts[128 * 2]; /* bit (a, b): some cond starts with ASCII a then b (b < 128) */
    uint64_t ones[2];         /* bit a: some cond is the one ASCII character a */
    int any_wide; /* some cond starts with a character past ASCII */
    Py_ssize_t n_conds;
    Py_ssize_t *use_start; /* per cond: its uses are uses[use_start[c] .. use_start[c + 1]) */
    Use *uses;
    /* per chain */
    Py_ssize_t n_chains;
    int32_t *signal, *lead, *span; /* span: the most tokens from the first word to the last */
    int32_t *alternative;          /* which top-level alternative of its signal it reads */
    int32_t n_signals;             /* 1 + the highest signal */
    uint64_t *masks;               /* per signal, per scan: the alternatives found */
    /* per word of every chain */
    Progress *progress;
    Py_ssize_t n_words;
    uint32_t scans;
    /* per scan */
    unsigned char *found;
    Py_ssize_t *tokens;
    Py_ssize_t tokens_cap;
    Py_ssize_t (*firsts)[2];
    Py_ssize_t firsts_len, firsts_cap;
    Py_ssize_t (*ends)[2]; /* (chain, token): a chain found, ending at that token */
    Py_ssize_t ends_len, ends_cap;
} Scanner;

static void Scanner_free(Scanner *self) {
    if (self->texts != NULL)
        for (Py_ssize_t c = 0; c < self->n_conds; c++) PyMem_Free(self->texts[c]);
    PyMem_Free(self->texts);
    PyMem_Free(self->lengths);
    PyMem_Free(self->slots);
    PyMem_Free(self->use_start);
    PyMem_Free(self->uses);
    PyMem_Free(self->signal);
    PyMem_Free(self->lead);
    PyMem_Free(self->span);
    PyMem_Free(self->alternative);
    PyMem_Free(self->masks);
    PyMem_Free(self->ends);
    PyMem_Free(self->progress);
    PyMem_Free(self->found);
    PyMem_Free(self->tokens);
    PyMem_Free(self->firsts);
    memset((char *)self + sizeof(PyObject), 0, sizeof(Scanner) - sizeof(PyObject));
}

static void Scanner_dealloc(Scanner *self) {
    Scanner_free(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A gap, span or lead of this many tokens or more has no bound (``wordseq.FAR``): it
 * is never compared, or a text padded past it would hide a match. */
#define FAR (1 << 20)

static const uint64_t FNV_OFFSET = 14695981039346656037ULL;
static const uint64_t FNV_PRIME = 1099511628211ULL;

/* The hash of a text whose running FNV-1a hash is ``hash``, as an exact or a prefix
 * cond (never 0: 0 marks an empty slot). */
static inline uint64_t keyed(uint64_t hash, int exact) {
    uint64_t key = (hash ^ (uint64_t)exact) * 0x9E3779B97F4A7C15ULL;
    return key ? key : 1;
}

/* The cond of that kind whose text is data[start:end] (hashed ``hash``), or -1. */
static inline int32_t find(Scanner *self, uint64_t hash, int exact, int kind, const void *data,
                           Py_ssize_t start, Py_ssize_t end) {
    uint64_t key = keyed(hash, exact);
    size_t at = (size_t)(key >> 32) & self->mask;
    for (;;) {
        Slot *slot = &self->slots[at];
        if (slot->hash == 0) return -1;
        if (slot->hash == key && self->lengths[slot->cond] == end - start) {
            const Py_UCS4 *text = self->texts[slot->cond];
            Py_ssize_t k = 0;
            while (k < end - start && text[k] == PyUnicode_READ(kind, data, start + k)) k++;
            if (k == end - start) return slot->cond;
        }
        at = (at + 1) & self->mask;
    }
}

static int Scanner_init(Scanner *self, PyObject *args, PyObject *kwds) {
    static char *keywords[] = {"conds", "uses", "chains", NULL};
    PyObject *conds, *uses, *chains;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!O!", keywords, &PyList_Type, &conds,
                                     &PyList_Type, &uses, &PyList_Type, &chains))
        return -1;
    Scanner_free(self);
    Py_ssize_t n_conds = PyList_GET_SIZE(conds);
    if (PyList_GET_SIZE(uses) != n_conds) {
        PyErr_SetString(PyExc_ValueError, "conds and uses differ in length");
        return -1;
    }
    size_t size = 16;
    while (size < (size_t)n_conds * 4) size <<= 1;
    self->slots = PyMem_Calloc(size, sizeof(Slot));
    self->texts = PyMem_Calloc(n_conds + 1, sizeof(Py_UCS4 *));
    self->lengths = PyMem_Calloc(n_conds + 1, sizeof(Py_ssize_t));
    self->use_start = PyMem_Calloc(n_conds + 1, sizeof(Py_ssize_t));
    if (!self->slots || !self->texts || !self->lengths || !self->use_start) goto nomem;
    self->mask = size - 1;
    self->n_conds = n_conds;
    Py_ssize_t n_uses = 0;
    for (Py_ssize_t c = 0; c < n_conds; c++) {
        PyObject *text;
        int exact;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(conds, c), "Up", &text, &exact)) goto fail;
        Py_ssize_t length = PyUnicode_GET_LENGTH(text);
        if (length == 0 || (!exact && length >= 64)) {
            PyErr_SetString(PyExc_ValueError, "a cond's text is empty, or too long a prefix");
            goto fail;
        }
        self->texts[c] = PyUnicode_AsUCS4Copy(text);
        if (self->texts[c] == NULL) goto fail;
        self->lengths[c] = length;
        uint64_t hash = FNV_OFFSET;
        for (Py_ssize_t k = 0; k < length; k++) hash = (hash ^ self->texts[c][k]) * FNV_PRIME;
        uint64_t key = keyed(hash, exact);
        size_t at = (size_t)(key >> 32) & self->mask;
        while (self->slots[at].hash != 0) {
            Slot *slot = &self->slots[at];
            if (slot->hash == key && self->lengths[slot->cond] == length &&
                memcmp(self->texts[slot->cond], self->texts[c], length * sizeof(Py_UCS4)) == 0) {
                PyErr_SetString(PyExc_ValueError, "a cond is given twice");
                goto fail;
            }
            at = (at + 1) & self->mask;
        }
        self->slots[at] = (Slot){key, (int32_t)c};
        Py_UCS4 a = self->texts[c][0], b = length > 1 ? self->texts[c][1] : 0;
        if (a >= 128 || b >= 128)
            self->any_wide = 1;
        else if (length == 1)
            self->ones[a >> 6] |= 1ULL << (a & 63);
        else
            self->starts[a * 2 + (b >> 6)] |= 1ULL << (b & 63);
        if (!exact) self->prefix_lengths |= 1ULL << length;
        if (!exact && length == 1 && self->texts[c][0] < 128) {
            Py_UCS4 a = self->texts[c][0];
            self->starts[a * 2] = self->starts[a * 2 + 1] = ~0ULL;
        }
        PyObject *list = PyList_GET_ITEM(uses, c);
        if (!PyList_Check(list)) {
            PyErr_SetString(PyExc_TypeError, "uses must be lists");
            goto fail;
        }
        self->use_start[c] = n_uses;
        n_uses += PyList_GET_SIZE(list);
    }
    self->use_start[n_conds] = n_uses;
    Py_ssize_t n = PyList_GET_SIZE(chains);
    self->n_chains = n;
    self->signal = PyMem_Calloc(n + 1, sizeof(int32_t));
    self->lead = PyMem_Calloc(n + 1, sizeof(int32_t));
    self->span = PyMem_Calloc(n + 1, sizeof(int32_t));
    self->alternative = PyMem_Calloc(n + 1, sizeof(int32_t));
    self->found = PyMem_Calloc(n + 1, 1);
    int32_t *first_word = PyMem_Calloc(n + 1, sizeof(int32_t));
    int32_t *length = PyMem_Calloc(n + 1, sizeof(int32_t));
    self->uses = PyMem_Calloc(n_uses + 1, sizeof(Use));
    if (!self->signal || !self->lead || !self->span || !self->alternative || !self->found ||
        !first_word || !length || !self->uses) {
        PyMem_Free(first_word);
        PyMem_Free(length);
        goto nomem;
    }
    Py_ssize_t n_words = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        int signal, lead, alternative;
        PyObject *gaps;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(chains, k), "iO!ii", &signal, &PyTuple_Type, &gaps,
                              &lead, &alternative))
            goto fail_chains;
        if (signal < 0 || lead < 0 || alternative < 0) {
            PyErr_SetString(PyExc_ValueError, "a chain's signal, lead or alternative is negative");
            goto fail_chains;
        }
        if (signal >= self->n_signals) self->n_signals = signal + 1;
        self->alternative[k] = alternative > 63 ? 63 : alternative;
        self->signal[k] = signal;
        self->lead[k] = lead;
        int64_t span = 0;
        for (Py_ssize_t j = 1; j < PyTuple_GET_SIZE(gaps); j++) {
            long g = PyLong_AsLong(PyTuple_GET_ITEM(gaps, j));
            if (g < 0) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a gap is negative");
                goto fail_chains;
            }
            span += g;
        }
        self->span[k] = span >= FAR ? INT32_MAX : (int32_t)span; /* FAR: no bound */
        if (lead >= FAR) self->lead[k] = INT32_MAX;
        length[k] = (int32_t)PyTuple_GET_SIZE(gaps);
        first_word[k] = (int32_t)n_words;
        n_words += PyTuple_GET_SIZE(gaps);
    }
    self->n_words = n_words;
    self->masks = PyMem_Calloc(self->n_signals + 1, sizeof(uint64_t));
    if (!self->masks) {
        PyErr_NoMemory();
        goto fail_chains;
    }
    self->progress = PyMem_Calloc(n_words + 1, sizeof(Progress));
    if (!self->progress) {
        PyErr_NoMemory();
        goto fail_chains;
    }
    for (Py_ssize_t c = 0; c < n_conds; c++) {
        PyObject *list = PyList_GET_ITEM(uses, c);
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
            int chain, word;
            if (!PyArg_ParseTuple(PyList_GET_ITEM(list, i), "ii", &chain, &word)) goto fail_chains;
            if (chain < 0 || chain >= n || word < 0 || word >= length[chain]) {
                PyErr_SetString(PyExc_ValueError, "a use names no chain's word");
                goto fail_chains;
            }
            PyObject *gaps = PyTuple_GET_ITEM(PyList_GET_ITEM(chains, chain), 1);
            long gap = PyLong_AsLong(PyTuple_GET_ITEM(gaps, word));
            if (gap == -1 && PyErr_Occurred()) goto fail_chains;
            int last = word == length[chain] - 1;
            self->uses[self->use_start[c] + i] =
                (Use){first_word[chain] + word, chain, (int32_t)gap, word == 0, last};
        }
    }
    PyMem_Free(first_word);
    PyMem_Free(length);
    return 0;
fail_chains:
    PyMem_Free(first_word);
    PyMem_Free(length);
    goto fail;
nomem:
    PyErr_NoMemory();
fail:
    Scanner_free(self);
    return -1;
}

static int grow_tokens(Scanner *self, Py_ssize_t need) {
    if (need <= self->tokens_cap) return 0;
    Py_ssize_t cap = self->tokens_cap ? self->tokens_cap : 256;
    while (cap < need) cap *= 2;
    Py_ssize_t *more = PyMem_Realloc(self->tokens, cap * sizeof(Py_ssize_t));
    if (!more) return -1;
    self->tokens = more;
    self->tokens_cap = cap;
    return 0;
}

/* Appends (chain, token) to a growing array of pairs. */
static int add_pair(Py_ssize_t (**pairs)[2], Py_ssize_t *len, Py_ssize_t *cap, Py_ssize_t chain,
                    Py_ssize_t token) {
    if (*len == *cap) {
        Py_ssize_t more_cap = *cap ? *cap * 2 : 256;
        void *more = PyMem_Realloc(*pairs, more_cap * sizeof((*pairs)[0]));
        if (!more) return -1;
        *pairs = more;
        *cap = more_cap;
    }
    (*pairs)[*len][0] = chain;
    (*pairs)[*len][1] = token;
    (*len)++;
    return 0;
}

static int by_pair(const void *a, const void *b) {
    const Py_ssize_t *x = a, *y = b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

/* Whether chain ``chain`` was found ending at a token in [from, to] (``ends`` sorted). */
static int ends_within(Scanner *self, Py_ssize_t chain, Py_ssize_t from, Py_ssize_t to) {
    Py_ssize_t lo = 0, hi = self->ends_len;
    while (lo < hi) { /* the first end at or after (chain, from) */
        Py_ssize_t mid = (lo + hi) / 2;
        Py_ssize_t *e = self->ends[mid];
        if (e[0] < chain || (e[0] == chain && e[1] < from))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < self->ends_len && self->ends[lo][0] == chain && self->ends[lo][1] <= to;
}

/* A token took cond ``c``: every chain word that takes it moves on. */
static int take(Scanner *self, int32_t c, int32_t t) {
    uint32_t scan = self->scans;
    const Use *use = &self->uses[self->use_start[c]], *end = &self->uses[self->use_start[c + 1]];
    Progress *progress = self->progress;
    for (; use < end; use++) {
        if (use->first) {
            if (add_pair(&self->firsts, &self->firsts_len, &self->firsts_cap, use->chain, t) < 0)
                return -1;
        } else {
            const Progress *before = &progress[use->word - 1];
            if (before->stamp != scan) continue;
            int32_t last = before->latest < t ? before->latest : before->previous;
            if (last < 0 || (use->gap < FAR && t - last > use->gap)) continue;
        }
        Progress *now = &progress[use->word];
        if (now->stamp != scan)
            *now = (Progress){scan, t, -1};
        else if (now->latest != t)
            *now = (Progress){scan, t, now->latest};
        if (use->last) {
            self->found[use->chain] = 1;
            if (add_pair(&self->ends, &self->ends_len, &self->ends_cap, use->chain, t) < 0)
                return -1;
        }
    }
    return 0;
}

typedef struct {
    int32_t signal;
    Py_ssize_t place;
} Place;

static int by_place(const void *a, const void *b) {
    const Place *x = a, *y = b;
    if (x->signal != y->signal) return x->signal < y->signal ? -1 : 1;
    return (x->place > y->place) - (x->place < y->place);
}

static PyObject *Scanner_scan(Scanner *self, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "scan() takes a str");
        return NULL;
    }
    if (self->slots == NULL || self->progress == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Scanner.__init__ was not called");
        return NULL;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (++self->scans == 0) { /* the stamps wrapped: forget them all */
        memset(self->progress, 0, self->n_words * sizeof(Progress));
        self->scans = 1;
    }
    self->firsts_len = self->ends_len = 0;
    memset(self->found, 0, self->n_chains);
    memset(self->masks, 0, self->n_signals * sizeof(uint64_t));
    uint64_t lengths = self->prefix_lengths;
    Py_ssize_t n_tokens = 0;
    Py_ssize_t i = 0;
    while (i < n) {
        while (i < n && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i))) i++;
        if (i >= n) break;
        if (grow_tokens(self, n_tokens + 1) < 0) return PyErr_NoMemory();
        int32_t t = (int32_t)n_tokens++;
        Py_ssize_t start = i;
        self->tokens[t] = start;
        /* Whether some cond may start this token: by its first two characters. */
        Py_UCS4 a = PyUnicode_READ(kind, data, i);
        Py_UCS4 b = i + 1 < n ? PyUnicode_READ(kind, data, i + 1) : ' ';
        int maybe;
        if (a >= 128 || b >= 128)
            maybe = self->any_wide || a < 128;
        else if (Py_UNICODE_ISSPACE(b))
            maybe = (self->ones[a >> 6] >> (a & 63)) & 1;
        else
            maybe = (self->starts[a * 2 + (b >> 6)] >> (b & 63)) & 1;
        if (!maybe) {
            while (i < n && !Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i))) i++;
            continue;
        }
        uint64_t hash = FNV_OFFSET;
        Py_UCS4 ch;
        while (i < n && !Py_UNICODE_ISSPACE(ch = PyUnicode_READ(kind, data, i))) {
            hash = (hash ^ ch) * FNV_PRIME;
            i++;
            Py_ssize_t length = i - start;
            if (length < 64 && (lengths >> length) & 1) {
                int32_t c = find(self, hash, 0, kind, data, start, i);
                if (c >= 0 && take(self, c, t) < 0) return PyErr_NoMemory();
            }
        }
        int32_t c = find(self, hash, 1, kind, data, start, i);
        if (c >= 0 && take(self, c, t) < 0) return PyErr_NoMemory();
    }
    /* The places: the whitespace before each first word's token (when a chain found
     * ends close enough after it), and the leads'. */
    qsort(self->ends, self->ends_len, sizeof(self->ends[0]), by_pair);
    Py_ssize_t n_places = 0, cap = 0;
    Place *places = NULL;
    for (Py_ssize_t f = 0; f < self->firsts_len; f++) {
        Py_ssize_t chain = self->firsts[f][0], token = self->firsts[f][1];
        Py_ssize_t span = self->span[chain];
        Py_ssize_t to = span == INT32_MAX ? PY_SSIZE_T_MAX : token + span;
        if (!self->found[chain] || !ends_within(self, chain, token, to))
            continue; /* no chain found ends close enough after this first word */
        self->masks[self->signal[chain]] |= 1ULL << self->alternative[chain];
        Py_ssize_t from = self->lead[chain] == INT32_MAX ? 0 : token - self->lead[chain];
        for (Py_ssize_t u = from < 0 ? 0 : from; u <= token; u++) {
            Py_ssize_t start = self->tokens[u], at = start;
            while (at > 0 && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, at - 1))) at--;
            for (; at < start; at++) {
                if (n_places == cap) {
                    cap = cap ? cap * 2 : 64;
                    Place *more = PyMem_Realloc(places, cap * sizeof(Place));
                    if (!more) {
                        PyMem_Free(places);
                        return PyErr_NoMemory();
                    }
                    places = more;
                }
                places[n_places++] = (Place){self->signal[chain], at};
            }
        }
    }
    qsort(places, n_places, sizeof(Place), by_place);
    PyObject *out = PyList_New(0);
    PyObject *list = NULL;
    int32_t signal = -1;
    Py_ssize_t previous = -1;
    for (Py_ssize_t p = 0; out && p < n_places; p++) {
        if (places[p].signal != signal) {
            signal = places[p].signal;
            previous = -1;
            list = PyList_New(0);
            PyObject *pair =
                list ? Py_BuildValue("(iKN)", signal, (unsigned long long)self->masks[signal], list)
                     : NULL;
            if (!pair || PyList_Append(out, pair) < 0) Py_CLEAR(out);
            Py_XDECREF(pair);
            if (!out) break;
        }
        if (places[p].place == previous) continue;
        previous = places[p].place;
        PyObject *place = PyLong_FromSsize_t(previous);
        if (!place || PyList_Append(list, place) < 0) Py_CLEAR(out);
        Py_XDECREF(place);
    }
    PyMem_Free(places);
    return out;
}

static PyMethodDef Scanner_methods[] = {
    {"scan", (PyCFunction)Scanner_scan, METH_O,
     "scan(norm) -> [(signal, [place, ...]), ...]: where the signals whose chains are "
     "found may match"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "orchestrator.injection._wordseq.Scanner",
    .tp_doc = "Word chains, to find in one pass over a text's word view.",
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scanner_init,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_methods = Scanner_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_wordseq", "Word chains found in one pass, in C.", -1,
    NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__wordseq(void) {
    if (PyType_Ready(&ScannerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&ScannerType);
    if (PyModule_AddObject(m, "Scanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(&ScannerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
