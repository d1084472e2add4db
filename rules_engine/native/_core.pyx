# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The compiled evaluation core: a case's protobuf bytes in, measured values and evidence out.

It runs the tables that rules_engine/engine/native.py builds from a CompiledRuleset (the wire
schema of every fact message, the filters as instructions, the measures as specs) and mirrors,
step by step, what the Python engine does: service/record_reader.py's checks (a case it does
not accept in full is declined, and the caller validates it through the Python path, which
names the bad field), engine/case_index.py's ordering, and the measure kinds of
engine/measures.py and engine/long_measures.py. The Python engine is the reference: the
differential test (tests/native/test_differential.py) holds the two to the same answers.

Facts are kept as columns of doubles, one row per fact: NaN is None, codes are their index
in the field's sorted code list, booleans 0 and 1, dates day ordinals, ids (where a filter,
distinct or group_by reads them) their index in a per-evaluation table. So every filter is a
comparison of doubles, and a comparison with None is false as in the Python filters.
"""

from libc.stdlib cimport calloc, malloc, realloc, free, qsort
from libc.string cimport memcmp, memcpy, memset
from libc.math cimport NAN, copysign, fabs, floor, isnan
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_DecodeASCII
from cpython.dict cimport PyDict_Next, PyDict_SetItem
from cpython.object cimport PyObject, PyObject_GenericSetAttr
from cpython.ref cimport Py_INCREF
from cpython.long cimport PyLong_AsDouble
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM


cdef extern from "Python.h":
    ctypedef struct PyTypeObject:
        object (*tp_alloc)(PyTypeObject*, Py_ssize_t)

cdef extern from *:
    int __builtin_popcountll(unsigned long long) nogil
    int __builtin_ctzll(unsigned long long) nogil

import datetime as _dt
import sys as _sys

include "_build_digest.pxi"

CORE_API = 1

# --- field kinds (what engine/native.py's wire schema says each proto field holds) ----------
cdef enum:
    K_SKIP = 0
    K_ID = 1          # required id: string
    K_OPT_ID = 2      # optional id: "" is None
    K_ID_LIST = 3     # repeated string ids
    K_CODE = 4        # string code
    K_CODE_LIST = 5   # repeated string codes
    K_DATE = 6        # "YYYY-MM-DD" string; "" is None
    K_PERCENT = 7     # double in 0..100
    K_BOOL = 8        # bool
    K_OPT_BOOL = 9    # optional bool (presence): absent is the model's default
    K_NESTED = 10     # repeated message (a conference's agencies)
    K_ENUM = 11       # enum: number -> code index, 0 or unknown is None

# --- measure kinds (engine/native.py: KIND_NUMBERS) ------------------------------------------
cdef enum:
    M_COUNT = 1
    M_DISTINCT = 2
    M_DAYS_SINCE = 3
    M_WORKING_DAYS_SINCE = 4
    M_OVERDUE = 5
    M_OPEN = 6
    M_LATEST = 7
    M_AGE = 8
    M_RATE = 9
    M_TREND = 10
    M_PERIODS = 11
    M_LONGEST_GAP = 12
    M_LONGEST_OPEN = 13
    M_SUM = 14
    M_RATIO = 15

# --- filter instructions, in postfix order ---------------------------------------------------
cdef enum:
    I_COMPARE = 1
    I_TRUTHY = 2
    I_ONE_OF = 3
    I_HOLDS = 4
    I_ALWAYS = 5
    I_AND = 6
    I_OR = 7
    I_NOT = 8

cdef enum:
    C_EQ = 1
    C_NE = 2
    C_LT = 3
    C_LE = 4
    C_GT = 5
    C_GE = 6

# --- condition instructions (rule conditions over measured values, Kleene's logic) -----------
cdef enum:
    R_CONST = 1       # value: 0/1
    R_MEASURE = 2     # a bare measure: its truth, unknown when missing
    R_FLAGGED = 3     # another rule's outcome
    R_COMPARE = 4     # left/right: a measure (index >= 0) or the constant k (index -1)
    R_AND = 5         # over the top `value` truths
    R_OR = 6
    R_NOT = 7
    R_IN = 8          # measure in the set (negated for `not in`)

# --- deadlines (engine/native.py: the deadline specs) ---------------------------------------
cdef enum:
    D_OTHER = 0       # months or years: asked of the Python calendar (deadline_of)
    D_DAYS = 1        # days or weeks, as days
    D_WORKING = 2     # working days

DEF MAX_ORDINAL = 3652059  # date.max: a deadline past it is never passed (calendar.deadline)

DEF MAX_FIELD = 32
DEF MAX_GROUP_DEPTH = 100  # protobuf's default recursion limit
DEF MAX_STACK = 64

cdef int _ID_CHAR[256]
memset(_ID_CHAR, 0, sizeof(_ID_CHAR))
for _c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:/@-":
    _ID_CHAR[ord(_c)] = 1

cdef int _DAYS_BEFORE_MONTH[13]
_DAYS_BEFORE_MONTH[:] = [0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334]
cdef int _DAYS_IN_MONTH[13]
_DAYS_IN_MONTH[:] = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

class Declined(Exception):
    """The case is not accepted in full: the caller validates it the Python way."""


import builtins as _builtins
_round = _builtins.round


cdef object _round_float(double x, int ndigits):
    """round(x, ndigits) of a float, ndigits 1 or 2, without round's decimal conversion where
    the answer is plain: round gives the double nearest n / 10**ndigits, n being x * 10**ndigits
    rounded to an integer, which n / scale (two exact doubles, one correctly rounded division)
    also is. Under 1e9 the product is within 1e-7 of the exact one, so n is the same unless the
    product is within 1e-6 of a half: those, and anything else, go to round."""
    cdef double scale = 100.0 if ndigits == 2 else 10.0
    cdef double y = x * scale, f, frac
    cdef long long n
    if (ndigits == 1 or ndigits == 2) and fabs(y) < 1e9:  # false for NaN and infinities too
        f = floor(y)
        frac = y - f
        if fabs(frac - 0.5) > 1e-6:
            n = <long long>f + (1 if frac > 0.5 else 0)
            return copysign(0.0, x) if n == 0 else n / scale
    return _round(x, ndigits)


def round_float(double x, int ndigits):
    """_round_float, for the tests to hold it to round."""
    return _round_float(x, ndigits)


cdef inline bint _leap(int y) noexcept:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


cdef inline int _ordinal(int y, int m, int d) noexcept:
    cdef int p = y - 1
    return p * 365 + p // 4 - p // 100 + p // 400 + _DAYS_BEFORE_MONTH[m] + (1 if m > 2 and _leap(y) else 0) + d


cdef int _parse_date_text(const unsigned char* s, Py_ssize_t n) noexcept:
    """The ordinal of YYYY-MM-DD, 0 for "" (None), -1 when it is not a date."""
    cdef int y, m, d, dim
    # each digit's value; a byte that is not a digit gives more than 9 (unsigned arithmetic)
    cdef unsigned int y0, y1, y2, y3, m0, m1, d0, d1
    if n == 0:
        return 0
    if n != 10 or s[4] != 45 or s[7] != 45:
        return -1
    y0, y1, y2, y3 = s[0] - 48u, s[1] - 48u, s[2] - 48u, s[3] - 48u
    m0, m1, d0, d1 = s[5] - 48u, s[6] - 48u, s[8] - 48u, s[9] - 48u
    if (y0 > 9) | (y1 > 9) | (y2 > 9) | (y3 > 9) | (m0 > 9) | (m1 > 9) | (d0 > 9) | (d1 > 9):
        return -1
    y = <int>(y0 * 1000 + y1 * 100 + y2 * 10 + y3)
    m = <int>(m0 * 10 + m1)
    d = <int>(d0 * 10 + d1)
    if y < 1 or m < 1 or m > 12 or d < 1:
        return -1
    dim = _DAYS_IN_MONTH[m] + (1 if m == 2 and _leap(y) else 0)
    if d > dim:
        return -1
    return _ordinal(y, m, d)


# The dates read lately: a case's facts share few dates, and a look-up in this direct-mapped
# table (the 10 bytes, and their ordinal) costs a quarter of parsing them. Only dates are kept.
DEF DATE_CACHE = 4096

cdef struct _DateEntry:
    unsigned long long head     # the text's first 8 bytes; 0 for an empty entry (no date's)
    unsigned int tail           # and its last 2
    int ordinal

cdef _DateEntry _date_cache[DATE_CACHE]
memset(_date_cache, 0, sizeof(_date_cache))


cdef inline int _parse_date(const unsigned char* s, Py_ssize_t n) noexcept:
    """_parse_date_text through the cache (the GIL is held: one writer at a time)."""
    cdef unsigned long long head
    cdef unsigned short tail
    cdef unsigned int h
    cdef _DateEntry* e
    cdef int ordinal
    if n != 10:
        return _parse_date_text(s, n)
    memcpy(&head, s, 8)
    memcpy(&tail, s + 8, 2)
    h = <unsigned int>(((head * 0x9E3779B97F4A7C15ull) ^ tail) * 0xC2B2AE3D27D4EB4Full >> 52)  # 12 bits
    e = &_date_cache[h]
    if e.head == head and e.tail == tail:
        return e.ordinal
    ordinal = _parse_date_text(s, n)
    if ordinal > 0:
        e.head, e.tail, e.ordinal = head, tail, ordinal
    return ordinal


cdef inline bint _id_ok_hash(const unsigned char* s, Py_ssize_t n, int max_length, unsigned int* hash) noexcept:
    """_id_ok, and the id's _id_hash in the same pass."""
    cdef Py_ssize_t i
    cdef unsigned int h = 2166136261u
    if n < 1 or n > max_length:
        return False
    for i in range(n):
        if not _ID_CHAR[s[i]]:
            return False
        h = (h ^ s[i]) * 16777619u
    hash[0] = h
    return True


cdef inline bint _id_ok(const unsigned char* s, Py_ssize_t n, int max_length) noexcept:
    cdef Py_ssize_t i
    if n < 1 or n > max_length:
        return False
    for i in range(n):
        if not _ID_CHAR[s[i]]:
            return False
    return True


# --- the wire format ------------------------------------------------------------------------

cdef inline bint _varint(const unsigned char* buf, Py_ssize_t end, Py_ssize_t* pos, unsigned long long* out) noexcept:
    cdef unsigned long long result = 0
    cdef int shift = 0
    cdef unsigned char b
    if pos[0] < end and buf[pos[0]] < 0x80:  # most are one byte: tags, short lengths
        out[0] = buf[pos[0]]
        pos[0] += 1
        return True
    while pos[0] < end:
        b = buf[pos[0]]
        pos[0] += 1
        result |= (<unsigned long long>(b & 0x7F)) << shift
        if not (b & 0x80):
            out[0] = result
            return True
        shift += 7
        if shift > 63:
            return False
    return False


cdef inline bint _skip(const unsigned char* buf, Py_ssize_t end, Py_ssize_t* pos, int wire) noexcept:
    cdef unsigned long long v
    if wire == 0:
        return _varint(buf, end, pos, &v)
    if wire == 1:
        pos[0] += 8
        return pos[0] <= end
    if wire == 2:
        if not _varint(buf, end, pos, &v) or v > <unsigned long long>(end - pos[0]):
            return False
        pos[0] += <Py_ssize_t>v
        return True
    if wire == 5:
        pos[0] += 4
        return pos[0] <= end
    return False


cdef bint _skip_field(const unsigned char* buf, Py_ssize_t end, Py_ssize_t* pos, unsigned long long key,
                      int depth=0) noexcept:
    """Skip an unknown field, a (deprecated) group included: newer clients may send fields
    this version does not know, and protobuf readers keep and ignore them. Groups nested deeper
    than protobuf's own recursion limit are refused rather than followed down the C stack."""
    cdef unsigned long long inner
    cdef int wire = <int>(key & 7)
    if wire != 3:
        return _skip(buf, end, pos, wire)
    if depth >= MAX_GROUP_DEPTH:
        return False
    while pos[0] < end:
        if not _varint(buf, end, pos, &inner):
            return False
        if <int>(inner & 7) == 4:
            return (inner >> 3) == (key >> 3)
        if not _skip_field(buf, end, pos, inner, depth + 1):
            return False
    return False


cdef inline int _field_number(unsigned long long key) noexcept:
    """A tag's field number, or 0 (no field of ours) when beyond the schema's numbers."""
    return <int>(key >> 3) if (key >> 3) < MAX_FIELD else 0


