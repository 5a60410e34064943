/* PII found in C: the numbers of a text (see ``pii_numbers.py``, whose
 * ``_runs_in_python`` and ``_run`` are the reference) and its e-mail addresses (see
 * ``pii._emails``, the reference for ``emails``).
 *
 * ``find(text, out, fallback)`` reads the text's shape as ``pii_numbers._SHAPE`` makes
 * it (a digit, a letter, a space, one of ``.()-``, anything else), finds the runs
 * ``_RUN`` finds in it, and places each as ``numbers`` does: its end on its last
 * digit, its start on a ``+`` or ``(`` before it. Each run is read for what
 * ``_lettered`` finds (``LETTERED``, 1), what ``_classify`` finds (``FREE``, 2), or is
 * digits glued to letters for ``_iban`` at ``start - 2`` (``GLUED``, 4); the spans
 * ``(kind, start, end, rank)`` those rules find are appended to ``out``, in the order
 * ``_run`` appends them.
 *
 * The rules are here, in C, for a run whose surroundings are ASCII (the 45 characters
 * before it and the 80 after it, more than any rule reads): there, Python's Unicode
 * classes, case folding and lowering are ASCII's. Any other run is handed to
 * ``fallback(text, start, end, what, out)`` (``_run``). The data the rules read (the
 * IBAN registry, the card lengths, the DNI letters) is given once, by ``configure``.
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
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

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
static inline Py_ssize_t glued_end(int kind, const void *data, Py_ssize_t n, Py_ssize_t at) {
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

/* --- the rules, for a run with ASCII surroundings ------------------------------------ */

typedef struct {
    PyObject *text, *out, *fallback;
    int kind;
    const void *data;
    Py_ssize_t n;
    int ascii; /* the whole text is ASCII */
} Text;

/* What ``configure`` gave: by two capital letters, an IBAN's length (0: no country); by
 * first digit, a bit per card length; the DNI's check letters. */
static unsigned char IBAN_LENGTH[26][26];
static uint32_t CARD_LENGTHS[10];
static char DNI_LETTERS[24];
static int configured;

static PyObject *IP, *CARD, *NATIONAL_ID, *PHONE, *IBAN; /* the kinds */

static inline Py_UCS4 ch(const Text *t, Py_ssize_t i) {
    return PyUnicode_READ(t->kind, t->data, i);
}
static inline int is_digit(Py_UCS4 c) { return c >= '0' && c <= '9'; }
static inline int alnum(Py_UCS4 c) { return is_digit(c) || ascii_letter(c); }
static inline Py_UCS4 upper(Py_UCS4 c) { return c >= 'a' && c <= 'z' ? c - 32 : c; }

static int span(const Text *t, PyObject *kind, Py_ssize_t start, Py_ssize_t end, int rank) {
    PyObject *item = Py_BuildValue("(Onni)", kind, start, end, rank);
    if (item == NULL) return -1;
    int failed = PyList_Append(t->out, item);
    Py_DECREF(item);
    return failed;
}

/* Whether the characters a rule may read around text[start:end] are ASCII. */
static int ascii_around(const Text *t, Py_ssize_t start, Py_ssize_t end) {
    if (t->ascii) return 1;
    Py_ssize_t to = end + 80 < t->n ? end + 80 : t->n;
    for (Py_ssize_t i = start > 45 ? start - 45 : 0; i < start; i++)
        if (ch(t, i) >= 128) return 0;
    for (Py_ssize_t i = end; i < to; i++)
        if (ch(t, i) >= 128) return 0;
    return 1;
}

/* A pattern's matches in text[from:to] as ``finditer`` finds them: tried at each place,
 * and after a match from its end (``end``: where it ends when matched at a place, or -1;
 * a match is never empty). Each that ``ok`` takes is a span of ``kind``. */
typedef Py_ssize_t (*Ends)(const Text *, Py_ssize_t, Py_ssize_t);
typedef int (*Takes)(const Text *, Py_ssize_t, Py_ssize_t);

