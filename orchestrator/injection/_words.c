/* The learned injection model's word features, weighed in one pass over a text.
 *
 * ``Table(words, weights, telling, quiet=())`` holds the model's word weights in an
 * open-addressing hash table; ``Table.weigh(low)`` reads the lowered text once, splits
 * it into words exactly as ``model.words`` does (a word is a run of ASCII letters,
 * digits and ``_``, and of non-ASCII characters that are not whitespace), and returns
 * the sum of the weights of the distinct words it knows, with the indexes of those
 * that weigh more than ``telling`` and are not ``quiet`` (the evidence a reason quotes:
 * a quiet word is weighed, never quoted). ``model.words`` is
 * the reference: ``tests/orchestrator/test_injection_model.py`` checks that both agree
 * on every corpus text.
 *
 * In Python the same costs a set of ~125 fresh strings and a probe of each into a
 * 2.7k-entry dict per 1 KB text (~40 us); here it is one read of the text and no
 * object made but the result. A text of one byte per character (most texts) has its
 * word characters found 16 at a time, and each word hashed and compared 8 bytes at a
 * time, its slot asked for before any word is looked up: read a character at a time,
 * with a branch per character that a word's end mispredicts, the same took ≈ 25% longer.
 *
 * The module also makes a text's views in one pass each where ``views`` would take
 * several: ``latin`` reads full-width forms and look-alike letters as Latin, ``fold``
 * lowers the text, drops zero-width characters, makes typographic ones ASCII and makes
 * the word view.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* The table is small, so that a text's words find it in cache: a slot is 8 bytes, and
 * the entries, each with its word after it (a byte a character when it can be), lie
 * one after another. For the shipped model that is 16,384 slots and 2,644 entries,
 * 128 KB and 107 KB, where slots of 48 bytes, each word's characters in an
 * allocation of their own, took 850 KB. */
typedef struct {
    uint32_t tag;   /* the high half of the word's hash: most other words differ there */
    uint32_t entry; /* where its entry starts in ``entries``, in bytes; EMPTY: a free slot */
} Slot;

static const uint32_t EMPTY = UINT32_MAX;

typedef struct {
    double weight;
    uint64_t seen;   /* the call that last counted it */
    uint32_t index;  /* in the words given */
    uint32_t length;
    uint32_t narrow; /* every character is below 256 */
    uint32_t tells;  /* it weighs more than ``telling`` and is not quiet: it is quoted */
    /* The word: when narrow, its bytes, 8 to a ``uint64_t`` as memory holds them, zero
     * past its end (a 1-byte text's words are compared 8 bytes at a time); else its
     * characters (``Py_UCS4``). */
    uint64_t word[];
} Entry;

typedef struct {
    PyObject_HEAD
    Slot *slots;
    size_t mask;
    char *entries;
    Py_ssize_t longest; /* the longest word's length: a longer one is none of them */
    uint64_t calls;
    void *scratch; /* for a 1-byte text: its word characters, a bit each, then its words */
    size_t scratch_size;
} Table;

static const uint64_t FNV_OFFSET = 14695981039346656037ULL;
static const uint64_t FNV_PRIME = 1099511628211ULL;

static unsigned char ascii_word[128];
static unsigned char narrow_word[256]; /* ``is_word`` of the characters a 1-byte str has */

static inline int is_word(Py_UCS4 c) {
    if (c < 256) return narrow_word[c];
    return !Py_UNICODE_ISSPACE(c);
}

/* The bytes an entry for ``word`` takes (a multiple of 8, so that the next entry's
 * weight is aligned). */
static Py_ssize_t entry_size(PyObject *word) {
    Py_ssize_t length = PyUnicode_GET_LENGTH(word);
    if (PyUnicode_KIND(word) == PyUnicode_1BYTE_KIND)
        return sizeof(Entry) + (length + 7) / 8 * 8;
    return sizeof(Entry) + (length * sizeof(Py_UCS4) + 7) / 8 * 8;
}

/* Whether entry ``e`` is the word data[start:start + length] (characters of ``kind``). */
static inline __attribute__((always_inline)) int entry_is(const Entry *e, int kind,
                                                          const void *data, Py_ssize_t start,
                                                          Py_ssize_t length) {
    if (e->length != length) return 0;
    Py_ssize_t k = 0;
    if (e->narrow) {
        const unsigned char *bytes = (const unsigned char *)e->word;
        while (k < length && bytes[k] == PyUnicode_READ(kind, data, start + k)) k++;
    } else {
        const Py_UCS4 *chars = (const Py_UCS4 *)e->word;
        while (k < length && chars[k] == PyUnicode_READ(kind, data, start + k)) k++;
    }
    return k == length;
}