cdef class Schema:
    """One message type's fields: what each proto field number holds and where it goes."""

    cdef int kind[MAX_FIELD]
    cdef int col[MAX_FIELD]
    cdef double absent[MAX_FIELD]       # the column's value when the field is absent or empty
    cdef int absent_declines[MAX_FIELD]  # absent/empty is refused (a required value)
    cdef int intern[MAX_FIELD]           # ids read by filters: interned into the column
    cdef list codes                      # per field number: list of code bytes (or None)
    cdef list code_strs                  # the same codes as interned str (a code list's items)
    cdef list enum_map                   # per field number: dict enum number -> code index
    cdef public int ncols, nlists, id_col
    cdef public object nested            # Schema of the nested message, or None
    cdef public int nested_field
    cdef public list spans               # (start col, end col): the end may not precede the start
    cdef public int unique_col           # nested: a column whose values must differ (agency); -1
    cdef public int max_length
    cdef int defined[MAX_FIELD]          # the field numbers in use, `ndefined` of them
    cdef int ndefined
    cdef int scalar[MAX_FIELD]           # those of a single value (absent: `absent`), `nscalar` of them
    cdef int nscalar
    cdef double* default_row             # a row of absent fields: each scalar's `absent`, else NaN
    cdef unsigned int required           # bit fn: field fn's absence is refused
    cdef int span_start[MAX_FIELD]       # `spans` as columns, `nspans` of them
    cdef int span_end[MAX_FIELD]
    cdef int nspans
    # `codes` as C arrays, for _code_index: field fn's are code_text/code_size[code_first[fn]:]
    # (code_count[fn] of them), pointing into the bytes `codes` holds
    cdef const char** code_text
    cdef Py_ssize_t* code_size
    cdef int code_first[MAX_FIELD]
    cdef int code_count[MAX_FIELD]
    # and a hash table of them per field: code_slots[slot_first[fn]:][hash & slot_mask[fn]] holds
    # a code's index + 1 (0: empty), probed linearly
    cdef int* code_slots
    cdef int slot_first[MAX_FIELD]
    cdef unsigned int slot_mask[MAX_FIELD]

    def __cinit__(self):
        self.code_text = NULL
        self.code_size = NULL
        self.code_slots = NULL
        self.default_row = NULL

    def __dealloc__(self):
        free(self.default_row)
        free(self.code_text)
        free(self.code_size)
        free(self.code_slots)

    def __init__(self, fields, int ncols, int nlists, int id_col, spans, int unique_col, int max_length):
        cdef int fn, i, k, slots, size
        cdef unsigned int h
        memset(self.kind, 0, sizeof(self.kind))
        self.codes = [None] * MAX_FIELD
        self.code_strs = [None] * MAX_FIELD
        self.enum_map = [None] * MAX_FIELD
        self.nested = None
        self.nested_field = -1
        self.ndefined = 0
        for fn, kind, col, absent, absent_declines, intern, codes, enum_map, nested in fields:
            if fn >= MAX_FIELD:
                raise ValueError(f"field number {fn} is beyond the core's schema")
            self.defined[self.ndefined] = fn
            self.ndefined += 1
            self.kind[fn] = kind
            self.col[fn] = col
            self.absent[fn] = NAN if absent is None else absent
            self.absent_declines[fn] = absent_declines
            self.intern[fn] = intern
            self.codes[fn] = codes
            if codes is not None:
                self.code_strs[fn] = [_sys.intern(code.decode("ascii")) for code in codes]
            self.enum_map[fn] = enum_map
            if nested is not None:
                self.nested = nested
                self.nested_field = fn
        self.nscalar = 0
        self.required = 0
        self.default_row = <double*>malloc(sizeof(double) * (ncols + 1))
        if self.default_row == NULL:
            raise MemoryError()
        for i in range(ncols):
            self.default_row[i] = NAN
        for i in range(self.ndefined):
            fn = self.defined[i]
            if self.kind[fn] not in (K_SKIP, K_ID_LIST, K_CODE_LIST, K_NESTED):
                self.scalar[self.nscalar] = fn
                self.nscalar += 1
                self.default_row[self.col[fn]] = self.absent[fn]
                if self.absent_declines[fn]:
                    self.required |= 1u << fn
        every = [code for codes in self.codes if codes is not None for code in codes]
        self.code_text = <const char**>malloc(sizeof(char*) * (len(every) + 1))
        self.code_size = <Py_ssize_t*>malloc(sizeof(Py_ssize_t) * (len(every) + 1))
        if self.code_text == NULL or self.code_size == NULL:
            raise MemoryError()
        i = 0
        slots = 0
        for fn in range(MAX_FIELD):
            self.code_first[fn] = i
            self.code_count[fn] = 0 if self.codes[fn] is None else len(self.codes[fn])
            for code in self.codes[fn] or ():
                self.code_text[i] = PyBytes_AS_STRING(code)
                self.code_size[i] = PyBytes_GET_SIZE(code)
                i += 1
            self.slot_first[fn] = slots
            size = 1
            while size < 2 * self.code_count[fn]:
                size <<= 1
            self.slot_mask[fn] = size - 1
            slots += size
        self.code_slots = <int*>calloc(slots, sizeof(int))
        if self.code_slots == NULL:
            raise MemoryError()
        for fn in range(MAX_FIELD):
            for k in range(self.code_count[fn]):
                h = _code_hash(self.code_text[self.code_first[fn] + k], self.code_size[self.code_first[fn] + k])
                h &= self.slot_mask[fn]
                while self.code_slots[self.slot_first[fn] + h]:
                    h = (h + 1) & self.slot_mask[fn]
                self.code_slots[self.slot_first[fn] + h] = k + 1
        self.ncols, self.nlists, self.id_col = ncols, nlists, id_col
        self.spans = list(spans)
        if len(self.spans) > MAX_FIELD:
            raise ValueError("more spans than the core's schema has room for")
        self.nspans = len(self.spans)
        for i, (a, b) in enumerate(self.spans):
            self.span_start[i], self.span_end[i] = a, b
        self.unique_col = unique_col
        self.max_length = max_length


# --- an evaluation's C memory ----------------------------------------------------------------
# An evaluation's tables, series, evidence rows and scratch arrays are carved from one arena and
# given back all at once when it ends: fifty-odd malloc/free pairs a call cost 8% of an
# evaluation at 200 facts. The Core keeps the last arena's memory for the next evaluation.

DEF ARENA_CHUNK = 65536
DEF ARENA_KEEP = 16777216  # a Core keeps at most this much for the next evaluation

cdef struct Chunk:
    Chunk* next
    size_t size           # the bytes after this header (16 bytes: the data stay 16-aligned)

cdef struct Arena:
    Chunk* chunks         # the newest first; `at` and `end` are its free bytes
    char* at
    char* end
    size_t total          # the bytes of all its chunks


cdef void* _arena_alloc(Arena* a, size_t n) noexcept:
    """n bytes (16-aligned, not zeroed) that live as long as the arena; NULL when out of memory."""
    cdef char* p = a.at
    cdef Chunk* c
    cdef size_t size
    n = (n + 15) & ~(<size_t>15)
    if n <= <size_t>(a.end - a.at):
        a.at += n
        return p
    # a new chunk, at least as large as all the others, so an arena ends with few of them
    size = ARENA_CHUNK if a.total < ARENA_CHUNK else a.total
    if size < n:
        size = n
    c = <Chunk*>malloc(sizeof(Chunk) + size)
    if c == NULL:
        return NULL
    c.next, c.size = a.chunks, size
    a.chunks = c
    a.total += size
    p = <char*>(c + 1)
    a.at, a.end = p + n, p + size
    return p


cdef void _arena_free(Arena* a) noexcept:
    cdef Chunk* c = a.chunks
    cdef Chunk* following
    while c != NULL:
        following = c.next
        free(c)
        c = following
    memset(a, 0, sizeof(Arena))


cdef void _arena_reset(Arena* a) noexcept:
    """Empty the arena for its next use, its memory kept as one chunk as large as all it had (a
    case the size of the last then fits in it)."""
    cdef size_t total = a.total
    cdef Chunk* c
    if a.chunks != NULL and a.chunks.next != NULL:
        _arena_free(a)
        c = <Chunk*>malloc(sizeof(Chunk) + total)
        if c == NULL:
            return
        c.next, c.size = NULL, total
        a.chunks, a.total = c, total
    if a.chunks != NULL:
        a.at = <char*>(a.chunks + 1)
        a.end = a.at + a.chunks.size


cdef class Table:
    """One fact type's facts as columns: vals[row * ncols + col]; ids as bytes; lists as tuples."""

    cdef double* vals
    cdef const char** idp       # each row's id: a pointer into the request's bytes (or `keep`)
    cdef Py_ssize_t* idl
    cdef public int n, ncols, cap
    cdef public object keep     # what idp points into
    cdef public list lists      # per list slot: list of per-row tuples, None while no row has items
    # per list slot of codes, per row: bit k set when the list holds the field's code k (the
    # first 64 codes), for `holds` filters (Ins.bit) without a Python `in`
    cdef unsigned long long* masks
    cdef public list nested     # per row: list of nested rows (conferences' agencies), or None
    cdef public str name
    cdef bint owned             # vals and masks were malloc'd (else they are an evaluation's arena's)

    def __cinit__(self):
        self.vals = NULL
        self.masks = NULL
        self.idp = NULL
        self.idl = NULL
        self.n = 0
        self.cap = 0
        self.owned = False

    def __dealloc__(self):
        if self.owned:
            free(self.vals)  # idp and idl are in the same block
            free(self.masks)

    cdef int reserve(self, int ncols, int cap, Arena* arena, int nlists) except -1:
        """Room for `cap` rows, and their list masks (zeroed) when the type has lists: from the
        arena, or (arena NULL: a table that outlives any evaluation) from malloc."""
        cdef Py_ssize_t cells = cap * ncols if cap * ncols > 0 else 1, rows = cap if cap > 0 else 1
        cdef size_t size = sizeof(double) * cells + (sizeof(char*) + sizeof(Py_ssize_t)) * rows
        cdef size_t masks = sizeof(unsigned long long) * (nlists * cap + 1)
        self.ncols = ncols
        self.cap = cap
        self.owned = arena == NULL
        # one block: the values, then the ids' pointers and lengths (all 8 bytes wide)
        self.vals = <double*>(malloc(size) if arena == NULL else _arena_alloc(arena, size))
        if self.vals == NULL:
            raise MemoryError()
        self.idp = <const char**>(self.vals + cells)
        self.idl = <Py_ssize_t*>(self.idp + rows)
        if nlists > 0:
            self.masks = <unsigned long long*>(malloc(masks) if arena == NULL else _arena_alloc(arena, masks))
            if self.masks == NULL:
                raise MemoryError()
            memset(self.masks, 0, masks)
        return 0

    cdef inline double get(self, int row, int col) noexcept:
        return self.vals[row * self.ncols + col]


cdef struct Series:
    # Facts of one type passing a filter, sorted by a date column then id: rows and ordinals. A C
    # struct in the evaluation's arrays, not an object: an evaluation makes forty of them.
    int* rows       # NULL: not made yet
    int* ords
    int n
    int t
    int datecol


cdef int _series_alloc(Arena* arena, Series* s, int n) except -1:
    s.n = n
    s.rows = <int*>_arena_alloc(arena, sizeof(int) * 2 * (n if n > 0 else 1))
    if s.rows == NULL:
        raise MemoryError()
    s.ords = s.rows + (n if n > 0 else 1)
    return 0


cdef inline int _bisect_right(int* a, int x, int lo, int hi) noexcept:
    cdef int mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if x < a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


cdef inline int _bisect_left(int* a, int x, int lo, int hi) noexcept:
    cdef int mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


# qsort has no context argument: the table being sorted is set here (the GIL is held throughout).
cdef double* _sort_vals
cdef int _sort_ncols
cdef int _sort_col
cdef const char** _sort_idp
cdef Py_ssize_t* _sort_idl


cdef int _by_date_then_id(const void* a, const void* b) noexcept nogil:
    cdef int ra = (<int*>a)[0], rb = (<int*>b)[0]
    cdef double da = _sort_vals[ra * _sort_ncols + _sort_col], db = _sort_vals[rb * _sort_ncols + _sort_col]
    cdef Py_ssize_t la, lb
    cdef int c
    if da < db:
        return -1
    if da > db:
        return 1
    la, lb = _sort_idl[ra], _sort_idl[rb]
    c = memcmp(_sort_idp[ra], _sort_idp[rb], la if la < lb else lb)
    if c != 0:
        return c
    return -1 if la < lb else (1 if la > lb else 0)


cdef inline int _id_order(const char* a, Py_ssize_t la, const char* b, Py_ssize_t lb) noexcept nogil:
    """Ids in byte order (memcmp's, then the shorter first)."""
    cdef int c = memcmp(a, b, la if la < lb else lb)
    if c != 0:
        return c
    return -1 if la < lb else (1 if la > lb else 0)


cdef inline unsigned int _code_hash(const char* s, Py_ssize_t n) noexcept nogil:
    """A code's hash for _code_index's tables, from its length and three of its bytes (codes of
    one field differ there mostly; equal hashes are told apart by comparing the bytes)."""
    cdef unsigned int h, first, last, middle
    if n <= 0:
        return 0
    first, last, middle = <unsigned char>s[0], <unsigned char>s[n - 1], <unsigned char>s[n >> 1]
    h = <unsigned int>n ^ (first << 8) ^ (last << 16) ^ (middle << 24)
    h *= 2654435761u
    return h ^ (h >> 15)


cdef inline unsigned int _id_hash(const char* s, Py_ssize_t n) noexcept nogil:
    """FNV-1a of an id's bytes."""
    cdef unsigned int h = 2166136261u
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ <unsigned char>s[i]) * 16777619u
    return h


cdef void _sort_keys(unsigned long long* keys, unsigned long long* spare, int n) noexcept nogil:
    """Sort distinct keys ascending: insertion sort of runs of 16, then merged pairwise (a merge
    sort without the comparison function qsort calls through a pointer)."""
    cdef int width, lo, mid, hi, i, j, k
    cdef unsigned long long x
    cdef unsigned long long* src = keys
    cdef unsigned long long* dst = spare
    cdef unsigned long long* swap
    lo = 0
    while lo < n:
        hi = lo + 16 if lo + 16 < n else n
        for i in range(lo + 1, hi):
            x = keys[i]
            j = i
            while j > lo and keys[j - 1] > x:
                keys[j] = keys[j - 1]
                j -= 1
            keys[j] = x
        lo = hi
    width = 16
    while width < n:
        lo = 0
        while lo < n:
            mid = lo + width if lo + width < n else n
            hi = lo + 2 * width if lo + 2 * width < n else n
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                if src[i] < src[j]:
                    dst[k] = src[i]
                    i += 1
                else:
                    dst[k] = src[j]
                    j += 1
                k += 1
            while i < mid:
                dst[k] = src[i]
                i += 1
                k += 1
            while j < hi:
                dst[k] = src[j]
                j += 1
                k += 1
            lo = hi
        swap = src
        src = dst
        dst = swap
        width *= 2
    if src != keys:
        memcpy(keys, src, sizeof(unsigned long long) * n)


cdef int _distinct(Table table, int col, int* rows, int n, unsigned long long* keys) noexcept:
    """How many distinct values the rows have in a column (none NaN), as len(set(values)): each
    double as a key that sorts as it does (0.0 and -0.0 as one), sorted, the changes counted.
    `keys` has room for 2n."""
    cdef int i, count = 1 if n > 0 else 0
    cdef double v
    cdef unsigned long long k
    for i in range(n):
        v = table.vals[rows[i] * table.ncols + col] + 0.0  # -0.0 + 0.0 is 0.0
        memcpy(&k, &v, 8)
        keys[i] = ~k if k >> 63 else k | (<unsigned long long>1 << 63)
    _sort_keys(keys, keys + n, n)
    for i in range(1, n):
        if keys[i] != keys[i - 1]:
            count += 1
    return count


