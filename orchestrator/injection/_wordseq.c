/* Word chains found in one pass over a text's word view (see ``wordseq.py``).
 *
 * ``Scanner(conds, nodes, chains)``: ``conds[c]`` is ``(text, kind)``, a token that
 * starts with ``text`` (kind 0), is ``text`` (1) or has it anywhere in it (2). The
 * chains come as a tree of their words, chains that begin with the same words sharing
 * them: ``nodes[w]`` is ``(parent, gap, same, [cond, ...])``, a word (any of those
 * conds) after word ``parent`` (-1: a chain's first word) at most ``gap`` tokens
 * later, in the same token as it when ``same``; ``chains[k]`` is ``(signal, last,
 * first, span, lead, alternative, anchor)``: its last and first words (nodes), the most
 * tokens from the first to the last (``span``) and before the first (``lead``), which
 * top-level alternative of its signal it reads, and the word of it (a node on its
 * path) that a text is least likely to have.
 *
 * ``scan(norm)`` splits the text into tokens (runs of characters that are not
 * whitespace, as ``str.split`` sees it). Unless a token's first two characters start no
 * cond, the running hash of its characters is looked up as a prefix cond at every
 * length some prefix cond has, and the whole token as an exact one; the same from every
 * character of it where some inside cond starts, as an inside cond (a filter of the
 * lengths conds have after each two characters, and one of the hashes, keep most of
 * those lookups off the table). A short token's conds are kept across scans
 * (``Memo``): a token seen before costs one lookup. In a text of one byte per
 * character, most texts, the whitespace is found 16 characters at a time, and a token
 * is read by its start and end alone. That pass lists, per cond, the
 * tokens that took it (its postings, in order). Only the chains whose anchor some token
 * took, and whose every word some token took, are then worked out, word by word from
 * the first, each word once however many chains share it: the tokens where the chain
 * up to a word ends are those its conds took at most ``gap`` tokens after one where the
 * chain up to its parent ends (after it, or at the same token when ``same``), a merge
 * of two sorted lists. It returns ``[(signal, alternatives, [place, ...]), ...]`` for
 * the signals with a chain found, in signal order: ``alternatives`` has bit n for each
 * top-level alternative n (bit 63 for any later one) with a chain found; the places
 * (sorted) are the whitespace right before each token a found chain's first word was at
 * (when the chain was found ending at most its span of tokens later), or up to ``lead``
 * tokens before it. ``wordseq.Chains._scan`` is the reference; the tests hold both to
 * it.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

typedef struct {
    uint64_t hash; /* of the cond's text, with its kind; 0: an empty slot */
    int32_t cond;
} Slot;

/* Cond kinds, as ``wordseq._kind`` numbers them. */
enum { PREFIX = 0, EXACT = 1, INSIDE = 2 };

/* Which two-character starts some cond of a kind has. */
typedef struct {
    uint64_t lengths;        /* bit n: some cond is n characters long (n < 64) */
    uint64_t pairs[128 * 2]; /* bit (a, b): some cond starts with ASCII a then b (b < 128) */
    uint64_t ones[2];        /* bit a: some cond is the one ASCII character a */
    int any_wide;            /* some cond starts with a character past ASCII */
    /* By PAIR(a, b) of ASCII a, b: the lengths of the conds (not exact ones) that may
     * start with a then b (a one-character cond: with a, whatever follows). */
    uint64_t pair_lengths[40 * 40];
} Starts;

/* ASCII characters in 40 groups (a letter or a digit each its own, the rest in four),
 * so the lengths by pair take 12.5 KB, not 128. */
static uint8_t GROUP[128];

#define PAIR(a, b) (GROUP[a] * 40 + GROUP[b])

typedef struct {
    int32_t parent; /* the word before, or -1 */
    int32_t gap;    /* the most tokens from the word before's token */
    uint8_t same;   /* it may take the token the word before took */
} Node;

/* A filter in front of the slots, small enough to stay in the first-level cache: bit
 * ``key >> 49`` of every cond's key is set, so most texts that are no cond are told
 * apart without a look at the slots. */
#define FILTER_BITS (1 << 15)

/* The conds a token takes depend on its characters alone, and a text's words are
 * mostly words seen before: a short token's are kept when its characters are all
 * below 256 (a byte each: the latest two per set, their characters compared in full,
 * so no text can take another's conds), and a token seen before is one lookup instead
 * of one per prefix, per inside start and exact. 2^15 slots (1 MB) in sets of two (one
 * cache line), by a hash of the token's characters (``memo_set``); a token new to its
 * set takes the first slot, and the one there moves over (the older goes). On the speed
 * benchmark's texts (10,400 distinct tokens, 163 a text), 9.7 tokens a text were looked
 * up in full when each slot held one token, 4.6 with two to a set (0.9 of them too
 * long to keep, 0.4 never seen before). */
#define MEMO_BITS 15
#define MEMO_SLOTS (1 << MEMO_BITS)
#define MEMO_TEXT 22 /* the longest token kept */
#define MEMO_HITS 4  /* the most conds a kept token takes */

/* 32 bytes, so that a set of two slots is one cache line (the memo is aligned to 64):
 * one line to read per token. */
typedef struct {
    uint8_t length; /* 0: an empty slot */
    uint8_t n_hits;
    int16_t hits[MEMO_HITS]; /* in the order the lookups find them (conds < 2^15) */
    char text[MEMO_TEXT];    /* zero past ``length`` */
} Memo;

_Static_assert(sizeof(Memo) == 32, "a memo slot is half a cache line");

/* A kept token's characters, a byte each, as three 8-byte words, zero past its end: its bytes
 * 0-7, 8-15 and 14-21 (the last two overlap, so that MEMO_TEXT fit in three). They are
 * what its memo set is found by and compared with. */
#define WORD_AT(k) ((k) == 2 ? MEMO_TEXT - 8 : 8 * (k))
_Static_assert(MEMO_TEXT > 16 && MEMO_TEXT <= 24, "three words hold a kept token");