static inline uint32_t tag_of(uint64_t hash) { return (uint32_t)(hash >> 32); }

/* A word's hash. A word whose characters are all below 256 is hashed as its bytes (a
 * byte a character), 8 at a time: ``hash_start``, ``hash_add`` per 8 bytes (the last
 * zero past the word) and ``hash_end``, which a 1-byte text's words take straight from
 * the text. Any other word is hashed by FNV-1a over its characters. */
static inline uint64_t hash_start(Py_ssize_t length) {
    return (uint64_t)length * 0x9E3779B97F4A7C15ULL;
}

static inline uint64_t hash_add(uint64_t hash, uint64_t eight) {
    hash = (hash ^ eight) * 0xC2B2AE3D27D4EB4FULL;
    return hash ^ (hash >> 29);
}

static inline uint64_t hash_end(uint64_t hash) {
    hash *= 0x165667B19E3779F9ULL;
    return hash ^ (hash >> 32);
}

/* By n (1-8): the first n bytes of 8 (as memory holds them) all ones, the rest zero. */
static uint64_t first_bytes[9];

/* The hash of the word data[start:start + length] (characters of ``kind``). */
static inline __attribute__((always_inline)) uint64_t hash_word(int kind, const void *data,
                                                                Py_ssize_t start,
                                                                Py_ssize_t length) {
    Py_UCS4 wide = 0;
    if (kind != PyUnicode_1BYTE_KIND)
        for (Py_ssize_t k = 0; k < length; k++) wide |= PyUnicode_READ(kind, data, start + k);
    if (wide >= 256) {
        uint64_t hash = FNV_OFFSET;
        for (Py_ssize_t k = 0; k < length; k++)
            hash = (hash ^ PyUnicode_READ(kind, data, start + k)) * FNV_PRIME;
        return hash;
    }
    uint64_t hash = hash_start(length);
    for (Py_ssize_t at = 0; at < length; at += 8) {
        unsigned char eight[8] = {0};
        for (Py_ssize_t k = at; k < length && k < at + 8; k++)
            eight[k - at] = (unsigned char)PyUnicode_READ(kind, data, start + k);
        uint64_t word;
        memcpy(&word, eight, 8);
        hash = hash_add(hash, word);
    }
    return hash_end(hash);
}

static void Table_clear(Table *self) {
    PyMem_Free(self->slots);
    PyMem_Free(self->entries);
    PyMem_Free(self->scratch);
    self->slots = NULL;
    self->entries = NULL;
    self->scratch = NULL;
    self->scratch_size = 0;
    self->longest = 0;
}

static void Table_dealloc(Table *self) {
    Table_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Allocates the slots (a quarter full at most: fewer probes than half full, measured
 * faster) and room for the entries of ``words`` (checked to be strings). */
static int Table_allocate(Table *self, PyObject *words) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(words);
    Py_ssize_t bytes = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *word = PySequence_Fast_GET_ITEM(words, i);
        if (!PyUnicode_Check(word)) {
            PyErr_SetString(PyExc_TypeError, "words must be strings");
            return -1;
        }
        bytes += entry_size(word);
    }
    if ((size_t)bytes >= EMPTY) {
        PyErr_SetString(PyExc_ValueError, "too many words for one table");
        return -1;
    }
    size_t size = 16;
    while (size < (size_t)n * 4) size <<= 1;
    self->slots = PyMem_Malloc(size * sizeof(Slot));
    self->entries = PyMem_Malloc(bytes > 0 ? bytes : 1);
    if (self->slots == NULL || self->entries == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < size; i++) self->slots[i] = (Slot){0, EMPTY};
    self->mask = size - 1;
    return 0;
}

/* The entry of a word (hashed ``hash``) held as UCS4 ``chars``, or NULL, and the slot
 * it is in or would go in. */
static Entry *find(Table *self, uint64_t hash, const Py_UCS4 *chars, Py_ssize_t length,
                   size_t *slot) {
    size_t at = hash & self->mask;
    for (; self->slots[at].entry != EMPTY; at = (at + 1) & self->mask) {
        if (self->slots[at].tag != tag_of(hash)) continue;
        Entry *e = (Entry *)(self->entries + self->slots[at].entry);
        if (entry_is(e, PyUnicode_4BYTE_KIND, chars, 0, length)) {
            *slot = at;
            return e;
        }
    }
    *slot = at;
    return NULL;
}

/* Adds ``word`` with ``weight`` at ``used`` bytes into the entries; the bytes used
 * after, or -1 on an error. */