static int each(const Text *t, Py_ssize_t from, Py_ssize_t to, Ends end, Takes ok, PyObject *kind,
                int rank) {
    for (Py_ssize_t p = from; p < to;) {
        Py_ssize_t e = end(t, p, to);
        if (e < 0) {
            p++;
            continue;
        }
        if (ok(t, p, e) && span(t, kind, p, e, rank) < 0) return -1;
        p = e;
    }
    return 0;
}

/* The Luhn check of ``m`` ASCII digits. */
static int luhn(const char *digits, int m) {
    int total = 0, odd = 0;
    for (int i = m - 1; i >= 0; i--) {
        int d = digits[i] - '0';
        if (odd) d = d > 4 ? d * 2 - 9 : d * 2;
        total += d;
        odd = !odd;
    }
    return total % 10 == 0;
}

/* Whether text[p:p+k] is k digits. */
static int digits_at(const Text *t, Py_ssize_t p, int k) {
    for (int i = 0; i < k; i++)
        if (!is_digit(ch(t, p + i))) return 0;
    return 1;
}

/* Where ``_IPV4`` ends when matched at ``p`` in text[:b], or -1. Each ``\d{1,3}``
 * takes what it can: giving a digit back leaves a digit where a dot must be. */
static Py_ssize_t ipv4_end(const Text *t, Py_ssize_t p, Py_ssize_t b) {
    for (int part = 0; part < 4; part++) {
        if (part) {
            if (p >= b || ch(t, p) != '.') return -1;
            p++;
        }
        int k = 0;
        while (k < 3 && p < b && is_digit(ch(t, p))) p++, k++;
        if (!k) return -1;
    }
    return p;
}

/* ``_ipv4_ok``: every part at most 255 with no leading zero, and not 127., 0. or 255. */
static int ipv4_ok(const Text *t, Py_ssize_t a, Py_ssize_t b) {
    int first = -1;
    for (Py_ssize_t p = a; p < b; p++) {
        int value = 0, size = 0;
        Py_UCS4 lead = ch(t, p);
        for (; p < b && ch(t, p) != '.'; p++, size++) value = value * 10 + (int)(ch(t, p) - '0');
        if (value > 255 || (size > 1 && lead == '0')) return 0;
        if (first < 0) first = value;
    }
    return first != 127 && first != 0 && first != 255;
}

/* Where ``_CARD`` (``\d(?:[ \-]?\d){12,18}``) ends when matched at ``p`` in text[:b],
 * or -1: each repeat takes a separator only with a digit after it. */
static Py_ssize_t card_end(const Text *t, Py_ssize_t p, Py_ssize_t b) {
    if (!is_digit(ch(t, p))) return -1;
    Py_ssize_t i = p + 1;
    int k = 0;
    while (k < 18) {
        Py_ssize_t j = i;
        if (j < b && (ch(t, j) == ' ' || ch(t, j) == '-')) j++;
        if (j >= b || !is_digit(ch(t, j))) break;
        i = j + 1;
        k++;
    }
    return k >= 12 ? i : -1;
}

/* ``_card_ok``: a length the first digit's networks use, and the Luhn check. */
static int card_ok(const Text *t, Py_ssize_t a, Py_ssize_t b) {
    char digits[20];
    int m = 0;
    for (Py_ssize_t p = a; p < b; p++)
        if (is_digit(ch(t, p))) digits[m++] = (char)ch(t, p); /* (19 at most) */
    return m && (CARD_LENGTHS[digits[0] - '0'] >> m) & 1 && luhn(digits, m);
}

/* The lowered 40 characters before a run, which the words that name a number are
 * looked for in (``context`` in ``_classify``). */
typedef struct {
    char chars[40];
    int n;
} Before;

static void before(const Text *t, Py_ssize_t start, Before *c) {
    Py_ssize_t from = start > 40 ? start - 40 : 0;
    c->n = (int)(start - from);
    for (int i = 0; i < c->n; i++) {
        Py_UCS4 x = ch(t, from + i);
        c->chars[i] = (char)(x >= 'A' && x <= 'Z' ? x + 32 : x);
    }
}