/* A token read in the first pass over a text. */
typedef struct {
    Py_ssize_t start, end;
    Memo *memo;    /* its set in the memo (asked for ahead), or NULL: not kept */
    uint64_t words[3]; /* when kept: its characters (``WORD_AT``) */
} Token;

typedef struct {
    PyObject_HEAD
    uint64_t filter[FILTER_BITS / 64];
    Slot *slots; /* the conds, by the hash of their text and kind */
    size_t mask;
    Py_UCS4 **texts; /* per cond */
    Py_ssize_t *lengths;
    uint8_t *kinds;
    Starts starts;     /* of the prefix and exact conds */
    Starts inside;     /* of the inside conds */
    Py_ssize_t n_conds;
    /* per node (word) */
    Py_ssize_t n_nodes;
    Node *nodes;
    Py_ssize_t *cond_start; /* per node: the conds it takes, conds_of[..] */
    int32_t *conds_of;
    /* per chain */
    Py_ssize_t n_chains;
    int32_t *signal, *lead, *span; /* span: the most tokens from the first word to the last */
    int32_t *alternative;          /* which top-level alternative of its signal it reads */
    int32_t *first, *last;         /* its first and last words */
    Py_ssize_t *anchor_start; /* per cond: the chains anchored by a word that takes it */
    int32_t *anchored;
    int32_t n_signals;             /* 1 + the highest signal */
    uint64_t *masks;               /* per signal, per scan: the alternatives found */
    /* per scan */
    Token *tokens; /* what the first pass read of each token */
    Py_ssize_t tokens_cap;
    uint64_t *bits; /* a 1-byte text's whitespace, a bit per character */
    Py_ssize_t bits_cap;
    int32_t *hits; /* the conds the token being read takes */
    Py_ssize_t hits_len, hits_cap;
    /* Per cond: how many tokens took it, where its postings begin in ``pool``, and the
     * latest token that took it (-1: none yet); ``touched``: the conds some token took. */
    int32_t *taken, *posted, *latest;
    int32_t *touched;
    Py_ssize_t touched_len;
    int32_t (*took)[2]; /* (cond, token), in token order: the postings, unsorted */
    Py_ssize_t took_len, took_cap;
    /* Token lists: the postings, then each word's tokens (where the chain up to it
     * ends), from ``at[w]``, ``count[w]`` of them, when ``seen[w]`` is this scan's. */
    int32_t *pool;
    Py_ssize_t pool_len, pool_cap;
    int32_t *at, *count;
    uint32_t *seen;
    uint32_t *lived; /* per node: this scan's epoch when some token took one of its conds */
    Py_ssize_t *user_start; /* per cond: the words that take it, users[..] */
    int32_t *users;
    uint32_t epoch;
    uint32_t *done;   /* per chain: this scan's epoch once it was looked at */
    int32_t *found;   /* the chains found */
    Memo *memo; /* MEMO_SLOTS: the conds short tokens took, kept across scans (or
                   NULL: too many conds to keep in 16 bits) */
    void *memo_block; /* what ``memo`` was cut from (aligned to 64 bytes in it) */
} Scanner;

