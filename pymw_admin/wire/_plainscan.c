/* The plain-items scan of pymw_admin.wire.untrusted, in C: an optional accelerator.
 *
 * match_items(data, pos, limit) does what untrusted._regexes().items[3].match(data, pos, limit)
 * does, `(?:item|(e)\()*+` with tuples among the plain items, and returns (match.end(),
 * match.start(1)): where a list's run of plain items (and of APPENDS, MARK between its batches)
 * ends, and where the last of those APPENDS is (-1: none). The pattern's repetitions are all
 * possessive and its alternatives ordered, so a parser that takes the first alternative that
 * matches and never gives back what a finished repetition took reproduces it; the one place where
 * the regex backtracks into a finished alternative is a dict's key (see key_value). `limit` is the
 * end of the subject: nothing at or past it is read. The pure-Python regex stays the fallback and
 * the reference (tests/security/test_untrusted_plainscan.py compares the two).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define NO_MATCH (-1)

/* pickle opcodes the plain items are made of */
#define APPENDS 'e'
#define APPEND 'a'
#define MARK '('
#define SETITEMS 'u'
#define SETITEM 's'
#define EMPTY_DICT '}'
#define EMPTY_LIST ']'
#define BINGET 'h'
#define LONG_BINGET 'j'
#define MEMOIZE 0x94
#define FRAME 0x95
#define TUPLE1 0x85

typedef struct {
    const unsigned char *d;
    Py_ssize_t end;  /* of the subject, d[0:end] */
} Subject;

/* Each parser takes a position p <= end and returns the position after what it matched, or
 * NO_MATCH. */

static Py_ssize_t
optional_memoize(const Subject *s, Py_ssize_t p)
{
    return p < s->end && s->d[p] == MEMOIZE ? p + 1 : p;
}

/* _LITERAL's sizes by opcode: a number (_NUMBER) of a fixed size, or a short string or bytes
 * (_SHORT), whose size is in its next byte; a table, not a switch, since numbers of mixed
 * widths would make a switch's branches unpredictable */
#define NOT_LITERAL 0
#define SHORT_STRING (-1)
static const signed char literal_size[256] = {
    ['N'] = 1, [0x88] = 1, [0x89] = 1,  /* None, True, False */
    ['K'] = 2, ['M'] = 3, ['J'] = 5, ['G'] = 9,  /* BININT1, BININT2, BININT, BINFLOAT */
    [0x8c] = SHORT_STRING, ['C'] = SHORT_STRING,  /* SHORT_BINUNICODE, SHORT_BINBYTES */
};

/* _LITERAL: a number, or a short string or bytes, memoized or not */
static Py_ssize_t
literal(const Subject *s, Py_ssize_t p)
{
    Py_ssize_t left = s->end - p;
    int size;
    if (left <= 0) {
        return NO_MATCH;
    }
    size = literal_size[s->d[p]];
    if (size > 0) {
        return left >= size ? p + size : NO_MATCH;
    }
    if (size == NOT_LITERAL || left < 2 || left - 2 < s->d[p + 1]) {
        return NO_MATCH;
    }
    return optional_memoize(s, p + 2 + s->d[p + 1]);
}

/* _FRAMED_LITERAL */
static Py_ssize_t
framed_literal(const Subject *s, Py_ssize_t p)
{
    if (p < s->end && s->d[p] == FRAME) {
        if (s->end - p < 9) {
            return NO_MATCH;  /* a literal never begins with FRAME */
        }
        p += 9;
    }
    return literal(s, p);
}

/* The framed literals from p on, at most `most` of them: how many (*count), and where they end */
static Py_ssize_t
framed_literals(const Subject *s, Py_ssize_t p, Py_ssize_t most, Py_ssize_t *count)
{
    Py_ssize_t n = 0, next, size = 0;
    int op = -1;  /* the last number's opcode, of `size` bytes */
    while (n < most && p < s->end) {
        /* a number like the one before: its size is known before its opcode is read, so the
         * next position need not wait for that read (a list of floats: a cycle or two a float) */
        if (s->d[p] == op) {
            if (s->end - p < size) {
                break;
            }
            p += size;
            n++;
            continue;
        }
        next = framed_literal(s, p);
        if (next == NO_MATCH) {
            break;
        }
        op = literal_size[s->d[p]] > 0 ? s->d[p] : -1;
        size = next - p;
        p = next;
        n++;
    }
    *count = n;
    return p;
}

