"""A small interpreter for the `print fmt:` line of event formats: the C format string and
the argument forms the common events use (REC->f, REC->f[i], casts, __get_str(f),
REC->f ? "a" : "b", __print_symbolic, __print_flags). compile_print returns a function
record -> str, or None when the line uses anything else (the caller then prints the fields
generically)."""

import ast
import operator
import re

CONV_RE = re.compile(r"%([-+ #0]*)(\d+)?(?:\.(\d+))?(hh|h|ll|l|z|j|t)?([diouxXcsp%])")
CAST_RE = re.compile(r"^\(\s*(?:(?:unsigned|signed|const|struct|enum|long|int|char|short|void"
                     r"|u8|u16|u32|u64|s8|s16|s32|s64|bool|size_t|pid_t)\b\s*)+\**\s*\)\s*")
REC_RE = re.compile(r"^REC->([A-Za-z_]\w*)(?:\[(\d+)\])?$")
GET_STR_RE = re.compile(r"^__get_str\(\s*([A-Za-z_]\w*)\s*\)$")
TERNARY_RE = re.compile(r'^(REC->\w+)\s*\?\s*"([^"]*)"\s*:\s*"([^"]*)"$')
PAIR_RE = re.compile(r'\{\s*([^,{}]+?)\s*,\s*"([^"]*)"\s*\}')

# enum names that appear in print fmts of common events, with their values
ENUMS = {
    "HRTIMER_MODE_ABS": 0, "HRTIMER_MODE_REL": 1, "HRTIMER_MODE_ABS_PINNED": 2,
    "HRTIMER_MODE_REL_PINNED": 3, "HRTIMER_MODE_ABS_SOFT": 4, "HRTIMER_MODE_REL_SOFT": 5,
    "HRTIMER_MODE_ABS_PINNED_SOFT": 6, "HRTIMER_MODE_REL_PINNED_SOFT": 7,
    "HRTIMER_MODE_ABS_HARD": 8, "HRTIMER_MODE_REL_HARD": 9, "HRTIMER_MODE_ABS_PINNED_HARD": 10,
    "HRTIMER_MODE_REL_PINNED_HARD": 11,
}

BINOPS = {ast.LShift: operator.lshift, ast.BitOr: operator.or_, ast.Add: operator.add,
          ast.Sub: operator.sub, ast.BitAnd: operator.and_}


def split_print_fmt(text):
    """'"fmt", a, b' -> (fmt, [a, b]) with C escapes of fmt resolved; None if malformed."""
    text = text.strip()
    if not text.startswith('"'):
        return None
    i = 1
    out = []
    while i < len(text) and text[i] != '"':
        if text[i] == "\\" and i + 1 < len(text):
            out.append({"n": "\n", "t": "\t", '"': '"', "\\": "\\"}.get(text[i + 1],
                                                                       text[i + 1]))
            i += 2
        else:
            out.append(text[i])
            i += 1
    if i >= len(text):
        return None
    return "".join(out), split_args(text[i + 1:].lstrip(" ,"))


def split_args(text):
    """Split at top-level commas (outside parentheses, braces and strings)."""
    args, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if quoted:
            if ch == '"' and text[i - 1] != "\\":
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
    if text[start:].strip():
        args.append(text[start:].strip())
    return args


def strip_expr(expr):
    """Remove casts and enclosing parentheses."""
    while True:
        expr = expr.strip()
        match = CAST_RE.match(expr)
        if match:
            expr = expr[match.end():]
        elif expr.startswith("(") and expr.endswith(")") and _balanced(expr[1:-1]):
            expr = expr[1:-1]
        else:
            return expr


def _balanced(text):
    depth = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return depth == 0


def _number(text):
    """A constant of a print fmt table: 3, 0x10UL, (1 << 4), an ENUMS name. ValueError else."""
    text = re.sub(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]+\b", r"\1", text.strip())
    if text in ENUMS:
        return ENUMS[text]
    try:
        return _constant(ast.parse(text, mode="eval").body)
    except SyntaxError:
        raise ValueError(text) from None


def _constant(node):
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in BINOPS:
        return BINOPS[type(node.op)](_constant(node.left), _constant(node.right))
    raise ValueError("not a constant")


def _field_getter(expr, fmt):
    match = REC_RE.match(expr)
    if not match or match.group(1) not in fmt.by_name:
        return None
    name = match.group(1)
    if match.group(2) is not None:
        index = int(match.group(2))
        return lambda rec: rec[name][index]
    return lambda rec: rec[name]