static void Scanner_free(Scanner *self) {
    if (self->texts != NULL)
        for (Py_ssize_t c = 0; c < self->n_conds; c++) PyMem_Free(self->texts[c]);
    void *owned[] = {
        self->texts,      self->lengths,    self->kinds,      self->slots,
        self->nodes,      self->cond_start, self->conds_of,   self->signal,
        self->lead,       self->span,       self->alternative, self->first,
        self->last,       self->anchor_start, self->anchored, self->masks,
        self->tokens,     self->bits,       self->hits,       self->taken,
        self->posted,
        self->latest,     self->touched,    self->took,       self->pool,
        self->at,         self->count,      self->seen,       self->done,
        self->found,      self->lived,      self->user_start, self->users,
        self->memo_block,
    };
    for (size_t k = 0; k < sizeof(owned) / sizeof(owned[0]); k++) PyMem_Free(owned[k]);
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

/* The hash of a text whose running FNV-1a hash is ``hash``, as a cond of that kind
 * (never 0: 0 marks an empty slot). */
static inline uint64_t keyed(uint64_t hash, int cond_kind) {
    uint64_t key = (hash ^ (uint64_t)cond_kind) * 0x9E3779B97F4A7C15ULL;
    return key ? key : 1;
}

/* The cond of kind ``cond_kind`` whose text is data[start:end] (hashed ``hash``), or -1. */
static inline int32_t find(Scanner *self, uint64_t hash, int cond_kind, int kind,
                           const void *data, Py_ssize_t start, Py_ssize_t end) {
    uint64_t key = keyed(hash, cond_kind);
    if (!((self->filter[key >> 55] >> ((key >> 49) & 63)) & 1)) return -1;
    size_t at = (size_t)(key >> 32) & self->mask;
    for (;;) {
        Slot *slot = &self->slots[at];
        if (slot->hash == 0) return -1;
        if (slot->hash == key && self->lengths[slot->cond] == end - start &&
            self->kinds[slot->cond] == cond_kind) {
            const Py_UCS4 *text = self->texts[slot->cond];
            Py_ssize_t k = 0;
            while (k < end - start && text[k] == PyUnicode_READ(kind, data, start + k)) k++;
            if (k == end - start) return slot->cond;
        }
        at = (at + 1) & self->mask;
    }
}

/* Reads the conds into the table and the filters. */
static int read_conds(Scanner *self, PyObject *conds) {
    Py_ssize_t n_conds = PyList_GET_SIZE(conds);
    size_t size = 16;
    while (size < (size_t)n_conds * 2) size <<= 1;
    self->slots = PyMem_Calloc(size, sizeof(Slot));
    self->texts = PyMem_Calloc(n_conds + 1, sizeof(Py_UCS4 *));
    self->lengths = PyMem_Calloc(n_conds + 1, sizeof(Py_ssize_t));
    self->kinds = PyMem_Calloc(n_conds + 1, 1);
    self->taken = PyMem_Calloc(n_conds + 1, sizeof(int32_t));
    self->posted = PyMem_Calloc(n_conds + 1, sizeof(int32_t));
    self->latest = PyMem_Malloc((n_conds + 1) * sizeof(int32_t));
    self->touched = PyMem_Calloc(n_conds + 1, sizeof(int32_t));
    if (n_conds <= INT16_MAX) {
        self->memo_block = PyMem_Calloc(MEMO_SLOTS + 2, sizeof(Memo));
        if (self->memo_block)
            self->memo = (Memo *)(((uintptr_t)self->memo_block + 63) & ~(uintptr_t)63);
    }
    if (!self->slots || !self->texts || !self->lengths || !self->kinds || !self->taken ||
        !self->posted || !self->latest || !self->touched || (n_conds <= INT16_MAX && !self->memo)) {
        PyErr_NoMemory();
        return -1;
    }
    self->mask = size - 1;
    self->n_conds = n_conds;
    for (Py_ssize_t c = 0; c < n_conds; c++) {
        self->latest[c] = -1;
        PyObject *text;
        int cond_kind;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(conds, c), "Ui", &text, &cond_kind)) return -1;
        Py_ssize_t length = PyUnicode_GET_LENGTH(text);
        if (cond_kind < PREFIX || cond_kind > INSIDE) {
            PyErr_SetString(PyExc_ValueError, "a cond's kind is 0, 1 or 2");
            return -1;
        }
        if (length == 0 || (cond_kind != EXACT && length >= 64)) {
            PyErr_SetString(PyExc_ValueError, "a cond's text is empty, or too long a prefix");
            return -1;
        }
        self->kinds[c] = (uint8_t)cond_kind;
        self->texts[c] = PyUnicode_AsUCS4Copy(text);
        if (self->texts[c] == NULL) return -1;
        self->lengths[c] = length;
        uint64_t hash = FNV_OFFSET;
        for (Py_ssize_t k = 0; k < length; k++) hash = (hash ^ self->texts[c][k]) * FNV_PRIME;
        uint64_t key = keyed(hash, cond_kind);
        size_t at = (size_t)(key >> 32) & self->mask;
        while (self->slots[at].hash != 0) {
            Slot *slot = &self->slots[at];
            if (slot->hash == key && self->lengths[slot->cond] == length &&
                self->kinds[slot->cond] == cond_kind &&
                memcmp(self->texts[slot->cond], self->texts[c], length * sizeof(Py_UCS4)) == 0) {
                PyErr_SetString(PyExc_ValueError, "a cond is given twice");
                return -1;
            }
            at = (at + 1) & self->mask;
        }
        self->slots[at] = (Slot){key, (int32_t)c};
        self->filter[key >> 55] |= 1ULL << ((key >> 49) & 63);
        Starts *starts = cond_kind == INSIDE ? &self->inside : &self->starts;
        Py_UCS4 a = self->texts[c][0], b = length > 1 ? self->texts[c][1] : 0;
        if (a >= 128 || b >= 128)
            starts->any_wide = 1;
        else if (length == 1)
            starts->ones[a >> 6] |= 1ULL << (a & 63);
        else
            starts->pairs[a * 2 + (b >> 6)] |= 1ULL << (b & 63);
        if (cond_kind != EXACT) starts->lengths |= 1ULL << length;
        if (cond_kind != EXACT && length == 1 && a < 128) {
            starts->pairs[a * 2] = starts->pairs[a * 2 + 1] = ~0ULL;
            for (Py_UCS4 any = 0; any < 128; any++) starts->pair_lengths[PAIR(a, any)] |= 2;
        } else if (cond_kind != EXACT && a < 128 && b < 128) {
            starts->pair_lengths[PAIR(a, b)] |= 1ULL << length;
        }
    }
    return 0;
}

/* Fills ``start`` (n + 1 entries, counts in start[k + 1]) with where each k's items
 * begin, and returns a cursor array (a copy of the starts) to place them with. */
static Py_ssize_t *offsets(Py_ssize_t *start, Py_ssize_t n) {
    for (Py_ssize_t k = 0; k < n; k++) start[k + 1] += start[k];
    Py_ssize_t *cursor = PyMem_Malloc((n + 1) * sizeof(Py_ssize_t));
    if (cursor) memcpy(cursor, start, (n + 1) * sizeof(Py_ssize_t));
    return cursor;
}

/* Whether word ``w`` is ``last`` or one of the words before it. */
static int on_path(Scanner *self, int32_t last, int32_t w) {
    for (int32_t at = last; at >= 0; at = self->nodes[at].parent)
        if (at == w) return 1;
    return 0;
}

