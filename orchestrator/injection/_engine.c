/* The signals that match on a text's views, and what they score together, in C.
 *
 * ``Matcher(signals, chains, narrowed, narrowing, mention, negated, quote, reach,
 * negated_reach, negation_tails)`` holds the
 * compiled signal table: ``signals[i]`` is ``(weight, why, raw, pattern, starts)`` (an
 * ``engine.Signal``); ``chains(norm)`` gives the word signals whose chains are found
 * (``Chains.found``); ``narrowed`` is the dict of each word signal's patterns per set of
 * alternatives found, ``narrowing(i, found)`` what makes (and keeps) one that is not in
 * it; ``mention`` is the pattern that says the words at a quote are quoted as an
 * example, ``negated`` the one that says the words at a place are said not to be done;
 * ``quote`` the most characters of a reason's quoted words, ``reach`` how far a mention
 * reaches back before its last word and ``negated_reach`` how far a negation does;
 * ``negation_tails`` (a tuple of str) holds how every negation ``negated`` takes ends.
 *
 * ``Matcher.match(low, norm, scan)`` is ``engine.match``, and ``score(found)`` is
 * ``scoring._score``: the same loops, with the same ``re`` patterns, and no Python frame
 * between them. ``Scorer.score(low, norm, scan, text)`` is ``Detector.score``
 * (``Model.weigh_text`` included; a payload hidden in the text is decoded by a call
 * back into Python), and ``Picker.pick(text)`` is ``Prefilter.scan`` after its RE2
 * sets have matched. The
 * Python modules keep each in Python as the reference (and the fallback without a
 * compiler), and the tests hold the two to each other on every corpus text.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    double weight;
    PyObject *weight_obj; /* the float itself, put in ``found`` as it is */
    PyObject *why;        /* str */
    int raw;              /* runs on ``low``, not on the word view */
    PyObject *match;      /* the pattern's bound ``match`` */
    PyObject *starts;     /* a tuple of str every match starts with, or NULL */
} Signal;

typedef struct {
    PyObject_HEAD
    Py_ssize_t n_signals;
    Signal *signals;
    PyObject *chains;
    PyObject *narrowed;
    PyObject *narrowing;
    PyObject *mention; /* the mention pattern's bound ``search`` */
    PyObject *negated; /* the negation pattern's bound ``search`` */
    Py_ssize_t quote;
    Py_ssize_t reach;
    Py_ssize_t negated_reach;
    PyObject *negation_tails; /* tuple of str */
} Matcher;

static PyObject *str_end, *str_match, *str_candidates, *str_next_start, *str_round, *str_weigh;
static PyObject *ellipsis, *space, *four, *two_places;

static void Matcher_clear_fields(Matcher *self) {
    for (Py_ssize_t i = 0; self->signals != NULL && i < self->n_signals; i++) {
        Signal *s = &self->signals[i];
        Py_XDECREF(s->weight_obj);
        Py_XDECREF(s->why);
        Py_XDECREF(s->match);
        Py_XDECREF(s->starts);
    }
    PyMem_Free(self->signals);
    self->signals = NULL;
    self->n_signals = 0;
    Py_CLEAR(self->chains);
    Py_CLEAR(self->narrowed);
    Py_CLEAR(self->narrowing);
    Py_CLEAR(self->mention);
    Py_CLEAR(self->negated);
    Py_CLEAR(self->negation_tails);
}

static void Matcher_dealloc(Matcher *self) {
    Matcher_clear_fields(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Matcher_init(Matcher *self, PyObject *args, PyObject *kwds) {
    static char *keywords[] = {"signals", "chains",        "narrowed",      "narrowing",
                               "mention", "negated",       "quote",         "reach",
                               "negated_reach", "negation_tails", NULL};
    PyObject *signals, *chains, *narrowed, *narrowing, *mention, *negated, *negation_tails;
    Py_ssize_t quote, reach, negated_reach;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO!OOOnnnO!", keywords, &signals, &chains,
                                     &PyDict_Type, &narrowed, &narrowing, &mention, &negated,
                                     &quote, &reach, &negated_reach, &PyTuple_Type,
                                     &negation_tails))
        return -1;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(negation_tails); k++) {
        PyObject *tail = PyTuple_GET_ITEM(negation_tails, k);
        if (!PyUnicode_Check(tail) || PyUnicode_GET_LENGTH(tail) == 0) {
            PyErr_SetString(PyExc_ValueError, "negation_tails are non-empty str");
            return -1;
        }
    }
    Matcher_clear_fields(self);
    PyObject *seq = PySequence_Fast(signals, "signals must be a sequence");
    if (seq == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    self->signals = PyMem_Calloc(n + 1, sizeof(Signal));
    if (self->signals == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *weight, *why, *pattern, *starts;
        int raw;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "O!UpOO", &PyFloat_Type, &weight,
                              &why, &raw, &pattern, &starts))
            goto fail;
        if (starts != Py_None && !PyTuple_Check(starts)) {
            PyErr_SetString(PyExc_TypeError, "a signal's starts are a tuple of str, or None");
            goto fail;
        }
        for (Py_ssize_t k = 0; starts != Py_None && k < PyTuple_GET_SIZE(starts); k++) {
            PyObject *start = PyTuple_GET_ITEM(starts, k);
            if (!PyUnicode_Check(start) || PyUnicode_GET_LENGTH(start) == 0) {
                PyErr_SetString(PyExc_ValueError, "a signal's starts are non-empty str");
                goto fail;
            }
        }
        Signal *s = &self->signals[i];
        self->n_signals = i + 1; /* so that a failure below frees what this one holds */
        s->match = PyObject_GetAttr(pattern, str_match);
        if (s->match == NULL) goto fail;
        s->weight = PyFloat_AS_DOUBLE(weight);
        s->weight_obj = Py_NewRef(weight);
        s->why = Py_NewRef(why);
        s->raw = raw;
        s->starts = starts == Py_None ? NULL : Py_NewRef(starts);
    }
    Py_DECREF(seq);
    self->mention = PyObject_GetAttrString(mention, "search");
    if (self->mention == NULL) return -1;
    self->negated = PyObject_GetAttrString(negated, "search");
    if (self->negated == NULL) return -1;
    self->chains = Py_NewRef(chains);
    self->narrowed = Py_NewRef(narrowed);
    self->narrowing = Py_NewRef(narrowing);
    self->quote = quote;
    self->reach = reach;
    self->negated_reach = negated_reach;
    self->negation_tails = Py_NewRef(negation_tails);
    return 0;