static Py_ssize_t Table_add(Table *self, PyObject *word, double weight, int tells,
                            Py_ssize_t index, Py_ssize_t used) {
    Py_ssize_t length = PyUnicode_GET_LENGTH(word);
    Py_UCS4 *chars = PyUnicode_AsUCS4Copy(word);
    if (chars == NULL) return -1;
    uint64_t hash = hash_word(PyUnicode_4BYTE_KIND, chars, 0, length);
    if (length > self->longest) self->longest = length;
    size_t at;
    Entry *same = find(self, hash, chars, length, &at);
    if (same != NULL) { /* a repeated word: the later weight wins, as in a dict */
        same->weight = weight;
        same->tells = (uint32_t)tells;
        same->index = (uint32_t)index;
        PyMem_Free(chars);
        return used;
    }
    Entry *e = (Entry *)(self->entries + used);
    int narrow = PyUnicode_KIND(word) == PyUnicode_1BYTE_KIND;
    *e = (Entry){weight, 0, (uint32_t)index, (uint32_t)length, (uint32_t)narrow, (uint32_t)tells};
    Py_ssize_t size = entry_size(word);
    memset(e->word, 0, size - sizeof(Entry));
    for (Py_ssize_t k = 0; k < length; k++) {
        if (narrow)
            ((unsigned char *)e->word)[k] = (unsigned char)chars[k];
        else
            ((Py_UCS4 *)e->word)[k] = chars[k];
    }
    PyMem_Free(chars);
    self->slots[at] = (Slot){tag_of(hash), (uint32_t)used};
    return used + size;
}

static int Table_init(Table *self, PyObject *args, PyObject *kwds) {
    static char *keywords[] = {"words", "weights", "telling", "quiet", NULL};
    PyObject *words, *weights, *quiet = NULL;
    double telling;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOd|O", keywords, &words, &weights, &telling,
                                     &quiet))
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
    if (Table_allocate(self, ws) < 0) goto fail;
    self->calls = 0;
    Py_ssize_t used = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *word = PySequence_Fast_GET_ITEM(ws, i);
        double weight = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(vs, i));
        if (weight == -1.0 && PyErr_Occurred()) goto fail;
        int is_quiet = quiet == NULL ? 0 : PySequence_Contains(quiet, word);
        if (is_quiet < 0) goto fail;
        used = Table_add(self, word, weight, weight > telling && !is_quiet, i, used);
        if (used < 0) goto fail;
    }
    Py_DECREF(ws);
    Py_DECREF(vs);
    return 0;
fail:
    Table_clear(self); /* weigh() says it is not initialised, not half of it */
    Py_DECREF(ws);
    Py_DECREF(vs);
    return -1;
}

/* The entry for the word text[start:end], or NULL. */
static inline __attribute__((always_inline)) Entry *lookup(Table *self, int kind,
                                                            const void *data, Py_ssize_t start,
                                                            Py_ssize_t end, uint64_t hash) {
    Py_ssize_t length = end - start;
    for (size_t at = hash & self->mask; self->slots[at].entry != EMPTY;
         at = (at + 1) & self->mask) {
        if (self->slots[at].tag != tag_of(hash)) continue;
        Entry *e = (Entry *)(self->entries + self->slots[at].entry);
        if (entry_is(e, kind, data, start, length)) return e;
    }
    return NULL;
}

/* The longest word a 1-byte text's loop compares 8 bytes at a time, in 8 bytes. */
#define MOST_EIGHTS 8

/* The entry for the word of ``length`` characters below 256 (hashed ``hash``) that
 * ``eights`` holds (as a narrow entry holds its word), or NULL. */
static inline Entry *lookup_eights(Table *self, const uint64_t *eights, Py_ssize_t length,
                                   uint64_t hash) {
    for (size_t at = hash & self->mask; self->slots[at].entry != EMPTY;
         at = (at + 1) & self->mask) {
        if (self->slots[at].tag != tag_of(hash)) continue;
        Entry *e = (Entry *)(self->entries + self->slots[at].entry);
        if (e->length != length || !e->narrow) continue;
        uint64_t differ = 0;
        for (Py_ssize_t k = 0; k < (length + 7) / 8; k++) differ |= e->word[k] ^ eights[k];
        if (differ == 0) return e;
    }
    return NULL;
}

/* Counts the word ``e`` (a known one, or NULL) once per call: its weight added to
 * ``*total`` where it first comes, its index onto ``telling`` when it tells. */
static inline int count(Table *self, Entry *e, uint64_t call, double *total, PyObject *telling) {
    if (e == NULL || e->seen == call) return 0;
    e->seen = call;
    *total += e->weight;
    if (e->tells) {
        PyObject *index = PyLong_FromSsize_t(e->index);
        if (index == NULL || PyList_Append(telling, index) < 0) {
            Py_XDECREF(index);
            return -1;
        }
        Py_DECREF(index);
    }
    return 0;
}

