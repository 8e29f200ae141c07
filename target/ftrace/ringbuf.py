"""Parsing ring-buffer pages as trace_pipe_raw hands them out (see kernel/trace/ring_buffer.c).

A page: u64 timestamp, commit word (a long), then the data. The commit word holds the data
size in its low 27 bits, RB_MISSED_EVENTS (1<<31: events were lost before this page) and
RB_MISSED_STORED (1<<30: the count of lost events is stored as a long right after the data).
Each record starts with a u32: type_len (low 5 bits) and time_delta (the other 27)."""

import array
import struct
import sys

MISSED_EVENTS = 1 << 31
MISSED_STORED = 1 << 30
SIZE_MASK = (1 << 27) - 1
TS_MSB = 0xf8 << 56


class Layout:
    """Where the page header fields are (from header_page and header_event), byte order."""

    def __init__(self, page_size=4096, long_size=8, big_endian=False, header_page=None,
                 header_event=None):
        self.page_size = page_size
        self.big_endian = big_endian
        order = ">" if big_endian else "<"
        page = header_page or {"timestamp": (0, 8), "commit": (8, long_size),
                               "data": (8 + long_size, page_size - 8 - long_size)}
        self.ts_offset = page["timestamp"][0]
        self.commit_offset, self.commit_size = page["commit"]
        self.data_offset = page["data"][0]
        self.ts_struct = struct.Struct(order + "Q")
        self.commit_struct = struct.Struct(order + ("Q" if self.commit_size == 8 else "I"))
        event = header_event or {}
        self.padding = event.get("padding", 29)
        self.time_extend = event.get("time_extend", 30)
        self.time_stamp = event.get("time_stamp", 31)
        self.swap = big_endian != (sys.byteorder == "big")


class Page:
    """One parsed page: its timestamp, data size, lost events (None: none; -1: lost, count
    unknown; n: n lost before this page), its data records as (ts, start, end) offsets into
    the page bytes, and corrupt (None, or why the rest of the page was not parsed)."""

    __slots__ = ("timestamp", "size", "lost", "records", "corrupt")

    def __init__(self, timestamp, size, lost, records, corrupt):
        self.timestamp = timestamp
        self.size = size
        self.lost = lost
        self.records = records
        self.corrupt = corrupt


def parse_page(page, layout):
    """Parse one page (bytes). Never raises: a bad page comes back with corrupt set and the
    records read before the damage."""
    try:
        return _parse(page, layout)
    except Exception as e:  # garbage must never escape as an exception
        return Page(0, 0, None, [], "unparsable page: %r" % e)


def _parse(page, layout):
    if len(page) < layout.data_offset:
        return Page(0, 0, None, [], "page of %d bytes is shorter than its header" % len(page))
    timestamp = layout.ts_struct.unpack_from(page, layout.ts_offset)[0]
    commit = layout.commit_struct.unpack_from(page, layout.commit_offset)[0]
    size = commit & SIZE_MASK
    lost = None
    data = layout.data_offset
    end = data + size
    if end > len(page):
        return Page(timestamp, size, None, [], "commit %d runs past the page end" % size)
    if commit & MISSED_EVENTS:
        lost = -1
        if commit & MISSED_STORED and end + layout.commit_size <= len(page):
            lost = layout.commit_struct.unpack_from(page, end)[0]
    records, corrupt = _records(page, data, end, timestamp, layout)
    return Page(timestamp, size, lost, records, corrupt)


def _records(page, pos, end, ts, layout):
    words = array.array("I")
    words.frombytes(page[:len(page) & ~3])
    if layout.swap:
        words.byteswap()
    padding, extend, stamp = layout.padding, layout.time_extend, layout.time_stamp
    records = []
    append = records.append
    while pos < end:
        if pos + 4 > end:
            return records, "record header at %d crosses the commit end %d" % (pos, end)
        header = words[pos >> 2]
        type_len = header & 31
        delta = header >> 5
        if type_len and type_len < padding:
            start = pos + 4
            pos = start + (type_len << 2)
            if pos > end:
                return records, "record at %d runs past the commit end %d" % (start - 4, end)
            ts += delta
            append((ts, start, pos))
            continue
        if pos + 8 > end:
            if type_len == padding and delta == 0:
                break
            return records, "record header at %d crosses the commit end %d" % (pos, end)
        length = words[(pos >> 2) + 1]
        if type_len == 0:
            if length < 4:
                return records, "record at %d has a bad length %d" % (pos, length)
            start = pos + 8
            pos = start + ((length - 4 + 3) & ~3)
            if pos > end:
                return records, "record at %d runs past the commit end %d" % (start - 8, end)
            ts += delta
            append((ts, start, start + length - 4))
        elif type_len == extend:
            ts += (length << 27) | delta
            pos += 8
        elif type_len == stamp:
            ts = ((length << 27) | delta) | (ts & TS_MSB)
            pos += 8
        elif type_len == padding:
            if delta == 0:
                break
            if length < 4:
                return records, "padding at %d has a bad length %d" % (pos, length)
            pos += 4 + length
        else:
            return records, "record at %d has an unknown type_len %d" % (pos, type_len)
    return records, None


def split_pages(data, page_size):
    """The pages of a cpuN.raw file (bytes); a short tail comes last, as it is."""
    return [data[i:i + page_size] for i in range(0, len(data), page_size)]