cdef int _sort_by_date_then_id(int* rows, int n, Table table, int datecol, Arena* arena) except -1:
    """Rows (in row order) sorted by a date column, then id. The dates are day ordinals, so each
    row is one integer key (ordinal, row) sorted without a comparison function; rows of one date
    are then put in id order. A column of other numbers goes through qsort."""
    global _sort_vals, _sort_ncols, _sort_col, _sort_idp, _sort_idl
    cdef int i, j, k, run, row
    cdef bint ordered
    cdef double d
    cdef unsigned long long* keys
    for i in range(n):
        d = table.vals[rows[i] * table.ncols + datecol]
        if not (0.0 <= d < 2147483648.0) or d != <int>d:
            _sort_vals, _sort_ncols, _sort_col, _sort_idp, _sort_idl = table.vals, table.ncols, datecol, table.idp, table.idl
            qsort(rows, n, sizeof(int), _by_date_then_id)
            return 0
    keys = <unsigned long long*>_arena_alloc(arena, sizeof(unsigned long long) * 2 * n)
    if keys == NULL:
        raise MemoryError()
    ordered = True  # facts are often sent oldest first: then there is nothing to sort
    for i in range(n):
        keys[i] = (<unsigned long long><int>table.vals[rows[i] * table.ncols + datecol] << 32) | <unsigned int>rows[i]
        if i and keys[i] < keys[i - 1]:
            ordered = False
    if not ordered:
        _sort_keys(keys, keys + n, n)
    for i in range(n):
        rows[i] = <int>(keys[i] & 0xFFFFFFFFu)
    # facts of one date by id: an insertion sort of each run of equal dates (short)
    run = 0
    for i in range(1, n + 1):
        if i < n and (keys[i] >> 32) == (keys[run] >> 32):
            continue
        for j in range(run + 1, i):
            row = rows[j]
            k = j
            while k > run and _id_order(table.idp[rows[k - 1]], table.idl[rows[k - 1]], table.idp[row], table.idl[row]) > 0:
                rows[k] = rows[k - 1]
                k -= 1
            rows[k] = row
        run = i
    return 0


# --- the ruleset's tables -------------------------------------------------------------------

cdef struct Ins:
    int op
    int col
    int cmp
    int is_none
    double k
    int set_start
    int set_len
    int set_has_none
    int list_slot
    int bit           # HOLDS: the code's bit in Table.masks; -1 never held; -2 ask the list
    int value

cdef struct MSpec:
    int kind
    int t
    int datecol
    int series
    int window
    int window2
    int field
    int endcol
    int overlaps
    int since_series
    int last
    int matching
    int group
    int deadline
    int followup_series
    int resolved_col
    int period
    int at_least
    int missing_when_absent
    int input_start
    int input_len


cdef struct Cond:
    int op
    int value
    int left
    int right
    double lk
    double rk
    int cmp
    int set_start
    int set_len
    int negate


# A measure's evidence, the facts behind its value (see Evaluated.keep_evidence).
cdef enum:
    E_NONE = 0
    E_FACTS = 1       # n rows of fact type t
    E_PARTS = 2       # a sum's or ratio's: its inputs' evidence


cdef struct Facts:
    int kind
    int t
    int n
    int* rows


cdef struct Cand:
    int ord
    int rank
    const char* id
    Py_ssize_t idlen
    int t
    int row


cdef int _newest_first(const void* a, const void* b) noexcept nogil:
    """By date, then fact type, then id, all descending."""
    cdef const Cand* x = <const Cand*>a
    cdef const Cand* y = <const Cand*>b
    cdef int c
    if x.ord != y.ord:
        return -1 if x.ord > y.ord else 1
    if x.rank != y.rank:
        return -1 if x.rank > y.rank else 1
    c = memcmp(x.id, y.id, x.idlen if x.idlen < y.idlen else y.idlen)
    if c != 0:
        return -c
    return -1 if x.idlen > y.idlen else (1 if x.idlen < y.idlen else 0)


cdef inline void _candidate(Cand* c, Table table, int t, int row, int datecol, int rank) noexcept:
    c.ord = <int>table.vals[row * table.ncols + datecol]
    c.rank = rank
    c.id = table.idp[row]
    c.idlen = table.idl[row]
    c.t = t
    c.row = row


cdef inline double _as_double(object value) except? -1.0:
    """float(value) for a measured value: an int by PyLong_AsDouble (what int.__float__ does,
    without the float object <double> makes on the way)."""
    if type(value) is int:
        return PyLong_AsDouble(value)
    return <double>value


_object_new = object.__new__


cdef object _outcome(object cls, dict measures, dict outcomes, tuple flags, tuple shadow, tuple undetermined):
    """results.Outcome(measures, outcomes, flags, shadow, undetermined, False), the frozen
    dataclass's __init__ done here: its fields set in their order as that __init__ sets them
    (object.__setattr__), without its Python call (11k instructions, 2% of an evaluation). The
    differential test compares every field of the two engines' Outcomes."""
    out = _object_new(cls)
    PyObject_GenericSetAttr(out, "measures", measures)
    PyObject_GenericSetAttr(out, "outcomes", outcomes)
    PyObject_GenericSetAttr(out, "flags", flags)
    PyObject_GenericSetAttr(out, "shadow_flags", shadow)
    PyObject_GenericSetAttr(out, "undetermined", undetermined)
    PyObject_GenericSetAttr(out, "matcher_fallback", False)
    return out


cdef object _encoded_evidence(object cls, bytes wire):
    """engine/native.EncodedEvidence(wire), its __init__ done here: the instance's two slots set
    without a Python call."""
    out = (<PyTypeObject*>cls).tp_alloc(<PyTypeObject*>cls, 0)
    out.wire = wire
    out._items = None
    return out


# An explanation's texts kept per rule, by the values of the measures its template names.
DEF TEXTS_LIMIT = 1024


cdef class FlagRule:
    """What a rule's flag takes from the rule alone, built once per ruleset version by
    engine/native.py; Evaluated.flags fills in the rest per evaluation."""

    cdef readonly int position       # in ruleset.rules, where its outcome is
    cdef readonly tuple fields       # ExplainedFlag's fields; those of an evaluation are None
    cdef readonly tuple names        # the measures the flag cites
    cdef readonly tuple indices      # and their indices
    cdef readonly tuple depends_on
    cdef readonly bint shadow
    cdef tuple text_indices          # the measures the explanation's template names
    cdef object render               # measures -> (the explanation's text, its Flag field framed)
    cdef dict texts                  # rendered texts by those measures' values (bounded)
    # The flag's bytes (see Evaluated.flag_wire): the Flag fields of the rule alone, serialized
    # once per ruleset version, and each depends_on rule's contributing_rule_ids field.
    cdef bytes rule_wire
    cdef tuple depends_wire
    cdef tuple depends_at            # the depends_on rules' positions in ruleset.rules

    def __init__(self, int position, tuple fields, tuple names, tuple indices, tuple depends_on, bint shadow,
                 tuple text_indices, render, bytes rule_wire, tuple depends_wire, tuple depends_at):
        self.position, self.fields, self.names, self.indices = position, fields, names, indices
        self.depends_on, self.shadow, self.text_indices, self.render = depends_on, shadow, text_indices, render
        self.rule_wire, self.depends_wire, self.depends_at = rule_wire, depends_wire, depends_at
        if len(depends_wire) != len(depends_on) or len(depends_at) != len(depends_on):
            raise ValueError("a contributing_rule_ids field and a position for each rule depended on")
        self.texts = {}

    cdef tuple text(self, list values, dict measures):
        """The explanation filled from the measures, and its Flag field: the same values give the
        same text, so it is rendered once per distinct set of values."""
        cdef tuple indices = self.text_indices
        cdef Py_ssize_t i, n = len(indices)
        cdef tuple key = PyTuple_New(n)  # the values' tuple, without a list on the way
        for i in range(n):
            value = values[<int>indices[i]]
            Py_INCREF(value)  # PyTuple_SET_ITEM takes the reference
            PyTuple_SET_ITEM(key, i, value)
        found = self.texts.get(key)
        if found is None:
            if len(self.texts) >= TEXTS_LIMIT:
                self.texts.clear()
            found = self.texts[key] = self.render(measures)
        return found