static const char *const PHONE_WORDS[] = {
    "call", "phone", "cell", "mobile", "mob", "tel", "text", "sms", "whatsapp", "fax",
    "contact", "reach", "ring", "dial", "number", "ph", NULL,
};
static const char *const SSN_WORDS[] = {
    "ssn", "social security number", "social security", "taxpayer id", "tin", NULL,
};
static const char *const SIN_WORDS[] = {"sin", "social insurance number", "social insurance", NULL};

/* Whether ``(?:word|…)\b[^\n\d]{0,tail}$`` is found in ``c`` (``$``: at its end, or
 * before a newline that ends it). */
static int named(const Before *c, const char *const *words, int tail) {
    int end = c->n && c->chars[c->n - 1] == '\n' ? c->n - 1 : c->n;
    for (; *words; words++) {
        int size = (int)strlen(*words);
        for (int p = 0; p + size <= end; p++) {
            int e = p + size;
            if (memcmp(c->chars + p, *words, size) != 0 || end - e > tail) continue;
            if (e < c->n && (alnum(c->chars[e]) || c->chars[e] == '_')) continue; /* \b */
            int k = e;
            while (k < end && c->chars[k] != '\n' && !is_digit(c->chars[k])) k++;
            if (k == end) return 1;
        }
    }
    return 0;
}

/* ``_national``: a US SSN (``536-22-1478``; bare after "SSN") or a Canadian SIN
 * after "SIN", in the run text[a:b] of 9 or 11 characters. */
static int national(const Text *t, Py_ssize_t a, Py_ssize_t b, const Before *c) {
    Py_ssize_t m = b - a;
    Py_UCS4 sep = m == 11 ? ch(t, a + 3) : 0;
    if (m == 11 && (sep == ' ' || sep == '-') && digits_at(t, a, 3) && digits_at(t, a + 4, 2) &&
        ch(t, a + 6) == sep && digits_at(t, a + 7, 4)) { /* _SSN */
        int area = (int)((ch(t, a) - '0') * 100 + (ch(t, a + 1) - '0') * 10 + ch(t, a + 2) - '0');
        int group = ch(t, a + 4) != '0' || ch(t, a + 5) != '0';
        int serial = !(ch(t, a + 7) == '0' && ch(t, a + 8) == '0' && ch(t, a + 9) == '0' &&
                       ch(t, a + 10) == '0');
        return area != 0 && area != 666 && area < 900 && group && serial;
    }
    if (digits_at(t, a, (int)m)) return named(c, SSN_WORDS, 12);
    if (!(m == 11 && (sep == ' ' || sep == '-') && digits_at(t, a, 3) && digits_at(t, a + 4, 3) &&
          ch(t, a + 7) == sep && digits_at(t, a + 8, 3))) /* _SIN */
        return 0;
    char digits[9];
    for (int i = 0; i < 3; i++) {
        digits[i] = (char)ch(t, a + i);
        digits[3 + i] = (char)ch(t, a + 4 + i);
        digits[6 + i] = (char)ch(t, a + 8 + i);
    }
    return luhn(digits, 9) && named(c, SIN_WORDS, 12);
}

/* Phone patterns matched whole against a run of at most 63 characters: bit i of a
 * ``Reach`` says the pattern so far can end at offset i, and each step moves the bits
 * whose character is in a class on by one (what a backtracking ``fullmatch`` finds,
 * without the backtracking). */
typedef uint64_t Reach;

typedef struct {
    Reach digit, zero, one, plus, open, close, space, dot, dash; /* bit i: the class of run[i] */
    int m;
} Classes;

static void classes(const Text *t, Py_ssize_t a, Py_ssize_t b, Classes *k) {
    memset(k, 0, sizeof(*k));
    k->m = (int)(b - a);
    for (int i = 0; i < k->m; i++) {
        Py_UCS4 c = ch(t, a + i);
        Reach bit = (Reach)1 << i;
        if (is_digit(c)) k->digit |= bit;
        if (c == '0') k->zero |= bit;
        if (c == '1') k->one |= bit;
        if (c == '+') k->plus |= bit;
        if (c == '(') k->open |= bit;
        if (c == ')') k->close |= bit;
        if (c == ' ') k->space |= bit;
        if (c == '.') k->dot |= bit;
        if (c == '-') k->dash |= bit;
    }
}