fail:
    Py_DECREF(seq);
    Matcher_clear_fields(self);
    return -1;
}

/* What ``\w`` takes in a ``str`` pattern. */
static inline int is_word(Py_UCS4 ch) { return Py_UNICODE_ISALNUM(ch) || ch == '_'; }

/* ``pattern.search(low, start, at)`` is not None: 1; None: 0; -1: error. */
static int search_before(PyObject *search, PyObject *low, Py_ssize_t start, Py_ssize_t at) {
    PyObject *args[] = {low, PyLong_FromSsize_t(start), PyLong_FromSsize_t(at)};
    if (args[1] == NULL || args[2] == NULL) {
        Py_XDECREF(args[1]);
        Py_XDECREF(args[2]);
        return -1;
    }
    PyObject *m = PyObject_Vectorcall(search, args, 3, NULL);
    Py_DECREF(args[1]);
    Py_DECREF(args[2]);
    if (m == NULL) return -1;
    int found = m != Py_None;
    Py_DECREF(m);
    return found;
}

/* ``engine._quoted``: whether the words at ``at`` are quoted as an example; -1: error. */
static int quoted(Matcher *self, PyObject *low, Py_ssize_t at) {
    int kind = PyUnicode_KIND(low);
    const void *data = PyUnicode_DATA(low);
    if (at < 0 || at >= PyUnicode_GET_LENGTH(low)) {
        PyErr_SetString(PyExc_IndexError, "string index out of range");
        return -1;
    }
    Py_UCS4 ch = PyUnicode_READ(kind, data, at);
    if (ch != '\'' && ch != '"' && ch != '`') return 0;
    /* ``_last_word``: the non-word characters before ``at``, the word before them, and
     * a mention's reach further back. */
    Py_ssize_t start = at;
    while (start > 0 && !is_word(PyUnicode_READ(kind, data, start - 1))) start--;
    while (start > 0 && is_word(PyUnicode_READ(kind, data, start - 1))) start--;
    start = start > self->reach ? start - self->reach : 0;
    return search_before(self->mention, low, start, at);
}

/* ``engine._negated``: whether the words at ``at`` follow a negation on the same line;
 * -1: error. The pattern is searched only when the text before the spaces around ``at``
 * ends as a negation does (one of ``negation_tails``). */
static int negated(Matcher *self, PyObject *low, Py_ssize_t at) {
    int kind = PyUnicode_KIND(low);
    const void *data = PyUnicode_DATA(low);
    Py_ssize_t length = PyUnicode_GET_LENGTH(low), end = at, last = at;
    while (end < length && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, end))) end++;
    while (last > 0 && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, last - 1))) last--;
    if (last == 0) return 0;
    Py_UCS4 ch = PyUnicode_READ(kind, data, last - 1);
    int tailed = 0;
    for (Py_ssize_t k = 0; !tailed && k < PyTuple_GET_SIZE(self->negation_tails); k++) {
        PyObject *tail = PyTuple_GET_ITEM(self->negation_tails, k);
        Py_ssize_t n = PyUnicode_GET_LENGTH(tail);
        if (n > last || PyUnicode_READ_CHAR(tail, n - 1) != ch) continue;
        if ((tailed = (int)PyUnicode_Tailmatch(low, tail, 0, last, 1)) < 0) return -1;
    }
    if (!tailed) return 0;
    Py_ssize_t start = at > self->negated_reach ? at - self->negated_reach : 0;
    return search_before(self->negated, low, start, end < length ? end + 1 : end);
}

/* ``engine._aside``: whether the words at ``at`` are quoted as an example, or said not
 * to be done; -1: error. */
static int aside(Matcher *self, PyObject *low, Py_ssize_t at) {
    int is_quoted = quoted(self, low, at);
    return is_quoted != 0 ? is_quoted : negated(self, low, at);
}

/* Where a match ends (``m.end()``), stealing ``m``; -1: error. */
static Py_ssize_t match_end(PyObject *m) {
    PyObject *end = PyObject_CallMethodNoArgs(m, str_end);
    Py_DECREF(m);
    if (end == NULL) return -1;
    Py_ssize_t out = PyLong_AsSsize_t(end);
    Py_DECREF(end);
    return out;
}

/* ``engine._match``: whether signal ``s`` matches at ``at`` (and, a word signal, is not
 * quoted or negated there): 1, with where the match ends in ``*end``; 0: it does not; -1: error. */
static int signal_at(Matcher *self, Signal *s, PyObject *low, PyObject *text, Py_ssize_t at,
                     Py_ssize_t *end) {
    PyObject *place = PyLong_FromSsize_t(at);
    if (place == NULL) return -1;
    PyObject *args[] = {text, place};
    PyObject *m = PyObject_Vectorcall(s->match, args, 2, NULL);
    Py_DECREF(place);
    if (m == NULL) return -1;
    if (m == Py_None) {
        Py_DECREF(m);
        return 0;
    }
    if (!s->raw) {
        int q = aside(self, low, at);
        if (q != 0) {
            Py_DECREF(m);
            return q < 0 ? -1 : 0;
        }
    }
    return (*end = match_end(m)) < 0 ? -1 : 1;
}

/* Ascending ``Py_ssize_t``s (offsets, indexes) for ``qsort``. */
static int by_offset(const void *a, const void *b) {
    Py_ssize_t x = *(const Py_ssize_t *)a, y = *(const Py_ssize_t *)b;
    return (x > y) - (x < y);
}

/* ``engine._first``: signal ``i``'s first match: 1, with where it starts and ends in
 * ``*start`` and ``*end``; 0: none; -1: error. */