cdef class Core:
    """A ruleset compiled for the core: build once per ruleset version, evaluate often."""

    cdef list schemas            # per fact type: Schema
    cdef int case_fields[MAX_FIELD]   # Case field number -> fact type index (-1 none)
    cdef int ntypes
    cdef public list type_names
    cdef int derived_type        # the conference agencies' type index, -1 when unused
    cdef int conference_type
    cdef public tuple derived_columns   # how to build a derived row (see engine/native.py)
    cdef Ins* ins
    cdef int nins
    cdef int* prog_start
    cdef int* prog_len
    cdef int nprogs
    cdef double* sets
    cdef list holds_codes        # per instruction value index: str code for HOLDS
    cdef MSpec* specs
    cdef public int nmeasures
    cdef int* inputs
    cdef int* series_spec        # per series: t, datecol, program (-1)
    cdef public int nseries
    cdef int* base_of_series
    cdef public int nbases
    cdef int* base_spec          # per base: t, datecol
    cdef public object working_days   # (date, date) -> int
    cdef public object deadline_of    # (ordinal, deadline index) -> ordinal
    # The calendar's working-day table (calendar.working_day_table): per day from work_first,
    # the working days on or before it (nwork_days of them), and the working days' ordinals
    # (nwork_ords); days outside it go to working_days and deadline_of.
    cdef int work_first, nwork_days, nwork_ords
    cdef int* work_counts
    cdef int* work_ords
    cdef int* deadline_kind      # per deadline index: D_*, and its amount in its unit
    cdef int* deadline_amount
    cdef public int max_facts, max_list_items, first_ordinal, id_max_length
    # Flags as engine/native.py makes them (see Evaluated.flags): results.ExplainedFlag, and the
    # classes of a flag's evidence and measured values as the core writes them; at most
    # max_evidence facts of evidence per flag.
    cdef object flag_type, evidence_type
    cdef int max_evidence
    # Flag.evidence as the response writes it (see flag_evidence): the element's tag, the framed
    # fact_type field of each fact type, the fact_id and date fields' tags.
    cdef public bytes evidence_tag, fact_id_tag, date_tag
    cdef public list fact_type_fields
    # Flag.measured_values as the response writes them (see measured_wire), per measure: the
    # framed element up to a number's 8 bytes, and the whole element of a missing value.
    cdef list measured_number, measured_missing
    cdef object measured_other           # (measure index, value) -> its element, for any other value
    cdef bytes count_tag                 # Flag.evidence_count's tag
    cdef int birth_field
    cdef Cond* conds
    cdef int* rule_start
    cdef int* rule_len
    cdef public int nrules
    cdef double* rule_sets
    cdef int type_rank[64]       # each fact type's place in the order of their names
    cdef list empty_tables       # per fact type: its Table of no facts, made once (see empty_table)
    cdef Arena spare             # the last evaluation's arena, emptied, for the next one (or none)
    # What an evaluation answers with (set by answer_with): the FlagRules in the flags' order,
    # the measures' and rules' names (dicts of None, for named), a function giving the
    # undetermined rules from the named values and outcomes, and results.Outcome.
    cdef list flag_rules
    cdef dict measure_names, rule_names
    cdef object undetermined, outcome_type

    def __cinit__(self):
        self.ins = NULL
        self.prog_start = NULL
        self.prog_len = NULL
        self.sets = NULL
        self.specs = NULL
        self.inputs = NULL
        self.series_spec = NULL
        self.base_of_series = NULL
        self.base_spec = NULL
        self.conds = NULL
        self.rule_start = NULL
        self.rule_len = NULL
        self.rule_sets = NULL
        self.work_counts = NULL
        self.work_ords = NULL
        self.deadline_kind = NULL
        self.deadline_amount = NULL
        memset(&self.spare, 0, sizeof(Arena))

    def __dealloc__(self):
        free(self.work_counts)
        free(self.work_ords)
        free(self.deadline_kind)
        free(self.deadline_amount)
        free(self.conds)
        free(self.rule_start)
        free(self.rule_len)
        free(self.rule_sets)
        free(self.ins)
        free(self.prog_start)
        free(self.prog_len)
        free(self.sets)
        free(self.specs)
        free(self.inputs)
        free(self.series_spec)
        free(self.base_of_series)
        free(self.base_spec)
        _arena_free(&self.spare)

    def __init__(self, plan):
        cdef int i, j
        cdef Ins* x
        cdef MSpec* s
        cdef Cond* c
        self.schemas = list(plan["schemas"])
        self.ntypes = len(self.schemas)
        self.type_names = list(plan["type_names"])
        if len(self.type_names) > 64:
            raise ValueError("more fact types than the core has room for")
        for i, name in enumerate(sorted(self.type_names)):
            self.type_rank[self.type_names.index(name)] = i
        for i in range(MAX_FIELD):
            self.case_fields[i] = -1
        for fn, t in plan["case_fields"]:
            self.case_fields[fn] = t
        self.derived_type = plan["derived_type"]
        self.conference_type = plan["conference_type"]
        self.derived_columns = tuple(plan["derived_columns"])
        self.birth_field = plan["birth_field"]
        self.max_facts = plan["max_facts"]
        self.max_list_items = plan["max_list_items"]
        self.first_ordinal = plan["first_ordinal"]
        self.id_max_length = plan["id_max_length"]
        self.working_days = plan["working_days"]
        self.deadline_of = plan["deadline_of"]
        self.work_first, counts, ords = plan["working_table"]
        self.nwork_days, self.nwork_ords = len(counts), len(ords)
        self.work_counts = <int*>malloc(sizeof(int) * (self.nwork_days + 1))
        self.work_ords = <int*>malloc(sizeof(int) * (self.nwork_ords + 1))
        deadlines = plan["deadlines"]
        self.deadline_kind = <int*>malloc(sizeof(int) * (len(deadlines) + 1))
        self.deadline_amount = <int*>malloc(sizeof(int) * (len(deadlines) + 1))
        if self.work_counts == NULL or self.work_ords == NULL or self.deadline_kind == NULL or \
                self.deadline_amount == NULL:
            raise MemoryError()
        for i in range(self.nwork_days):
            self.work_counts[i] = counts[i]
        for i in range(self.nwork_ords):
            self.work_ords[i] = ords[i]
        for i, (kind, amount) in enumerate(deadlines):
            self.deadline_kind[i], self.deadline_amount[i] = kind, amount
        wire = plan["response_wire"]
        self.evidence_tag = wire["element_tag"]
        self.fact_id_tag = wire["fact_id_tag"]
        self.date_tag = wire["date_tag"]
        self.fact_type_fields = list(wire["fact_type_fields"])
        self.measured_number = list(wire["measured_number"])
        self.measured_missing = list(wire["measured_missing"])
        self.measured_other = wire["measured_other"]
        self.count_tag = wire["count_tag"]
        self.flag_type, self.evidence_type = plan["flag_types"]
        self.max_evidence = plan["max_evidence"]
        # filter programs
        programs = plan["programs"]
        instructions = [ins for program in programs for ins in program]
        self.nins = len(instructions)
        self.nprogs = len(programs)
        self.ins = <Ins*>malloc(sizeof(Ins) * (self.nins + 1))
        self.prog_start = <int*>malloc(sizeof(int) * (self.nprogs + 1))
        self.prog_len = <int*>malloc(sizeof(int) * (self.nprogs + 1))
        members = [m for ins in instructions for m in ins.get("set", ())]
        self.sets = <double*>malloc(sizeof(double) * (len(members) + 1))
        for i in range(len(members)):
            self.sets[i] = members[i]
        self.holds_codes = []
        j = 0
        set_at = 0
        for i in range(self.nprogs):
            self.prog_start[i] = j
            self.prog_len[i] = len(programs[i])
            for d in programs[i]:
                x = &self.ins[j]
                x.op = d["op"]
                x.col = d.get("col", -1)
                x.cmp = d.get("cmp", 0)
                x.is_none = d.get("is_none", 0)
                x.k = d.get("k", 0.0)
                x.set_start = set_at
                x.set_len = len(d.get("set", ()))
                x.set_has_none = d.get("set_has_none", 0)
                set_at += x.set_len
                x.list_slot = d.get("list_slot", -1)
                x.bit = -2
                x.value = d.get("value", 0)
                if x.op == I_HOLDS:
                    x.value = len(self.holds_codes)
                    code = d["code"]
                    self.holds_codes.append(_sys.intern(code) if type(code) is str else code)
                j += 1
        # series and their bases
        series = plan["series"]
        self.nseries = len(series)
        self.series_spec = <int*>malloc(sizeof(int) * 3 * (self.nseries + 1))
        self.base_of_series = <int*>malloc(sizeof(int) * (self.nseries + 1))
        bases = {}
        for i in range(self.nseries):
            t, datecol, program = series[i]
            self.series_spec[3 * i] = t
            self.series_spec[3 * i + 1] = datecol
            self.series_spec[3 * i + 2] = program
            self.base_of_series[i] = bases.setdefault((t, datecol), len(bases))
        self.nbases = len(bases)
        self.base_spec = <int*>malloc(sizeof(int) * 2 * (self.nbases + 1))
        for (t, datecol), i in bases.items():
            self.base_spec[2 * i] = t
            self.base_spec[2 * i + 1] = datecol
        # rule conditions
        rules = plan["rules"]
        self.nrules = len(rules)
        conds = [d for rule in rules for d in rule]
        self.conds = <Cond*>malloc(sizeof(Cond) * (len(conds) + 1))
        self.rule_start = <int*>malloc(sizeof(int) * (self.nrules + 1))
        self.rule_len = <int*>malloc(sizeof(int) * (self.nrules + 1))
        members = [m for d in conds for m in d.get("set", ())]
        self.rule_sets = <double*>malloc(sizeof(double) * (len(members) + 1))
        for i in range(len(members)):
            self.rule_sets[i] = members[i]
        j = 0
        set_at = 0
        for i in range(self.nrules):
            self.rule_start[i] = j
            self.rule_len[i] = len(rules[i])
            for d in rules[i]:
                c = &self.conds[j]
                c.op = d["op"]
                c.value = d.get("value", 0)
                c.left = d.get("left", -1)
                c.right = d.get("right", -1)
                c.lk = d.get("lk", 0.0)
                c.rk = d.get("rk", 0.0)
                c.cmp = d.get("cmp", 0)
                c.set_start = set_at
                c.set_len = len(d.get("set", ()))
                c.negate = d.get("negate", 0)
                set_at += c.set_len
                j += 1
        # measures
        measures = plan["measures"]
        self.nmeasures = len(measures)
        self.specs = <MSpec*>malloc(sizeof(MSpec) * (self.nmeasures + 1))
        all_inputs = [k for m in measures for k in m["inputs"]]
        self.inputs = <int*>malloc(sizeof(int) * (len(all_inputs) + 1))
        for i in range(len(all_inputs)):
            self.inputs[i] = all_inputs[i]
        at = 0
        for i in range(self.nmeasures):
            m = measures[i]
            s = &self.specs[i]
            s.kind = m["kind"]
            s.t = m["t"]
            s.datecol = m["datecol"]
            s.series = m["series"]
            s.window = m["window"]
            s.window2 = m["window2"]
            s.field = m["field"]
            s.endcol = m["endcol"]
            s.overlaps = m["overlaps"]
            s.since_series = m["since_series"]
            s.last = m["last"]
            s.matching = m["matching"]
            s.group = m["group"]
            s.deadline = m["deadline"]
            s.followup_series = m["followup_series"]
            s.resolved_col = m["resolved_col"]
            s.period = m["period"]
            s.at_least = m["at_least"]
            s.missing_when_absent = m["missing_when_absent"]
            s.input_start = at
            s.input_len = len(m["inputs"])
            at += s.input_len
        # `holds` filters read the lists' bit masks: each program runs on one fact type
        for i in range(self.nseries):
            self.bind_holds(self.series_spec[3 * i + 2], self.series_spec[3 * i])
        for i in range(self.nmeasures):
            self.bind_holds(self.specs[i].matching, self.specs[i].t)

    cdef int bind_holds(self, int program, int t) except -1:
        """Set each `holds` test of a program run on fact type t to its code's bit in the list's
        mask: the code's index among the field's codes, -1 when it is not one of them (no list
        holds it), left -2 (the list is asked) for a list of ids or past 64 codes."""
        cdef Ins* x
        cdef Schema schema
        cdef int i, fn, bit
        if program < 0 or t < 0 or t == self.derived_type:  # derived rows have no lists
            return 0
        schema = self.schemas[t]
        for i in range(self.prog_start[program], self.prog_start[program] + self.prog_len[program]):
            x = &self.ins[i]
            if x.op != I_HOLDS:
                continue
            bit = -2
            for fn in range(MAX_FIELD):
                if schema.kind[fn] == K_CODE_LIST and schema.col[fn] == x.list_slot:
                    codes = schema.code_strs[fn]
                    if len(codes) <= 64:
                        code = self.holds_codes[x.value]
                        bit = codes.index(code) if code in codes else -1
            if x.bit != -2 and x.bit != bit:
                raise ValueError("a filter run on two fact types")
            x.bit = bit
        return 0

    cdef Table empty_table(self, int t):
        """A fact type's table when a case has none of its facts, as read_table makes it for no
        rows. Nothing writes to a table once it is read, so every such case shares one."""
        cdef Table table
        cdef Schema schema = self.schemas[t]
        if self.empty_tables is None:
            self.empty_tables = [None] * self.ntypes
        found = self.empty_tables[t]
        if found is not None:
            return found
        table = Table.__new__(Table)
        table.name = self.type_names[t]
        table.reserve(schema.ncols, 0, NULL, schema.nlists)
        table.keep = None
        table.lists = [[] for _ in range(schema.nlists)]
        table.nested = None if schema.nested is None else []
        self.empty_tables[t] = table
        return table

    cdef int working_between(self, int start, int end) except? -1:
        """calendar.working_days_between of two ordinals: two reads of the table when both are
        in it."""
        cdef int first = self.work_first
        if first <= start < first + self.nwork_days and first <= end < first + self.nwork_days:
            return self.work_counts[end - first] - self.work_counts[start - first]
        return self.working_days(_date(start), _date(end))

    cdef int deadline(self, int ordinal, int index) except -1:
        """calendar.deadline of a fact's date, as an ordinal: days and weeks added here, working
        days read from the table, months and years (and days outside the table) from Python."""
        cdef int kind = self.deadline_kind[index], amount = self.deadline_amount[index], i
        cdef long long day
        if kind == D_DAYS:
            day = <long long>ordinal + amount
            return <int>day if 1 <= day <= MAX_ORDINAL else MAX_ORDINAL
        if kind == D_WORKING and amount > 0 and self.work_first <= ordinal < self.work_first + self.nwork_days:
            i = self.work_counts[ordinal - self.work_first] + amount - 1
            if i < self.nwork_ords:
                return self.work_ords[i]
        return self.deadline_of(ordinal, index)

    def working_days_between(self, int start, int end):
        """working_between, for the tests to hold it to the calendar."""
        return self.working_between(start, end)

    def deadline_ordinal(self, int ordinal, int index):
        """deadline, for the tests to hold it to the calendar."""
        return self.deadline(ordinal, index)

    def answer_with(self, list flag_rules, dict measure_names, dict rule_names, undetermined, outcome_type):
        """What evaluate answers with: see the attributes. engine/native.py calls this once, after
        it made the FlagRules."""
        if len(measure_names) != self.nmeasures or len(rule_names) != self.nrules:
            raise ValueError("a name for each measure and each rule")
        self.flag_rules, self.measure_names, self.rule_names = flag_rules, measure_names, rule_names
        self.undetermined, self.outcome_type = undetermined, outcome_type

    def evaluate(self, bytes data, int today, int latest, list starts, list periods, as_of):
        """The Outcome of a case (its Case message bytes) at `today` (an ordinal), as the Python
        engine gives it, or None when the case is not accepted in full (the caller validates it
        the Python way). One call from engine/native.py does it all."""
        cdef Evaluated ev = self.measured(data, today, latest, starts, periods, as_of)
        cdef list decided
        if ev is None:
            return None
        decided = ev.decide()
        measures, outcomes = _named(self.measure_names, ev.values), _named(self.rule_names, decided)
        flags, shadow = ev.flags(self.flag_rules, measures)
        undetermined = self.undetermined(measures, outcomes) if ev.undecided else ()
        return _outcome(self.outcome_type, measures, outcomes, tuple(flags), tuple(shadow), undetermined)

    cdef Evaluated measured(self, bytes data, int today, int latest, list starts, list periods, as_of):
        """A case measured: its Evaluated, or None when it is not accepted in full."""
        cdef Evaluated ev = Evaluated.__new__(Evaluated)
        ev.core = self
        ev.today = today
        ev.as_of = as_of
        # the spare arena is this evaluation's (an evaluation under way in another thread, which
        # may be switched to when Python code runs, has its own)
        ev.arena = self.spare
        memset(&self.spare, 0, sizeof(Arena))
        ev.starts = starts
        ev.periods = periods
        try:
            ev.read(data, latest)
        except Declined:
            return None
        ev.measure_all()
        return ev


cdef inline bint _leaf(Core core, Ins* x, Table table, int row) except -1:
    """One filter instruction that reads the row (not AND, OR, NOT)."""
    cdef double v
    cdef int j
    if x.op == I_ALWAYS:
        return x.value != 0
    if x.op == I_HOLDS:
        if x.bit >= 0:
            return (table.masks[x.list_slot * table.cap + row] >> x.bit) & 1
        if x.bit == -1:
            return False
        items = table.lists[x.list_slot]
        return items is not None and core.holds_codes[x.value] in items[row]
    v = table.vals[row * table.ncols + x.col]
    if x.op == I_TRUTHY:
        return (not isnan(v)) and v != 0.0
    if x.op == I_ONE_OF:
        if isnan(v):
            return x.set_has_none != 0
        for j in range(x.set_start, x.set_start + x.set_len):
            if core.sets[j] == v:
                return True
        return False
    if x.is_none:
        return isnan(v) if x.cmp == C_EQ else not isnan(v)
    if x.cmp == C_EQ:
        return v == x.k
    if x.cmp == C_NE:
        return not (v == x.k)
    if x.cmp == C_LT:
        return v < x.k
    if x.cmp == C_LE:
        return v <= x.k
    if x.cmp == C_GT:
        return v > x.k
    return v >= x.k


cdef int _filter_one(Core core, Ins* x, Table table, Series* base, Series* s) noexcept:
    """A filter of one test over a base series, into s: how many rows pass, or -1 for a test it
    leaves to _leaf. _leaf's tests, the test chosen once for the series rather than per row."""
    cdef int i, j, n = 0, row, ncols = table.ncols, op = x.op, cmp = x.cmp, bit = x.bit
    cdef double* column = table.vals + x.col
    cdef unsigned long long* masks = NULL
    cdef double v, k = x.k
    cdef bint keep
    if op == I_HOLDS:
        if bit < 0:
            return -1
        masks = table.masks + x.list_slot * table.cap
    elif op == I_ALWAYS or (op == I_COMPARE and x.is_none):
        return -1
    elif op != I_COMPARE and op != I_TRUTHY and op != I_ONE_OF:
        return -1
    for i in range(base.n):
        row = base.rows[i]
        if op == I_HOLDS:
            keep = (masks[row] >> bit) & 1
        else:
            v = column[row * ncols]
            if op == I_TRUTHY:
                keep = (not isnan(v)) and v != 0.0
            elif op == I_ONE_OF:
                if isnan(v):
                    keep = x.set_has_none != 0
                else:
                    keep = False
                    for j in range(x.set_start, x.set_start + x.set_len):
                        if core.sets[j] == v:
                            keep = True
                            break
            elif cmp == C_EQ:
                keep = v == k
            elif cmp == C_NE:
                keep = not (v == k)
            elif cmp == C_LT:
                keep = v < k
            elif cmp == C_LE:
                keep = v <= k
            elif cmp == C_GT:
                keep = v > k
            else:
                keep = v >= k
        if keep:
            s.rows[n] = row
            s.ords[n] = base.ords[i]
            n += 1
    return n