/* ``weigh_words`` of a 2- or 4-byte text (``kind``, which the callers give as a
 * constant, so that each kind has a loop of its own that reads its characters
 * directly), a character at a time. */
static inline __attribute__((always_inline)) int weigh_wide(Table *self, int kind,
                                                            const void *data, Py_ssize_t n,
                                                            uint64_t call, double *total,
                                                            PyObject *telling) {
    Py_ssize_t i = 0;
    while (i < n) {
        while (i < n && !is_word(PyUnicode_READ(kind, data, i))) i++;
        if (i >= n) break;
        Py_ssize_t start = i;
        while (i < n && is_word(PyUnicode_READ(kind, data, i))) i++;
        if (i - start > self->longest) continue;
        uint64_t hash = hash_word(kind, data, start, i - start);
        if (count(self, lookup(self, kind, data, start, i, hash), call, total, telling) < 0)
            return -1;
    }
    return 0;
}

/* Marks the word characters of 1-byte ``chars`` (``n``) in ``bits``, a bit each, 64
 * to a word of ``bits``; one more word of ``bits`` past them is clear (a word of the
 * text ends by then). */
static void word_bits(const unsigned char *chars, Py_ssize_t n, uint64_t *bits) {
    Py_ssize_t words = (n + 63) / 64;
    for (Py_ssize_t k = 0; k < words; k++) {
        unsigned char block[64];
        const unsigned char *p = chars + k * 64;
        if (n - k * 64 < 64) { /* the last, short block: padded with spaces */
            memset(block, ' ', 64);
            memcpy(block, p, n - k * 64);
            p = block;
        }
        uint64_t w = 0;
#ifdef __SSE2__
        for (int q = 0; q < 4; q++) {
            __m128i x = _mm_loadu_si128((const __m128i *)(p + 16 * q));
            __m128i d = _mm_sub_epi8(x, _mm_set1_epi8('0'));
            __m128i u = _mm_sub_epi8(x, _mm_set1_epi8('A'));
            __m128i l = _mm_sub_epi8(x, _mm_set1_epi8('a'));
            __m128i is = _mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(9)), d);
            is = _mm_or_si128(is, _mm_cmpeq_epi8(_mm_min_epu8(u, _mm_set1_epi8(25)), u));
            is = _mm_or_si128(is, _mm_cmpeq_epi8(_mm_min_epu8(l, _mm_set1_epi8(25)), l));
            is = _mm_or_si128(is, _mm_cmpeq_epi8(x, _mm_set1_epi8('_')));
            /* past ASCII: any character but U+0085 and U+00A0, which are whitespace */
            __m128i space = _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8((char)0x85)),
                                         _mm_cmpeq_epi8(x, _mm_set1_epi8((char)0xa0)));
            uint64_t high = (uint16_t)(_mm_movemask_epi8(x) & ~_mm_movemask_epi8(space));
            w |= ((uint64_t)(uint16_t)_mm_movemask_epi8(is) | high) << (16 * q);
        }
#else
        for (int j = 0; j < 64; j++) w |= (uint64_t)narrow_word[p[j]] << j;
#endif
        bits[k] = w;
    }
    bits[words] = 0;
}

/* A 1-byte text's word of ``length`` characters at ``chars`` (``readable``: 8 bytes
 * may be read from each of its 8-byte pieces), 8 bytes at a time in ``eights`` (zero
 * past its end); its hash. */
static inline uint64_t narrow_word_eights(const unsigned char *chars, Py_ssize_t length,
                                          int readable, uint64_t *eights) {
    uint64_t hash = hash_start(length);
    for (Py_ssize_t q = 0; q < (length + 7) / 8; q++) {
        Py_ssize_t keep = length - 8 * q < 8 ? length - 8 * q : 8;
        eights[q] = 0;
        memcpy(&eights[q], chars + 8 * q, readable ? 8 : keep);
        eights[q] &= first_bytes[keep];
        hash = hash_add(hash, eights[q]);
    }
    return hash_end(hash);
}

/* A word of a 1-byte text found by the first pass: where, and its hash. */
typedef struct {
    Py_ssize_t start, length;
    uint64_t hash;
} Word;

/* ``weigh_words`` of a 1-byte text: its words found 16 characters at a time and
 * hashed 8 bytes at a time, each word's slot asked for as it is found; then each
 * looked up. */