static int first(Matcher *self, Py_ssize_t i, PyObject *low, PyObject *norm, PyObject *scan,
                 Py_ssize_t *start, Py_ssize_t *end) {
    Signal *s = &self->signals[i];
    PyObject *text = s->raw ? low : norm;
    int found = 0;
    if (s->starts != NULL) {
        /* Every place one of the starts stands (``str.find`` is cheap), in order. */
        Py_ssize_t n = 0, cap = 0, *places = NULL, length = PyUnicode_GET_LENGTH(text);
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(s->starts); k++) {
            PyObject *sub = PyTuple_GET_ITEM(s->starts, k);
            for (Py_ssize_t at = PyUnicode_Find(text, sub, 0, length, 1); at != -1;
                 at = PyUnicode_Find(text, sub, at + 1, length, 1)) {
                if (at == -2) {
                    PyMem_Free(places);
                    return -1;
                }
                if (n == cap) {
                    cap = cap ? cap * 2 : 16;
                    Py_ssize_t *more = PyMem_Realloc(places, cap * sizeof(Py_ssize_t));
                    if (more == NULL) {
                        PyMem_Free(places);
                        PyErr_NoMemory();
                        return -1;
                    }
                    places = more;
                }
                places[n++] = at;
            }
        }
        if (n > 1) qsort(places, n, sizeof(Py_ssize_t), by_offset);
        for (Py_ssize_t k = 0; k < n && found == 0; k++) {
            if (k > 0 && places[k] == places[k - 1]) continue;
            *start = places[k];
            found = signal_at(self, s, low, text, places[k], end);
        }
        PyMem_Free(places);
        return found;
    }
    /* Where the prefilter's RE2 search says it may start. */
    PyObject *next = PyObject_GetAttr(scan, str_next_start);
    if (next == NULL) return -1;
    Py_ssize_t at = 0;
    while (found == 0) {
        PyObject *r = PyObject_CallFunction(next, "nn", i, at);
        at = r == NULL ? -1 : PyLong_AsSsize_t(r);
        Py_XDECREF(r);
        if (at < 0) {
            found = PyErr_Occurred() ? -1 : 0;
            break;
        }
        *start = at;
        found = signal_at(self, s, low, text, at, end);
        at++;
    }
    Py_DECREF(next);
    return found;
}

/* ``engine._first_at``: the first match of a word signal (as ``patterns``, the first
 * of them that matches at a place) at one of ``places``, as ``first`` gives it. */
static int first_at(Matcher *self, PyObject *patterns, PyObject *low, PyObject *norm,
                    PyObject *places, Py_ssize_t *start, Py_ssize_t *end) {
    for (Py_ssize_t p = 0; p < PyList_GET_SIZE(places); p++) {
        PyObject *place = PyList_GET_ITEM(places, p);
        Py_ssize_t at = PyLong_AsSsize_t(place);
        if (at == -1 && PyErr_Occurred()) return -1;
        for (Py_ssize_t k = 0; k < PyList_GET_SIZE(patterns); k++) {
            PyObject *args[] = {PyList_GET_ITEM(patterns, k), norm, place};
            PyObject *m = PyObject_VectorcallMethod(
                str_match, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            if (m == NULL) return -1;
            if (m == Py_None) {
                Py_DECREF(m);
                continue;
            }
            int q = aside(self, low, at);
            if (q != 0) {
                Py_DECREF(m);
                if (q < 0) return -1;
                break; /* quoted or negated: the next place */
            }
            *start = at;
            return (*end = match_end(m)) < 0 ? -1 : 1;
        }
    }
    return 0;
}

/* ``engine._narrowed``: word signal ``signal``'s patterns for the alternatives found. */
static PyObject *narrowed(Matcher *self, PyObject *signal, PyObject *alternatives) {
    PyObject *key = PyTuple_Pack(2, signal, alternatives);
    if (key == NULL) return NULL;
    PyObject *patterns = PyDict_GetItemWithError(self->narrowed, key);
    Py_DECREF(key);
    if (patterns != NULL && PyList_CheckExact(patterns)) return Py_NewRef(patterns);
    if (PyErr_Occurred()) return NULL;
    patterns = PyObject_CallFunctionObjArgs(self->narrowing, signal, alternatives, NULL);
    if (patterns != NULL && !PyList_CheckExact(patterns)) {
        Py_DECREF(patterns);
        PyErr_SetString(PyExc_TypeError, "narrowing() must return a list of patterns");
        return NULL;
    }
    return patterns;
}

typedef struct {
    Py_ssize_t start, end, signal, order;
} Hit;

static int by_start(const void *a, const void *b) {
    const Hit *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order); /* stable, as ``list.sort`` */
}