/* Where ``[class]{lo,hi}`` can end after any place in ``from``. */
static Reach rep(Reach from, Reach cls, int lo, int hi) {
    Reach out = lo ? 0 : from, now = from;
    for (int k = 1; k <= hi && now; k++) {
        now = (now & cls) << 1;
        if (k >= lo) out |= now;
    }
    return out;
}

static inline int whole(const Classes *k, Reach reach) { return (reach >> k->m) & 1; }

/* ``_INTL_PHONE``: ``\+\d{1,3}(?:[ .\-]?\(?\d{1,5}\)?){2,6}`` */
static int intl_phone(const Classes *k) {
    Reach sep = k->space | k->dot | k->dash, now = rep(rep(1, k->plus, 1, 1), k->digit, 1, 3), all = 0;
    for (int g = 1; g <= 6; g++) {
        now = rep(rep(rep(rep(now, sep, 0, 1), k->open, 0, 1), k->digit, 1, 5), k->close, 0, 1);
        if (g >= 2) all |= now;
    }
    return whole(k, all);
}

/* ``_TRUNK_PHONE``: ``0[1-9]\d{0,3}[ \-]?\d{2,8}(?:[ \-]\d{2,4}){0,2}`` */
static int trunk_phone(const Classes *k) {
    Reach sep = k->space | k->dash;
    Reach now = rep(rep(rep(1, k->zero, 1, 1), k->digit & ~k->zero, 1, 1), k->digit, 0, 3);
    now = rep(rep(now, sep, 0, 1), k->digit, 2, 8);
    Reach all = now;
    for (int g = 0; g < 2; g++) all |= now = rep(rep(now, sep, 1, 1), k->digit, 2, 4);
    return whole(k, all);
}

/* ``_US_PHONE``: ``(?:1[ .\-])?(?:\(\d{3}\) ?|\d{3}([.\-]))\d{3}[ .\-]\d{4}`` */
static int us_phone(const Classes *k) {
    Reach sep = k->space | k->dot | k->dash;
    Reach now = 1 | rep(rep(1, k->one, 1, 1), sep, 1, 1);
    Reach paren = rep(rep(rep(rep(now, k->open, 1, 1), k->digit, 3, 3), k->close, 1, 1), k->space, 0, 1);
    Reach plain = rep(rep(now, k->digit, 3, 3), k->dot | k->dash, 1, 1);
    return whole(k, rep(rep(rep(paren | plain, k->digit, 3, 3), sep, 1, 1), k->digit, 4, 4));
}

/* ``_BARE_PHONE``: ``\d{10}|\d{3}-\d{4}|\d{3} \d{3} \d{4}`` */
static int bare_phone(const Classes *k) {
    Reach three = rep(1, k->digit, 3, 3);
    Reach spaced = rep(rep(rep(three, k->space, 1, 1), k->digit, 3, 3), k->space, 1, 1);
    return whole(k, rep(1, k->digit, 10, 10) | rep(rep(three, k->dash, 1, 1), k->digit, 4, 4) |
                        rep(spaced, k->digit, 4, 4));
}

/* ``_is_phone`` for the run text[a:b]. */
static int is_phone(const Text *t, Py_ssize_t a, Py_ssize_t b, const Before *c) {
    if (b - a > 52) return 0; /* longer than any phone pattern takes (the international one) */
    Classes k;
    classes(t, a, b, &k);
    int digits = __builtin_popcountll(k.digit);
    if (ch(t, a) == '+') return digits >= 8 && digits <= 15 && intl_phone(&k);
    if (ch(t, a) == '0' && k.m >= 9 && k.m <= 16 && trunk_phone(&k)) return digits >= 9 && digits <= 12;
    if (us_phone(&k)) return 1;
    return bare_phone(&k) && named(c, PHONE_WORDS, 16);
}

/* ``_classify``: the free-standing run text[a:b], for IPv4 addresses, cards, national
 * ids and phones, in that order. */