static int weigh_narrow(Table *self, const unsigned char *chars, Py_ssize_t n, uint64_t call,
                        double *total, PyObject *telling) {
    Py_ssize_t blocks = (n + 63) / 64 + 1;
    size_t need = blocks * sizeof(uint64_t) + (n / 2 + 1) * sizeof(Word);
    if (need > self->scratch_size) {
        void *bigger = PyMem_Realloc(self->scratch, need * 2);
        if (bigger == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->scratch = bigger;
        self->scratch_size = need * 2;
    }
    uint64_t *bits = self->scratch;
    Word *found = (Word *)(bits + blocks);
    Py_ssize_t n_found = 0;
    word_bits(chars, n, bits);
    uint64_t before = 0; /* whether the character before the block's first is a word's */
    for (Py_ssize_t k = 0; k < blocks - 1; k++) {
        uint64_t starts = bits[k] & ~(bits[k] << 1 | before);
        before = bits[k] >> 63;
        for (; starts; starts &= starts - 1) {
            Py_ssize_t start = k * 64 + __builtin_ctzll(starts), end;
            uint64_t after = ~bits[k] & (~0ULL << (start & 63));
            if (after) {
                end = k * 64 + __builtin_ctzll(after);
            } else { /* the bits past ``n`` are clear: the word ends at ``n`` at the latest */
                Py_ssize_t w = k + 1;
                while (bits[w] == ~0ULL) w++;
                end = w * 64 + __builtin_ctzll(~bits[w]);
            }
            Py_ssize_t length = end - start;
            if (length > self->longest) continue; /* none of them */
            uint64_t eights[MOST_EIGHTS], hash;
            if (length > 8 * MOST_EIGHTS) /* (no such word in the shipped model) */
                hash = hash_word(PyUnicode_1BYTE_KIND, chars, start, length);
            else
                hash = narrow_word_eights(chars + start, length, end + 8 <= n, eights);
            __builtin_prefetch(&self->slots[hash & self->mask]);
            found[n_found++] = (Word){start, length, hash};
        }
    }
    for (Py_ssize_t f = 0; f < n_found; f++) {
        Py_ssize_t start = found[f].start, length = found[f].length;
        Entry *e;
        if (length > 8 * MOST_EIGHTS) {
            e = lookup(self, PyUnicode_1BYTE_KIND, chars, start, start + length, found[f].hash);
        } else {
            uint64_t eights[MOST_EIGHTS];
            narrow_word_eights(chars + start, length, start + length + 8 <= n, eights);
            e = lookup_eights(self, eights, length, found[f].hash);
        }
        if (count(self, e, call, total, telling) < 0) return -1;
    }
    return 0;
}

/* The weights of the distinct known words of ``data`` (``n`` characters of ``kind``),
 * added to ``*total``, and the telling ones' indexes. */
static int weigh_words(Table *self, int kind, const void *data, Py_ssize_t n, double *total,
                       PyObject *telling) {
    uint64_t call = ++self->calls;
    if (kind == PyUnicode_1BYTE_KIND) return weigh_narrow(self, data, n, call, total, telling);
    if (kind == PyUnicode_2BYTE_KIND)
        return weigh_wide(self, PyUnicode_2BYTE_KIND, data, n, call, total, telling);
    return weigh_wide(self, PyUnicode_4BYTE_KIND, data, n, call, total, telling);
}

static PyObject *Table_weigh(Table *self, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "weigh() takes a str");
        return NULL;
    }
    if (self->slots == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Table.__init__ was not called (or failed)");
        return NULL;
    }
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    double total = 0.0;
    PyObject *telling = PyList_New(0);
    if (telling == NULL) return NULL;
    if (weigh_words(self, PyUnicode_KIND(text), data, n, &total, telling) < 0) {
        Py_DECREF(telling);
        return NULL;
    }
    return Py_BuildValue("(dN)", total, telling);
}

/* ``fold(text)``: ``views``' ``low`` of a text (past ``latin``), and its word view:
 * ``(low, norm)``. ``low`` is a space, then the text lowered as
 * ``str.lower`` does, with zero-width characters dropped and typographic ones made
 * ASCII. Lowering here is one table read per ASCII character, where ``str.lower``
 * looks up every character of a text that has any non-ASCII one (≈ 8 µs a KB); a
 * character past ASCII is lowered by ``Py_UNICODE_TOLOWER``, which is ``str.lower``'s
 * mapping for all but U+0130 (whose lowercase is two characters, written here) and a
 * capital sigma (final or not by what is around it: a text with one is lowered by
 * ``str.lower`` first). The two tables copy ``views``' ``_ZERO_WIDTH`` and
 * ``_TYPOGRAPHIC``; ``test_the_compiled_views_are_the_python_ones`` runs every
 * character of those, and every code point, through both. An ASCII text's two views
 * are written as ASCII strings in one pass (``views`` takes a ``lower``, a
 * concatenation, an ``encode``, a ``translate`` and a ``decode``: ≈ 5 µs a KB). */
