/* The digit runs of a text that may be PII numbers, found in one pass (see
 * ``pii_numbers.py``, whose ``_runs_in_python`` is the reference).
 *
 * ``runs(text)`` reads the text's shape as ``pii_numbers._SHAPE`` makes it (a digit, a
 * letter, a space, one of ``.()-``, anything else), finds the runs ``_RUN`` finds in
 * it, and places each as ``numbers`` does: its end on its last digit, its start on a
 * ``+`` or ``(`` before it. It returns ``[(start, end, what), ...]`` in text order:
 * ``what`` has ``LETTERED`` (1) when ``_lettered`` reads the run, ``FREE`` (2) when
 * ``_classify`` does, or is ``GLUED`` (4), digits glued to letters for ``_iban`` at
 * ``start - 2``.
 *
 * A run no rule could take is left out, which is what makes this cheaper than the
 * loop in Python: most runs are dates, versions and counts. Free-standing, a run
 * shorter than 8 characters is no card (13+), national id (9 or 11), US phone (12+),
 * bare phone (8, 10 or 12) or trunk phone (9+), so it is read only when it starts
 * with ``+`` (an international phone) or has three dots (an IPv4 address); of 8 and
 * 10 characters, only in a bare phone's forms or a trunk phone's (``free_worth``). Glued to
 * letters, a run is an IBAN only right after two ASCII letters, a NINO only with a
 * letter A to D just after it, a DNI/NIE only as 7 or 8 digits and one letter
 * (``lettered_worth``). The tests hold ``numbers`` with and without this to the same
 * findings.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

enum { LETTERED = 1, FREE = 2, GLUED = 4 };

/* By ASCII character: '0' a digit, 'a' a letter, ' ' a space, '.' one of ".()-",
 * 'x' anything else (as ``_SHAPE``; past ASCII, 'x' too). */
static char SHAPE[128];

static inline char shape(int kind, const void *data, Py_ssize_t i) {
    Py_UCS4 c = PyUnicode_READ(kind, data, i);
    return c < 128 ? SHAPE[c] : 'x';
}

/* Where ``0 ?[0a]{4} ?[0a]{4}`` ends when it starts at ``at`` (the second '0' of a
 * run glued to letters), or -1. */
static Py_ssize_t glued_end(int kind, const void *data, Py_ssize_t n, Py_ssize_t at) {
    if (at >= n || shape(kind, data, at) != '0') return -1;
    at++;
    for (int half = 0; half < 2; half++) {
        if (at < n && shape(kind, data, at) == ' ') at++;
        for (int k = 0; k < 4; k++, at++) {
            char s = at < n ? shape(kind, data, at) : 'x';
            if (s != '0' && s != 'a') return -1;
        }
    }
    return at;
}

static inline int alpha_at(int kind, const void *data, Py_ssize_t i) {
    return Py_UNICODE_ISALPHA(PyUnicode_READ(kind, data, i));
}

/* Whether the two characters before ``at`` are letters (``text[at-2:at].isalpha()``). */
static inline int letters_before(int kind, const void *data, Py_ssize_t at) {
    return at >= 2 && alpha_at(kind, data, at - 2) && alpha_at(kind, data, at - 1);
}

static int append(PyObject *out, Py_ssize_t start, Py_ssize_t end, int what) {
    PyObject *item = Py_BuildValue("(nni)", start, end, what);
    if (item == NULL) return -1;
    int failed = PyList_Append(out, item);
    Py_DECREF(item);
    return failed;
}

/* Whether ``_classify`` may find something in the free-standing run text[start:end]:
 * an IPv4 address has three dots; a phone starting with ``+`` any length; a card, a
 * US phone (``(555) 123-4567``) or a trunk phone 13 characters or more; a national id
 * 9 or 11; a trunk phone (``0…``) 9 to 16; a bare phone is ``\d{10}``,
 * ``\d{3}-\d{4}`` or ``\d{3} \d{3} \d{4}``, and a US one 12 or more. So of 8 and
 * 10 characters, only those bare forms and a trunk phone's 10 are read, and nothing
 * shorter (most dates, versions and counts). */
static int free_worth(int kind, const void *data, Py_ssize_t start, Py_ssize_t end) {
    Py_ssize_t size = end - start, dots = 0, digits = 0;
    for (Py_ssize_t k = start; k < end; k++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, k);
        dots += c == '.';
        digits += c >= '0' && c <= '9';
    }
    Py_UCS4 first = PyUnicode_READ(kind, data, start);
    if (dots >= 3 || first == '+' || size == 9 || size >= 11) return 1;
    if (size == 10) return first == '0' || digits == 10;
    if (size == 8) return digits == 7 && PyUnicode_READ(kind, data, start + 3) == '-';
    return 0;
}

static inline int ascii_letter(Py_UCS4 c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }

/* Whether ``_lettered`` may find something in the run text[start:end] glued to letters:
 * - an IBAN (``_iban``) starts with two ASCII letters (``[A-Za-z]{2}``) right before the
 *   run, with no letter or digit before them;
 * - a NINO ends in a letter A to D (or, to be safe, a character past ASCII) at most two
 *   characters after the run (its letters are before the run, its digits in it, so
 *   that letter is in the three characters after it ``_NINO`` is run on), and the run
 *   has 6 or 8 characters;
 * - a DNI or NIE is the run of 7 or 8 digits, then one letter and no letter or digit. */
