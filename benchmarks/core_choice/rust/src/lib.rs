//! The core-choice slice in Rust (std only, C ABI): read a serialized `rules_engine.v1.Case`,
//! validate every fact's id and date, and compute four representative measures.
//!
//! Kept compatible with Debian bookworm's rustc 1.63 (edition 2021; no let-else, no
//! `core::ffi::c_*` aliases, no `#[unsafe(no_mangle)]`).

const CASE_CONCERNS: u64 = 3;
const CASE_VISITS: u64 = 11;
const FIRST_FACT_FIELD: u64 = 3;
const LAST_FACT_FIELD: u64 = 22;
const ID_MAX_LENGTH: usize = 128;
const WINDOW_DAYS: i32 = 365;

/// Status codes of `slice_measures`.
const OK: i32 = 0;
const DECLINED: i32 = 1;

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value: u64 = 0;
    let mut shift = 0u32;
    loop {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
        shift += 7;
        if shift >= 64 {
            return None;
        }
    }
}

fn length_delimited<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let len = varint(buf, pos)? as usize;
    let end = pos.checked_add(len)?;
    let bytes = buf.get(*pos..end)?;
    *pos = end;
    Some(bytes)
}

fn skip(buf: &[u8], pos: &mut usize, wire: u64) -> Option<()> {
    match wire {
        0 => varint(buf, pos).map(|_| ()),
        1 => advance(buf, pos, 8),
        2 => length_delimited(buf, pos).map(|_| ()),
        5 => advance(buf, pos, 4),
        _ => None, // groups: never in this schema
    }
}

fn advance(buf: &[u8], pos: &mut usize, n: usize) -> Option<()> {
    let end = pos.checked_add(n)?;
    if end > buf.len() {
        return None;
    }
    *pos = end;
    Some(())
}

fn valid_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= ID_MAX_LENGTH
        && id
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'/' | b'@' | b'-'))
}

fn is_leap(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

const DAYS_BEFORE_MONTH: [i32; 13] = [0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];

/// "YYYY-MM-DD" to the proleptic Gregorian ordinal (0001-01-01 is 1, as Python's date.toordinal).
fn date_ordinal(text: &[u8]) -> Option<i32> {
    if text.len() != 10 || text[4] != b'-' || text[7] != b'-' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<i32> {
        let mut n = 0i32;
        for &c in &text[range] {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + i32::from(c - b'0');
        }
        Some(n)
    };
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    if year < 1 || !(1..=12).contains(&month) {
        return None;
    }
    let month_days = match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if day < 1 || day > month_days {
        return None;
    }
    let y = year - 1;
    let leap_shift = i32::from(month > 2 && is_leap(year));
    Some(y * 365 + y / 4 - y / 100 + y / 400 + DAYS_BEFORE_MONTH[month as usize] + leap_shift + day)
}

/// One fact's id, date and (for concerns) agency.
fn read_fact(buf: &[u8]) -> Option<(i32, &[u8])> {
    let mut pos = 0;
    let mut id: &[u8] = &[];
    let mut date: &[u8] = &[];
    let mut agency: &[u8] = &[];
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        match (key >> 3, key & 7) {
            (1, 2) => id = length_delimited(buf, &mut pos)?,
            (2, 2) => date = length_delimited(buf, &mut pos)?,
            (3, 2) => agency = length_delimited(buf, &mut pos)?,
            (_, wire) => skip(buf, &mut pos, wire)?,
        }
    }
    if !valid_id(id) {
        return None;
    }
    Some((date_ordinal(date)?, agency))
}

struct Measures {
    concerns_in_window: i64,
    agencies_in_window: i64,
    days_since_visit: i64,
    longest_gap: i64,
    facts: i64,
}

fn measures(buf: &[u8], as_of: i32) -> Option<Measures> {
    let mut pos = 0;
    let mut concern_days: Vec<i32> = Vec::with_capacity(64);
    let mut agencies: Vec<&[u8]> = Vec::with_capacity(8);
    let mut concerns_in_window = 0i64;
    let mut latest_visit: Option<i32> = None;
    let mut facts = 0i64;
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (field, wire) = (key >> 3, key & 7);
        if wire != 2 || !(FIRST_FACT_FIELD..=LAST_FACT_FIELD).contains(&field) {
            skip(buf, &mut pos, wire)?;
            continue;
        }
        let (day, agency) = read_fact(length_delimited(buf, &mut pos)?)?;
        facts += 1;
        if field == CASE_CONCERNS {
            concern_days.push(day);
            if as_of - WINDOW_DAYS < day && day <= as_of {
                concerns_in_window += 1;
                if !agency.is_empty() && !agencies.contains(&agency) {
                    agencies.push(agency);
                }
            }
        } else if field == CASE_VISITS {
            latest_visit = Some(latest_visit.map_or(day, |latest| latest.max(day)));
        }
    }
    concern_days.sort_unstable();
    let longest_gap = concern_days.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    Some(Measures {
        concerns_in_window,
        agencies_in_window: agencies.len() as i64,
        days_since_visit: latest_visit.map_or(-1, |day| i64::from(as_of - day)),
        longest_gap: i64::from(longest_gap),
        facts,
    })
}

/// Read `len` bytes at `data` as a Case; write the four measures and the number of facts read to
/// `out[0..5]`. Returns 0, or 1 when the input is declined (malformed wire data, a bad id or date).
///
/// # Safety
/// `data` must point to `len` readable bytes and `out` to five writable i64s.
#[no_mangle]
pub unsafe extern "C" fn slice_measures(data: *const u8, len: usize, as_of: i32, out: *mut i64) -> i32 {
    let buf = if len == 0 { &[][..] } else { std::slice::from_raw_parts(data, len) };
    match measures(buf, as_of) {
        Some(m) => {
            let out = std::slice::from_raw_parts_mut(out, 5);
            out[0] = m.concerns_in_window;
            out[1] = m.agencies_in_window;
            out[2] = m.days_since_visit;
            out[3] = m.longest_gap;
            out[4] = m.facts;
            OK
        }
        None => DECLINED,
    }
}

/// Run the slice `iterations` times inside Rust (no door crossing per iteration), for timing the
/// work alone; returns the sum of all outputs (so nothing is optimised away), or -1 if declined.
///
/// # Safety
/// As `slice_measures`.
#[no_mangle]
pub unsafe extern "C" fn slice_repeat(data: *const u8, len: usize, as_of: i32, iterations: u64) -> i64 {
    let mut total = 0i64;
    for _ in 0..iterations {
        // A volatile read of the pointer each time: the compiler cannot reuse the last answer.
        let data = std::ptr::read_volatile(&data);
        let buf = if len == 0 { &[][..] } else { std::slice::from_raw_parts(data, len) };
        match measures(buf, as_of) {
            Some(m) => {
                total += m.concerns_in_window + m.agencies_in_window + m.days_since_visit + m.longest_gap + m.facts
            }
            None => return -1,
        }
    }
    total
}
