"""Parsing of the filter arguments: level and facility lists, console level, --since/--until."""

import re
import time

from target.cli import AgentError
from target.dmesg.record import FACILITIES, LEVELS


def _lookup(item, names, what):
    if item[:1].isdigit():
        if item.isdigit() and int(item) < len(names):
            return int(item)
    else:
        lowered = item.lower()
        if lowered in names:
            return names.index(lowered)
    raise AgentError("unknown %s '%s'" % (what, item))


def _items(text, what):
    items = text.split(",")
    if any(not item for item in items):
        raise AgentError("empty item in %s list '%s'" % (what, text))
    return items


def parse_levels(text):
    """-l LIST: names or 0..7; `err+` adds every more severe level, `+warn` every less severe."""
    levels = set()
    for item in _items(text, "level"):
        if item.endswith("+"):
            levels.update(range(0, _lookup(item[:-1], LEVELS, "level") + 1))
        elif item.startswith("+"):
            levels.update(range(_lookup(item[1:], LEVELS, "level"), len(LEVELS)))
        else:
            levels.add(_lookup(item, LEVELS, "level"))
    return levels


def parse_facilities(text):
    """-f LIST: names (kern ... local7) or numbers 0..23."""
    return {_lookup(item, FACILITIES, "facility") for item in _items(text, "facility")}


def parse_console_level(text):
    """-n LEVEL for syslog(2) CONSOLE_LEVEL: 'print levels below this', so a name maps to its
    index + 1 (debug -> 8) and numbers run 1..8, as in util-linux."""
    if text[:1].isdigit():
        if text.isdigit() and 1 <= int(text) <= len(LEVELS):
            return int(text)
    elif text.lower() in LEVELS:
        return LEVELS.index(text.lower()) + 1
    raise AgentError("unknown level '%s'" % text)


# ---- --since / --until ------------------------------------------------------------------------

USEC_PER_SEC = 1000000
_UNITS = (  # longest spelling first: the first prefix that matches wins, as in util-linux
    ("seconds", 1), ("second", 1), ("sec", 1), ("s", 1),
    ("minutes", 60), ("minute", 60), ("min", 60),
    ("months", 2629800), ("month", 2629800),
    ("msec", 1e-3), ("ms", 1e-3), ("m", 60),
    ("hours", 3600), ("hour", 3600), ("hr", 3600), ("h", 3600),
    ("days", 86400), ("day", 86400), ("d", 86400),
    ("weeks", 604800), ("week", 604800), ("w", 604800),
    ("years", 31557600), ("year", 31557600), ("y", 31557600),
    ("usec", 1e-6), ("us", 1e-6), ("", 1),
)
_SPAN_PART = re.compile(r"\s*(\d+)(?:\.(\d+))?\s*")
_WEEKDAYS = ("sunday", "sun", "monday", "mon", "tuesday", "tue", "wednesday", "wed",
             "thursday", "thu", "friday", "fri", "saturday", "sat")
_SUBSEC = r"(?:[.,](\d{1,6}))?"
_ABSOLUTE = (  # (pattern, fields it sets); dates without a time mean 00:00:00
    (re.compile(r"(\d{2})-(\d{1,2})-(\d{1,2}) (\d{1,2}):(\d{1,2}):(\d{1,2})" + _SUBSEC + "$"), "ymdHMS"),
    (re.compile(r"(\d{3,4})-(\d{1,2})-(\d{1,2})[ T](\d{1,2}):(\d{1,2}):(\d{1,2})" + _SUBSEC + "$"), "YmdHMS"),
    (re.compile(r"(\d{2})-(\d{1,2})-(\d{1,2}) (\d{1,2}):(\d{1,2})$"), "ymdHM"),
    (re.compile(r"(\d{3,4})-(\d{1,2})-(\d{1,2}) (\d{1,2}):(\d{1,2})$"), "YmdHM"),
    (re.compile(r"(\d{2})-(\d{1,2})-(\d{1,2})$"), "ymd"),
    (re.compile(r"(\d{3,4})-(\d{1,2})-(\d{1,2})$"), "Ymd"),
    (re.compile(r"(\d{1,2}):(\d{1,2}):(\d{1,2})" + _SUBSEC + "$"), "HMS"),
    (re.compile(r"(\d{1,2}):(\d{1,2})$"), "HM"),
    (re.compile(r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})" + _SUBSEC + "$"), "YmdHMS"),
)


