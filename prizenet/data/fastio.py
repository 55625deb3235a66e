"""The Netflix Prize text formats: their line forms, dates, and vectorized formatting.

Every Prize file is a sequence of ``MovieID:`` header lines, each followed by body lines:

    training_set/mv_*.txt, combined_data_*.txt   CustomerID,Rating,YYYY-MM-DD
    probe.txt                                     CustomerID
    qualifying.txt                                CustomerID,YYYY-MM-DD
    submission                                    Prediction   (a decimal number)

The first three are parsed by the compiled tokenizer in :mod:`prizenet.data.kernels`
(through :func:`prizenet.data.netflix.read_blocks`), with the date table built here.
Submissions (2.8M predictions) are parsed here with whole-array numpy passes: a buffer of
bytes becomes a ``uint8`` array, newlines are found with one ``flatnonzero``, and
variable-width numbers are accumulated digit by digit over a few vectorized passes.
Writing the formats (submissions, the synthetic generator's files) is vectorized the same
way. No Python object is made per line.

Errors name the source, the line number and the expected form.
"""

from __future__ import annotations

import numpy as np

NL, CR, COLON, COMMA, DASH, DOT, ZERO = 10, 13, 58, 44, 45, 46, 48

FORMS = {
    "train": "CustomerID,Rating,YYYY-MM-DD",
    "probe": "CustomerID",
    "qual": "CustomerID,YYYY-MM-DD",
    "pred": "a prediction such as 3.712",
}


class DataFormatError(ValueError):
    """A malformed input file; the message names file, line and the expected form."""


def to_array(data: bytes | bytearray | memoryview) -> np.ndarray:
    """A uint8 view of ``data`` with CR removed and a final newline guaranteed."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size and (buf == CR).any():  # CRLF files: drop every CR
        buf = buf[buf != CR]
    if buf.size == 0 or buf[-1] != NL:
        buf = np.concatenate([buf, np.array([NL], np.uint8)])
    return buf


def _fail(name: str, line_index: int, buf: np.ndarray, start: int, end: int, what: str = ""):
    text = bytes(buf[start:end]).decode("latin-1")
    detail = f" ({what})" if what else ""
    raise DataFormatError(
        f"{name}, line {line_index + 1}: expected 'MovieID:' or '{FORMS['pred']}', got {text!r}{detail}"
    )


def parse_uint(buf: np.ndarray, start: np.ndarray, end: np.ndarray, max_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """Unsigned decimal integers in ``buf[start:end]``; returns (values int64, ok mask)."""
    length = end - start
    ok = (length >= 1) & (length <= max_digits)
    value = np.zeros(start.shape, np.int64)
    for k in range(max_digits):
        has = ok & (length > k)
        d = buf[np.where(has, start + k, 0)].astype(np.int64) - ZERO
        good = (d >= 0) & (d <= 9)
        ok &= good | ~has
        value = np.where(has, value * 10 + d, value)
    return value, ok


def days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    mp = (m + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return (era * 146097 + doe - 719468).astype(np.int32)


def civil_from_days(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`days_from_civil`: (year, month, day) arrays."""
    z = np.asarray(z, np.int64) + 719468
    era = np.floor_divide(z, 146097)
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = np.where(mp < 10, mp + 3, mp - 9)
    y = yoe + era * 400 + (m <= 2)
    return y, m, d


DATE_YEARS = (1800, 2200)


def _build_date_table() -> np.ndarray:
    """Days since 1970 of every (year, month, day) slot, -2**31 for impossible dates."""
    y, m, d = np.meshgrid(np.arange(*DATE_YEARS), np.arange(1, 13), np.arange(1, 32), indexing="ij")
    days = days_from_civil(y.ravel(), m.ravel(), d.ravel())
    real = civil_from_days(days)
    valid = (real[0] == y.ravel()) & (real[1] == m.ravel()) & (real[2] == d.ravel())  # no Feb 30
    return np.where(valid, days, np.iinfo(np.int32).min).astype(np.int32)


DATE_TABLE = _build_date_table()