/* Reads the words (nodes) and the chains. */
static int read_tree(Scanner *self, PyObject *nodes, PyObject *chains) {
    Py_ssize_t n = PyList_GET_SIZE(nodes), n_conds = self->n_conds;
    Py_ssize_t n_chains = PyList_GET_SIZE(chains);
    self->n_nodes = n;
    self->n_chains = n_chains;
    self->nodes = PyMem_Calloc(n + 1, sizeof(Node));
    self->cond_start = PyMem_Calloc(n + 2, sizeof(Py_ssize_t));
    self->anchor_start = PyMem_Calloc(n_conds + 2, sizeof(Py_ssize_t));
    self->at = PyMem_Calloc(n + 1, sizeof(int32_t));
    self->count = PyMem_Calloc(n + 1, sizeof(int32_t));
    self->seen = PyMem_Calloc(n + 1, sizeof(uint32_t));
    self->done = PyMem_Calloc(n_chains + 1, sizeof(uint32_t));
    self->lived = PyMem_Calloc(n + 1, sizeof(uint32_t));
    self->user_start = PyMem_Calloc(n_conds + 2, sizeof(Py_ssize_t));
    self->found = PyMem_Calloc(n_chains + 1, sizeof(int32_t));
    self->signal = PyMem_Calloc(n_chains + 1, sizeof(int32_t));
    self->lead = PyMem_Calloc(n_chains + 1, sizeof(int32_t));
    self->span = PyMem_Calloc(n_chains + 1, sizeof(int32_t));
    self->alternative = PyMem_Calloc(n_chains + 1, sizeof(int32_t));
    self->last = PyMem_Calloc(n_chains + 1, sizeof(int32_t));
    self->first = PyMem_Calloc(n_chains + 1, sizeof(int32_t));
    int32_t *anchor = PyMem_Calloc(n_chains + 1, sizeof(int32_t));
    Py_ssize_t *cursor = NULL; /* where each node's next cond goes */
    int ok = -1;
    if (!self->nodes || !self->cond_start || !self->anchor_start || !self->at ||
        !self->count || !self->seen || !self->done || !self->found || !self->lived ||
        !self->user_start || !self->signal || !self->lead || !self->span ||
        !self->alternative || !self->first || !self->last || !anchor) {
        PyErr_NoMemory();
        goto done;
    }
    /* The nodes, and the conds each takes. */
    for (Py_ssize_t w = 0; w < n; w++) {
        int parent, gap, same;
        PyObject *takes;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(nodes, w), "iipO!", &parent, &gap, &same,
                              &PyList_Type, &takes))
            goto done;
        if (parent < -1 || parent >= w || gap < 0) {
            PyErr_SetString(PyExc_ValueError, "a node's parent must come before it, its gap >= 0");
            goto done;
        }
        self->nodes[w] = (Node){parent, gap >= FAR ? FAR : gap, (uint8_t)(same && parent >= 0)};
        self->cond_start[w + 1] = PyList_GET_SIZE(takes);
    }
    cursor = offsets(self->cond_start, n);
    self->conds_of = cursor ? PyMem_Calloc(self->cond_start[n] + 1, sizeof(int32_t)) : NULL;
    if (!cursor || !self->conds_of) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t w = 0; w < n; w++) {
        PyObject *takes = PyTuple_GET_ITEM(PyList_GET_ITEM(nodes, w), 3);
        for (Py_ssize_t k = 0; k < PyList_GET_SIZE(takes); k++) {
            long c = PyLong_AsLong(PyList_GET_ITEM(takes, k));
            if (c < 0 || c >= n_conds) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a node names no cond");
                goto done;
            }
            self->conds_of[cursor[w]++] = (int32_t)c;
            self->user_start[c + 1]++;
        }
    }
    Py_ssize_t *user_cursor = offsets(self->user_start, n_conds);
    self->users = user_cursor ? PyMem_Calloc(self->user_start[n_conds] + 1, sizeof(int32_t)) : NULL;
    if (!user_cursor || !self->users) {
        PyMem_Free(user_cursor);
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t w = 0; w < n; w++)
        for (Py_ssize_t k = self->cond_start[w]; k < self->cond_start[w + 1]; k++)
            self->users[user_cursor[self->conds_of[k]]++] = (int32_t)w;
    PyMem_Free(user_cursor);
    /* The chains, and per cond the chains whose anchor takes it. */
    int32_t *first = self->first;
    for (Py_ssize_t k = 0; k < n_chains; k++) {
        int signal, span, lead, alternative;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(chains, k), "iiiiiii", &signal, &self->last[k],
                              &first[k], &span, &lead, &alternative, &anchor[k]))
            goto done;
        if (signal < 0 || span < 0 || lead < 0 || alternative < 0 || self->last[k] < 0 ||
            self->last[k] >= n || first[k] < 0 || first[k] >= n ||
            self->nodes[first[k]].parent != -1 || !on_path(self, self->last[k], first[k]) ||
            anchor[k] < 0 || anchor[k] >= n || !on_path(self, self->last[k], anchor[k])) {
            PyErr_SetString(PyExc_ValueError, "a chain's fields are out of range");
            goto done;
        }
        if (signal >= self->n_signals) self->n_signals = signal + 1;
        self->signal[k] = signal;
        self->span[k] = span >= FAR ? INT32_MAX : span; /* FAR: no bound */
        self->lead[k] = lead >= FAR ? INT32_MAX : lead;
        self->alternative[k] = alternative > 63 ? 63 : alternative;
        for (Py_ssize_t j = self->cond_start[anchor[k]]; j < self->cond_start[anchor[k] + 1]; j++)
            self->anchor_start[self->conds_of[j] + 1]++;
    }
    Py_ssize_t *anchor_cursor = offsets(self->anchor_start, n_conds);
    self->anchored = PyMem_Calloc(self->anchor_start[n_conds] + 1, sizeof(int32_t));
    self->masks = PyMem_Calloc(self->n_signals + 1, sizeof(uint64_t));
    if (!anchor_cursor || !self->anchored || !self->masks) {
        PyMem_Free(anchor_cursor);
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < n_chains; k++)
        for (Py_ssize_t j = self->cond_start[anchor[k]]; j < self->cond_start[anchor[k] + 1]; j++)
            self->anchored[anchor_cursor[self->conds_of[j]]++] = (int32_t)k;
    PyMem_Free(anchor_cursor);
    ok = 0;
done:
    PyMem_Free(cursor);
    PyMem_Free(anchor);
    return ok;
}

static int Scanner_init(Scanner *self, PyObject *args, PyObject *kwds) {
    static char *keywords[] = {"conds", "nodes", "chains", NULL};
    PyObject *conds, *nodes, *chains;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!O!", keywords, &PyList_Type, &conds,
                                     &PyList_Type, &nodes, &PyList_Type, &chains))
        return -1;
    Scanner_free(self);
    if (read_conds(self, conds) < 0 || read_tree(self, nodes, chains) < 0) {
        Scanner_free(self);
        return -1;
    }
    return 0;
}

/* Makes room in ``*items`` (``*cap`` of ``size`` bytes) for ``more`` past ``len``. */
static int room(void **items, Py_ssize_t *cap, Py_ssize_t len, Py_ssize_t more, size_t size) {
    if (len + more <= *cap) return 0;
    Py_ssize_t grown = *cap ? *cap : 256;
    while (grown < len + more) grown *= 2;
    void *bigger = PyMem_Realloc(*items, grown * size);
    if (!bigger) return -1;
    *items = bigger;
    *cap = grown;
    return 0;
}