static int add_hit(Hit **hits, Py_ssize_t *n, Py_ssize_t *cap, Py_ssize_t start,
                   Py_ssize_t end, Py_ssize_t signal) {
    if (*n == *cap) {
        Py_ssize_t more_cap = *cap ? *cap * 2 : 16;
        Hit *more = PyMem_Realloc(*hits, more_cap * sizeof(Hit));
        if (more == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        *hits = more;
        *cap = more_cap;
    }
    (*hits)[*n] = (Hit){start, end, signal, *n};
    (*n)++;
    return 0;
}

/* ``engine._found``: the reason quoting the words, kept when it weighs more than the
 * one of the same reason found before. */
static int add_found(Matcher *self, PyObject *found, Signal *s, PyObject *low,
                     Py_ssize_t start, Py_ssize_t end) {
    PyObject *before = PyDict_GetItemWithError(found, s->why);
    if (before == NULL && PyErr_Occurred()) return -1;
    if (before != NULL && !(PyFloat_AsDouble(PyTuple_GET_ITEM(before, 0)) < s->weight)) return 0;
    PyObject *words = PyUnicode_Substring(low, start, end), *parts = NULL, *reason = NULL;
    if (words != NULL) parts = PyUnicode_Split(words, NULL, -1);
    Py_XSETREF(words, parts ? PyUnicode_Join(space, parts) : NULL);
    Py_XDECREF(parts);
    if (words != NULL && PyUnicode_GET_LENGTH(words) > self->quote) {
        PyObject *cut = PyUnicode_Substring(words, 0, self->quote);
        Py_XSETREF(words, cut ? PyUnicode_Concat(cut, ellipsis) : NULL);
        Py_XDECREF(cut);
    }
    if (words != NULL) reason = PyUnicode_FromFormat("%U (\"%U\")", s->why, words);
    Py_XDECREF(words);
    PyObject *value = reason ? PyTuple_Pack(2, s->weight_obj, reason) : NULL;
    Py_XDECREF(reason);
    int ok = value ? PyDict_SetItem(found, s->why, value) : -1;
    Py_XDECREF(value);
    return ok;
}

/* ``engine.match`` for the views ``low`` and ``norm`` (str both), the prefilter's
 * ``scan`` of them and its ``candidates`` (a list). */
static PyObject *match(Matcher *self, PyObject *low, PyObject *norm, PyObject *scan,
                       PyObject *candidates) {
    PyObject *chains = NULL;
    PyObject *found = NULL;
    Hit *hits = NULL;
    Py_ssize_t n_hits = 0, cap = 0, start = 0, end = 0;
    int is;
    /* The raw signals (and the word ones RE2 finds), where the prefilter says. */
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(candidates); k++) {
        Py_ssize_t i = PyLong_AsSsize_t(PyList_GET_ITEM(candidates, k));
        if (i == -1 && PyErr_Occurred()) goto done;
        if (i < 0 || i >= self->n_signals) break;
        if ((is = first(self, i, low, norm, scan, &start, &end)) < 0) goto done;
        if (is && add_hit(&hits, &n_hits, &cap, start, end, i) < 0) goto done;
    }
    /* The word signals whose chains are found, at the places the chains say. */
    chains = PyObject_CallOneArg(self->chains, norm);
    if (chains == NULL) goto done;
    if (!PyList_Check(chains)) {
        PyErr_SetString(PyExc_TypeError, "chains() must return a list");
        goto done;
    }
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(chains); k++) {
        PyObject *item = PyList_GET_ITEM(chains, k);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 3 ||
            !PyList_Check(PyTuple_GET_ITEM(item, 2))) {
            PyErr_SetString(PyExc_TypeError, "chains() gives (signal, alternatives, [place])");
            goto done;
        }
        Py_ssize_t i = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 0));
        if (i == -1 && PyErr_Occurred()) goto done;
        if (i < 0 || i >= self->n_signals) {
            PyErr_SetString(PyExc_IndexError, "chains() names no signal");
            goto done;
        }
        PyObject *patterns = narrowed(self, PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1));
        if (patterns == NULL) goto done;
        is = first_at(self, patterns, low, norm, PyTuple_GET_ITEM(item, 2), &start, &end);
        Py_DECREF(patterns);
        if (is < 0 || (is && add_hit(&hits, &n_hits, &cap, start, end, i) < 0)) goto done;
    }
    /* The reasons, in the order their words stand in the text. */
    if (n_hits > 1) qsort(hits, n_hits, sizeof(Hit), by_start);
    found = PyDict_New();
    for (Py_ssize_t h = 0; found != NULL && h < n_hits; h++)
        if (add_found(self, found, &self->signals[hits[h].signal], low, hits[h].start,
                      hits[h].end) < 0)
            Py_CLEAR(found);
done:
    if (PyErr_Occurred()) Py_CLEAR(found);
    PyMem_Free(hits);
    Py_XDECREF(chains);
    return found;
}

/* ``scan.candidates``, a list; NULL: an error. */
static PyObject *candidates_of(PyObject *scan) {
    PyObject *candidates = PyObject_GetAttr(scan, str_candidates);
    if (candidates != NULL && !PyList_Check(candidates)) {
        Py_DECREF(candidates);
        PyErr_SetString(PyExc_TypeError, "scan.candidates must be a list");
        return NULL;
    }
    return candidates;
}

static int ready(Matcher *self) {
    if (self->chains != NULL) return 1;
    PyErr_SetString(PyExc_RuntimeError, "Matcher.__init__ was not called");
    return 0;
}

static PyObject *Matcher_match(Matcher *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyUnicode_Check(args[0]) || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "match(low, norm, scan): two str and a Scan");
        return NULL;
    }
    if (!ready(self)) return NULL;
    PyObject *candidates = candidates_of(args[2]);
    if (candidates == NULL) return NULL;
    PyObject *found = match(self, args[0], args[1], args[2], candidates);
    Py_DECREF(candidates);
    return found;
}

typedef struct {
    double weight;
    Py_ssize_t order;
    PyObject *reason; /* borrowed */
} Weighed;

static int strongest_first(const void *a, const void *b) {
    const Weighed *x = a, *y = b;
    if (x->weight != y->weight) return x->weight > y->weight ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order); /* ties keep their order */
}

/* Whether x * ``scale`` (a power of 10) rounds, as Python rounds x's exact value
 * (ties to even), to the integer put in ``*r``: the product here is within a tenth of
 * a millionth of the exact one for |x * scale| < 10^9, so it does unless it falls
 * within a millionth of a tie (which is left to Python's own rounding). */
static inline int scaled(double x, double scale, double *r) {
    double y = x * scale;
    if (!(fabs(y) < 1e9)) return 0;
    *r = nearbyint(y);
    return fabs(fabs(y - *r) - 0.5) > 1e-6;
}

/* ``round(x, 4)``: the double nearest x's exact value rounded to 4 places, which r / 10^4
 * is (both exact, the division correctly rounded), without the decimal string
 * ``float.__round__`` writes and reads; near a tie, ``float.__round__``'s. */
static PyObject *round4(double x) {
    double r;
    if (scaled(x, 1e4, &r)) return PyFloat_FromDouble(r / 1e4);
    PyObject *f = PyFloat_FromDouble(x);
    PyObject *rounded = f ? PyObject_CallMethodOneArg(f, str_round, four) : NULL;
    Py_XDECREF(f);
    return rounded;
}

/* ``scoring._score``: ``1 - Π(1 - w)`` over the signals found (rounded to 4 places),
 * and their reasons, strongest first. */
static PyObject *score(PyObject *module, PyObject *found) {
    if (!PyDict_Check(found)) {
        PyErr_SetString(PyExc_TypeError, "score() takes the dict match() gives");
        return NULL;
    }
    Py_ssize_t n = PyDict_GET_SIZE(found);
    if (n == 0) return Py_BuildValue("(d())", 0.0);
    Weighed *all = PyMem_Malloc(n * sizeof(Weighed));
    if (all == NULL) return PyErr_NoMemory();
    double remaining = 1.0;
    Py_ssize_t pos = 0, k = 0;
    PyObject *key, *value, *out = NULL;
    while (PyDict_Next(found, &pos, &key, &value)) {
        if (!PyTuple_Check(value) || PyTuple_GET_SIZE(value) != 2) {
            PyErr_SetString(PyExc_TypeError, "found values are (weight, reason)");
            goto done;
        }
        double weight = PyFloat_AsDouble(PyTuple_GET_ITEM(value, 0));
        if (weight == -1.0 && PyErr_Occurred()) goto done;
        remaining *= 1.0 - weight;
        all[k] = (Weighed){weight, k, PyTuple_GET_ITEM(value, 1)};
        k++;
    }
    qsort(all, n, sizeof(Weighed), strongest_first);
    PyObject *reasons = PyTuple_New(n);
    PyObject *rounded = reasons ? round4(1.0 - remaining) : NULL;
    for (Py_ssize_t r = 0; rounded != NULL && r < n; r++)
        PyTuple_SET_ITEM(reasons, r, Py_NewRef(all[r].reason));
    if (rounded != NULL) out = PyTuple_Pack(2, rounded, reasons);
    Py_XDECREF(rounded);
    Py_XDECREF(reasons);
done:
    PyMem_Free(all);
    return out;
}