static int classify(const Text *t, Py_ssize_t a, Py_ssize_t b) {
    Py_ssize_t m = b - a, dots = 0;
    for (Py_ssize_t p = a; p < b; p++) dots += ch(t, p) == '.';
    if (dots >= 3 && each(t, a, b, ipv4_end, ipv4_ok, IP, 9) < 0) return -1;
    if (m >= 13 && each(t, a, b, card_end, card_ok, CARD, 5) < 0) return -1;
    Before c;
    before(t, a, &c);
    if ((m == 9 || m == 11) && national(t, a, b, &c) && span(t, NATIONAL_ID, a, b, 6) < 0) return -1;
    if (is_phone(t, a, b, &c) && span(t, PHONE, a, b, 8) < 0) return -1;
    return 0;
}

/* ``_iban`` at ``s``, the country code's first letter. */
static int iban(const Text *t, Py_ssize_t s) {
    if (s + 2 > t->n) return 0;
    Py_UCS4 c1 = upper(ch(t, s)), c2 = upper(ch(t, s + 1));
    if (c1 < 'A' || c1 > 'Z' || c2 < 'A' || c2 > 'Z') return 0;
    int length = IBAN_LENGTH[c1 - 'A'][c2 - 'A'];
    if (!length || (s && alnum(ch(t, s - 1)))) return 0;
    /* _IBAN_HEAD: [A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){10,32}, each repeat taking a space
     * only with a letter or digit after it */
    if (s + 4 > t->n || !digits_at(t, s + 2, 2)) return 0;
    Py_ssize_t head = s + 4;
    int k = 0;
    for (; k < 32; k++) {
        Py_ssize_t j = head < t->n && ch(t, head) == ' ' ? head + 1 : head;
        if (j >= t->n || !alnum(ch(t, j))) break;
        head = j + 1;
    }
    if (k < 10) return 0;
    int taken = 0;
    Py_ssize_t end = s;
    for (; end < head && taken < length; end++) taken += ch(t, end) != ' ';
    if (taken != length || (end < t->n && alnum(ch(t, end)))) return 0;
    /* iban_ok: the country and check digits moved to the end, each letter read as its
     * number (A = 10 … Z = 35), mod 97 */
    int rest = 0;
    for (Py_ssize_t i = 0; i < end - s; i++) {
        Py_ssize_t p = s + (i + 4) % (end - s);
        Py_UCS4 x = upper(ch(t, p));
        if (x == ' ') continue;
        rest = is_digit(x) ? (rest * 10 + (int)(x - '0')) % 97 : (rest * 100 + (int)(x - 'A' + 10)) % 97;
    }
    return rest == 1 ? span(t, IBAN, s, end, 4) : 0;
}

/* Where ``_NINO`` ends when matched at ``p`` in text[:stop] (its look-behind reads the
 * text before ``p``; its look-ahead finds ``stop`` the end), or -1. Each `` ?`` takes
 * its space: without it, a digit or letter would have to stand where the space does. */
static Py_ssize_t nino_end(const Text *t, Py_ssize_t p, Py_ssize_t stop) {
    static const char FIRST[] = "ABCEGHJKLMNOPRSTWXYZ", SECOND[] = "ABCEGHJKLMNPRSTWXYZ";
    if ((p && alnum(ch(t, p - 1))) || p + 2 > stop) return -1;
    Py_UCS4 a = upper(ch(t, p)), b = upper(ch(t, p + 1));
    if (!ascii_letter(a) || !ascii_letter(b) || !strchr(FIRST, (int)a) || !strchr(SECOND, (int)b))
        return -1;
    Py_ssize_t i = p + 2;
    for (int pair = 0; pair < 3; pair++) {
        if (i < stop && ch(t, i) == ' ') i++;
        if (i + 2 > stop || !digits_at(t, i, 2)) return -1;
        i += 2;
    }
    if (i < stop && ch(t, i) == ' ') i++;
    if (i >= stop || upper(ch(t, i)) < 'A' || upper(ch(t, i)) > 'D') return -1;
    i++;
    return i < stop && alnum(ch(t, i)) ? -1 : i;
}

/* A NINO's letters are not one of the pairs never issued. */
static int nino_ok(const Text *t, Py_ssize_t p, Py_ssize_t e) {
    (void)e;
    char pair[3] = {(char)upper(ch(t, p)), (char)upper(ch(t, p + 1)), 0};
    return !strstr("BG GB NK KN TN NT ZZ", pair);
}