static const Py_UCS4 ZERO_WIDTH[] = {0x200b, 0x200c, 0x200d, 0x2060, 0xfeff, 0x00ad};
static const Py_UCS4 TYPOGRAPHIC[][2] = {
    {0x2019, '\''}, {0x2018, '\''}, {0x201c, '"'}, {0x201d, '"'}, {0x2014, '-'},
    {0x2013, '-'},  {0x2010, '-'},  {0x2011, '-'}, {0x2026, '.'}, {0x00a0, ' '},
    {0x202f, ' '},  {0x2022, '*'},  {0x00b7, '*'}, {0x2192, '>'}, {0x00d7, 'x'},
};
#define CAPITAL_SIGMA 0x3a3
#define CAPITAL_I_DOT 0x130
static unsigned char before_word[128]; /* what the word view makes a space */
static unsigned char ascii_lower[128];

/* A character past ASCII as ``fold`` writes it into ``low``: 0 when dropped. */
static inline Py_UCS4 folded(Py_UCS4 c) {
    for (size_t z = 0; z < sizeof(ZERO_WIDTH) / sizeof(ZERO_WIDTH[0]); z++)
        if (c == ZERO_WIDTH[z]) return 0;
    for (size_t t = 0; t < sizeof(TYPOGRAPHIC) / sizeof(TYPOGRAPHIC[0]); t++)
        if (c == TYPOGRAPHIC[t][0]) return TYPOGRAPHIC[t][1];
    return c;
}

#ifdef __SSE2__
/* Whether each of 16 bytes is in [low, low + width). */
static inline __m128i in_range(__m128i x, char low, char width) {
    __m128i d = _mm_sub_epi8(x, _mm_set1_epi8(low));
    return _mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8((char)(width - 1))), d);
}

/* ``fold``'s loop over 16 ASCII characters: ``low`` gets them lowered, ``norm`` the
 * same with the characters of ``before_word`` made spaces (the ranges and characters
 * below are that table's: ``PyInit__words`` checks them against it). */
static inline void fold16(const unsigned char *chars, unsigned char *low, unsigned char *norm) {
    __m128i x = _mm_loadu_si128((const __m128i *)chars);
    __m128i l = _mm_or_si128(x, _mm_and_si128(in_range(x, 'A', 26), _mm_set1_epi8(0x20)));
    __m128i b = in_range(l, '\t', 2);
    b = _mm_or_si128(b, _mm_cmpeq_epi8(l, _mm_set1_epi8('\r')));
    b = _mm_or_si128(b, in_range(l, '"', 2));  /* " # */
    b = _mm_or_si128(b, in_range(l, '\'', 2)); /* ' ( */
    b = _mm_or_si128(b, _mm_cmpeq_epi8(l, _mm_set1_epi8('*')));
    b = _mm_or_si128(b, _mm_cmpeq_epi8(l, _mm_set1_epi8('-')));
    b = _mm_or_si128(b, _mm_cmpeq_epi8(l, _mm_set1_epi8('/')));
    b = _mm_or_si128(b, in_range(l, '<', 3));  /* < = > */
    b = _mm_or_si128(b, in_range(l, '[', 2));  /* [ \ */
    b = _mm_or_si128(b, _mm_cmpeq_epi8(l, _mm_set1_epi8('`')));
    b = _mm_or_si128(b, in_range(l, '{', 2));  /* { | */
    __m128i w = _mm_or_si128(_mm_and_si128(b, _mm_set1_epi8(' ')), _mm_andnot_si128(b, l));
    _mm_storeu_si128((__m128i *)low, l);
    _mm_storeu_si128((__m128i *)norm, w);
}
#endif