/* Notes that the token being read takes cond ``c`` (when it is one). */
static inline int hit(Scanner *self, int32_t c) {
    if (c < 0) return 0;
    if (room((void **)&self->hits, &self->hits_cap, self->hits_len, 1, sizeof(int32_t)) < 0)
        return -1;
    self->hits[self->hits_len++] = c;
    return 0;
}

/* Token ``t`` took cond ``c`` (``took`` has room for it): it goes on the cond's
 * postings once (an inside cond may be found twice in one token). */
static inline void note(Scanner *self, int32_t t, int32_t c) {
    if (self->latest[c] == t) return;
    if (self->latest[c] < 0) self->touched[self->touched_len++] = c;
    self->latest[c] = t;
    self->taken[c]++;
    self->took[self->took_len][0] = c;
    self->took[self->took_len++][1] = t;
}

/* Lays the postings out in ``pool``, each cond's in token order. */
static int post(Scanner *self) {
    if (room((void **)&self->pool, &self->pool_cap, 0, self->took_len, sizeof(int32_t)) < 0)
        return -1;
    int32_t next = 0;
    for (Py_ssize_t k = 0; k < self->touched_len; k++) {
        int32_t c = self->touched[k];
        self->posted[c] = self->latest[c] = next; /* ``latest``: where the next one goes */
        next += self->taken[c];
    }
    for (Py_ssize_t k = 0; k < self->took_len; k++)
        self->pool[self->latest[self->took[k][0]]++] = self->took[k][1];
    self->pool_len = self->took_len;
    return 0;
}