/* ``_lettered``: the run text[start:end] glued to letters, for an IBAN, a NINO and a
 * DNI or NIE, in that order. */
static int lettered(const Text *t, Py_ssize_t start, Py_ssize_t end) {
    if (start >= 2 && ascii_letter(ch(t, start - 2)) && ascii_letter(ch(t, start - 1)) &&
        iban(t, start - 2) < 0)
        return -1;
    if ((end - start == 6 || end - start == 8) && start >= 2) {
        Py_ssize_t stop = end + 3 < t->n ? end + 3 : t->n;
        if (each(t, start >= 3 ? start - 3 : 0, stop, nino_end, nino_ok, NATIONAL_ID, 6) < 0) return -1;
    }
    /* a DNI: 8 digits and their check letter; a NIE: X, Y or Z, 7 digits and the letter */
    Py_ssize_t size = end - start;
    if ((size != 7 && size != 8) || end >= t->n || !ascii_letter(ch(t, end)) ||
        (end + 1 < t->n && alnum(ch(t, end + 1))) || !digits_at(t, start, (int)size))
        return 0;
    long number = 0;
    for (Py_ssize_t p = start; p < end; p++) number = number * 10 + (long)(ch(t, p) - '0');
    char letter = (char)upper(ch(t, end));
    if (size == 8)
        return DNI_LETTERS[number % 23] == letter ? span(t, NATIONAL_ID, start, end + 1, 6) : 0;
    Py_UCS4 head = start ? upper(ch(t, start - 1)) : 0;
    if (head != 'X' && head != 'Y' && head != 'Z') return 0;
    number += (long)(head - 'X') * 10000000L;
    return DNI_LETTERS[number % 23] == letter ? span(t, NATIONAL_ID, start - 1, end + 1, 6) : 0;
}

/* What ``_run`` appends for the run text[start:end] read as ``what``: here when its
 * surroundings are ASCII, else by ``fallback``. */
static int take(const Text *t, Py_ssize_t start, Py_ssize_t end, int what) {
    if (!ascii_around(t, start, end)) {
        PyObject *done = PyObject_CallFunction(t->fallback, "OnniO", t->text, start, end, what, t->out);
        Py_XDECREF(done);
        return done == NULL ? -1 : 0;
    }
    if (what == GLUED) return iban(t, start - 2);
    if (what & LETTERED && lettered(t, start, end) < 0) return -1;
    return what & FREE ? classify(t, start, end) : 0;
}

/* A run text[start:end] of digits, dots, spaces and ``()-``, placed and chosen as
 * ``numbers`` does. */
static int place_run(const Text *t, Py_ssize_t start, Py_ssize_t end) {
    int kind = t->kind;
    const void *data = t->data;
    Py_ssize_t n = t->n;
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
    return what ? take(t, start, end, what) : 0;
}

/* The first ASCII digit at or after ``at`` (``n`` when there is none). */
static inline Py_ssize_t next_digit(int kind, const void *data, Py_ssize_t n, Py_ssize_t at) {
    if (kind == PyUnicode_1BYTE_KIND) { /* most texts: a byte per character */
        const Py_UCS1 *bytes = data;
#ifdef __SSE2__
        /* 16 at a time: a byte minus '0' is at most 9 for a digit */
        const __m128i zero = _mm_set1_epi8('0'), nine = _mm_set1_epi8(9);
        for (; at + 16 <= n; at += 16) {
            __m128i x = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)(bytes + at)), zero);
            int digits = _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(x, nine), x));
            if (digits) return at + __builtin_ctz((unsigned)digits);
        }
#endif
        while (at < n && (unsigned)(bytes[at] - '0') > 9) at++;
        return at;
    }
    while (at < n && shape(kind, data, at) != '0') at++;
    return at;
}

/* The runs of ``t`` and what the rules find in them (see ``find``). Inlined once per
 * kind, so that a 1-byte text, most texts, is read without a switch on its kind per
 * character. */
