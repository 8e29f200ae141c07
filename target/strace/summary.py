"""-c / -C: calls, errors and times per syscall, printed as strace 6.1's summary table.

The engine measures each finished syscall (system CPU time from wait4's ru_stime, or wall
clock time with -w) and hands it to Summary.add; render() prints the table the way strace's
call_summary does: the same columns and widths, the same sort orders (-S), the same
columns chosen with -U, one table per personality ("System call usage summary for 32 bit
mode:" before the ones that are not native), nothing at all when no syscall was counted.
"""

from target.cli import AgentError
from target.strace.filters import native_abi

# -U/-S names (strace 6.1) -> column
ALIASES = {
    "time": "time-percent", "time_percent": "time-percent", "time-percent": "time-percent",
    "time_total": "total-time", "time-total": "total-time", "total_time": "total-time",
    "total-time": "total-time",
    "min_time": "min-time", "min-time": "min-time", "shortest": "min-time",
    "time_min": "min-time", "time-min": "min-time",
    "longest": "max-time", "max_time": "max-time", "max-time": "max-time",
    "time_max": "max-time", "time-max": "max-time",
    "avg_time": "avg-time", "avg-time": "avg-time", "time_avg": "avg-time", "time-avg": "avg-time",
    "calls": "calls", "count": "calls",
    "error": "errors", "errors": "errors",
    "name": "name", "syscall": "name", "syscall_name": "name", "syscall-name": "name",
}
NO_SORT = ("none", "nothing")
DEFAULT_COLUMNS = ("time-percent", "total-time", "avg-time", "calls", "errors", "name")
# column -> (header, narrowest width); "historical field sizes", as strace's count.c says
HEADERS = {"time-percent": ("% time", 6), "total-time": ("seconds", 11),
           "min-time": ("shortest", 8), "max-time": ("longest", 7),
           "avg-time": ("usecs/call", 11), "calls": ("calls", 9), "errors": ("errors", 9),
           "name": ("syscall", 16)}
NS = 1000000000


def check_sort(sort_by):
    """-S SORTBY: the column to sort by (None: syscall number order); strace's error when
    SORTBY is not one of its names."""
    if sort_by in NO_SORT:
        return None
    if sort_by not in ALIASES:
        raise AgentError("invalid sortby: '%s'" % sort_by)
    column = ALIASES[sort_by]
    return "total-time" if column == "time-percent" else column


def parse_columns(text):
    """-U COLUMNS: the columns in order, name added last when missing, with strace's errors."""
    columns = []
    rest = text
    while True:
        token, comma, after = rest.partition(",")
        column = ALIASES.get(token)
        if column is None:
            raise AgentError("unknown column name: '%s'" % token)
        if column in columns:
            raise AgentError("call summary column has been provided more than once: '%s' "
                             "(-U option residual: '%s')" % (token, rest))
        columns.append(column)
        if not comma:
            break
        rest = after
    if "name" not in columns:
        columns.append("name")
    return tuple(columns)


class Counts(object):
    """One syscall's tally; times in nanoseconds."""

    __slots__ = ("calls", "errors", "total", "shortest", "longest")

    def __init__(self):
        self.calls = self.errors = self.total = self.longest = 0
        self.shortest = None

    def add(self, ns, is_error):
        self.calls += 1
        self.errors += bool(is_error)
        self.total += ns
        self.shortest = ns if self.shortest is None else min(self.shortest, ns)
        self.longest = max(self.longest, ns)

    def merge(self, other):
        self.calls += other.calls
        self.errors += other.errors
        self.total += other.total
        for ns in (other.shortest, other.longest):
            if ns is not None:
                self.shortest = ns if self.shortest is None else min(self.shortest, ns)
                self.longest = max(self.longest, ns)

    @property
    def average(self):
        return self.total // self.calls