/* Tuples. _TUPLE is one to three framed literals and the TUPLE1, TUPLE2 or TUPLE3 that counts
 * them. No framed literal begins with one of those opcodes, so after k framed literals comes
 * either the opcode for k or another framed literal, never both: _TUPLE's three alternatives
 * exclude each other. And framed literals x0 = p, x1, ..., xn (n >= 1) where xn begins none
 * begin a tuple at x(n-c) if xn holds the opcode for c <= min(n, 3), and nowhere else: from any
 * other xi, x(i+k) does not hold the opcode for k. Returns that c, or 0. */
static int
tuple_of(const Subject *s, Py_ssize_t after, Py_ssize_t n)
{
    int c;
    if (after >= s->end) {
        return 0;
    }
    c = s->d[after] - (TUPLE1 - 1);
    return c >= 1 && c <= 3 && c <= n ? c : 0;
}

/* plain_or_frame in _item, one (`P`): a memo get, a tuple, a literal, or a FRAME, the first that
 * matches. *framed_tuple says whether it was a tuple that begins with a FRAME. */
static Py_ssize_t
plain(const Subject *s, Py_ssize_t p, int *framed_tuple)
{
    const unsigned char *d = s->d;
    Py_ssize_t end = s->end, n, after;
    *framed_tuple = 0;
    if (p >= end) {
        return NO_MATCH;
    }
    if (d[p] == BINGET) {
        return end - p >= 2 ? p + 2 : NO_MATCH;
    }
    if (d[p] == LONG_BINGET) {
        return end - p >= 5 ? p + 5 : NO_MATCH;
    }
    /* a fourth framed literal, if any, begins at `after`: no tuple's opcode, as none is there */
    after = framed_literals(s, p, 3, &n);
    if (n == 0) {  /* neither a tuple nor a literal: a FRAME? */
        return d[p] == FRAME && end - p >= 9 ? p + 9 : NO_MATCH;
    }
    if (tuple_of(s, after, n) == n) {  /* a tuple from p: its opcode counts all n */
        *framed_tuple = d[p] == FRAME;
        return optional_memoize(s, after + 1);
    }
    /* the literal, or the FRAME before it */
    return d[p] == FRAME ? p + 9 : framed_literal(s, p);
}

/* plain_or_frame in _item, as many as follow one another (`P*+`). A run of framed literals is
 * taken a literal a step, with no look-ahead per item: all literals (a FRAME and a literal, two
 * items, end where the literal does), but the last c, a tuple, when the opcode for c follows. */
static Py_ssize_t
plain_items(const Subject *s, Py_ssize_t p)
{
    const unsigned char *d = s->d;
    Py_ssize_t end = s->end, n, after;
    while (p < end) {
        if (d[p] == BINGET) {
            if (end - p < 2) {
                break;
            }
            p += 2;
        }
        else if (d[p] == LONG_BINGET) {
            if (end - p < 5) {
                break;
            }
            p += 5;
        }
        else {
            after = framed_literals(s, p, PY_SSIZE_T_MAX, &n);
            if (n == 0) {  /* a FRAME, or no item */
                if (d[p] != FRAME || end - p < 9) {
                    break;
                }
                p += 9;
            }
            else {
                p = tuple_of(s, after, n) ? optional_memoize(s, after + 1) : after;
            }
        }
    }
    return p;
}

/* A dict's key and value and its SETITEM: `P{2}s`, where P (plain) is not possessive. When the
 * key is a tuple that begins with a FRAME and no value and SETITEM follow it, the regex takes the
 * FRAME alone for the first P and the rest of the tuple for the second: a SETITEM right after the
 * tuple matches too. Taking the key's literal alone instead never lets a value and SETITEM follow
 * (the tuple's next literal or opcode does), nor does the value's. */