static inline __attribute__((always_inline)) int scan(const Text *t, int kind) {
    const void *data = t->data;
    Py_ssize_t n = t->n, at = 0;
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
            if (place_run(t, at, end) < 0) return -1;
            at = end;
            continue;
        }
        /* ``00 ?[0a]{4} ?[0a]{4}``: digits glued to letters */
        end = glued_end(kind, data, n, at + 1);
        if (end < 0) {
            at++;
            continue;
        }
        if (letters_before(kind, data, at) && take(t, at, end, GLUED) < 0) return -1;
        at = end;
    }
    return 0;
}

static PyObject *find(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyUnicode_Check(args[0]) || !PyList_Check(args[1]) ||
        !PyCallable_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "find() takes a str, a list and a callable");
        return NULL;
    }
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "_pii.configure() was not called");
        return NULL;
    }
    PyObject *text = args[0];
    Text t = {text, args[1], args[2], PyUnicode_KIND(text), PyUnicode_DATA(text),
              PyUnicode_GET_LENGTH(text), PyUnicode_IS_ASCII(text)};
    int failed = t.kind == PyUnicode_1BYTE_KIND   ? scan(&t, PyUnicode_1BYTE_KIND)
                 : t.kind == PyUnicode_2BYTE_KIND ? scan(&t, PyUnicode_2BYTE_KIND)
                                                  : scan(&t, PyUnicode_4BYTE_KIND);
    if (failed) return NULL;
    Py_RETURN_NONE;
}

/* ``configure(iban_lengths, card_lengths, dni_letters)``: by country code, an IBAN's
 * length; by first digit, a card's lengths; the DNI's 23 check letters. */
static PyObject *configure(PyObject *module, PyObject *args) {
    PyObject *ibans, *cards;
    const char *letters;
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "O!O!s#", &PyDict_Type, &ibans, &PyDict_Type, &cards, &letters,
                          &size))
        return NULL;
    unsigned char iban_length[26][26] = {{0}};
    uint32_t card_lengths[10] = {0};
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(ibans, &pos, &key, &value)) {
        const char *code = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
        long length = PyLong_Check(value) ? PyLong_AsLong(value) : -1;
        if (code == NULL || strlen(code) != 2 || code[0] < 'A' || code[0] > 'Z' || code[1] < 'A' ||
            code[1] > 'Z' || length < 5 || length > 34) {
            PyErr_SetString(PyExc_ValueError, "an IBAN length is a capital country code and 5..34");
            return NULL;
        }
        iban_length[code[0] - 'A'][code[1] - 'A'] = (unsigned char)length;
    }
    pos = 0;
    while (PyDict_Next(cards, &pos, &key, &value)) {
        const char *first = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
        PyObject *lengths = PySequence_Fast(value, "card lengths are a sequence");
        if (lengths == NULL) return NULL;
        int ok = first != NULL && strlen(first) == 1 && first[0] >= '0' && first[0] <= '9';
        for (Py_ssize_t i = 0; ok && i < PySequence_Fast_GET_SIZE(lengths); i++) {
            long length = PyLong_AsLong(PySequence_Fast_GET_ITEM(lengths, i));
            ok = length >= 13 && length <= 19;
            if (ok) card_lengths[first[0] - '0'] |= 1u << length;
        }
        Py_DECREF(lengths);
        if (!ok) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "card lengths are by first digit, 13..19");
            return NULL;
        }
    }
    if (size != 23) {
        PyErr_SetString(PyExc_ValueError, "the DNI has 23 check letters");
        return NULL;
    }
    memcpy(IBAN_LENGTH, iban_length, sizeof(IBAN_LENGTH));
    memcpy(CARD_LENGTHS, card_lengths, sizeof(CARD_LENGTHS));
    memcpy(DNI_LETTERS, letters, 23);
    configured = 1;
    Py_RETURN_NONE;
}

/* --- e-mail addresses --------------------------------------------------------------- */

static PyObject *EMAIL, *MAILTO;

static inline int local_char(Py_UCS4 c) {
    return alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '\'' || c == '-';
}