/* ``Detector.score``: the signals matched (with what a payload hidden in the text
 * adds, when the scan found a hint of one: ``hidden`` decodes it, in Python) and
 * scored, and the model's probability from the words (weighed by ``table``, a
 * ``_words.Table``) and those signals, with its reasons. */
typedef struct {
    PyObject_HEAD
    Matcher *matcher;
    PyObject *table;          /* ``_words.Table``: ``weigh(low) -> (total, [word, ...])`` */
    double bias;
    PyObject *signal_weights; /* dict: reason -> the weight of its feature */
    double some, flagged;     /* the weights of "signals: some" and "signals: flagged" */
    PyObject *word_names;     /* list: the words the table's indexes name */
    unsigned char *is_hint;   /* per prefilter pattern up to the last hint: is a hint */
    Py_ssize_t n_hint;
    PyObject *learned;        /* what the model's reason starts with */
    Py_ssize_t most;          /* the most words quoted as evidence */
    PyObject *hidden;  /* hidden(text, low, [hint, ...]) -> (weight, reason) or None */
    PyObject *encoded; /* the reason a hidden payload is found under */
} Scorer;

static void Scorer_clear_fields(Scorer *self) {
    Py_CLEAR(self->matcher);
    Py_CLEAR(self->table);
    Py_CLEAR(self->signal_weights);
    Py_CLEAR(self->word_names);
    Py_CLEAR(self->learned);
    Py_CLEAR(self->hidden);
    Py_CLEAR(self->encoded);
    PyMem_Free(self->is_hint);
    self->is_hint = NULL;
    self->n_hint = 0;
}

static void Scorer_dealloc(Scorer *self) {
    Scorer_clear_fields(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject MatcherType;

static int Scorer_init(Scorer *self, PyObject *args, PyObject *kwds) {
    static char *keywords[] = {"matcher", "table", "bias",    "signal_weights", "some",
                               "flagged", "words", "hints",   "learned",        "most",
                               "hidden",  "encoded", NULL};
    PyObject *matcher, *table, *signal_weights, *word_names, *hints, *learned, *hidden, *encoded;
    double bias, some, flagged;
    Py_ssize_t most;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!OdO!ddO!O!UnOU", keywords, &MatcherType,
                                     &matcher, &table, &bias, &PyDict_Type, &signal_weights,
                                     &some, &flagged, &PyList_Type, &word_names, &PyList_Type,
                                     &hints, &learned, &most, &hidden, &encoded))
        return -1;
    if (!PyCallable_Check(hidden)) {
        PyErr_SetString(PyExc_TypeError, "hidden must be callable");
        return -1;
    }
    Scorer_clear_fields(self);
    Py_ssize_t n_hint = 0;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(hints); k++) {
        Py_ssize_t hint = PyLong_AsSsize_t(PyList_GET_ITEM(hints, k));
        if (hint < 0) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a hint is an index >= 0");
            return -1;
        }
        if (hint + 1 > n_hint) n_hint = hint + 1;
    }
    self->is_hint = PyMem_Calloc(n_hint + 1, 1);
    if (self->is_hint == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(hints); k++)
        self->is_hint[PyLong_AsSsize_t(PyList_GET_ITEM(hints, k))] = 1;
    self->n_hint = n_hint;
    self->matcher = (Matcher *)Py_NewRef(matcher);
    self->table = Py_NewRef(table);
    self->signal_weights = Py_NewRef(signal_weights);
    self->word_names = Py_NewRef(word_names);
    self->learned = Py_NewRef(learned);
    self->hidden = Py_NewRef(hidden);
    self->encoded = Py_NewRef(encoded);
    self->bias = bias;
    self->some = some;
    self->flagged = flagged;
    self->most = most;
    return 0;
}

static PyObject *score(PyObject *module, PyObject *found);

/* ``Model.weigh_text``'s z: the bias, the words' weights (``total``), and the weights
 * of the signals found and of what they scored, summed in ``signal_features``' order. */
static int weigh(Scorer *self, PyObject *found, double signal_score, double total,
                 double *z) {
    *z = self->bias + total;
    if (PyDict_GET_SIZE(found) == 0 && !(signal_score > 0)) return 0;
    double sum = 0.0;
    Py_ssize_t pos = 0;
    PyObject *reason, *value;
    while (PyDict_Next(found, &pos, &reason, &value)) {
        PyObject *weight = PyDict_GetItemWithError(self->signal_weights, reason);
        if (weight == NULL && PyErr_Occurred()) return -1;
        if (weight == NULL) continue; /* absent: 0 */
        double w = PyFloat_AsDouble(weight);
        if (w == -1.0 && PyErr_Occurred()) return -1;
        sum += w;
    }
    if (signal_score > 0) sum += self->some;
    if (signal_score >= 0.5) sum += self->flagged;
    *z += sum;
    return 0;
}

/* ``format(p, ".2f")`` for a probability ``p``: its exact value to 2 places, ties to
 * even, as ``format`` rounds; written here for 0 <= p <= 1 away from a tie, else by
 * ``format``. */
static PyObject *two_places_of(double p) {
    double r;
    if (p >= 0 && p <= 1 && scaled(p, 100, &r)) {
        int hundredths = (int)r;
        char shown[] = {(char)('0' + hundredths / 100), '.', (char)('0' + hundredths / 10 % 10),
                        (char)('0' + hundredths % 10)};
        return PyUnicode_FromStringAndSize(shown, sizeof(shown));
    }
    PyObject *f = PyFloat_FromDouble(p);
    PyObject *shown = f ? PyObject_Format(f, two_places) : NULL;
    Py_XDECREF(f);
    return shown;
}

/* ``scoring._LEANS`` */
static const double LEANS = 0.5;

/* The model's reason: its probability and the telling words it weighed most (none
 * quoted: "from the words as a whole"). */