static int lettered_worth(int kind, const void *data, Py_ssize_t n, Py_ssize_t start,
                          Py_ssize_t end) {
    Py_ssize_t size = end - start;
    if (start >= 2 && ascii_letter(PyUnicode_READ(kind, data, start - 2)) &&
        ascii_letter(PyUnicode_READ(kind, data, start - 1)) &&
        (start == 2 || !Py_UNICODE_ISALNUM(PyUnicode_READ(kind, data, start - 3))))
        return 1;
    if ((size == 6 || size == 8) && start >= 2)
        for (Py_ssize_t k = end; k < n && k < end + 3; k++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, k);
            if (c >= 128 || ((c | 0x20) >= 'a' && (c | 0x20) <= 'd')) return 1;
        }
    if ((size == 7 || size == 8) && end < n && Py_UNICODE_ISALPHA(PyUnicode_READ(kind, data, end)) &&
        !(end + 1 < n && Py_UNICODE_ISALNUM(PyUnicode_READ(kind, data, end + 1)))) {
        for (Py_ssize_t k = start; k < end; k++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, k);
            if (c < '0' || c > '9') return 0;
        }
        return 1;
    }
    return 0;
}

/* What of ``_lettered`` and ``_classify`` may find something in the run
 * text[start:end] (``numbers`` chose ``chosen`` of them). */
static int worth(int kind, const void *data, Py_ssize_t n, Py_ssize_t start, Py_ssize_t end,
                 int chosen) {
    int what = 0;
    if (chosen & LETTERED && lettered_worth(kind, data, n, start, end)) what |= LETTERED;
    if (chosen & FREE && free_worth(kind, data, start, end)) what |= FREE;
    return what;
}

/* A run text[start:end] of digits, dots, spaces and ``()-``, placed and chosen as
 * ``numbers`` does. */
static int place_run(PyObject *out, int kind, const void *data, Py_ssize_t n, Py_ssize_t start,
                     Py_ssize_t end) {
    while (!Py_UNICODE_ISDIGIT(PyUnicode_READ(kind, data, end - 1))) end--;
    if (start) {
        Py_UCS4 c = PyUnicode_READ(kind, data, start - 1);
        if (c == '+' || c == '(') start--;
    }
    Py_UCS4 before = start ? PyUnicode_READ(kind, data, start - 1) : ' ';
    Py_UCS4 after = end < n ? PyUnicode_READ(kind, data, end) : ' ';
    int chosen;
    if (Py_UNICODE_ISALPHA(before) || Py_UNICODE_ISALNUM(after) || before == '_' ||
        before == '$' || before == '#')
        chosen = LETTERED;
    else if (start >= 3 && letters_before(kind, data, start - 1))
        chosen = LETTERED | FREE; /* "CE 12 34 56 D" */
    else
        chosen = FREE;
    int what = worth(kind, data, n, start, end, chosen);
    return what ? append(out, start, end, what) : 0;
}

/* The first ASCII digit at or after ``at`` (``n`` when there is none). */
static Py_ssize_t next_digit(int kind, const void *data, Py_ssize_t n, Py_ssize_t at) {
    if (kind == PyUnicode_1BYTE_KIND) { /* most texts: a byte per character */
        const Py_UCS1 *bytes = data;
        while (at < n && (unsigned)(bytes[at] - '0') > 9) at++;
        return at;
    }
    while (at < n && shape(kind, data, at) != '0') at++;
    return at;
}

static PyObject *runs(PyObject *module, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "runs() takes a str");
        return NULL;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    Py_ssize_t at = 0;
    while (at < n) {
        at = next_digit(kind, data, n, at);
        if (at >= n) break;
        /* ``0([0. ]{5,})``: a run, taken whole */
        Py_ssize_t end = at + 1;
        while (end < n) {
            char s = shape(kind, data, end);
            if (s != '0' && s != '.' && s != ' ') break;
            end++;
        }
        if (end - at - 1 >= 5) {
            if (place_run(out, kind, data, n, at, end) < 0) goto fail;
            at = end;
            continue;
        }
        /* ``00 ?[0a]{4} ?[0a]{4}``: digits glued to letters */
        end = glued_end(kind, data, n, at + 1);
        if (end < 0) {
            at++;
            continue;
        }
        if (letters_before(kind, data, at) && append(out, at, end, GLUED) < 0) goto fail;
        at = end;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef methods[] = {
    {"runs", (PyCFunction)runs, METH_O,
     "runs(text) -> [(start, end, what), ...]: the digit runs that may be PII numbers"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_numbers", "The digit runs that may be PII numbers, in C.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__numbers(void) {
    for (int c = 0; c < 128; c++)
        SHAPE[c] = c >= '0' && c <= '9'                              ? '0'
                   : (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ? 'a'
                   : c == ' '                                         ? ' '
                   : c == '.' || c == '(' || c == ')' || c == '-'     ? '.'
                                                                      : 'x';
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddIntConstant(m, "LETTERED", LETTERED) < 0 ||
        PyModule_AddIntConstant(m, "FREE", FREE) < 0 ||
        PyModule_AddIntConstant(m, "GLUED", GLUED) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