static Py_ssize_t
key_value(const Subject *s, Py_ssize_t p)
{
    int framed_tuple, unused;
    Py_ssize_t key_end = plain(s, p, &framed_tuple);
    Py_ssize_t value_end;
    if (key_end == NO_MATCH) {
        return NO_MATCH;
    }
    value_end = plain(s, key_end, &unused);
    if (value_end != NO_MATCH && value_end < s->end && s->d[value_end] == SETITEM) {
        return value_end + 1;
    }
    if (framed_tuple && key_end < s->end && s->d[key_end] == SETITEM) {
        return key_end + 1;
    }
    return NO_MATCH;
}

/* flat_dict in _item, after its EMPTY_DICT: `\x94?(?:\(P*+u|P{2}s)*+` */
static Py_ssize_t
flat_dict(const Subject *s, Py_ssize_t p)
{
    Py_ssize_t q;
    p = optional_memoize(s, p);
    for (;;) {
        if (p < s->end && s->d[p] == MARK) {
            q = plain_items(s, p + 1);
            if (q >= s->end || s->d[q] != SETITEMS) {
                return p;
            }
            p = q + 1;
        }
        else {
            q = key_value(s, p);
            if (q == NO_MATCH) {
                return p;
            }
            p = q;
        }
    }
}

/* flat_list in _item, after its EMPTY_LIST: `\x94?(?:\(P*+e|Pa)*+` */
static Py_ssize_t
flat_list(const Subject *s, Py_ssize_t p)
{
    int unused;
    Py_ssize_t q;
    p = optional_memoize(s, p);
    for (;;) {
        if (p < s->end && s->d[p] == MARK) {
            q = plain_items(s, p + 1);
            if (q >= s->end || s->d[q] != APPENDS) {
                return p;
            }
        }
        else {
            q = plain(s, p, &unused);
            if (q == NO_MATCH || q >= s->end || s->d[q] != APPEND) {
                return p;
            }
        }
        p = q + 1;
    }
}

PyDoc_STRVAR(match_items_doc,
"match_items(data, pos, limit, /)\n--\n\n"
"Where the run of plain items from ``pos`` ends, and the position of the last APPENDS, MARK\n"
"in it (-1: none), reading nothing at or past ``limit``: what\n"
"``untrusted._regexes().items[3].match(data, pos, limit)`` gives as ``(end(), start(1))``.");

static PyObject *
match_items(PyObject *module, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t pos, end, last_appends = -1;
    Subject s;
    (void)module;
    if (!PyArg_ParseTuple(args, "y*nn:match_items", &view, &pos, &end)) {
        return NULL;
    }
    /* as re clamps pos and endpos */
    pos = pos < 0 ? 0 : (pos > view.len ? view.len : pos);
    end = end < 0 ? 0 : (end > view.len ? view.len : end);
    s.d = (const unsigned char *)view.buf;
    s.end = end;
    while (pos < end) {
        Py_ssize_t q;
        switch (s.d[pos]) {
        case EMPTY_DICT:
            q = flat_dict(&s, pos + 1);
            break;
        case EMPTY_LIST:
            q = flat_list(&s, pos + 1);
            break;
        case APPENDS:  /* the batch's items are taken, the list's next batch begins */
            if (end - pos < 2 || s.d[pos + 1] != MARK) {
                q = NO_MATCH;
                break;
            }
            last_appends = pos;
            q = pos + 2;
            break;
        default:
            q = plain_items(&s, pos);
            if (q == pos) {
                q = NO_MATCH;
            }
        }
        if (q == NO_MATCH) {
            break;
        }
        pos = q;
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(nn)", pos, last_appends);
}

static PyMethodDef plainscan_methods[] = {
    {"match_items", match_items, METH_VARARGS, match_items_doc},
    {NULL, NULL, 0, NULL}
};

static PyModuleDef_Slot plainscan_slots[] = {
    {0, NULL}
};

static struct PyModuleDef plainscan_module = {
    PyModuleDef_HEAD_INIT,
    "_plainscan",
    "The plain-items scan of pymw_admin.wire.untrusted, in C (optional: the module falls back to\n"
    "its regex without it).",
    0,
    plainscan_methods,
    plainscan_slots,
    NULL,
    NULL,
    NULL
};

PyMODINIT_FUNC
PyInit__plainscan(void)
{
    return PyModuleDef_Init(&plainscan_module);
}