cdef class Evaluated:
    """One evaluation: the case's tables, its series, every measure's value and evidence."""

    cdef Core core
    cdef list tables             # per fact type: Table (their columns are the arena's)
    cdef int today
    cdef object as_of
    cdef object starts           # per window index: the window's exclusive start ordinal
    cdef list periods            # per periods index: the period starts, newest first
    cdef Series* series          # per series index (rows NULL until made), `nseries` of them
    cdef Series* bases           # per base index, `nbases` of them
    cdef int nseries, nbases
    cdef dict ids
    cdef public list values      # per measure: int, float or None
    cdef readonly bint undecided  # decide() left a rule undetermined
    cdef signed char* truths     # decide()'s outcomes by rule: 1, 0, -1 undetermined
    cdef Facts* evidence         # per measure (see keep_evidence), `nevidence` of them
    cdef unsigned long long** bits  # per measure, its facts as a bit set of rows (see rows_bits), or NULL
    cdef unsigned long long* union_bits  # flag_evidence's scratch: a bit set over the largest table
    cdef int nevidence
    cdef int birth
    # Evidence made in this evaluation (flags of one case cite the same facts), by fact: a fact's
    # slot is offsets[t] + row; made_ord holds the date its element was made with (0: none yet),
    # made_at and made_size where its Flag.evidence element, framed, is in made_buf (C memory,
    # not a bytes object per element).
    cdef int* offsets
    cdef int nfacts
    cdef int* made_ord
    cdef unsigned char* seen     # scratch, one byte per fact
    cdef Py_ssize_t* made_at     # per slot, the element's offset in made_buf
    cdef int* made_size          # and its size
    cdef char* made_buf
    cdef Py_ssize_t made_used, made_cap
    cdef Cand* cands             # flag_evidence's scratch, max_evidence + 1 of them
    cdef int* slots              # flag_wire's, as many
    cdef Arena arena             # the C memory of all the above, tables and series included
    cdef bytes data              # the request's bytes, which the tables' ids point into

    def __cinit__(self):
        self.offsets = NULL
        self.made_ord = NULL
        self.seen = NULL
        self.made_at = NULL
        self.made_size = NULL
        self.made_buf = NULL
        self.cands = NULL
        self.slots = NULL
        self.evidence = NULL
        self.series = NULL
        self.bases = NULL
        memset(&self.arena, 0, sizeof(Arena))

    def __dealloc__(self):
        # The tables made from the arena do not free their columns, and only this evaluation
        # holds them (`tables` is not public): the arena goes back to the Core, or is freed.
        # (Cython calls this before it lets go of `tables` and `core`.)
        cdef Core core = self.core
        if core is not None and core.spare.chunks == NULL and self.arena.total <= ARENA_KEEP:
            _arena_reset(&self.arena)
            core.spare = self.arena
        else:
            _arena_free(&self.arena)

    cdef void* alloc(self, size_t size) except NULL:
        """`size` bytes of C memory that live as long as this evaluation."""
        cdef void* p = _arena_alloc(&self.arena, size)
        if p == NULL:
            raise MemoryError()
        return p

    cdef int start_evidence(self) except -1:
        """The slots of every fact, for the evidence flags pick (after the tables are read)."""
        cdef int t, total = 0, limit = self.core.max_evidence
        self.offsets = <int*>self.alloc(sizeof(int) * (self.core.ntypes + 1))
        for t in range(self.core.ntypes):
            self.offsets[t] = total
            total += (<Table>self.tables[t]).n
        self.nfacts = total
        self.made_ord = <int*>self.alloc(sizeof(int) * (total + 1))
        self.seen = <unsigned char*>self.alloc(total + 1)
        self.made_at = <Py_ssize_t*>self.alloc(sizeof(Py_ssize_t) * (total + 1))
        self.made_size = <int*>self.alloc(sizeof(int) * (total + 1))
        self.made_buf, self.made_used, self.made_cap = NULL, 0, 0
        self.cands = <Cand*>self.alloc(sizeof(Cand) * ((limit if limit > 0 else 0) + 1))
        self.union_bits = <unsigned long long*>self.alloc(sizeof(unsigned long long) * ((total >> 6) + 1))
        self.slots = <int*>self.alloc(sizeof(int) * ((limit if limit > 0 else 0) + 1))
        memset(self.made_ord, 0, sizeof(int) * (total + 1))
        return 0

    cdef int make_element(self, Cand* c, int slot) except -1:
        """The fact's Flag.evidence element, framed, written at the end of made_buf (grown as
        needed: an element is under 200 bytes) and recorded as the slot's."""
        cdef Py_ssize_t size = _evidence_size(self.core, c), cap
        cdef char* grown
        if self.made_used + size > self.made_cap:  # elements are found by offset: a copy will do
            cap = 2 * self.made_cap if self.made_cap else 4096
            while cap < self.made_used + size:
                cap *= 2
            grown = <char*>self.alloc(cap)
            if self.made_used:
                memcpy(grown, self.made_buf, self.made_used)
            self.made_buf, self.made_cap = grown, cap
        _evidence_element(self.core, c, self.made_buf + self.made_used)
        self.made_at[slot] = self.made_used
        self.made_size[slot] = <int>size
        self.made_used += size
        self.made_ord[slot] = c.ord
        return 0

    # --- reading ---------------------------------------------------------------------------

    cdef int read(self, bytes data, int latest) except -1:
        cdef const unsigned char* buf = <const unsigned char*>PyBytes_AS_STRING(data)
        cdef Py_ssize_t end = PyBytes_GET_SIZE(data), pos = 0, start
        cdef unsigned long long key, length
        cdef int fn, wire, t, total = 0, limit, j
        cdef Core core = self.core
        # Each fact takes at least two bytes (its tag and its length), so no more than end / 2 of
        # them fit: buffers up to that size, not for max_facts (240 KB)...
        cdef int bound = core.max_facts if core.max_facts < end // 2 else <int>(end // 2)
        # ...and grown to that as facts come: sized for the bound at once, a case of 2,000 facts
        # took 1.4 MB a call
        cdef int room = bound if bound < 512 else 512
        cdef int* kinds = <int*>self.alloc(sizeof(int) * (room + 1))
        cdef Py_ssize_t* spans = <Py_ssize_t*>self.alloc(sizeof(Py_ssize_t) * 2 * (room + 1))
        cdef Py_ssize_t* pairs
        cdef void* grown
        cdef int* first = <int*>self.alloc(sizeof(int) * (core.ntypes + 1))
        self.data = data
        self.ids = {}
        self.birth = 0
        case_id_ok = False
        while pos < end:
            if not _varint(buf, end, &pos, &key):
                raise Declined()
            fn = _field_number(key)
            wire = <int>(key & 7)
            if wire == 2 and (fn == 1 or fn == 2 or (fn < MAX_FIELD and core.case_fields[fn] >= 0)):
                if not _varint(buf, end, &pos, &length) or length > <unsigned long long>(end - pos):
                    raise Declined()
                start = pos
                pos += <Py_ssize_t>length
                if fn == 1:
                    if not _id_ok(buf + start, pos - start, core.id_max_length):
                        raise Declined()
                    case_id_ok = True
                elif fn == 2:
                    self.read_child(buf, start, pos, latest)
                else:
                    if total >= core.max_facts or total >= bound:
                        raise Declined()
                    if total >= room:
                        room = 2 * room if 2 * room < bound else bound
                        grown = self.alloc(sizeof(int) * (room + 1))
                        memcpy(grown, kinds, sizeof(int) * total)
                        kinds = <int*>grown
                        grown = self.alloc(sizeof(Py_ssize_t) * 2 * (room + 1))
                        memcpy(grown, spans, sizeof(Py_ssize_t) * 2 * total)
                        spans = <Py_ssize_t*>grown
                    kinds[total] = core.case_fields[fn]
                    spans[2 * total] = start
                    spans[2 * total + 1] = pos
                    total += 1
            elif not _skip_field(buf, end, &pos, key):
                raise Declined()
        if not case_id_ok:
            raise Declined()  # an empty case id is not an id
        # the facts grouped by type, each type's in the order they came (a counting sort)
        pairs = <Py_ssize_t*>self.alloc(sizeof(Py_ssize_t) * 2 * (total + 1))
        memset(first, 0, sizeof(int) * (core.ntypes + 1))
        for j in range(total):
            first[kinds[j] + 1] += 1
        for t in range(core.ntypes):
            first[t + 1] += first[t]
        for j in range(total):
            t = kinds[j]
            pairs[2 * first[t]] = spans[2 * j]
            pairs[2 * first[t] + 1] = spans[2 * j + 1]
            first[t] += 1
        self.tables = [None] * core.ntypes
        limit = 0
        for t in range(core.ntypes):  # first[t] is now where type t's facts end
            if t != core.derived_type and first[t] == limit:  # none of the type: read-only, shared
                self.tables[t] = core.empty_table(t)
            elif t != core.derived_type:
                self.tables[t] = self.read_table(buf, core.schemas[t], pairs + 2 * limit, first[t] - limit,
                                                 latest, core.type_names[t])
            limit = first[t]
        if core.derived_type >= 0:
            self.tables[core.derived_type] = self.derive_agencies(self.tables[core.conference_type])
        return 0

    cdef int read_child(self, const unsigned char* buf, Py_ssize_t pos, Py_ssize_t end, int latest) except -1:
        cdef unsigned long long key, length
        cdef int fn, wire, ordinal
        cdef Py_ssize_t start
        while pos < end:
            if not _varint(buf, end, &pos, &key):
                raise Declined()
            fn = _field_number(key)
            wire = <int>(key & 7)
            if fn == self.core.birth_field and wire == 2:
                if not _varint(buf, end, &pos, &length) or length > <unsigned long long>(end - pos):
                    raise Declined()
                start = pos
                pos += <Py_ssize_t>length
                ordinal = _parse_date(buf + start, pos - start)
                if ordinal < 0 or (ordinal > 0 and (ordinal < self.core.first_ordinal or ordinal > latest)):
                    raise Declined()
                self.birth = ordinal
            elif not _skip_field(buf, end, &pos, key):
                raise Declined()
        return 0

    cdef Table read_table(self, const unsigned char* buf, Schema schema, Py_ssize_t* pairs, int n, int latest,
                          str name):
        cdef Table table = Table.__new__(Table)
        cdef int row, fn, wire, kind, col, ncols = schema.ncols, ordinal, i, j
        cdef Py_ssize_t pos, end, start
        cdef unsigned long long key, length, v
        cdef double* r
        cdef double value
        cdef unsigned int seen          # bit fn: field fn has a value in this row
        cdef int a, b
        cdef Py_ssize_t* inner
        cdef unsigned int* id_hashes = <unsigned int*>self.alloc(sizeof(unsigned int) * (n + 1))  # _id_hash's
        table.name = name
        table.reserve(ncols, n, &self.arena, schema.nlists)
        table.n = n
        table.keep = self.data
        table.lists = [None] * schema.nlists  # most rows have no list items: made at the first
        table.nested = None if schema.nested is None else [()] * n
        for row in range(n):
            pos, end = pairs[2 * row], pairs[2 * row + 1]
            table.idp[row] = NULL
            table.idl[row] = 0
            id_hashes[row] = _id_hash(NULL, 0)
            r = table.vals + row * ncols
            # each field as if absent: a field read leaves its column as the absent value or
            # sets it (an unknown enum sets NaN, its absent value) and says so in `seen`
            memcpy(r, schema.default_row, sizeof(double) * ncols)
            seen = 0
            while pos < end:
                if not _varint(buf, end, &pos, &key):
                    raise Declined()
                fn = _field_number(key)
                wire = <int>(key & 7)
                kind = schema.kind[fn] if fn < MAX_FIELD else K_SKIP
                if kind == K_SKIP:
                    if not _skip_field(buf, end, &pos, key):
                        raise Declined()
                    continue
                col = schema.col[fn]
                if kind == K_BOOL or kind == K_OPT_BOOL or kind == K_ENUM:
                    if wire != 0 or not _varint(buf, end, &pos, &v):
                        raise Declined()
                    if kind == K_ENUM:
                        found = schema.enum_map[fn].get(v)
                        if found is None:  # unknown: None, even after a known value
                            r[col] = NAN
                            seen &= ~(1u << fn)
                        else:
                            r[col] = found
                            seen |= 1u << fn
                    else:
                        r[col] = 1.0 if v else 0.0
                        seen |= 1u << fn
                    continue
                if kind == K_PERCENT:
                    if wire != 1 or pos + 8 > end:
                        raise Declined()
                    value = (<double*>(buf + pos))[0]
                    pos += 8
                    if not (0.0 <= value <= 100.0):
                        raise Declined()
                    r[col] = value
                    seen |= 1u << fn
                    continue
                if wire != 2 or not _varint(buf, end, &pos, &length) or length > <unsigned long long>(end - pos):
                    raise Declined()
                start = pos
                pos += <Py_ssize_t>length
                if kind == K_ID or kind == K_OPT_ID:
                    if kind == K_ID and col == schema.id_col:  # the fact's id: hashed for check_unique
                        if not _id_ok_hash(buf + start, pos - start, schema.max_length, &id_hashes[row]):
                            raise Declined()
                        table.idp[row] = <const char*>(buf + start)
                        table.idl[row] = pos - start
                    elif not _id_ok(buf + start, pos - start, schema.max_length):
                        raise Declined()
                    seen |= 1u << fn
                    if schema.intern[fn]:
                        r[col] = self.intern(PyBytes_FromStringAndSize(<const char*>(buf + start), pos - start))
                elif kind == K_DATE:
                    ordinal = _parse_date(buf + start, pos - start)
                    if ordinal < 0 or (ordinal > 0 and (ordinal < self.core.first_ordinal or ordinal > latest)):
                        raise Declined()
                    if ordinal > 0:
                        r[col] = ordinal
                        seen |= 1u << fn
                    else:  # empty, and the last of the field's values counts: absent, as protobuf reads it
                        r[col] = schema.absent[fn]
                        seen &= ~(1u << fn)
                elif kind == K_CODE:
                    i = _code_index(schema, fn, buf + start, pos - start)
                    if i == -2:
                        raise Declined()
                    if i >= 0:
                        r[col] = i
                        seen |= 1u << fn
                    else:  # empty: as a date above
                        r[col] = schema.absent[fn]
                        seen &= ~(1u << fn)
                elif kind == K_ID_LIST or kind == K_CODE_LIST:
                    self.add_list_item(table, schema, fn, row, buf, start, pos)
                elif kind == K_NESTED:
                    nested = table.nested[row]
                    if len(nested) >= self.core.max_list_items:
                        raise Declined()
                    table.nested[row] = nested + ((start, pos),)
                else:
                    raise Declined()
            # absent or empty fields have the model's default (the row's start), or are refused
            # when required
            if schema.required & ~seen:
                raise Declined()
            for i in range(schema.nspans):
                a, b = schema.span_start[i], schema.span_end[i]
                if not isnan(r[b]) and r[b] < r[a]:
                    raise Declined()
        if n > 1:
            if schema.id_col >= 0:
                self.check_unique(table, id_hashes)
            elif schema.unique_col >= 0:
                values = [table.get(row, schema.unique_col) for row in range(n)]
                if len(set(values)) != n:
                    raise Declined()
        if schema.nested is not None:
            for row in range(n):
                if table.nested[row]:
                    nested = table.nested[row]
                    inner = <Py_ssize_t*>self.alloc(sizeof(Py_ssize_t) * 2 * len(nested))
                    for i in range(len(nested)):
                        inner[2 * i], inner[2 * i + 1] = nested[i]
                    table.nested[row] = self.read_table(buf, schema.nested, inner, len(nested), latest, "")
                else:
                    table.nested[row] = None
        return table

    cdef int add_list_item(self, Table table, Schema schema, int fn, int row, const unsigned char* buf,
                           Py_ssize_t start, Py_ssize_t end) except -1:
        cdef int kind = schema.kind[fn], col = schema.col[fn], i
        cdef list slot = table.lists[col]
        if slot is None:
            slot = table.lists[col] = [()] * table.n
        current = slot[row]
        if len(current) >= self.core.max_list_items:
            raise Declined()
        if kind == K_ID_LIST:
            if not _id_ok(buf + start, end - start, schema.max_length):
                raise Declined()
            item = PyUnicode_DecodeASCII(<const char*>(buf + start), end - start, NULL)
        else:
            i = _code_index(schema, fn, buf + start, end - start)
            if i < 0:
                raise Declined()
            item = schema.code_strs[fn][i]  # the same object as a filter's code: `in` finds it by identity
            if i < 64:
                table.masks[col * table.cap + row] |= (<unsigned long long>1) << i
        slot[row] = current + (item,)
        return 0

    cdef int check_unique(self, Table table, unsigned int* hashes) except -1:
        """Ids are unique within a fact type (the record readers refuse a repeated one): each row's
        id goes into an open-addressing hash set of rows, comparing bytes only on equal hashes
        (each row's _id_hash in `hashes`)."""
        cdef int n = table.n, i, j, size = 16
        cdef unsigned int h
        cdef int* slots  # row + 1, 0: empty
        while size < 2 * n:
            size <<= 1
        slots = <int*>self.alloc(sizeof(int) * size)
        memset(slots, 0, sizeof(int) * size)
        for i in range(n):
            h = hashes[i] & (size - 1)
            while slots[h]:
                j = slots[h] - 1
                if hashes[j] == hashes[i] and table.idl[j] == table.idl[i] and \
                        memcmp(table.idp[j], table.idp[i], table.idl[i]) == 0:
                    raise Declined()
                h = (h + 1) & (size - 1)
            slots[h] = i + 1
        return 0

    cdef double intern(self, bytes value):
        found = self.ids.get(value)
        if found is None:
            found = self.ids[value] = float(len(self.ids))
        return found

    cdef Table derive_agencies(self, Table conferences):
        """One fact per conference agency (case.facts.conference_agency_facts), as columns."""
        cdef Table table = Table.__new__(Table)
        cdef Table agencies
        cdef int n = 0, row, a, out = 0, ncols, c, agency
        cdef double* r
        cdef double due, received, kind
        cdef int c_date, c_conf_id, c_kind, c_agency, c_invited, c_attended, c_due, c_received
        cdef int c_report_received, c_late, c_absent, conf_date_col, conf_kind_col
        cdef int a_agency_col, a_invited_col, a_attended_col, a_due_col, a_received_col
        (ncols, c_date, c_conf_id, c_kind, c_agency, c_invited, c_attended, c_due, c_received,
         c_report_received, c_late, c_absent, conf_date_col, conf_kind_col, kind_map,
         a_agency_col, a_invited_col, a_attended_col, a_due_col, a_received_col, agency_map,
         agency_names) = self.core.derived_columns
        for row in range(conferences.n):
            if conferences.nested[row] is not None:
                n += (<Table>conferences.nested[row]).n
        table.name = self.core.type_names[self.core.derived_type]
        table.reserve(ncols, n, &self.arena, 0)
        table.n = n
        table.keep = []
        table.lists = []
        table.nested = None
        for row in range(conferences.n):
            if conferences.nested[row] is None:
                continue
            agencies = conferences.nested[row]
            conf_id = PyBytes_FromStringAndSize(conferences.idp[row], conferences.idl[row])
            for a in range(agencies.n):
                r = table.vals + out * ncols
                for c in range(ncols):
                    r[c] = NAN
                agency = <int>agencies.get(a, a_agency_col)
                derived_id = conf_id + b"/" + agency_names[agency]
                table.keep.append(derived_id)
                table.idp[out] = PyBytes_AS_STRING(derived_id)
                table.idl[out] = PyBytes_GET_SIZE(derived_id)
                r[c_date] = conferences.get(row, conf_date_col)
                if c_conf_id >= 0:
                    r[c_conf_id] = self.intern(conf_id)
                kind = conferences.get(row, conf_kind_col)
                r[c_kind] = NAN if isnan(kind) else kind_map[<int>kind]
                r[c_agency] = agency_map[agency]
                r[c_invited] = agencies.get(a, a_invited_col)
                r[c_attended] = agencies.get(a, a_attended_col)
                due = agencies.get(a, a_due_col)
                received = agencies.get(a, a_received_col)
                r[c_due] = due
                r[c_received] = received
                r[c_report_received] = 0.0 if isnan(received) else 1.0
                r[c_late] = 1.0 if (not isnan(due) and (isnan(received) or received > due)) else 0.0
                r[c_absent] = 1.0 if (r[c_invited] != 0.0 and r[c_attended] == 0.0 and isnan(received)) else 0.0
                out += 1
        return table

    # --- series ----------------------------------------------------------------------------

    cdef Series* base(self, int b) except NULL:
        cdef int t, datecol, i, n = 0
        cdef Table table
        cdef Series* s = &self.bases[b]
        if s.rows != NULL:
            return s
        t, datecol = self.core.base_spec[2 * b], self.core.base_spec[2 * b + 1]
        table = self.tables[t]
        for i in range(table.n):
            if not isnan(table.get(i, datecol)):
                n += 1
        _series_alloc(&self.arena, s, n)
        s.t, s.datecol = t, datecol
        n = 0
        for i in range(table.n):
            if not isnan(table.get(i, datecol)):
                s.rows[n] = i
                n += 1
        if n > 1:
            _sort_by_date_then_id(s.rows, n, table, datecol, &self.arena)
        for i in range(n):
            s.ords[i] = <int>table.get(s.rows[i], datecol)
        return s

    cdef Series* get_series(self, int k) except NULL:
        cdef Series* base
        cdef Series* s = &self.series[k]
        cdef int program, i, n = 0
        cdef Table table
        cdef Ins* x
        if s.rows != NULL:
            return s
        base = self.base(self.core.base_of_series[k])
        program = self.core.series_spec[3 * k + 2]
        if program < 0:
            s[0] = base[0]
        else:
            table = self.tables[base.t]
            _series_alloc(&self.arena, s, base.n)
            s.t, s.datecol = base.t, base.datecol
            if self.core.prog_len[program] == 1:  # most filters: one test, without the stack
                x = &self.core.ins[self.core.prog_start[program]]
                n = _filter_one(self.core, x, table, base, s)
                if n < 0:
                    n = 0
                    for i in range(base.n):
                        if _leaf(self.core, x, table, base.rows[i]):
                            s.rows[n] = base.rows[i]
                            s.ords[n] = base.ords[i]
                            n += 1
            else:
                for i in range(base.n):
                    if self.passes(program, table, base.rows[i]):
                        s.rows[n] = base.rows[i]
                        s.ords[n] = base.ords[i]
                        n += 1
            s.n = n
        return s

    cdef bint passes(self, int program, Table table, int row) except -1:
        cdef int stack[MAX_STACK]
        cdef int sp = 0, i
        cdef Ins* x
        cdef Core core = self.core
        for i in range(core.prog_start[program], core.prog_start[program] + core.prog_len[program]):
            x = &core.ins[i]
            if x.op == I_AND:
                sp -= 1
                stack[sp - 1] = stack[sp - 1] and stack[sp]
            elif x.op == I_OR:
                sp -= 1
                stack[sp - 1] = stack[sp - 1] or stack[sp]
            elif x.op == I_NOT:
                stack[sp - 1] = not stack[sp - 1]
            else:
                stack[sp] = _leaf(core, x, table, row)
                sp += 1
        return stack[0] != 0

    # --- measures ----------------------------------------------------------------------------

    cdef int measure_all(self) except -1:
        cdef int m
        self.series = <Series*>self.alloc(sizeof(Series) * (self.core.nseries + 1))
        self.bases = <Series*>self.alloc(sizeof(Series) * (self.core.nbases + 1))
        memset(self.series, 0, sizeof(Series) * (self.core.nseries + 1))
        memset(self.bases, 0, sizeof(Series) * (self.core.nbases + 1))
        self.nseries, self.nbases = self.core.nseries, self.core.nbases
        self.values = [None] * self.core.nmeasures
        self.evidence = <Facts*>self.alloc(sizeof(Facts) * (self.core.nmeasures + 1))
        memset(self.evidence, 0, sizeof(Facts) * (self.core.nmeasures + 1))
        self.bits = <unsigned long long**>self.alloc(sizeof(unsigned long long*) * (self.core.nmeasures + 1))
        memset(self.bits, 0, sizeof(unsigned long long*) * (self.core.nmeasures + 1))
        self.nevidence = self.core.nmeasures
        self.start_evidence()
        for m in range(self.core.nmeasures):
            self.measure(m)
        return 0

    cdef list decide(self):
        """Every rule's outcome in order, as the reference evaluator gives it: True, False or
        None (undetermined: missing data could change it)."""
        cdef Core core = self.core
        cdef int n = core.nmeasures, r, i, j, sp, a, b, unknown, decisive
        cdef double* mv = <double*>self.alloc(sizeof(double) * (n + 1))
        cdef signed char* out = <signed char*>self.alloc(core.nrules + 1)
        cdef signed char stack[MAX_STACK]
        cdef Cond* c
        cdef double left, right
        cdef signed char t
        for i in range(n):
            v = self.values[i]
            mv[i] = NAN if v is None else _as_double(v)
        for r in range(core.nrules):
            sp = 0
            for i in range(core.rule_start[r], core.rule_start[r] + core.rule_len[r]):
                c = &core.conds[i]
                if c.op == R_CONST:
                    t = c.value
                elif c.op == R_MEASURE:
                    left = mv[c.left]
                    t = -1 if isnan(left) else (1 if left != 0.0 else 0)
                elif c.op == R_FLAGGED:
                    t = out[c.value]
                elif c.op == R_COMPARE:
                    left = mv[c.left] if c.left >= 0 else c.lk
                    right = mv[c.right] if c.right >= 0 else c.rk
                    if isnan(left) or isnan(right):
                        t = -1
                    elif c.cmp == C_EQ:
                        t = left == right
                    elif c.cmp == C_NE:
                        t = left != right
                    elif c.cmp == C_LT:
                        t = left < right
                    elif c.cmp == C_LE:
                        t = left <= right
                    elif c.cmp == C_GT:
                        t = left > right
                    else:
                        t = left >= right
                elif c.op == R_IN:
                    left = mv[c.left]
                    if isnan(left):
                        t = -1
                    else:
                        t = 0
                        for j in range(c.set_start, c.set_start + c.set_len):
                            if core.rule_sets[j] == left:
                                t = 1
                                break
                        if c.negate:
                            t = 1 - t
                elif c.op == R_NOT:
                    t = stack[sp - 1]
                    sp -= 1
                    t = -1 if t < 0 else 1 - t
                else:  # R_AND, R_OR over the top c.value truths
                    decisive = 1 if c.op == R_OR else 0
                    unknown = 0
                    t = 1 - decisive
                    for j in range(sp - c.value, sp):
                        if stack[j] == decisive:
                            t = decisive
                            unknown = 0
                            break
                        if stack[j] < 0:
                            unknown = 1
                    if unknown:
                        t = -1
                    sp -= c.value
                stack[sp] = t
                sp += 1
            out[r] = stack[0]
            if out[r] < 0:
                self.undecided = True
        self.truths = out
        return [None if out[r] < 0 else out[r] == 1 for r in range(core.nrules)]

    cdef inline int start_of(self, int window):
        return self.starts[window]

    cdef int measure(self, int m) except -1:
        cdef MSpec* s = &self.core.specs[m]
        cdef int kind = s.kind, first, end, start, i, j, n, latest, count, best, best_at, previous, current, floor
        cdef int trailing, before, held, lower, upper, least, today = self.today, window_start
        cdef Series* series
        cdef Series* anchors
        cdef Table table
        cdef double e, v
        cdef int span_start = 0, span_end = -1  # the evidence: series.rows[span_start:span_end], or
        cdef int* kept = NULL                  # these rows, nkept of them (the arena's),
        cdef int nkept = 0
        cdef list kept_rows = None             # or these
        cdef unsigned long long* keys
        value = None
        if kind == M_AGE:
            self.values[m] = self.age()
            return 0
        if kind == M_SUM or kind == M_RATIO:
            self.derived(m, s)
            return 0
        # _located: the measure's series, its window's start position and the end at as_of
        if s.missing_when_absent:
            first = self.first_date(s.t)
            if first == 0 or first > today:
                return 0
        series = self.get_series(s.series)
        end = _bisect_right(series.ords, today, 0, series.n)
        start = 0 if s.window < 0 else _bisect_right(series.ords, self.start_of(s.window), 0, series.n)
        table = self.tables[series.t]
        if kind == M_COUNT:
            if s.overlaps:
                kept = <int*>self.alloc(sizeof(int) * (end + 1))
                nkept = self.overlapping(s, series, start, end, kept)
                value = nkept
            else:
                if s.since_series >= 0:
                    anchors = self.get_series(s.since_series)
                    i = _bisect_right(anchors.ords, today, 0, anchors.n)
                    if i:
                        j = _bisect_right(series.ords, anchors.ords[i - 1], 0, series.n)
                        if j > start:
                            start = j
                value, span_start, span_end = end - start, start, end
        elif kind == M_DISTINCT:
            kept = <int*>self.alloc(sizeof(int) * (end + 1))
            if s.overlaps:
                n = self.overlapping(s, series, start, end, kept)
            else:
                n = end - start
                memcpy(kept, series.rows + start, sizeof(int) * n)
            for i in range(n):  # the rows with a value are the evidence
                if not isnan(table.get(kept[i], s.field)):
                    kept[nkept] = kept[i]
                    nkept += 1
            keys = <unsigned long long*>self.alloc(sizeof(unsigned long long) * 2 * (nkept + 1))
            value = _distinct(table, s.field, kept, nkept, keys)
        elif kind == M_DAYS_SINCE or kind == M_WORKING_DAYS_SINCE:
            if end == 0:
                return 0
            latest = series.ords[end - 1]
            if kind == M_DAYS_SINCE:
                value = today - latest
            else:
                value = self.core.working_between(latest, today)
            span_start, span_end = end - 1, end
        elif kind == M_OPEN:
            kept = <int*>self.alloc(sizeof(int) * (end + 1))
            for i in range(end):
                e = table.get(series.rows[i], s.endcol)
                if isnan(e) or e > today:
                    kept[nkept] = series.rows[i]
                    nkept += 1
            value = nkept
        elif kind == M_LATEST:
            if end == 0:
                return 0
            if s.group >= 0:
                return self.latest_by_group(m, s, series, table, end)
            start = end - s.last if end - s.last > 0 else 0
            if s.matching < 0:
                value = end - start
            else:
                count = 0
                for i in range(start, end):
                    if self.passes(s.matching, table, series.rows[i]):
                        count += 1
                value = count
            span_start, span_end = start, end
        elif kind == M_OVERDUE:
            kept = <int*>self.alloc(sizeof(int) * (end - start + 1))
            nkept = self.overdue(s, series, table, start, end, kept)
            value = nkept
        elif kind == M_RATE:
            if end == start:
                value = 0.0
            else:
                first = series.ords[0]
                if s.window >= 0 and self.start_of(s.window) > first:
                    first = self.start_of(s.window)
                years = (today - first) / 365.25
                if years < 1.0:
                    years = 1.0
                value, span_start, span_end = _round_float((end - start) / years, 2), start, end
        elif kind == M_TREND:
            before = _bisect_right(series.ords, self.start_of(s.window2), 0, start)
            value, span_start, span_end = (end - start) - (start - before), before, end
        elif kind == M_PERIODS:  # one measure of a ruleset, if any: Python lists will do
            least = s.at_least
            held = 0
            intervals = []
            upper = end
            for bound in self.periods[s.period]:
                lower = _bisect_right(series.ords, bound, start, upper)
                if upper - lower >= least:
                    held += 1
                    intervals.append((lower, upper))
                upper = lower
            kept_rows = [series.rows[i] for lower, upper in reversed(intervals) for i in range(lower, upper)]
            value = held
        elif kind == M_LONGEST_GAP:
            if end == 0:
                return 0
            floor = self.start_of(s.window) if s.window >= 0 else 0
            first = start - 1 if start > 0 else 0
            best, best_at = -1, end
            previous = series.ords[first] if series.ords[first] > floor else floor
            for i in range(first + 1, end):
                current = series.ords[i]
                if current - previous >= best:
                    best, best_at = current - previous, i
                previous = current
            trailing = today - (series.ords[end - 1] if series.ords[end - 1] > floor else floor)
            if trailing >= best:
                value, span_start, span_end = trailing, end - 1, end
            else:
                value, span_start, span_end = best, best_at - 1, best_at + 1
        elif kind == M_LONGEST_OPEN:
            value = 0
            for i in range(end):
                e = table.get(series.rows[i], s.endcol)
                if isnan(e) or e > today:
                    value, span_start, span_end = today - series.ords[i], i, i + 1
                    break
        else:
            raise ValueError(f"measure kind {kind} is not in the core")
        self.values[m] = value
        if span_end >= 0:
            self.keep_span(m, series, span_start, span_end)
        elif kept != NULL:
            self.keep_rows(m, series.t, kept, nkept)
        elif kept_rows is not None:
            self.keep_rows(m, series.t, self.int_array(kept_rows), len(kept_rows))
        return 0

    cdef int keep_span(self, int m, Series* series, int start, int end) except -1:
        """A measure's evidence, series.rows[start:end], kept for flag_evidence (the series lives
        as long as this evaluation). flag_evidence relies on the order of every measure's rows:
        its series' (or a part of them), oldest first by (date, id)."""
        cdef Facts* f = &self.evidence[m]
        f.kind, f.t, f.n, f.rows = E_FACTS, series.t, end - start, series.rows + start
        return 0

    cdef int keep_rows(self, int m, int t, int* rows, int n) except -1:
        """A measure's evidence as n rows of type t (the arena's), in their series' order."""
        cdef Facts* f = &self.evidence[m]
        f.kind, f.t, f.n, f.rows = E_FACTS, t, n, rows
        return 0

    cdef int* int_array(self, list items) except NULL:
        """A list of ints as a C array of the arena."""
        cdef int i, n = len(items)
        cdef int* out = <int*>self.alloc(sizeof(int) * (n + 1))
        for i in range(n):
            out[i] = items[i]
        return out

    cdef int first_date(self, int t):
        """The earliest `date` of a fact type (its base series on `date`), 0 when it has none."""
        cdef Table table = self.tables[t]
        cdef int i, first = 0
        cdef double d
        for i in range(table.n):
            d = table.get(i, 1)
            if not isnan(d) and (first == 0 or <int>d < first):
                first = <int>d
        return first

    cdef object age(self):
        if self.birth == 0 or self.birth > self.today:
            return None
        birth = _date(self.birth)
        as_of = self.as_of
        return as_of.year - birth.year - ((as_of.month, as_of.day) < (birth.month, birth.day))

    cdef int overlapping(self, MSpec* s, Series* series, int start, int end, int* rows) except -1:
        """The rows of the facts overlapping the window (those before it still open at its start,
        then those in it), into `rows` (room for `end`): how many."""
        cdef int i, window_start, n = 0
        cdef double e
        cdef Table table = self.tables[series.t]
        if s.window < 0:
            memcpy(rows, series.rows, sizeof(int) * end)
            return end
        window_start = self.start_of(s.window)
        for i in range(start):
            e = table.get(series.rows[i], s.endcol)
            if isnan(e) or e > window_start:
                rows[n] = series.rows[i]
                n += 1
        memcpy(rows + n, series.rows + start, sizeof(int) * (end - start))
        return n + end - start

    cdef int latest_by_group(self, int m, MSpec* s, Series* series, Table table, int end) except -1:
        cdef int i, count, last = s.last
        cdef dict groups = {}
        cdef double key
        for i in range(end):
            key = table.get(series.rows[i], s.group)
            if not isnan(key):
                found = groups.get(key)
                if found is None:
                    groups[key] = [i]
                else:
                    found.append(i)
        if not groups:
            return 0
        best = (-1, -1)
        behind = []
        for positions in groups.values():
            count = len(positions) - last
            recent = positions[count:] if (last > 0 and count > 0) else positions[:]
            if s.matching < 0:
                count = len(recent)
            else:
                count = 0
                for i in recent:
                    if self.passes(s.matching, table, series.rows[i]):
                        count += 1
            newest = positions[len(positions) - 1]
            if (count, newest) > best:
                best, behind = (count, newest), recent
        self.values[m] = best[0]
        self.keep_rows(m, series.t, self.int_array([series.rows[i] for i in behind]), len(behind))
        return 0

    cdef int overdue(self, MSpec* s, Series* series, Table table, int start, int end, int* rows) except -1:
        """The rows of the facts past their deadline and not followed up or resolved, into `rows`
        (room for end - start): how many."""
        cdef int lo = start, hi = end, mid, i, today = self.today, first, last, n = 0
        cdef Series* followups
        cdef double r
        cdef Core core = self.core
        # Deadlines rise with dates: the facts past theirs form a prefix (Series.due_before).
        while lo < hi:
            mid = (lo + hi) >> 1
            if core.deadline(series.ords[mid], s.deadline) < today:
                lo = mid + 1
            else:
                hi = mid
        if s.followup_series >= 0:
            followups = self.get_series(s.followup_series)
            for i in range(start, lo):
                first = _bisect_left(followups.ords, series.ords[i], 0, followups.n)
                last = _bisect_right(followups.ords, today, 0, followups.n)
                if last - first > 1 or (last - first == 1 and not (
                        followups.t == series.t and followups.rows[first] == series.rows[i])):
                    continue
                rows[n] = series.rows[i]
                n += 1
        elif s.resolved_col >= 0:
            for i in range(start, lo):
                r = table.get(series.rows[i], s.resolved_col)
                if isnan(r) or r > today:
                    rows[n] = series.rows[i]
                    n += 1
        else:
            n = lo - start
            memcpy(rows, series.rows + start, sizeof(int) * n)
        return n

    cdef int derived(self, int m, MSpec* s) except -1:
        cdef int i, k
        values = [self.values[self.core.inputs[i]] for i in range(s.input_start, s.input_start + s.input_len)]
        if s.kind == M_SUM:
            for v in values:
                if v is None:
                    return 0
            total = sum(values)
            self.values[m] = _round_float(total, 2) if type(total) is float else (
                _round(total, 2) if isinstance(total, float) else total)
        else:
            numerator, denominator = values
            if numerator is None or denominator is None or denominator == 0:
                return 0
            ratio = 100 * numerator / denominator
            self.values[m] = _round_float(ratio, 1) if type(ratio) is float else _round(ratio, 1)
        # The facts behind it are its inputs': `pieces` gathers them (an input sum's, in turn).
        self.evidence[m].kind = E_PARTS
        return 0

    # --- evidence ------------------------------------------------------------------------
    # A measure's evidence is its own facts (E_FACTS: rows of one type) or, for a sum or ratio,
    # its inputs' (E_PARTS); a fact's identity is (type, row).

    cdef int pieces(self, int m, int* out, int n) noexcept:
        """The measures whose own facts are behind measure m, after the first n of `out` (None
        gives the count alone): its own, if any, or its inputs' for a sum or ratio (flattened, in
        order, as engine.case_index.Combined keeps its parts). How many there are then."""
        cdef Facts* f = &self.evidence[m]
        cdef MSpec* s
        cdef int i
        if f.kind == E_FACTS and f.n > 0:
            if out != NULL:
                out[n] = m
            return n + 1
        if f.kind == E_PARTS:
            s = &self.core.specs[m]
            for i in range(s.input_start, s.input_start + s.input_len):
                n = self.pieces(self.core.inputs[i], out, n)
        return n

    cdef int flag_evidence(self, tuple cited, int limit, int* slots, int* nslots) except -1:
        """The facts behind a flag citing these measures: how many in all (returned), and the
        newest `limit` (`nslots` of them, newest first) as the slots whose made_buf part holds their
        response's Flag.evidence element, framed. As engine/explainer.explain: each measure's
        newest facts, each fact once (the first measure to cite it gives its date), newest first
        by date, type and id.

        A measure's rows are in its series' order, oldest first by (date, id) (keep_evidence), so
        read backwards each source gives its candidates newest first: the first source's go in
        as they come, and a later source's stop at the first that is not newer than the newest
        `limit` so far. Facts of a type only one source cites cannot repeat, and are counted and
        taken without the `seen` marks; those of a type several cite are counted as the union of
        their bit sets (rows_bits)."""
        cdef int t, i, p, k, row, slot, offset, count = 0, ncand = 0, nsources = 0, lower, datecol, j, words
        cdef unsigned long long types = 0, repeated = 0, bit, left
        cdef unsigned long long* union_bits = self.union_bits
        cdef unsigned long long* bits
        cdef bint marks
        cdef Facts* f
        cdef Table table
        cdef Cand* cands
        cdef Cand* c
        cdef Cand cand
        cdef unsigned char* seen = self.seen
        cdef int* offsets = self.offsets
        cdef int* sources  # the measures whose facts are behind the flag
        nslots[0] = 0
        if limit <= 0:
            return 0
        for k in cited:
            nsources = self.pieces(k, NULL, nsources)
        if nsources == 0:
            return 0
        sources = <int*>self.alloc(sizeof(int) * nsources)
        cands = self.cands if limit <= self.core.max_evidence else <Cand*>self.alloc(sizeof(Cand) * (limit + 1))
        nsources = 0
        for k in cited:
            nsources = self.pieces(k, sources, nsources)
        for p in range(nsources):
            bit = (<unsigned long long>1) << self.evidence[sources[p]].t
            if types & bit:
                repeated |= bit
            types |= bit
        if repeated:
            memset(seen, 0, self.nfacts + 1)
        # the newest `limit` facts, each once, newest first
        for p in range(nsources):
            k = sources[p]
            f = &self.evidence[k]
            datecol = self.core.specs[k].datecol
            t = f.t
            marks = (repeated >> t) & 1
            lower = f.n - limit if f.n > limit else 0
            table = self.tables[t]
            offset = offsets[t]
            i = f.n - 1
            while i >= lower:
                row = f.rows[i]
                i -= 1
                if marks:
                    if seen[offset + row]:
                        continue
                    seen[offset + row] = 1
                _candidate(&cand, table, t, row, datecol, self.core.type_rank[t])
                if p == 0:  # the first source's come newest first, each once
                    cands[ncand] = cand
                    ncand += 1
                    continue
                if ncand == limit and _newest_first(&cand, &cands[limit - 1]) >= 0:
                    # this source's others are older still: marked as cited all the same,
                    # as the first source to cite a fact gives its date
                    if marks:
                        while i >= lower:
                            seen[offset + f.rows[i]] = 1
                            i -= 1
                    break
                j = ncand if ncand < limit else limit - 1
                while j > 0 and _newest_first(&cand, &cands[j - 1]) < 0:
                    cands[j] = cands[j - 1]
                    j -= 1
                cands[j] = cand
                if ncand < limit:
                    ncand += 1
        for i in range(ncand):
            c = &cands[i]
            # flags of one case cite the same facts: each element is made once per evaluation
            # (again only if another flag cites the fact by another of its dates)
            slot = offsets[c.t] + c.row
            if self.made_ord[slot] != c.ord:
                self.make_element(c, slot)
            slots[i] = slot
        nslots[0] = ncand
        # how many facts in all: those of types only one source cites add up, the others are
        # the union of their sources' rows, type by type
        for p in range(nsources):
            f = &self.evidence[sources[p]]
            if not (repeated >> f.t) & 1:
                count += f.n
        left = repeated
        while left:
            t = __builtin_ctzll(left)
            left &= left - 1
            words = ((<Table>self.tables[t]).n >> 6) + 1
            memset(union_bits, 0, sizeof(unsigned long long) * words)
            for p in range(nsources):
                if self.evidence[sources[p]].t == t:
                    bits = self.rows_bits(sources[p])
                    for i in range(words):
                        union_bits[i] |= bits[i]
            for i in range(words):
                count += __builtin_popcountll(union_bits[i])
        return count

    cdef unsigned long long* rows_bits(self, int m) except NULL:
        """Measure m's facts as a bit set of their rows (bit row % 64 of word row / 64), over all
        its type's rows: made once per evaluation, when a flag first counts them."""
        cdef Facts* f = &self.evidence[m]
        cdef int i, row, words
        cdef unsigned long long* bits = self.bits[m]
        if bits == NULL:
            words = ((<Table>self.tables[f.t]).n >> 6) + 1
            bits = self.bits[m] = <unsigned long long*>self.alloc(sizeof(unsigned long long) * words)
            memset(bits, 0, sizeof(unsigned long long) * words)
            for i in range(f.n):
                row = f.rows[i]
                bits[row >> 6] |= (<unsigned long long>1) << (row & 63)
        return bits

    cdef bytes flag_wire(self, FlagRule rule, bytes text_wire, int* count):
        """The flag's Flag fields but its stored lifecycle, serialized as service/responses.py
        writes a flag (_Call.flag, in its order): the rule's own fields, the explanation, the
        evidence count (set in `count`), the contributing rules, the measured values (the name,
        then the number as a little-endian double, see engine/native.py, or missing = true), the
        evidence elements. The response appends the lifecycle: serialized messages concatenate
        into their merge."""
        cdef Core core = self.core
        cdef int limit = core.max_evidence, nslots = 0, n, i, j
        cdef int* slots = self.slots
        cdef list values = self.values, others = None
        cdef list numbers = core.measured_number, missing = core.measured_missing
        cdef tuple depends_at = rule.depends_at, depends_wire = rule.depends_wire
        cdef signed char* truths = self.truths
        cdef Py_ssize_t size
        cdef bytes out
        cdef char* p
        cdef double d
        n = count[0] = self.flag_evidence(rule.indices, limit, slots, &nslots)
        size = PyBytes_GET_SIZE(rule.rule_wire) + PyBytes_GET_SIZE(text_wire)
        if n > 0:
            size += PyBytes_GET_SIZE(core.count_tag) + _varint_size(n)
        for i in range(len(depends_at)):
            if truths[<int>depends_at[i]] == 1:
                size += PyBytes_GET_SIZE(<bytes>depends_wire[i])
        for j in rule.indices:
            value = values[j]
            if value is None:
                size += PyBytes_GET_SIZE(<bytes>missing[j])
            elif type(value) is int or type(value) is float:
                size += PyBytes_GET_SIZE(<bytes>numbers[j]) + 8
            else:  # no measure the core runs gives one: encoded by engine/native.py
                if others is None:
                    others = []
                others.append(core.measured_other(j, value))
                size += PyBytes_GET_SIZE(<bytes>others[len(others) - 1])
        for i in range(nslots):
            size += self.made_size[slots[i]]
        out = PyBytes_FromStringAndSize(NULL, size)
        p = PyBytes_AS_STRING(out)
        p += _put(p, rule.rule_wire)
        p += _put(p, text_wire)
        if n > 0:
            p += _put(p, core.count_tag)
            p += _put_varint(p, n)
        for i in range(len(depends_at)):
            if truths[<int>depends_at[i]] == 1:
                p += _put(p, <bytes>depends_wire[i])
        i = 0
        for j in rule.indices:
            value = values[j]
            if value is None:
                p += _put(p, <bytes>missing[j])
            elif type(value) is int or type(value) is float:
                p += _put(p, <bytes>numbers[j])
                d = _as_double(value)  # as float(value): an int rounds half to even
                memcpy(p, &d, 8)
                p += 8
            else:
                p += _put(p, <bytes>others[i])
                i += 1
        for i in range(nslots):
            memcpy(p, self.made_buf + self.made_at[slots[i]], self.made_size[slots[i]])
            p += self.made_size[slots[i]]
        return out

    cdef tuple flags(self, list rules, dict measures):
        """The flags of the rules that hold, (flags, shadow flags), each in the order of `rules`:
        results.ExplainedFlag as engine/explainer.explain makes them, the evidence an
        engine/native.EncodedEvidence holding the flag's response bytes (flag_wire)."""
        cdef FlagRule rule
        cdef list flags = [], shadow = [], values = self.values
        cdef list pairs = [None] * len(values)  # each measure's (name, value), made once
        cdef Core core = self.core
        cdef int count, i, k, n
        cdef tuple cited, fields
        for rule in rules:
            if self.truths[rule.position] != 1:
                continue
            text, text_wire = rule.text(values, measures)
            wire = self.flag_wire(rule, text_wire, &count)
            n = len(rule.indices)
            cited = PyTuple_New(n)
            for i in range(n):
                k = rule.indices[i]
                pair = pairs[k]
                if pair is None:
                    pair = pairs[k] = (rule.names[i], values[k])
                Py_INCREF(pair)  # PyTuple_SET_ITEM takes the reference
                PyTuple_SET_ITEM(cited, i, pair)
            # ExplainedFlag's fields: the rule's, and those of this evaluation in their places
            fields = rule.fields
            flag = (<PyTypeObject*>core.flag_type).tp_alloc(<PyTypeObject*>core.flag_type, len(fields))
            for i in range(len(fields)):
                if i == 4:
                    item = text
                elif i == 6:
                    item = cited
                elif i == 10:
                    item = _encoded_evidence(core.evidence_type, wire)
                elif i == 11 and rule.depends_on:
                    item = tuple([rule.depends_on[k] for k in range(len(rule.depends_at))
                                  if self.truths[<int>rule.depends_at[k]] == 1])
                elif i == 13:
                    item = count
                else:
                    item = fields[i]
                Py_INCREF(item)
                PyTuple_SET_ITEM(flag, i, item)
            (shadow if rule.shadow else flags).append(flag)
        return flags, shadow