static PyObject *learned_reason(Scorer *self, double probability, PyObject *telling) {
    Py_ssize_t n = PyList_GET_SIZE(telling);
    Py_ssize_t *order = PyMem_Malloc((n + 1) * sizeof(Py_ssize_t));
    if (order == NULL) return PyErr_NoMemory();
    for (Py_ssize_t k = 0; k < n; k++) {
        order[k] = PyLong_AsSsize_t(PyList_GET_ITEM(telling, k));
        if (order[k] < 0 || order[k] >= PyList_GET_SIZE(self->word_names)) {
            PyMem_Free(order);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_IndexError, "weigh() named no word");
            return NULL;
        }
    }
    qsort(order, n, sizeof(Py_ssize_t), by_offset);
    Py_ssize_t quoted = n < self->most ? n : self->most;
    PyObject *words = PyList_New(quoted), *out = NULL;
    for (Py_ssize_t k = 0; words != NULL && k < quoted; k++)
        PyList_SET_ITEM(words, k, Py_NewRef(PyList_GET_ITEM(self->word_names, order[k])));
    PyMem_Free(order);
    PyObject *between = words ? PyUnicode_FromString("\", \"") : NULL;
    PyObject *joined = between ? PyUnicode_Join(between, words) : NULL;
    PyObject *shown = joined ? two_places_of(probability) : NULL;
    if (shown != NULL && quoted == 0)
        out = PyUnicode_FromFormat("%U: %U, from the words as a whole", self->learned, shown);
    else if (shown != NULL)
        out = PyUnicode_FromFormat("%U: %U, weighing the words \"%U\"", self->learned, shown,
                                   joined);
    Py_XDECREF(words);
    Py_XDECREF(between);
    Py_XDECREF(joined);
    Py_XDECREF(shown);
    return out;
}

/* What a payload hidden in the text adds to ``found`` (``hidden`` decodes it), when
 * the scan found a hint of one among ``candidates``. */
static int add_hidden(Scorer *self, PyObject *found, PyObject *text, PyObject *low,
                      PyObject *candidates) {
    PyObject *hinted = NULL;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(candidates); k++) {
        PyObject *item = PyList_GET_ITEM(candidates, k);
        Py_ssize_t c = PyLong_AsSsize_t(item);
        if (c == -1 && PyErr_Occurred()) goto fail;
        if (c < 0 || c >= self->n_hint || !self->is_hint[c]) continue;
        if (hinted == NULL && (hinted = PyList_New(0)) == NULL) return -1;
        if (PyList_Append(hinted, item) < 0) goto fail;
    }
    if (hinted == NULL) return 0;
    PyObject *added = PyObject_CallFunctionObjArgs(self->hidden, text, low, hinted, NULL);
    Py_DECREF(hinted);
    if (added == NULL) return -1;
    int failed = 0;
    if (added != Py_None) {
        if (!PyTuple_Check(added) || PyTuple_GET_SIZE(added) != 2) {
            PyErr_SetString(PyExc_TypeError, "hidden() gives (weight, reason) or None");
            failed = -1;
        } else {
            failed = PyDict_SetItem(found, self->encoded, added);
        }
    }
    Py_DECREF(added);
    return failed;
fail:
    Py_XDECREF(hinted);
    return -1;
}

/* ``Scorer.score(low, norm, scan, text)``: ``(score, reasons)``, as ``Detector.score``
 * gives them. */
static PyObject *Scorer_score(Scorer *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyUnicode_Check(args[0]) || !PyUnicode_Check(args[1]) ||
        !PyUnicode_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "score(low, norm, scan, text): two str, a Scan, a str");
        return NULL;
    }
    if (self->matcher == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Scorer.__init__ was not called");
        return NULL;
    }
    PyObject *candidates = candidates_of(args[2]);
    if (candidates == NULL) return NULL;
    PyObject *found = match(self->matcher, args[0], args[1], args[2], candidates);
    if (found != NULL && add_hidden(self, found, args[3], args[0], candidates) < 0)
        Py_CLEAR(found);
    Py_DECREF(candidates);
    if (found == NULL) return NULL;
    PyObject *signals = score(NULL, found), *weighed = NULL, *out = NULL, *reasons;
    if (signals == NULL) goto done;
    double signal_score = PyFloat_AsDouble(PyTuple_GET_ITEM(signals, 0)), z, total;
    reasons = PyTuple_GET_ITEM(signals, 1);
    weighed = PyObject_CallMethodOneArg(self->table, str_weigh, args[0]);
    if (weighed == NULL) goto done;
    if (!PyTuple_Check(weighed) || PyTuple_GET_SIZE(weighed) != 2 ||
        !PyList_Check(PyTuple_GET_ITEM(weighed, 1))) {
        PyErr_SetString(PyExc_TypeError, "weigh() gives (total, [word, ...])");
        goto done;
    }
    total = PyFloat_AsDouble(PyTuple_GET_ITEM(weighed, 0));
    if ((total == -1.0 && PyErr_Occurred()) || weigh(self, found, signal_score, total, &z) < 0)
        goto done;
    double probability = z > -500 ? 1.0 / (1.0 + exp(-z)) : 0.0; /* ``model.sigmoid`` */
    PyObject *telling = PyTuple_GET_ITEM(weighed, 1);
    PyObject *all = NULL;
    /* (``LEANS``: the model leans to an injection, and says so with no word to quote) */
    if ((PyList_GET_SIZE(telling) && self->most > 0) || probability >= LEANS) {
        PyObject *reason = learned_reason(self, probability, telling);
        PyObject *more = reason ? PyTuple_Pack(1, reason) : NULL;
        all = more ? PySequence_Concat(reasons, more) : NULL;
        Py_XDECREF(reason);
        Py_XDECREF(more);
        if (all == NULL) goto done;
    } else {
        all = Py_NewRef(reasons);
    }
    PyObject *rounded = round4(probability);
    if (rounded != NULL) out = PyTuple_Pack(2, rounded, all);
    Py_XDECREF(rounded);
    Py_DECREF(all);
done:
    Py_DECREF(found);
    Py_XDECREF(signals);
    Py_XDECREF(weighed);
    return out;
}