static int by_token(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The tokens that took some cond of word ``w``, sorted, in ``pool`` from ``*from``
 * (one cond's postings where they are; several's merged at the end of ``pool``). */
static int tokens_of(Scanner *self, int32_t w, Py_ssize_t *from, Py_ssize_t *n) {
    Py_ssize_t total = 0, lists = 0;
    int32_t only = 0;
    for (Py_ssize_t k = self->cond_start[w]; k < self->cond_start[w + 1]; k++) {
        int32_t c = self->conds_of[k];
        if (self->taken[c]) {
            total += self->taken[c];
            lists++;
            only = c;
        }
    }
    if (lists <= 1) {
        *from = lists ? self->posted[only] : 0;
        *n = total;
        return 0;
    }
    if (room((void **)&self->pool, &self->pool_cap, self->pool_len, total, sizeof(int32_t)) < 0)
        return -1;
    int32_t *out = self->pool + self->pool_len;
    Py_ssize_t len = 0;
    for (Py_ssize_t k = self->cond_start[w]; k < self->cond_start[w + 1]; k++) {
        int32_t c = self->conds_of[k];
        if (!self->taken[c]) continue; /* (its ``posted`` is a past scan's) */
        memcpy(out + len, self->pool + self->posted[c], self->taken[c] * sizeof(int32_t));
        len += self->taken[c];
    }
    if (len <= 16) {
        for (Py_ssize_t i = 1; i < len; i++) {
            int32_t t = out[i];
            Py_ssize_t j = i;
            for (; j > 0 && out[j - 1] > t; j--) out[j] = out[j - 1];
            out[j] = t;
        }
    } else {
        qsort(out, len, sizeof(int32_t), by_token);
    }
    Py_ssize_t kept = 0; /* a token that took two of its conds, once */
    for (Py_ssize_t i = 0; i < len; i++)
        if (!kept || out[kept - 1] != out[i]) out[kept++] = out[i];
    *from = self->pool_len;
    *n = kept;
    self->pool_len += kept;
    return 0;
}

/* Works word ``w`` out (its parent, if it has one, worked out already): the tokens
 * where the chain up to it ends, those its conds took at most ``gap`` tokens after one
 * of its parent's (after it, or at the same token when ``same``). */
static int work_out(Scanner *self, int32_t w) {
    Py_ssize_t from, n;
    if (tokens_of(self, w, &from, &n) < 0) return -1;
    const Node *node = &self->nodes[w];
    self->seen[w] = self->epoch;
    if (node->parent < 0) {
        self->at[w] = (int32_t)from;
        self->count[w] = (int32_t)n;
        return 0;
    }
    if (room((void **)&self->pool, &self->pool_cap, self->pool_len, n, sizeof(int32_t)) < 0)
        return -1;
    const int32_t *mine = self->pool + from;
    const int32_t *before = self->pool + self->at[node->parent];
    Py_ssize_t n_before = self->count[node->parent], p = 0, kept = 0;
    int32_t *out = self->pool + self->pool_len;
    int32_t best = -1; /* the parent's latest token that may come before this one */
    for (Py_ssize_t i = 0; i < n; i++) {
        int32_t t = mine[i];
        while (p < n_before && (before[p] < t || (node->same && before[p] == t)))
            best = before[p++];
        if (best >= 0 && (node->gap >= FAR || t - best <= node->gap)) out[kept++] = t;
    }
    self->at[w] = (int32_t)self->pool_len;
    self->count[w] = (int32_t)kept;
    self->pool_len += kept;
    return 0;
}

/* Whether some token took a cond of every word up to ``w`` (as ``walk`` marked them). */
static inline int live(Scanner *self, int32_t w) {
    for (; w >= 0; w = self->nodes[w].parent)
        if (self->lived[w] != self->epoch) return 0;
    return 1;
}

/* How many tokens word ``w`` has (the words before it worked out first, and a word
 * after one with none has none), or -1 when out of memory. */
static Py_ssize_t reach(Scanner *self, int32_t w) {
    if (self->seen[w] == self->epoch) return self->count[w];
    int32_t parent = self->nodes[w].parent;
    Py_ssize_t before = parent < 0 ? 1 : reach(self, parent);
    if (before <= 0) {
        self->seen[w] = self->epoch;
        self->count[w] = 0;
        return before;
    }
    return work_out(self, w) < 0 ? -1 : self->count[w];
}

/* Marks the words some token took a cond of, then works out the chains anchored by
 * one of those, each once, when every word of theirs is marked: the rest of the
 * chains cannot be found. Returns how many were found (listed in ``found``), or
 * -1 when out of memory. */
static Py_ssize_t walk(Scanner *self) {
    Py_ssize_t n_found = 0;
    for (Py_ssize_t k = 0; k < self->touched_len; k++) {
        int32_t c = self->touched[k];
        for (Py_ssize_t u = self->user_start[c]; u < self->user_start[c + 1]; u++)
            self->lived[self->users[u]] = self->epoch;
    }
    for (Py_ssize_t k = 0; k < self->touched_len; k++) {
        int32_t c = self->touched[k];
        for (Py_ssize_t a = self->anchor_start[c]; a < self->anchor_start[c + 1]; a++) {
            int32_t chain = self->anchored[a];
            if (self->done[chain] == self->epoch) continue;
            self->done[chain] = self->epoch;
            if (!live(self, self->last[chain])) continue;
            Py_ssize_t n = reach(self, self->last[chain]);
            if (n < 0) return -1;
            if (n) self->found[n_found++] = chain;
        }
    }
    return n_found;
}

/* The lengths of the conds of ``starts`` (not exact ones) that may start with a, b. */
static inline uint64_t lengths_from(const Starts *starts, Py_UCS4 a, Py_UCS4 b) {
    return a < 128 && b < 128 ? starts->pair_lengths[PAIR(a, b)] : starts->lengths;
}

/* Whether some cond of ``starts`` may start with the characters a, b (b: a space when
 * the token ends after a). */
static inline int may_start(const Starts *starts, Py_UCS4 a, Py_UCS4 b) {
    if (a >= 128 || b >= 128) return starts->any_wide || a < 128;
    if (Py_UNICODE_ISSPACE(b)) return (starts->ones[a >> 6] >> (a & 63)) & 1;
    return (starts->pairs[a * 2 + (b >> 6)] >> (b & 63)) & 1;
}

/* ``Py_UNICODE_ISSPACE`` of the characters a 1-byte str has. */
static unsigned char narrow_space[256];

/* By a kept token's length, the bytes of each of its words that are its characters
 * (all ones) and those past its end (zero), as memory holds a word. */
static uint64_t short_masks[MEMO_TEXT + 1][3];

/* The words of a kept token, its ``length`` bytes at ``chars``; ``readable``: the
 * bytes at ``chars`` may be read up to MEMO_TEXT (past the token: they are masked). */
static inline void short_words(const unsigned char *chars, Py_ssize_t length, int readable,
                               uint64_t words[3]) {
    unsigned char padded[MEMO_TEXT];
    if (!readable) {
        memset(padded, 0, sizeof(padded));
        memcpy(padded, chars, length);
        chars = padded;
    }
    for (int k = 0; k < 3; k++) {
        uint64_t word;
        memcpy(&word, chars + WORD_AT(k), 8);
        words[k] = word & short_masks[length][k];
    }
}

/* The memo set of a kept token's words: its first slot (the token is in either). */
static inline Memo *memo_set(Scanner *self, const uint64_t words[3]) {
    uint64_t h = (words[0] ^ (words[1] * 0xC2B2AE3D27D4EB4FULL) ^
                  ((words[2] >> 3 | words[2] << 61) * 0x165667B19E3779F9ULL)) *
                 0x9E3779B97F4A7C15ULL;
    return &self->memo[(h >> (64 - MEMO_BITS + 1)) * 2];
}

/* Whether memo slot ``memo`` holds the token of ``length`` characters of ``words``. */
static inline int kept(const Memo *memo, Py_ssize_t length, const uint64_t words[3]) {
    if (memo->length != length) return 0;
    uint64_t differ = 0;
    for (int k = 0; k < 3; k++) {
        uint64_t word;
        memcpy(&word, memo->text + WORD_AT(k), 8);
        differ |= word ^ words[k];
    }
    return differ == 0;
}

/* Keeps a token (its words) in its slot. */
static inline void keep(Memo *memo, Py_ssize_t length, const uint64_t words[3]) {
    memo->length = (uint8_t)length;
    for (int k = 0; k < 3; k++) memcpy(memo->text + WORD_AT(k), &words[k], 8);
}

/* Notes a token's start, end and, when it is kept (``chars``: its characters, a byte
 * each; NULL: not kept), its words and memo set
 * (asked for ahead, so that it is in the cache by the time the token is looked up). */
static inline void add_token(Scanner *self, Py_ssize_t n_tokens, Py_ssize_t start,
                             Py_ssize_t end, const unsigned char *chars, int readable) {
    Token *token = &self->tokens[n_tokens];
    token->start = start;
    token->end = end;
    token->memo = NULL;
    if (chars != NULL && self->memo != NULL) {
        short_words(chars, end - start, readable, token->words);
        token->memo = memo_set(self, token->words);
        __builtin_prefetch(token->memo);
    }
}

/* The first bit at or after ``i`` that is set in ``bits`` (some later word is all
 * ones: ``classify``'s last). */
static inline Py_ssize_t next_set(const uint64_t *bits, Py_ssize_t i) {
    Py_ssize_t k = i >> 6;
    uint64_t w = bits[k] & (~0ULL << (i & 63));
    while (w == 0) w = bits[++k];
    return k * 64 + __builtin_ctzll(w);
}

/* Marks the whitespace of 1-byte ``chars`` (``n``) in ``space``, a bit per character,
 * 64 to a word; the bits past ``n`` (the rest of the last word, and one more word) are
 * whitespace. */
static void classify(const unsigned char *chars, Py_ssize_t n, uint64_t *space) {
    Py_ssize_t words = (n + 63) / 64;
    for (Py_ssize_t k = 0; k < words; k++) {
        unsigned char block[64];
        const unsigned char *p = chars + k * 64;
        if (n - k * 64 < 64) { /* the last, short block: padded with spaces */
            memset(block, ' ', 64);
            memcpy(block, p, n - k * 64);
            p = block;
        }
        uint64_t s = 0;
#ifdef __SSE2__
        for (int q = 0; q < 4; q++) {
            __m128i x = _mm_loadu_si128((const __m128i *)(p + 16 * q));
            __m128i a = _mm_sub_epi8(x, _mm_set1_epi8(9)); /* 9..13 */
            __m128i b = _mm_sub_epi8(x, _mm_set1_epi8(28)); /* 28..32 */
            __m128i four = _mm_set1_epi8(4);
            __m128i is = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(a, four), a),
                                      _mm_cmpeq_epi8(_mm_min_epu8(b, four), b));
            is = _mm_or_si128(is, _mm_cmpeq_epi8(x, _mm_set1_epi8((char)0x85)));
            is = _mm_or_si128(is, _mm_cmpeq_epi8(x, _mm_set1_epi8((char)0xa0)));
            s |= (uint64_t)(uint16_t)_mm_movemask_epi8(is) << (16 * q);
        }
#else
        for (int j = 0; j < 64; j++) s |= (uint64_t)narrow_space[p[j]] << j;
#endif
        space[k] = s;
    }
    space[words] = ~0ULL;
}