_RANGES = {"m": (1, 12), "d": (1, 31), "H": (0, 23), "M": (0, 59), "S": (0, 61)}


def parse_span(text):
    """'1 hour', '10min', '1h 30m', '2.5s' -> microseconds; ValueError if not a span."""
    pos, total, found = 0, 0, False
    while True:
        match = _SPAN_PART.match(text, pos)
        if not match:
            if text[pos:].strip() or not found:
                raise ValueError(text)
            return total
        whole, frac = match.group(1), match.group(2) or ""
        rest = text[match.end():]
        for suffix, seconds in _UNITS:
            if rest.startswith(suffix):
                break
        unit = int(round(seconds * USEC_PER_SEC))
        total += int(whole) * unit + (int(frac) * unit // 10 ** len(frac) if frac else 0)
        pos = match.end() + len(suffix)
        found = True


def _midnight(now, day_offset):
    tm = time.localtime(now)
    return int(time.mktime((tm.tm_year, tm.tm_mon, tm.tm_mday + day_offset, 0, 0, 0, 0, 0, -1)))


def _absolute(text, now):
    weekday = None
    head, _, tail = text.partition(" ")
    if head.lower() in _WEEKDAYS and tail:
        weekday = _WEEKDAYS.index(head.lower()) // 2
        text = tail
    for pattern, fields in _ABSOLUTE:
        match = pattern.match(text)
        if match:
            break
    else:
        raise ValueError(text)
    values = dict(zip(fields, (int(v) for v in match.groups()[:len(fields)])))
    for field, (low, high) in _RANGES.items():
        if not low <= values.get(field, low) <= high:
            raise ValueError(text)
    today = time.localtime(now)
    year = values.get("Y")
    if "y" in values:
        year = values["y"] + (1900 if values["y"] >= 69 else 2000)
    stamp = time.mktime((year or today.tm_year, values.get("m", today.tm_mon),
                         values.get("d", today.tm_mday), values.get("H", 0),
                         values.get("M", 0), values.get("S", 0), 0, 0, -1))
    if weekday is not None and (time.localtime(stamp).tm_wday + 1) % 7 != weekday:
        raise ValueError(text)
    subsec = match.groups()[len(fields)] if len(match.groups()) > len(fields) else None
    return int(stamp) * USEC_PER_SEC + (int(subsec.ljust(6, "0")) if subsec else 0)


def parse_timestamp(text, now=None):
    """util-linux's timestamp syntax -> microseconds since the epoch (0 = 'no limit').

    Absolute: 'YYYY-MM-DD HH:MM[:SS[.us]]', 'YYYY-MM-DDTHH:MM:SS', 'YYYY-MM-DD', 'HH:MM[:SS]',
    '@EPOCH', 'now', 'today', 'yesterday', 'tomorrow'; relative: '+5min', '-10min', '1 hour ago'.
    Raises ValueError for anything else.
    """
    now = int(time.time()) if now is None else int(now)
    if text == "now":
        base, plus, minus = now * USEC_PER_SEC, 0, 0
    elif text in ("today", "yesterday", "tomorrow"):
        offset = {"today": 0, "yesterday": -1, "tomorrow": 1}[text]
        base, plus, minus = _midnight(now, offset) * USEC_PER_SEC, 0, 0
    elif text.startswith("+"):
        base, plus, minus = now * USEC_PER_SEC, parse_span(text[1:]), 0
    elif text.startswith("-"):
        base, plus, minus = now * USEC_PER_SEC, 0, parse_span(text[1:])
    elif text.startswith("@"):
        match = re.match(r"@(\d+)" + _SUBSEC + "$", text)
        if not match:
            raise ValueError(text)
        base = int(match.group(1)) * USEC_PER_SEC + int((match.group(2) or "0").ljust(6, "0"))
        plus = minus = 0
    elif text.endswith(" ago"):
        base, plus, minus = now * USEC_PER_SEC, 0, parse_span(text[:-4])
    else:
        base, plus, minus = _absolute(text, now), 0, 0
    return max(base + plus - minus, 0)


def parse_time_option(text, option):
    try:
        return parse_timestamp(text)
    except (ValueError, OverflowError):
        raise AgentError('invalid time value "%s" for %s' % (text, option))