cdef inline bint _same_bytes(const char* a, const unsigned char* b, Py_ssize_t n) noexcept:
    """memcmp(a, b, n) == 0 for a code, without the call: 8 bytes at a time (the last 8 read
    again where they overlap), or 4, or 1; never past either's n bytes."""
    cdef unsigned long long x, y
    cdef unsigned int u, v
    cdef Py_ssize_t i = 0
    if n >= 8:
        while i + 8 < n:
            memcpy(&x, a + i, 8)
            memcpy(&y, b + i, 8)
            if x != y:
                return False
            i += 8
        memcpy(&x, a + n - 8, 8)
        memcpy(&y, b + n - 8, 8)
        return x == y
    if n >= 4:
        memcpy(&u, a, 4)
        memcpy(&v, b, 4)
        if u != v:
            return False
        memcpy(&u, a + n - 4, 4)
        memcpy(&v, b + n - 4, 4)
        return u == v
    for i in range(n):
        if <unsigned char>a[i] != b[i]:
            return False
    return True


cdef inline int _code_index(Schema schema, int fn, const unsigned char* s, Py_ssize_t n) noexcept:
    """The index of a code in field fn's sorted codes, found in the field's hash table; -1 for ""
    (absent); -2 when unknown."""
    cdef const char** text = schema.code_text + schema.code_first[fn]
    cdef Py_ssize_t* sizes = schema.code_size + schema.code_first[fn]
    cdef int* slots = schema.code_slots + schema.slot_first[fn]
    cdef unsigned int mask = schema.slot_mask[fn], h
    cdef int k
    if n == 0:
        return -1
    if schema.code_count[fn] == 0:
        return -2
    h = _code_hash(<const char*>s, n) & mask
    while slots[h]:
        k = slots[h] - 1
        if sizes[k] == n and _same_bytes(text[k], s, n):
            return k
        h = (h + 1) & mask
    return -2