def _decimal(buf: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative decimals ``D[.DDD]`` (up to 9 digits each side)."""
    length = end - start
    # Position of the first '.', or end when there is none.
    dot = np.full(start.shape, -1, np.int64)
    for k in range(19):
        has = (length > k) & (dot < 0)
        is_dot = has & (buf[np.where(has, start + k, 0)] == DOT)
        dot = np.where(is_dot, start + k, dot)
    dot = np.where(dot < 0, end, dot)
    whole, ok_w = parse_uint(buf, start, dot, 9)
    frac_len = np.maximum(end - dot - 1, 0)
    has_frac = end > dot + 1
    frac, ok_f = parse_uint(buf, np.where(has_frac, dot + 1, start), np.where(has_frac, end, start + 1), 9)
    ok = ok_w & (ok_f | ~has_frac) & (length <= 19) & ~((end == dot + 1))  # '3.' is malformed
    value = whole + np.where(has_frac, frac / 10.0**frac_len, 0.0)
    return value, ok


def parse_predictions(buf: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``MovieID:`` blocks of prediction lines (a submission file named ``name``, as
    :func:`to_array` gives it): (movie id of each prediction, predictions as float64).
    Training, probe and qualifying files go through :func:`prizenet.data.netflix.read_blocks`."""
    ends = np.flatnonzero(buf == NL)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    nonempty = ends > starts
    header = nonempty & (buf[np.maximum(ends - 1, 0)] == COLON)
    body = nonempty & ~header

    # Movie of each line: the id of the last header at or before it.
    h_idx = np.flatnonzero(header)
    h_val, h_ok = parse_uint(buf, starts[h_idx], ends[h_idx] - 1, 9)
    if not h_ok.all():
        i = h_idx[np.argmin(h_ok)]
        _fail(name, int(i), buf, starts[i], ends[i], "bad MovieID")
    b_idx = np.flatnonzero(body)
    if b_idx.size and (h_idx.size == 0 or b_idx[0] < h_idx[0]):
        i = b_idx[0]
        _fail(name, int(i), buf, starts[i], ends[i], "a line before the first 'MovieID:' line")
    block = np.searchsorted(h_idx, b_idx, side="right") - 1
    movie = h_val[np.maximum(block, 0)] if h_idx.size else np.zeros(b_idx.size, np.int64)
    s, e = starts[b_idx], ends[b_idx]
    value, ok = _decimal(buf, s, e)
    if not ok.all():
        j = int(np.argmin(ok))
        _fail(name, int(b_idx[j]), buf, s[j], e[j], f"in movie block {int(block[j]) + 1}, '{int(movie[j])}:'")
    return movie, value


def format_uint(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Digits of non-negative integers: (uint8 matrix [n, width] right-aligned, lengths)."""
    values = np.asarray(values, np.int64)
    width = max(1, len(str(int(values.max())))) if values.size else 1
    digits = np.empty((values.size, width), np.uint8)
    v = values.copy()
    for k in range(width - 1, -1, -1):
        digits[:, k] = v % 10 + ZERO
        v //= 10
    lengths = np.maximum(1, np.floor(np.log10(np.maximum(values, 1))).astype(np.int64) + 1)
    return digits, lengths


def join_lines(fields: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Concatenate per-line fields into one byte buffer, a newline after each line.

    Each field is (matrix [n, w] uint8 right-aligned, lengths [n]): the last ``length`` bytes
    of each row are written, so variable-width numbers and fixed text share one mechanism.
    """
    n = fields[0][0].shape[0]
    line_len = sum(lengths for _, lengths in fields) + 1
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(line_len, out=offsets[1:])
    out = np.empty(int(offsets[-1]), np.uint8)
    pos = offsets[:-1].copy()
    for mat, lengths in fields:
        w = mat.shape[1]
        for k in range(w):
            back = w - k  # column k is this many bytes from the field's right end
            sel = lengths >= back
            if sel.all():
                out[pos + lengths - back] = mat[:, k]
            else:
                idx = np.flatnonzero(sel)
                out[pos[idx] + lengths[idx] - back] = mat[idx, k]
        pos += lengths
    out[pos] = NL
    return out


def const_field(text: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    raw = np.frombuffer(text.encode(), np.uint8)
    return np.broadcast_to(raw, (n, raw.size)), np.full(n, raw.size, np.int64)


def date_field(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """YYYY-MM-DD of days since 1970-01-01, through a table of the distinct days."""
    uniq, inv = np.unique(np.asarray(days), return_inverse=True)
    y, m, d = civil_from_days(uniq)
    table = np.array([f"{a:04d}-{b:02d}-{c:02d}".encode() for a, b, c in zip(y, m, d)], dtype="S10")
    mat = table.view(np.uint8).reshape(-1, 10)[inv]
    return mat, np.full(len(days), 10, np.int64)


def fixed_decimal_field(values: np.ndarray, decimals: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative numbers below 10 as D.DDD (one digit before the point)."""
    scaled = np.rint(np.asarray(values, np.float64) * 10**decimals).astype(np.int64)
    if scaled.size and (scaled.min() < 0 or scaled.max() >= 10 ** (decimals + 1)):
        raise ValueError("fixed_decimal_field takes values in [0, 10)")
    mat = np.empty((scaled.size, decimals + 2), np.uint8)
    mat[:, 1] = DOT
    v = scaled.copy()
    for k in range(decimals + 1, 1, -1):
        mat[:, k] = v % 10 + ZERO
        v //= 10
    mat[:, 0] = v + ZERO
    return mat, np.full(scaled.size, decimals + 2, np.int64)


def block_bytes(movie: np.ndarray, body: np.ndarray, line_ends: np.ndarray) -> list[bytes]:
    """Pieces of a ``MovieID:`` block file: a header before each run of equal ``movie``.

    ``body`` holds the body lines back to back; ``line_ends[k]`` is where line k ends (after
    its newline). The loop runs once per block (a movie), never once per line.
    """
    if movie.size == 0:
        return []
    cut = np.flatnonzero(np.diff(movie)) + 1
    first = np.concatenate([[0], cut])
    last = np.concatenate([cut, [movie.size]])
    starts = np.concatenate([[0], line_ends[:-1]])
    pieces = []
    for a, b in zip(first, last):
        pieces.append(b"%d:\n" % movie[a])
        pieces.append(body[starts[a]:line_ends[b - 1]].tobytes())
    return pieces


def body_lines(fields: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`join_lines` plus where each line ends, for :func:`block_bytes`."""
    buf = join_lines(fields)
    return buf, np.flatnonzero(buf == NL) + 1