/* Reads the tokens of a 1-byte text: where each starts and ends, and its memo set
 * when kept. The whitespace is found 16 characters at a time. */
static Py_ssize_t read_narrow(Scanner *self, const unsigned char *chars, Py_ssize_t n) {
    Py_ssize_t words = (n + 63) / 64 + 1, n_tokens = 0;
    uint64_t *space = self->bits;
    classify(chars, n, space);
    uint64_t before = 1; /* whether the character before the word's first is whitespace */
    for (Py_ssize_t k = 0; k < words - 1; k++) {
        uint64_t starts = ~space[k] & (space[k] << 1 | before);
        before = space[k] >> 63;
        for (; starts; starts &= starts - 1) {
            Py_ssize_t start = k * 64 + __builtin_ctzll(starts);
            uint64_t after = space[k] & (~0ULL << (start & 63));
            /* the bits past ``n`` are set: the token ends at ``n`` at the latest */
            Py_ssize_t end =
                after ? k * 64 + __builtin_ctzll(after) : next_set(space, (k + 1) * 64);
            int short_one = end - start <= MEMO_TEXT;
            add_token(self, n_tokens++, start, end, short_one ? chars + start : NULL,
                      start + MEMO_TEXT <= n);
        }
    }
    return n_tokens;
}

/* Reads the tokens of a 2- or 4-byte text (``kind``) as ``read_narrow`` does, a
 * character at a time. */
static inline __attribute__((always_inline)) Py_ssize_t read_wide(Scanner *self, int kind,
                                                                  const void *data,
                                                                  Py_ssize_t n) {
    Py_ssize_t n_tokens = 0, i = 0;
    while (i < n) {
        while (i < n && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i))) i++;
        if (i >= n) break;
        Py_ssize_t start = i;
        Py_UCS4 ch, wide = 0;
        unsigned char chars[MEMO_TEXT];
        while (i < n && !Py_UNICODE_ISSPACE(ch = PyUnicode_READ(kind, data, i))) {
            if (i - start < MEMO_TEXT) chars[i - start] = (unsigned char)ch;
            wide |= ch;
            i++;
        }
        int narrow = wide < 256 && i - start <= MEMO_TEXT;
        add_token(self, n_tokens++, start, i, narrow ? chars : NULL, 0);
    }
    return n_tokens;
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

/* Appends the place ``at`` of ``signal`` to ``*places``. */
static int place(Place **places, Py_ssize_t *n, Py_ssize_t *cap, int32_t signal, Py_ssize_t at) {
    if (room((void **)places, cap, *n, 1, sizeof(Place)) < 0) return -1;
    (*places)[(*n)++] = (Place){signal, at};
    return 0;
}