cdef extern from *:
    """
    #if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
    /* CPython 3.11's dict keys (Objects/dict-common.h), which no header outside the core shows. */
    typedef struct {
        Py_ssize_t dk_refcnt;
        uint8_t dk_log2_size;
        uint8_t dk_log2_index_bytes;
        uint8_t dk_kind;
        uint32_t dk_version;
        Py_ssize_t dk_usable;
        Py_ssize_t dk_nentries;
        char dk_indices[];
    } _core_dict_keys;
    typedef struct { PyObject *me_key; PyObject *me_value; } _core_unicode_entry;

    /* Replace the values of a fresh copy of dict.fromkeys(names) with `values`, entry i's with
       values[i]: a combined table of str keys in insertion order (DICT_KEYS_UNICODE), no entry
       deleted. 0 when the dict is not laid out so (the caller sets the items one by one). */
    static int _core_fill_values(PyObject *d, PyObject *values) {
        PyDictObject *mp = (PyDictObject *)d;
        _core_dict_keys *keys = (_core_dict_keys *)mp->ma_keys;
        _core_unicode_entry *entries;
        Py_ssize_t i, n = PyList_GET_SIZE(values);
        if (mp->ma_values != NULL || keys->dk_kind != 1 || keys->dk_nentries != n || mp->ma_used != n)
            return 0;
        entries = (_core_unicode_entry *)(&keys->dk_indices[(size_t)1 << keys->dk_log2_index_bytes]);
        for (i = 0; i < n; i++) {
            PyObject *old = entries[i].me_value, *value = PyList_GET_ITEM(values, i);
            if (entries[i].me_key == NULL) return 0;  /* not reached: nothing was deleted */
            Py_INCREF(value);
            entries[i].me_value = value;
            Py_XDECREF(old);
        }
        return 1;
    }
    #else
    static int _core_fill_values(PyObject *d, PyObject *values) { return 0; }
    #endif
    """
    bint _core_fill_values(dict d, list values) noexcept