class Summary(object):
    """The tallies of a trace: per process and personality, per syscall name."""

    def __init__(self):
        self.tallies = {}     # pid -> {abi name: {syscall name: Counts}}
        self.abis = {}        # abi name -> Abi (for syscall numbers)

    def add(self, pid, name, seconds, is_error, abi=None):
        """One finished syscall of process pid: seconds of system (or wall clock) time it
        took, as the engine measured it (negative counts as 0); abi: its personality
        (default: the native one)."""
        abi = abi or native_abi()
        key = abi.name if abi else ""
        self.abis.setdefault(key, abi)
        by_name = self.tallies.setdefault(pid, {}).setdefault(key, {})
        counts = by_name.get(name)
        if counts is None:
            counts = by_name[name] = Counts()
        counts.add(max(int(round(seconds * NS)), 0), is_error)

    def render(self, sort_by="time", per_process=False, columns=DEFAULT_COLUMNS):
        """strace's -c table(s), "" when nothing was counted. per_process (our extension;
        strace sums all processes up): one table per process, in order of their first
        syscall, each preceded by "System call usage summary for pid PID:" (or "... for pid
        PID in 32 bit mode:" for a personality that is not the native one)."""
        sort_column = check_sort(sort_by)
        out = []
        if per_process:
            for pid, by_abi in self.tallies.items():
                for key, counts in self._ordered(by_abi):
                    mode = "" if self._is_native(key) else " in %s mode" % self._mode(key)
                    out.append("System call usage summary for pid %d%s:\n" % (pid, mode))
                    out.append(self._table(key, counts, sort_column, columns))
            return "".join(out)
        merged = {}
        for by_abi in self.tallies.values():
            for key, counts in by_abi.items():
                target = merged.setdefault(key, {})
                for name, tally in counts.items():
                    target.setdefault(name, Counts()).merge(tally)
        for key, counts in self._ordered(merged):
            if not self._is_native(key):
                out.append("System call usage summary for %s mode:\n" % self._mode(key))
            out.append(self._table(key, counts, sort_column, columns))
        return "".join(out)

    def _ordered(self, by_abi):
        return sorted(by_abi.items(), key=lambda item: (not self._is_native(item[0]), item[0]))

    def _is_native(self, key):
        native = native_abi()
        return key == (native.name if native else "")

    def _mode(self, key):
        abi = self.abis.get(key)
        return "%d bit" % (abi.word * 8) if abi else key

    def _table(self, key, counts, sort_column, columns):
        """Rows in syscall number order (the unknown ones last), then stably sorted: ties
        stay in number order, as with strace's qsort on glibc."""
        abi = self.abis.get(key)
        numbers = abi.numbers if abi else {}
        rows = sorted(counts.items(), key=lambda row: (numbers.get(row[0], float("inf")), row[0]))
        if sort_column is not None:
            rows.sort(key=sort_key(sort_column))
        return format_table(rows, columns)


SORTED_BY = {"total-time": "total", "min-time": "shortest", "max-time": "longest",
             "avg-time": "average", "calls": "calls", "errors": "errors"}


def sort_key(column):
    """The key that puts (name, Counts) rows in strace's order for column: largest first,
    names from A to Z (bytewise, like strcmp)."""
    if column == "name":
        return lambda row: row[0].encode()
    attribute = SORTED_BY[column]
    return lambda row: -getattr(row[1], attribute)


def seconds(ns):
    """A timespec as strace's ts_float turns it into a double."""
    return ns // NS + (ns % NS) / 1e9


def usecs(ns):
    return int(seconds(ns) * 1e6)


def format_table(rows, columns):
    """rows: (name, Counts) in the order to print; the text of strace's call_summary_pers."""
    if not rows:
        return ""
    tallies = [counts for _, counts in rows]
    total = sum(c.total for c in tallies)
    calls = sum(c.calls for c in tallies)
    errors = sum(c.errors for c in tallies)
    widest = {
        "time-percent": 6,
        "total-time": len("%.6f" % seconds(total)),
        "min-time": len("%d.000000" % (max(c.shortest for c in tallies) // NS)),
        "max-time": len("%d.000000" % (max(c.longest for c in tallies) // NS)),
        "avg-time": len("%d" % usecs(max(c.average for c in tallies))),
        "calls": len("%d" % calls),
        "errors": len("%d" % errors),
        "name": max(len(name) for name, _ in rows) + 1,
    }
    widths = {column: max(HEADERS[column][1], widest[column]) for column in columns}
    last = len(columns) - 1

    def line(cells):
        return " ".join(cells) + "\n"

    def cell(i, column, text):
        if column == "name":
            return text if i == last else text.ljust(widths[column])
        return text.rjust(widths[column])

    def row(name, percent, counts_total, shortest, longest, average_us, n_calls, n_errors):
        values = {
            "time-percent": "%.2f" % percent,
            "total-time": "%.6f" % counts_total,
            "min-time": "%.6f" % shortest,
            "max-time": "%.6f" % longest,
            "avg-time": "%d" % average_us,
            "calls": "%d" % n_calls,
            "errors": "%d" % n_errors if n_errors else "",
            "name": name,
        }
        return line(cell(i, column, values[column]) for i, column in enumerate(columns))

    divider = line("-" * widths[column] for column in columns)
    out = [line(cell(i, column, HEADERS[column][0]) for i, column in enumerate(columns)),
           divider]
    cum = seconds(total)
    for name, counts in rows:
        percent = 100.0 * seconds(counts.total)
        if percent != 0.0:
            percent /= cum
        out.append(row(name, percent, seconds(counts.total), seconds(counts.shortest),
                       seconds(counts.longest), usecs(counts.average), counts.calls,
                       counts.errors))
    out.append(divider)
    out.append(row("total", 100.0, cum, seconds(min(c.shortest for c in tallies)),
                   seconds(max(c.longest for c in tallies)), int(cum / calls * 1e6), calls,
                   errors))
    return "".join(out)