static PyObject *fold(PyObject *module, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "fold() takes a str");
        return NULL;
    }
    if (PyUnicode_IS_ASCII(text)) { /* most texts: both views ASCII, written directly */
        Py_ssize_t n = PyUnicode_GET_LENGTH(text);
        const unsigned char *chars = PyUnicode_1BYTE_DATA(text);
        PyObject *low = PyUnicode_New(n + 1, 127);
        PyObject *norm = low ? PyUnicode_New(n + 1, 127) : NULL;
        if (norm == NULL) {
            Py_XDECREF(low);
            return NULL;
        }
        unsigned char *l = PyUnicode_1BYTE_DATA(low), *w = PyUnicode_1BYTE_DATA(norm);
        l[0] = w[0] = ' ';
        Py_ssize_t i = 0;
#ifdef __SSE2__
        for (; i + 16 <= n; i += 16) fold16(chars + i, l + i + 1, w + i + 1);
#endif
        for (; i < n; i++) {
            unsigned char c = ascii_lower[chars[i]];
            l[i + 1] = c;
            w[i + 1] = before_word[c] ? ' ' : c;
        }
        PyObject *out = PyTuple_Pack(2, low, norm);
        Py_DECREF(low);
        Py_DECREF(norm);
        return out;
    }
    PyObject *source = NULL; /* the text lowered by ``str.lower``, when it has a sigma */
    if (PyUnicode_FindChar(text, CAPITAL_SIGMA, 0, PyUnicode_GET_LENGTH(text), 1) >= 0) {
        source = PyObject_CallMethod(text, "lower", NULL);
        if (source == NULL) return NULL;
        text = source;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), m = 0;
    /* At most two characters for one (U+0130), and the space in front. */
    Py_UCS4 *low = PyMem_Malloc((2 * n + 1) * sizeof(Py_UCS4));
    Py_UCS4 *norm = PyMem_Malloc((2 * n + 1) * sizeof(Py_UCS4));
    if (low == NULL || norm == NULL) {
        PyMem_Free(low);
        PyMem_Free(norm);
        Py_XDECREF(source);
        return PyErr_NoMemory();
    }
    low[m] = norm[m] = ' ';
    m++;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c < 128) {
            c = ascii_lower[c];
            low[m] = c;
            norm[m++] = before_word[c] ? ' ' : c;
            continue;
        }
        if (c == CAPITAL_I_DOT) { /* str.lower: "i" and a combining dot above */
            low[m] = norm[m] = 'i';
            m++;
            c = 0x307;
        } else {
            c = folded(Py_UNICODE_TOLOWER(c));
            if (c == 0) continue;
        }
        low[m] = c;
        if (c < 128)
            norm[m] = before_word[c] ? ' ' : c;
        else
            norm[m] = Py_UNICODE_ISALNUM(c) ? c : ' ';
        m++;
    }
    Py_XDECREF(source);
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

/* ``latin(text)``: ``text`` with its full-width forms made ASCII, then the look-alike
 * letters of some of its words made Latin, as ``views`` does in Python: a word is a
 * run of what ``re`` takes for ``\w`` (``Py_UNICODE_ISALNUM`` or ``_``, ``_sre``'s own
 * test), and its look-alikes become Latin when it also has an ASCII letter or when
 * every letter in it is a look-alike (``views._latin``). The same object when nothing
 * changes. ``LOOKALIKES`` copies ``views._LOOKALIKES``;
 * ``test_the_compiled_latin_is_the_python_one`` runs every one of them through both. */
static const Py_UCS4 LOOKALIKES[][2] = {
    {0x0430, 'a'}, {0x0435, 'e'}, {0x043e, 'o'}, {0x0440, 'p'}, {0x0441, 'c'}, {0x0443, 'y'},
    {0x0445, 'x'}, {0x0456, 'i'}, {0x0458, 'j'}, {0x0455, 's'}, {0x04bb, 'h'}, {0x0501, 'd'},
    {0x051b, 'q'}, {0x051d, 'w'}, {0x04cf, 'l'}, {0x043a, 'k'}, {0x0475, 'v'}, {0x03b1, 'a'},
    {0x03bf, 'o'}, {0x03bd, 'v'}, {0x03b9, 'i'}, {0x03ba, 'k'}, {0x03c1, 'p'}, {0x03c5, 'u'},
    {0x03c7, 'x'}, {0x03b5, 'e'}, {0x0131, 'i'}, {0x0261, 'g'}, {0x0410, 'A'}, {0x0412, 'B'},
    {0x0415, 'E'}, {0x041a, 'K'}, {0x041c, 'M'}, {0x041d, 'H'}, {0x041e, 'O'}, {0x0420, 'P'},
    {0x0421, 'C'}, {0x0422, 'T'}, {0x0425, 'X'}, {0x0423, 'Y'}, {0x0406, 'I'}, {0x0408, 'J'},
    {0x0405, 'S'}, {0x0391, 'A'}, {0x0392, 'B'}, {0x0395, 'E'}, {0x0396, 'Z'}, {0x0397, 'H'},
    {0x0399, 'I'}, {0x039a, 'K'}, {0x039c, 'M'}, {0x039d, 'N'}, {0x039f, 'O'}, {0x03a1, 'P'},
    {0x03a4, 'T'}, {0x03a5, 'Y'}, {0x03a7, 'X'},
};
#define LOOKALIKE_END 0x0530 /* every look-alike is below this */
static unsigned char latin_of[LOOKALIKE_END]; /* a look-alike's Latin letter, else 0 */

static inline Py_UCS4 latin_letter(Py_UCS4 c) {
    return c < LOOKALIKE_END ? latin_of[c] : 0;
}

/* A full-width form (U+FF01-FF5E, U+3000) made ASCII, as ``views._FULL_WIDTH``. */
static inline Py_UCS4 narrow(Py_UCS4 c) {
    if (c >= 0xff01 && c <= 0xff5e) return c - 0xff01 + 0x21;
    return c == 0x3000 ? ' ' : c;
}