def named(dict template, list values):
    """_named, for the tests."""
    return _named(template, values)


cdef dict _named(dict template, list values):
    """`values` by name: a copy of `template` (the names, in order, each to None) holding them in
    that order. dict(zip(names, values, strict=True)) without zip's pairs, and without growing
    the dict one name at a time (the copy takes the template's table as it is). On CPython 3.11
    the copy's values are written into its table directly: setting them one by one through
    PyDict_SetItem cost 5% of an evaluation at 200 facts."""
    cdef dict out
    cdef Py_ssize_t pos = 0, i = 0
    cdef PyObject* key
    cdef PyObject* value
    if len(template) != len(values):
        raise ValueError(f"{len(template)} names for {len(values)} values")
    out = template.copy()
    if _core_fill_values(out, values):
        return out
    while PyDict_Next(out, &pos, &key, &value):  # replacing values, not keys, as it goes is safe
        PyDict_SetItem(out, <object>key, values[i])
        i += 1
    return out


_DATES = {}


cdef inline Py_ssize_t _varint_size(Py_ssize_t value) noexcept:
    cdef Py_ssize_t size = 1
    while value > 0x7F:
        value >>= 7
        size += 1
    return size


cdef inline Py_ssize_t _put_varint(char* out, Py_ssize_t value) noexcept:
    cdef Py_ssize_t n = 0
    while value > 0x7F:
        out[n] = <char>((value & 0x7F) | 0x80)
        value >>= 7
        n += 1
    out[n] = <char>value
    return n + 1


cdef inline Py_ssize_t _put(char* out, bytes part) noexcept:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(part)
    memcpy(out, PyBytes_AS_STRING(part), n)
    return n


cdef void _iso_date(char* out, int ordinal) noexcept:
    """YYYY-MM-DD of a proleptic Gregorian ordinal (1 is 0001-01-01), as date.isoformat()."""
    cdef int n = ordinal - 1, n400, n100, n4, n1, y, m, d, dim
    n400 = n // 146097
    n = n % 146097
    n100 = n // 36524
    n = n % 36524
    n4 = n // 1461
    n = n % 1461
    n1 = n // 365
    n = n % 365
    y = n400 * 400 + n100 * 100 + n4 * 4 + n1 + 1
    if n1 == 4 or n100 == 4:  # the last day of a leap cycle: December 31st of the year before
        y -= 1
        m, d = 12, 31
    else:
        m = 1
        while m < 12:
            dim = _DAYS_IN_MONTH[m] + (1 if m == 2 and _leap(y) else 0)
            if n < dim:
                break
            n -= dim
            m += 1
        d = n + 1
    out[0] = <char>(48 + y // 1000 % 10)
    out[1] = <char>(48 + y // 100 % 10)
    out[2] = <char>(48 + y // 10 % 10)
    out[3] = <char>(48 + y % 10)
    out[4] = 45
    out[5] = <char>(48 + m // 10)
    out[6] = <char>(48 + m % 10)
    out[7] = 45
    out[8] = <char>(48 + d // 10)
    out[9] = <char>(48 + d % 10)


# The texts of recent days (the dates evidence lists cluster in a few years): a direct-mapped
# table by ordinal, entry i holding the text of an ordinal congruent to i (0: empty).
DEF DATE_TEXTS = 8192
cdef int _date_text_ordinal[DATE_TEXTS]
cdef char _date_text_chars[DATE_TEXTS][10]
memset(_date_text_ordinal, 0, sizeof(_date_text_ordinal))


cdef inline void _date_text(char* out, int ordinal) noexcept:
    """_iso_date through the table (the GIL is held: one writer at a time)."""
    cdef int i = ordinal & (DATE_TEXTS - 1)
    if _date_text_ordinal[i] != ordinal:
        _iso_date(_date_text_chars[i], ordinal)
        _date_text_ordinal[i] = ordinal
    memcpy(out, _date_text_chars[i], 10)


def date_text(int ordinal):
    """_date_text's text, for the tests to hold the table to _iso_date."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 10)
    _date_text(PyBytes_AS_STRING(out), ordinal)
    return out


def iso_date(int ordinal):
    """_iso_date's text for one ordinal, for the tests to hold it to date.isoformat()."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 10)
    _iso_date(PyBytes_AS_STRING(out), ordinal)
    return out


cdef inline Py_ssize_t _evidence_body(Core core, Cand* c) noexcept:
    """The size of a fact's Flag.evidence element but its tag and length (see _evidence_element)."""
    cdef Py_ssize_t body = PyBytes_GET_SIZE(<bytes>core.fact_type_fields[c.t]) + PyBytes_GET_SIZE(core.date_tag) + 11
    if c.idlen:
        body += PyBytes_GET_SIZE(core.fact_id_tag) + _varint_size(c.idlen) + c.idlen
    return body


cdef inline Py_ssize_t _evidence_size(Core core, Cand* c) noexcept:
    """The size of a fact's Flag.evidence element, framed."""
    cdef Py_ssize_t body = _evidence_body(core, c)
    return PyBytes_GET_SIZE(core.evidence_tag) + _varint_size(body) + body


cdef void _evidence_element(Core core, Cand* c, char* p) noexcept:
    """One Flag.evidence element, framed, as service/responses.py writes an EvidenceItem, into
    the _evidence_size bytes at p: the fact type, the id (left out when empty, as protobuf leaves
    out an empty string), the date."""
    p += _put(p, core.evidence_tag)
    p += _put_varint(p, _evidence_body(core, c))
    p += _put(p, <bytes>core.fact_type_fields[c.t])
    if c.idlen:
        p += _put(p, core.fact_id_tag)
        p += _put_varint(p, c.idlen)
        memcpy(p, c.id, c.idlen)
        p += c.idlen
    p += _put(p, core.date_tag)
    p[0] = 10
    _date_text(p + 1, c.ord)


cdef object _date(int ordinal):
    found = _DATES.get(ordinal)
    if found is None:
        if len(_DATES) > 100000:
            _DATES.clear()
        found = _DATES[ordinal] = _dt.date.fromordinal(ordinal)
    return found