/* Where ``_DOMAIN`` ends when matched at ``p``, or -1: labels of ASCII letters, digits
 * and inner hyphens, each but the last followed by a dot; the last 2 to 24 letters
 * (the whole of what follows its dot: a letter, digit or hyphen may not follow it).
 * Of those ends, the one with the most labels: the labels' repeat is greedy, and gives
 * one back at a time until the last can be read as the top-level one. */
static Py_ssize_t domain_end(const Text *t, Py_ssize_t p) {
    Py_ssize_t best = -1;
    for (int labels = 0;; labels++) {
        Py_ssize_t e = p;
        int letters = 1;
        for (; e < t->n && (alnum(ch(t, e)) || ch(t, e) == '-'); e++) letters &= ascii_letter(ch(t, e));
        if (labels && letters && e - p >= 2 && e - p <= 24) best = e;
        if (e == p || ch(t, p) == '-' || ch(t, e - 1) == '-' || e >= t->n || ch(t, e) != '.') break;
        p = e + 1;
    }
    return best;
}

/* ``emails(text, out)``: ``pii._emails``, appended to ``out``. At each "@": the local
 * part read backwards (at most 64 characters) from its first letter or digit, and the
 * domain; not an scp remote (``user@host:path``) or the user in a URL
 * (``https://user@host``; ``mailto:`` excepted). The classes are ASCII ones in the
 * patterns too, so this needs no fallback. */
static PyObject *emails(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "emails() takes a str and a list");
        return NULL;
    }
    PyObject *text = args[0];
    Text t = {text, args[1], NULL, PyUnicode_KIND(text), PyUnicode_DATA(text),
              PyUnicode_GET_LENGTH(text), PyUnicode_IS_ASCII(text)};
    for (Py_ssize_t at = PyUnicode_FindChar(text, '@', 0, t.n, 1); at >= 0;
         at = PyUnicode_FindChar(text, '@', at + 1, t.n, 1)) {
        Py_ssize_t start = at, lowest = at > 64 ? at - 64 : 0;
        while (start > lowest && local_char(ch(&t, start - 1))) start--;
        Py_ssize_t end = start < at ? domain_end(&t, at + 1) : -1;
        if (end < 0) continue;
        while (start < at && !alnum(ch(&t, start))) start++;
        Py_UCS4 before = start ? ch(&t, start - 1) : ' ';
        int scp_remote = end + 1 < t.n && ch(&t, end) == ':' && Py_UNICODE_ISALPHA(ch(&t, end + 1));
        int userinfo = (before == '/' || before == ':') &&
                       !(start >= 7 && PyUnicode_Tailmatch(text, MAILTO, 0, start, 1) == 1);
        if (start < at && !scp_remote && !userinfo && span(&t, EMAIL, start, end, 7) < 0) return NULL;
    }
    if (PyErr_Occurred()) return NULL; /* (PyUnicode_FindChar's -2) */
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"find", (PyCFunction)(void (*)(void))find, METH_FASTCALL,
     "find(text, out, fallback): append the PII numbers in text to out"},
    {"emails", (PyCFunction)(void (*)(void))emails, METH_FASTCALL,
     "emails(text, out): append the e-mail addresses in text to out"},
    {"configure", (PyCFunction)configure, METH_VARARGS,
     "configure(iban_lengths, card_lengths, dni_letters): the data the rules read"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_pii", "PII numbers and e-mail addresses, found in C.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__pii(void) {
    for (int c = 0; c < 128; c++)
        SHAPE[c] = c >= '0' && c <= '9'                              ? '0'
                   : (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ? 'a'
                   : c == ' '                                         ? ' '
                   : c == '.' || c == '(' || c == ')' || c == '-'     ? '.'
                                                                      : 'x';
    if (!(IP = PyUnicode_InternFromString("ip")) || !(CARD = PyUnicode_InternFromString("card")) ||
        !(NATIONAL_ID = PyUnicode_InternFromString("national_id")) ||
        !(PHONE = PyUnicode_InternFromString("phone")) || !(IBAN = PyUnicode_InternFromString("iban")) ||
        !(EMAIL = PyUnicode_InternFromString("email")) || !(MAILTO = PyUnicode_InternFromString("mailto:")))
        return NULL;
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