static PyMethodDef Scorer_methods[] = {
    {"score", (PyCFunction)(void (*)(void))Scorer_score, METH_FASTCALL,
     "score(low, norm, scan, text) -> (score, reasons)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScorerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "orchestrator.injection._engine.Scorer",
    .tp_doc = "The signals and the model's word weights, scored together.",
    .tp_basicsize = sizeof(Scorer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scorer_init,
    .tp_dealloc = (destructor)Scorer_dealloc,
    .tp_methods = Scorer_methods,
};

/* ``Prefilter.scan``: which patterns may match a text, from what the RE2 sets found. */
typedef struct {
    PyObject_HEAD
    Py_ssize_t n_sets;
    PyObject **matches;     /* per set: its bound ``Match`` (utf8 -> [match id, ...]) */
    Py_ssize_t **members;   /* per set: the factor of each match id (-1: the set's ``\z``) */
    Py_ssize_t *n_members;
    Py_ssize_t n_factors;
    Py_ssize_t **alone;     /* per factor: the patterns it alone makes candidates */
    Py_ssize_t *n_alone;
    Py_ssize_t **more;      /* per factor: the patterns with more factors, it the least */
    Py_ssize_t *n_more;
    Py_ssize_t **needs;     /* per pattern: its factors */
    Py_ssize_t *n_needs;
    Py_ssize_t n_patterns;
    PyObject *scan;         /* ``Scan``: a tuple type of (utf8, ascii, candidates, regexes) */
    PyObject *regexes;
} Picker;

static void free_rows(Py_ssize_t **rows, Py_ssize_t n) {
    for (Py_ssize_t k = 0; rows != NULL && k < n; k++) PyMem_Free(rows[k]);
    PyMem_Free(rows);
}

static void Picker_clear_fields(Picker *self) {
    for (Py_ssize_t k = 0; self->matches != NULL && k < self->n_sets; k++)
        Py_XDECREF(self->matches[k]);
    PyMem_Free(self->matches);
    free_rows(self->members, self->n_sets);
    PyMem_Free(self->n_members);
    free_rows(self->alone, self->n_factors);
    PyMem_Free(self->n_alone);
    free_rows(self->more, self->n_factors);
    PyMem_Free(self->n_more);
    free_rows(self->needs, self->n_patterns);
    PyMem_Free(self->n_needs);
    Py_CLEAR(self->scan);
    Py_CLEAR(self->regexes);
    memset((char *)self + sizeof(PyObject), 0, sizeof(Picker) - sizeof(PyObject));
}

static void Picker_dealloc(Picker *self) {
    Picker_clear_fields(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Reads ``rows`` (a list of lists of ints in [low, high)) into C arrays. */
static int read_rows(PyObject *rows, Py_ssize_t low, Py_ssize_t high, Py_ssize_t ***out,
                     Py_ssize_t **n_out) {
    Py_ssize_t n = PyList_GET_SIZE(rows);
    *out = PyMem_Calloc(n + 1, sizeof(Py_ssize_t *));
    *n_out = PyMem_Calloc(n + 1, sizeof(Py_ssize_t));
    if (*out == NULL || *n_out == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *row = PySequence_Fast(PyList_GET_ITEM(rows, k), "a row is a sequence of ints");
        if (row == NULL) return -1;
        Py_ssize_t size = PySequence_Fast_GET_SIZE(row);
        (*out)[k] = PyMem_Malloc((size + 1) * sizeof(Py_ssize_t));
        if ((*out)[k] == NULL) {
            Py_DECREF(row);
            PyErr_NoMemory();
            return -1;
        }
        (*n_out)[k] = size;
        for (Py_ssize_t j = 0; j < size; j++) {
            Py_ssize_t v = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(row, j));
            if ((v == -1 && PyErr_Occurred()) || v < low || v >= high) {
                Py_DECREF(row);
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "an index is out of range");
                return -1;
            }
            (*out)[k][j] = v;
        }
        Py_DECREF(row);
    }
    return 0;
}

static int Picker_init(Picker *self, PyObject *args, PyObject *kwds) {
    static char *keywords[] = {"sets", "members", "alone", "more", "needs", "scan", "regexes",
                               NULL};
    PyObject *sets, *members, *alone, *more, *needs, *scan, *regexes;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!O!O!O!OO", keywords, &PyList_Type, &sets,
                                     &PyList_Type, &members, &PyList_Type, &alone, &PyList_Type,
                                     &more, &PyList_Type, &needs, &scan, &regexes))
        return -1;
    if (!PyType_Check(scan) || !PyType_IsSubtype((PyTypeObject *)scan, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "scan is a tuple type (Scan)");
        return -1;
    }
    Picker_clear_fields(self);
    Py_ssize_t n_factors = PyList_GET_SIZE(alone), n_patterns = PyList_GET_SIZE(needs);
    if (PyList_GET_SIZE(members) != PyList_GET_SIZE(sets) || PyList_GET_SIZE(more) != n_factors) {
        PyErr_SetString(PyExc_ValueError, "members per set, and more per factor");
        return -1;
    }
    self->n_sets = PyList_GET_SIZE(sets);
    self->matches = PyMem_Calloc(self->n_sets + 1, sizeof(PyObject *));
    if (self->matches == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t k = 0; k < self->n_sets; k++)
        self->matches[k] = Py_NewRef(PyList_GET_ITEM(sets, k));
    self->n_factors = n_factors;
    self->n_patterns = n_patterns;
    if (read_rows(members, -1, n_factors, &self->members, &self->n_members) < 0 ||
        read_rows(alone, 0, n_patterns, &self->alone, &self->n_alone) < 0 ||
        read_rows(more, 0, n_patterns, &self->more, &self->n_more) < 0 ||
        read_rows(needs, 0, n_factors, &self->needs, &self->n_needs) < 0) {
        Picker_clear_fields(self);
        return -1;
    }
    for (Py_ssize_t k = 0; k < self->n_sets; k++) {
        Py_ssize_t n = self->n_members[k];
        if (n == 0 || self->members[k][n - 1] != -1) {
            PyErr_SetString(PyExc_ValueError, "a set's last member is its \\z (-1)");
            Picker_clear_fields(self);
            return -1;
        }
    }
    self->scan = Py_NewRef(scan);
    self->regexes = Py_NewRef(regexes);
    return 0;
}