/* Whether ``c`` is a full-width form or a look-alike: none is below U+0131 (the first
 * look-alike), which clears most characters of a text in one test. */
static inline int disguised(Py_UCS4 c) {
    return c >= 0x0131 && (latin_letter(c) != 0 || narrow(c) != c);
}

/* What ``re`` matches with ``\w`` in a str pattern. */
static inline int is_re_word(Py_UCS4 c) {
    if (c < 128) return ascii_word[c];
    return Py_UNICODE_ISALNUM(c);
}

/* Makes the look-alikes of the word w[0:n] Latin when ``views._latin`` would: when the
 * word also has an ASCII letter, or has no letter that is not a look-alike. Whether
 * it changed the word. */
static int latin_word(Py_UCS4 *w, Py_ssize_t n) {
    int lookalike = 0, ascii_letter = 0, other_letter = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        Py_UCS4 c = w[k];
        if (latin_letter(c))
            lookalike = 1;
        else if (c < 128)
            ascii_letter |= (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        else
            other_letter |= Py_UNICODE_ISALPHA(c);
    }
    if (!lookalike || (other_letter && !ascii_letter)) return 0;
    for (Py_ssize_t k = 0; k < n; k++)
        if (latin_letter(w[k])) w[k] = latin_letter(w[k]);
    return 1;
}

static PyObject *latin(PyObject *module, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "latin() takes a str");
        return NULL;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), first = 0;
    while (first < n && !disguised(PyUnicode_READ(kind, data, first))) first++;
    if (first == n) return Py_NewRef(text); /* most texts: nothing to do */
    Py_UCS4 *out = PyUnicode_AsUCS4Copy(text);
    if (out == NULL) return NULL;
    int changed = 0;
    for (Py_ssize_t k = first; k < n; k++) {
        Py_UCS4 c = narrow(out[k]);
        changed |= c != out[k];
        out[k] = c;
    }
    /* The words before the first disguised character have no look-alike. */
    Py_ssize_t i = first;
    while (i > 0 && is_re_word(out[i - 1])) i--;
    while (i < n) {
        while (i < n && !is_re_word(out[i])) i++;
        Py_ssize_t start = i;
        while (i < n && is_re_word(out[i])) i++;
        changed |= latin_word(out + start, i - start);
    }
    PyObject *result = changed ? PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, out, n)
                               : Py_NewRef(text);
    PyMem_Free(out);
    return result;
}

static PyMethodDef module_methods[] = {
    {"fold", (PyCFunction)fold, METH_O,
     "fold(text) -> (' ' + text lowered, without zero-width characters, typographic ones "
     "made ASCII; its word view)"},
    {"latin", (PyCFunction)latin, METH_O,
     "latin(text) -> text with full-width forms made ASCII and look-alike letters Latin "
     "where views._latin makes them so (the same object when nothing changes)"},
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
    for (int c = 0; c < 256; c++) {
        if (c < 128)
            ascii_word[c] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                            (c >= 'A' && c <= 'Z') || c == '_';
        narrow_word[c] = c < 128 ? ascii_word[c] : !Py_UNICODE_ISSPACE(c);
    }
    for (const char *c = "\n\t\r'\"`([{<*#-/|>\\="; *c; c++) before_word[(unsigned char)*c] = 1;
#ifdef __SSE2__
    /* fold16 writes the table as ranges: every ASCII character through both */
    for (int c = 0; c < 128; c++) {
        unsigned char in[16], low[16], norm[16];
        memset(in, c, 16);
        fold16(in, low, norm);
        unsigned char lowered = c >= 'A' && c <= 'Z' ? c + 32 : c;
        if (low[0] != lowered || norm[0] != (before_word[lowered] ? ' ' : lowered)) {
            PyErr_Format(PyExc_SystemError, "_words: fold16 differs from the table at %d", c);
            return NULL;
        }
    }
#endif
    for (int c = 0; c < 128; c++) ascii_lower[c] = c >= 'A' && c <= 'Z' ? c + 32 : c;
    for (int keep = 0; keep <= 8; keep++) {
        unsigned char bytes[8];
        for (int b = 0; b < 8; b++) bytes[b] = b < keep ? 0xff : 0;
        memcpy(&first_bytes[keep], bytes, 8);
    }
    for (size_t k = 0; k < sizeof(LOOKALIKES) / sizeof(LOOKALIKES[0]); k++)
        if (LOOKALIKES[k][0] < LOOKALIKE_END) /* else left out, and the test says so */
            latin_of[LOOKALIKES[k][0]] = (unsigned char)LOOKALIKES[k][1];
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