static PyObject *Scanner_scan(Scanner *self, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "scan() takes a str");
        return NULL;
    }
    if (self->slots == NULL || self->seen == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Scanner.__init__ was not called");
        return NULL;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    for (Py_ssize_t k = 0; k < self->touched_len; k++) {
        self->latest[self->touched[k]] = -1;
        self->taken[self->touched[k]] = 0;
    }
    self->touched_len = self->took_len = self->pool_len = 0;
    if (++self->epoch == 0) { /* once in 2^32 scans: no word or chain was seen */
        memset(self->seen, 0, (self->n_nodes + 1) * sizeof(uint32_t));
        memset(self->done, 0, (self->n_chains + 1) * sizeof(uint32_t));
        memset(self->lived, 0, (self->n_nodes + 1) * sizeof(uint32_t));
        self->epoch = 1;
    }
    memset(self->masks, 0, self->n_signals * sizeof(uint64_t));
    int any_inside = self->inside.lengths != 0;
    /* First the tokens and their memo sets: each set is asked for as its token is
     * read, so it is in the cache by the time the token is looked up. A text has at
     * most (n + 1) / 2 tokens. */
    if (room((void **)&self->tokens, &self->tokens_cap, 0, n / 2 + 1, sizeof(Token)) < 0 ||
        (kind == PyUnicode_1BYTE_KIND &&
         room((void **)&self->bits, &self->bits_cap, 0, (n + 63) / 64 + 1,
              sizeof(uint64_t)) < 0))
        return PyErr_NoMemory();
    Py_ssize_t n_tokens;
    if (kind == PyUnicode_1BYTE_KIND)
        n_tokens = read_narrow(self, data, n);
    else if (kind == PyUnicode_2BYTE_KIND)
        n_tokens = read_wide(self, PyUnicode_2BYTE_KIND, data, n);
    else
        n_tokens = read_wide(self, PyUnicode_4BYTE_KIND, data, n);
    /* Then each token's conds, onto their postings. */
    for (int32_t t = 0; t < n_tokens; t++) {
        const Token *token = &self->tokens[t];
        Py_ssize_t start = token->start, end = token->end;
        Memo *set = token->memo, *memo = NULL;
        if (set != NULL)
            memo = kept(set, end - start, token->words)       ? set
                   : kept(set + 1, end - start, token->words) ? set + 1
                                                               : NULL;
        if (memo != NULL) {
            if (room((void **)&self->took, &self->took_cap, self->took_len, MEMO_HITS,
                     sizeof(self->took[0])) < 0)
                return PyErr_NoMemory();
            for (int h = 0; h < memo->n_hits; h++) note(self, t, memo->hits[h]);
            continue;
        }
        self->hits_len = 0;
        /* Whether some cond may start this token: by its first two characters. */
        Py_UCS4 a = PyUnicode_READ(kind, data, start);
        Py_UCS4 b = start + 1 < end ? PyUnicode_READ(kind, data, start + 1) : ' ';
        if (may_start(&self->starts, a, b)) {
            uint64_t lengths = lengths_from(&self->starts, a, b);
            uint64_t hash = FNV_OFFSET;
            for (Py_ssize_t at = start; at < end;) {
                hash = (hash ^ PyUnicode_READ(kind, data, at)) * FNV_PRIME;
                at++;
                Py_ssize_t length = at - start;
                if (length < 64 && (lengths >> length) & 1 &&
                    hit(self, find(self, hash, PREFIX, kind, data, start, at)) < 0)
                    return PyErr_NoMemory();
            }
            /* (``hash`` is now the whole token's) */
            if (hit(self, find(self, hash, EXACT, kind, data, start, end)) < 0)
                return PyErr_NoMemory();
        }
        /* The inside conds, from every character where one may start. */
        if (any_inside) {
            for (Py_ssize_t at = start; at < end; at++) {
                Py_UCS4 x = PyUnicode_READ(kind, data, at);
                Py_UCS4 y = at + 1 < end ? PyUnicode_READ(kind, data, at + 1) : ' ';
                if (!may_start(&self->inside, x, y)) continue;
                uint64_t lengths = lengths_from(&self->inside, x, y);
                uint64_t hash = FNV_OFFSET;
                for (Py_ssize_t to = at; to < end && to - at < 63 && lengths >> (to - at + 1);) {
                    hash = (hash ^ PyUnicode_READ(kind, data, to)) * FNV_PRIME;
                    to++;
                    if ((lengths >> (to - at)) & 1 &&
                        hit(self, find(self, hash, INSIDE, kind, data, at, to)) < 0)
                        return PyErr_NoMemory();
                }
            }
        }
        if (set != NULL && self->hits_len <= MEMO_HITS) {
            set[1] = set[0]; /* the first slot's token moves over, the second's goes */
            keep(set, end - start, token->words);
            set->n_hits = (uint8_t)self->hits_len;
            for (Py_ssize_t h = 0; h < self->hits_len; h++) set->hits[h] = (int16_t)self->hits[h];
        }
        if (room((void **)&self->took, &self->took_cap, self->took_len, self->hits_len,
                 sizeof(self->took[0])) < 0)
            return PyErr_NoMemory();
        for (Py_ssize_t h = 0; h < self->hits_len; h++) note(self, t, self->hits[h]);
    }
    /* Then the chains the tokens may complete. */
    Py_ssize_t n_found = self->took_len ? (post(self) < 0 ? -1 : walk(self)) : 0;
    if (n_found < 0) return PyErr_NoMemory();
    /* The places: the whitespace before each first word's token (when a chain found
     * from it ends close enough after it), and the leads'. */
    Py_ssize_t n_places = 0, cap = 0;
    Place *places = NULL;
    for (Py_ssize_t f = 0; f < n_found; f++) {
        int32_t chain = self->found[f], first = self->first[chain], last = self->last[chain];
        const int32_t *starts = self->pool + self->at[first];
        const int32_t *ends = self->pool + self->at[last];
        Py_ssize_t n_starts = self->count[first], n_ends = self->count[last], e = 0;
        Py_ssize_t span = self->span[chain];
        for (Py_ssize_t i = 0; i < n_starts; i++) {
            Py_ssize_t token = starts[i];
            while (e < n_ends && ends[e] < token) e++;
            if (e == n_ends) break;
            if (span != INT32_MAX && ends[e] > token + span)
                continue; /* no chain found ends close enough after this first word */
            self->masks[self->signal[chain]] |= 1ULL << self->alternative[chain];
            Py_ssize_t from = self->lead[chain] == INT32_MAX ? 0 : token - self->lead[chain];
            for (Py_ssize_t u = from < 0 ? 0 : from; u <= token; u++) {
                Py_ssize_t begin = self->tokens[u].start, at = begin;
                while (at > 0 && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, at - 1))) at--;
                for (; at < begin; at++)
                    if (place(&places, &n_places, &cap, self->signal[chain], at) < 0) {
                        PyMem_Free(places);
                        return PyErr_NoMemory();
                    }
            }
        }
    }
    if (n_places) qsort(places, n_places, sizeof(Place), by_place);
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
     "scan(norm) -> [(signal, alternatives, [place, ...]), ...]: where the signals whose "
     "chains are found may match, and which of their alternatives"},
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
    for (int c = 0; c < 256; c++) narrow_space[c] = Py_UNICODE_ISSPACE(c) ? 1 : 0;
    for (int length = 0; length <= MEMO_TEXT; length++)
        for (int k = 0; k < 3; k++) {
            unsigned char bytes[8];
            for (int b = 0; b < 8; b++) bytes[b] = WORD_AT(k) + b < length ? 0xff : 0;
            memcpy(&short_masks[length][k], bytes, 8);
        }
    for (int c = 0; c < 128; c++)
        GROUP[c] = c >= 'a' && c <= 'z'   ? c - 'a'
                   : c >= '0' && c <= '9' ? 26 + c - '0'
                   : c == '_'             ? 36
                   : c == '.' || c == ':' ? 37
                   : c >= 'A' && c <= 'Z' ? 38
                                          : 39;
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
