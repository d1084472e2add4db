# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The core-choice slice in Cython: read a serialized `rules_engine.v1.Case`, validate every
fact's id and date, and compute four representative measures (the same as rust/src/lib.rs).

measures(data, as_of_ordinal) -> (concerns_in_window, agencies_in_window, days_since_visit,
longest_gap, facts), or None when the input is declined (malformed wire data, a bad id or date).
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc, qsort
from libc.string cimport memcmp

cdef enum:
    CASE_CONCERNS = 3
    CASE_VISITS = 11
    FIRST_FACT_FIELD = 3
    LAST_FACT_FIELD = 22
    ID_MAX_LENGTH = 128
    WINDOW_DAYS = 365

cdef int32_t[13] DAYS_BEFORE_MONTH = [0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334]


cdef struct Reader:
    const uint8_t* buf
    Py_ssize_t pos
    Py_ssize_t end


cdef inline bint varint(Reader* r, uint64_t* value) noexcept nogil:
    cdef uint64_t result = 0
    cdef unsigned int shift = 0
    cdef uint8_t byte
    while r.pos < r.end:
        byte = r.buf[r.pos]
        r.pos += 1
        result |= (<uint64_t>(byte & 0x7f)) << shift
        if byte < 0x80:
            value[0] = result
            return True
        shift += 7
        if shift >= 64:
            return False
    return False


cdef inline bint length_delimited(Reader* r, Py_ssize_t* start, Py_ssize_t* length) noexcept nogil:
    cdef uint64_t n
    if not varint(r, &n) or n > <uint64_t>(r.end - r.pos):
        return False
    start[0] = r.pos
    length[0] = <Py_ssize_t>n
    r.pos += <Py_ssize_t>n
    return True


cdef inline bint skip(Reader* r, uint64_t wire) noexcept nogil:
    cdef uint64_t ignored
    cdef Py_ssize_t s, n
    if wire == 0:
        return varint(r, &ignored)
    if wire == 2:
        return length_delimited(r, &s, &n)
    if wire == 1 or wire == 5:
        n = 8 if wire == 1 else 4
        if r.end - r.pos < n:
            return False
        r.pos += n
        return True
    return False  # groups: never in this schema