def compile_arg(expr, fmt):
    """A function record -> value for one argument expression, or None."""
    expr = strip_expr(expr)
    getter = _field_getter(expr, fmt)
    if getter:
        return getter
    match = GET_STR_RE.match(expr)
    if match and match.group(1) in fmt.by_name:
        name = match.group(1)
        return lambda rec: rec[name]
    match = TERNARY_RE.match(expr)
    if match:
        get = _field_getter(match.group(1), fmt)
        yes, no = match.group(2), match.group(3)
        return get and (lambda rec: yes if get(rec) else no)
    for helper in ("__print_symbolic(", "__print_flags("):
        if expr.startswith(helper) and expr.endswith(")"):
            return _compile_helper(helper, split_args(expr[len(helper):-1]), fmt)
    return None


def _compile_helper(helper, args, fmt):
    get = _field_getter(strip_expr(args[0]), fmt) if args else None
    if get is None:
        return None
    try:
        if helper == "__print_symbolic(":
            table = {_number(k): v for k, v in PAIR_RE.findall(",".join(args[1:]))}
            return lambda rec: symbolic(get(rec), table)
        delim = args[1].strip().strip('"')
        pairs = [(_number(k), v) for k, v in PAIR_RE.findall(",".join(args[2:]))]
    except ValueError:
        return None
    return lambda rec: flags(get(rec), delim, pairs)


def symbolic(value, table):
    """__print_symbolic: the name, or the value as 0x%lx."""
    name = table.get(value)
    return name if name is not None else "0x%x" % value


def flags(value, delim, pairs):
    """__print_flags as the kernel's trace_print_flags_seq does it."""
    out = []
    for bit, name in pairs:
        if not value:
            break
        if value & bit == bit:
            out.append(name)
            value &= ~bit
    if value:
        out.append("0x%x" % value)
    return delim.join(out)


def _converter(flags_, width, precision, length, conv, long_bits, ksym):
    spec = "%" + flags_ + (width or "") + ("." + precision if precision else "")
    if conv == "s":
        return spec + "s", _as_str
    if conv == "c":
        return spec + "c", lambda v: chr(v & 0xff)
    bits = {"hh": 8, "h": 16, "ll": 64, "l": long_bits, "z": long_bits, "j": 64,
            "t": long_bits}.get(length, 32)
    if conv == "p":
        return None, None
    mask = (1 << bits) - 1
    if conv in "di":
        top = 1 << (bits - 1)
        return spec + "d", lambda v: ((v & mask) ^ top) - top
    return spec + conv, lambda v: v & mask


def _as_str(value):
    return value if isinstance(value, str) else str(value)


def compile_print(fmt, long_bits=64, ksym=None):
    """fmt (a formats.Format) -> function record -> str, or None if unsupported."""
    parsed = split_print_fmt(fmt.print_fmt)
    if parsed is None:
        return None
    text, args = parsed
    pieces = []
    convs = []
    pos = 0
    ksym = ksym or (lambda addr: "0x%x" % addr)
    for match in CONV_RE.finditer(text):
        pieces.append(text[pos:match.start()].replace("%", "%%"))
        pos = match.end()
        flags_, width, precision, length, conv = match.groups()
        if conv == "%":
            pieces.append("%%")
            continue
        if conv == "p":
            ext = re.match(r"[A-Za-z0-9]*", text[pos:]).group(0)
            pos += len(ext)
            if ext[:1] in ("s", "S", "f", "F"):
                pieces.append("%s")
                convs.append(lambda v: ksym(v))
            else:
                pieces.append("%0" + str(long_bits // 4) + "x")
                mask = (1 << long_bits) - 1
                convs.append(lambda v, m=mask: v & m)
            continue
        spec, norm = _converter(flags_, width, precision, length, conv, long_bits, ksym)
        pieces.append(spec)
        convs.append(norm)
    pieces.append(text[pos:].replace("%", "%%"))
    if len(convs) != len(args):
        return None
    getters = [compile_arg(arg, fmt) for arg in args]
    if not all(getters):
        return None
    pyfmt = "".join(pieces)
    pairs = list(zip(getters, convs))

    def render(rec):
        return pyfmt % tuple([conv(get(rec)) for get, conv in pairs])
    return render