/* Appends ``n`` patterns to the growing ``*out``. */
static int add_all(Py_ssize_t **out, Py_ssize_t *len, Py_ssize_t *cap, const Py_ssize_t *items,
                   Py_ssize_t n) {
    if (*len + n > *cap) {
        Py_ssize_t more = *cap ? *cap : 64;
        while (more < *len + n) more *= 2;
        Py_ssize_t *grown = PyMem_Realloc(*out, more * sizeof(Py_ssize_t));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        *out = grown;
        *cap = more;
    }
    memcpy(*out + *len, items, n * sizeof(Py_ssize_t));
    *len += n;
    return 0;
}

static PyObject *Picker_pick(Picker *self, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "pick() takes a str");
        return NULL;
    }
    if (self->scan == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Picker.__init__ was not called");
        return NULL;
    }
    PyObject *utf8 = PyUnicode_AsUTF8String(text), *out = NULL, *list = NULL;
    unsigned char *have = PyMem_Calloc(self->n_factors + 1, 1);
    Py_ssize_t *candidates = NULL, n = 0, cap = 0;
    int any_more = 0;
    if (utf8 == NULL || have == NULL) {
        if (have == NULL) PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < self->n_sets; k++) {
        PyObject *here = PyObject_CallOneArg(self->matches[k], utf8);
        if (here == NULL) goto done;
        PyObject *ids = PySequence_Fast(here, "Match() gives a list of ints");
        Py_DECREF(here);
        if (ids == NULL) goto done;
        Py_ssize_t n_ids = PySequence_Fast_GET_SIZE(ids), last = self->n_members[k] - 1;
        int complete = 0; /* the set's \z was found: else the DFA gave up on this text */
        for (Py_ssize_t j = 0; j < n_ids && !complete; j++)
            complete = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(ids, j)) == last;
        for (Py_ssize_t j = 0; j < (complete ? n_ids : last + 1); j++) {
            Py_ssize_t id = complete ? PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(ids, j)) : j;
            if (id < 0 || id > last) {
                Py_DECREF(ids);
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "Match() gave an unknown id");
                goto done;
            }
            Py_ssize_t factor = self->members[k][id];
            if (factor < 0) continue; /* the \z */
            have[factor] = 1;
            any_more |= self->n_more[factor] > 0;
            if (add_all(&candidates, &n, &cap, self->alone[factor], self->n_alone[factor]) < 0) {
                Py_DECREF(ids);
                goto done;
            }
        }
        Py_DECREF(ids);
    }
    /* The patterns with more factors, when all of theirs were found. */
    for (Py_ssize_t f = 0; any_more && f < self->n_factors; f++) {
        if (!have[f]) continue;
        for (Py_ssize_t j = 0; j < self->n_more[f]; j++) {
            Py_ssize_t i = self->more[f][j], all = 1;
            for (Py_ssize_t q = 0; q < self->n_needs[i] && all; q++) all = have[self->needs[i][q]];
            if (all && add_all(&candidates, &n, &cap, &i, 1) < 0) goto done;
        }
    }
    if (n > 1) qsort(candidates, n, sizeof(Py_ssize_t), by_offset);
    list = PyList_New(n);
    for (Py_ssize_t j = 0; list != NULL && j < n; j++) {
        PyObject *i = PyLong_FromSsize_t(candidates[j]);
        if (i == NULL) Py_CLEAR(list);
        else PyList_SET_ITEM(list, j, i);
    }
    if (list != NULL) {
        /* ``Scan(utf8, ascii, candidates, regexes)``, made as ``tuple.__new__`` makes a
         * tuple type's instance (no Python frame) */
        PyObject *fields[] = {utf8, PyUnicode_IS_ASCII(text) ? Py_True : Py_False, list,
                              self->regexes};
        PyTypeObject *type = (PyTypeObject *)self->scan;
        out = type->tp_alloc(type, 4);
        for (Py_ssize_t f = 0; out != NULL && f < 4; f++)
            PyTuple_SET_ITEM(out, f, Py_NewRef(fields[f]));
    }
done:
    Py_XDECREF(utf8);
    Py_XDECREF(list);
    PyMem_Free(have);
    PyMem_Free(candidates);
    return out;
}

static PyMethodDef Picker_methods[] = {
    {"pick", (PyCFunction)Picker_pick, METH_O,
     "pick(text) -> Scan: the patterns that may match ``text`` (``Prefilter.scan``)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PickerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "orchestrator.injection._engine.Picker",
    .tp_doc = "The prefilter's candidates, from what its RE2 sets find.",
    .tp_basicsize = sizeof(Picker),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Picker_init,
    .tp_dealloc = (destructor)Picker_dealloc,
    .tp_methods = Picker_methods,
};

static PyMethodDef Matcher_methods[] = {
    {"match", (PyCFunction)(void (*)(void))Matcher_match, METH_FASTCALL,
     "match(low, norm, scan) -> {reason: (weight, reason quoting the words)}: "
     "``engine.match`` for the views ``low`` and ``norm``"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject MatcherType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "orchestrator.injection._engine.Matcher",
    .tp_doc = "The signal table, matched on a text's views.",
    .tp_basicsize = sizeof(Matcher),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Matcher_init,
    .tp_dealloc = (destructor)Matcher_dealloc,
    .tp_methods = Matcher_methods,
};

static PyMethodDef module_methods[] = {
    {"score", score, METH_O,
     "score(found) -> (score, reasons): what the signals found score together, and "
     "their reasons, strongest first"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_engine", "The signal table matched, in C.", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__engine(void) {
    if (!(str_end = PyUnicode_InternFromString("end")) ||
        !(str_match = PyUnicode_InternFromString("match")) ||
        !(str_candidates = PyUnicode_InternFromString("candidates")) ||
        !(str_next_start = PyUnicode_InternFromString("next_start")) ||
        !(str_round = PyUnicode_InternFromString("__round__")) ||
        !(str_weigh = PyUnicode_InternFromString("weigh")) ||
        !(two_places = PyUnicode_FromString(".2f")) ||
        !(ellipsis = PyUnicode_FromOrdinal(0x2026)) || !(space = PyUnicode_FromString(" ")) ||
        !(four = PyLong_FromLong(4)))
        return NULL;
    if (PyType_Ready(&MatcherType) < 0 || PyType_Ready(&ScorerType) < 0 ||
        PyType_Ready(&PickerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Matcher", (PyObject *)&MatcherType) < 0 ||
        PyModule_AddObjectRef(m, "Scorer", (PyObject *)&ScorerType) < 0 ||
        PyModule_AddObjectRef(m, "Picker", (PyObject *)&PickerType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