cdef inline bint valid_id(const uint8_t* s, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef uint8_t c
    if n < 1 or n > ID_MAX_LENGTH:
        return False
    for i in range(n):
        c = s[i]
        if not ((c >= c'a' and c <= c'z') or (c >= c'A' and c <= c'Z') or (c >= c'0' and c <= c'9')
                or c == c'.' or c == c'_' or c == c':' or c == c'/' or c == c'@' or c == c'-'):
            return False
    return True


cdef inline bint is_leap(int32_t year) noexcept nogil:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


cdef inline bint date_ordinal(const uint8_t* s, Py_ssize_t n, int32_t* ordinal) noexcept nogil:
    """"YYYY-MM-DD" to the proleptic Gregorian ordinal (0001-01-01 is 1, as date.toordinal)."""
    cdef int32_t year = 0, month = 0, day = 0, month_days, y
    cdef Py_ssize_t i
    if n != 10 or s[4] != c'-' or s[7] != c'-':
        return False
    for i in range(10):
        if i == 4 or i == 7:
            continue
        if s[i] < c'0' or s[i] > c'9':
            return False
        if i < 4:
            year = year * 10 + (s[i] - c'0')
        elif i < 7:
            month = month * 10 + (s[i] - c'0')
        else:
            day = day * 10 + (s[i] - c'0')
    if year < 1 or month < 1 or month > 12:
        return False
    if month == 2:
        month_days = 29 if is_leap(year) else 28
    elif month == 4 or month == 6 or month == 9 or month == 11:
        month_days = 30
    else:
        month_days = 31
    if day < 1 or day > month_days:
        return False
    y = year - 1
    ordinal[0] = (y * 365 + y // 4 - y // 100 + y // 400 + DAYS_BEFORE_MONTH[month]
                  + (1 if month > 2 and is_leap(year) else 0) + day)
    return True


cdef bint read_fact(const uint8_t* buf, Py_ssize_t start, Py_ssize_t length, int32_t* day,
                    Py_ssize_t* agency, Py_ssize_t* agency_length) noexcept nogil:
    """One fact's id, date and (for concerns) agency; agency is an offset into buf."""
    cdef Reader r = Reader(buf, start, start + length)
    cdef uint64_t key
    cdef Py_ssize_t id_at = 0, id_length = 0, date_at = 0, date_length = 0, s, n
    agency_length[0] = 0
    while r.pos < r.end:
        if not varint(&r, &key):
            return False
        if key & 7 == 2 and 1 <= key >> 3 <= 3:
            if not length_delimited(&r, &s, &n):
                return False
            if key >> 3 == 1:
                id_at, id_length = s, n
            elif key >> 3 == 2:
                date_at, date_length = s, n
            else:
                agency[0], agency_length[0] = s, n
        elif not skip(&r, key & 7):
            return False
    return valid_id(buf + id_at, id_length) and date_ordinal(buf + date_at, date_length, day)


cdef int compare_days(const void* a, const void* b) noexcept nogil:
    return (<const int32_t*>a)[0] - (<const int32_t*>b)[0]


cdef bint compute(const uint8_t* buf, Py_ssize_t size, int32_t as_of, int64_t* out,
                  int32_t* concern_days, Py_ssize_t* agency_at, Py_ssize_t* agency_len) noexcept nogil:
    cdef Reader r = Reader(buf, 0, size)
    cdef uint64_t key, field
    cdef Py_ssize_t start, length, a = 0, a_len = 0, i, concerns = 0, agencies = 0
    cdef int32_t day, latest_visit = 0, gap, longest = 0
    cdef bint any_visit = False, seen
    cdef int64_t in_window = 0, facts = 0
    while r.pos < r.end:
        if not varint(&r, &key):
            return False
        field = key >> 3
        if key & 7 != 2 or field < FIRST_FACT_FIELD or field > LAST_FACT_FIELD:
            if not skip(&r, key & 7):
                return False
            continue
        if not length_delimited(&r, &start, &length):
            return False
        if not read_fact(buf, start, length, &day, &a, &a_len):
            return False
        facts += 1
        if field == CASE_CONCERNS:
            concern_days[concerns] = day
            concerns += 1
            if as_of - WINDOW_DAYS < day <= as_of:
                in_window += 1
                if a_len > 0:
                    seen = False
                    for i in range(agencies):
                        if agency_len[i] == a_len and memcmp(buf + agency_at[i], buf + a, a_len) == 0:
                            seen = True
                            break
                    if not seen:
                        agency_at[agencies] = a
                        agency_len[agencies] = a_len
                        agencies += 1
        elif field == CASE_VISITS:
            if not any_visit or day > latest_visit:
                latest_visit = day
            any_visit = True
    qsort(concern_days, concerns, sizeof(int32_t), compare_days)
    for i in range(1, concerns):
        gap = concern_days[i] - concern_days[i - 1]
        if gap > longest:
            longest = gap
    out[0] = in_window
    out[1] = agencies
    out[2] = (as_of - latest_visit) if any_visit else -1
    out[3] = longest
    out[4] = facts
    return True


def measures(bytes data not None, int32_t as_of):
    cdef int64_t out[5]
    cdef Py_ssize_t size = len(data)
    cdef const uint8_t* buf = <const uint8_t*><const char*>data
    # Every fact is at least 2 bytes on the wire, so size // 2 + 1 entries always fit.
    cdef Py_ssize_t room = size // 2 + 1
    cdef Py_ssize_t* block = <Py_ssize_t*>malloc(room * (2 * sizeof(Py_ssize_t) + sizeof(int32_t)))
    cdef bint ok
    if block == NULL:
        raise MemoryError()
    ok = compute(buf, size, as_of, out, <int32_t*>(block + 2 * room), block, block + room)
    free(block)
    if not ok:
        return None
    return (out[0], out[1], out[2], out[3], out[4])


def repeat(bytes data not None, int32_t as_of, uint64_t iterations):
    """Run the slice `iterations` times inside C (no call per iteration), for timing the work
    alone; returns the sum of all outputs, or -1 if declined."""
    cdef int64_t out[5]
    cdef int64_t total = 0
    cdef uint64_t n
    cdef Py_ssize_t size = len(data)
    cdef const uint8_t* buf = <const uint8_t*><const char*>data
    cdef Py_ssize_t room = size // 2 + 1
    cdef Py_ssize_t* block
    for n in range(iterations):
        block = <Py_ssize_t*>malloc(room * (2 * sizeof(Py_ssize_t) + sizeof(int32_t)))
        if block == NULL:
            raise MemoryError()
        if not compute(buf, size, as_of, out, <int32_t*>(block + 2 * room), block, block + room):
            free(block)
            return -1
        free(block)
        total += out[0] + out[1] + out[2] + out[3] + out[4]
    return total
