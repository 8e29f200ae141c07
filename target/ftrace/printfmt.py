"""A small interpreter for the `print fmt:` line of event formats: the C format string and
the argument forms the common events use (REC->f, REC->f[i], casts, __get_str(f),
REC->f ? "a" : "b", __print_symbolic, __print_flags). compile_print returns a function
record -> str, or None when the line uses anything else (the caller then prints the fields
generically)."""

import ast
import operator
import re

from target.ftrace import formats

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


def _converter(flags_, width, precision, length, conv, long_bits):
    """(the Python spec after its %, the value's normaliser (None: the value as it is; %s
    needs none, the % operator calls str), the range of values the normaliser leaves alone
    as (bits, signed), or None)."""
    spec = flags_ + (width or "") + ("." + precision if precision else "")
    if conv == "s":
        return spec + "s", None, None
    if conv == "c":
        return spec + "c", lambda v: chr(v & 0xff), None
    bits = {"hh": 8, "h": 16, "ll": 64, "l": long_bits, "z": long_bits, "j": 64,
            "t": long_bits}.get(length, 32)
    mask = (1 << bits) - 1
    if conv in "di":
        top = 1 << (bits - 1)
        return spec + "d", lambda v: ((v & mask) ^ top) - top, (bits, True)
    return spec + conv, lambda v: v & mask, (bits, False)


def _pointer(ext, long_bits, ksym):
    """%p with its extension letters: %ps/%pS/%pf/%pF print the symbol, others the address."""
    if ext[:1] in ("s", "S", "f", "F"):
        return "s", lambda v: ksym(v), None
    mask = (1 << long_bits) - 1
    return "0" + str(long_bits // 4) + "x", lambda v: v & mask, (long_bits, False)


def _in_range(field, kept):
    """Whether every value the Decoder gives for this number field (or array element) is
    one the normaliser keeps as it is: then it can be skipped."""
    if kept is None or field is None:
        return False
    bits, signed = kept
    size = field.size // field.count if field.kind == "array" else field.size
    if field.signed:
        return signed and size * 8 <= bits
    return size * 8 < bits or (size * 8 == bits and not signed)


def _number_field(expr, fmt):
    """(Field, index or None) when expr is REC->f or REC->f[i] of a number field whose name
    is not used twice, else (None, None)."""
    match = REC_RE.match(strip_expr(expr))
    if not match:
        return None, None
    name = match.group(1)
    same = [f for f in fmt.fields if f.name == name]
    if len(same) != 1 or same[0].kind not in ("int", "array"):
        return None, None
    index = None if match.group(2) is None else int(match.group(2))
    if (index is None) != (same[0].kind == "int"):
        return None, None
    return same[0], index


def compile_print(fmt, long_bits=64, ksym=None, prefix="", decoder=None):
    """fmt (a formats.Format) -> function record -> prefix + str, or None if unsupported.
    Records are those of formats.Decoder: a number is already in its C type's range, so a
    conversion that keeps that range (%d of an int, %lx of an unsigned long) is left out.
    With the decoder of a values_only format, the function takes the Struct's values instead
    of a record (None when an argument needs the record)."""
    parsed = split_print_fmt(fmt.print_fmt)
    if parsed is None:
        return None
    text, args = parsed
    pieces, specs = _conversions(prefix, text, long_bits, ksym or (lambda addr: "0x%x" % addr))
    if len(specs) != len(args):
        return None
    getters = [compile_arg(arg, fmt) for arg in args]
    if not all(getters):
        return None
    refs = [_ref(arg, get, spec, fmt) for arg, get, spec in zip(args, getters, specs)]
    if decoder is not None:
        return _from_values(_join(pieces, specs, [""] * len(specs)),
                            decoder.values_getter(refs))
    if all(isinstance(ref, str) for ref in refs):
        # every argument is a field printed as it is: format straight from the record
        return _join(pieces, specs, ["(%s)" % name for name in refs]).__mod__
    pyfmt = _join(pieces, specs, [""] * len(specs))
    values = formats.fields_getter(refs)

    def render(rec):
        return pyfmt % values(rec)
    return render


def _from_values(pyfmt, values):
    if values is None:
        return None
    return lambda flat: pyfmt % values(flat)


def _conversions(prefix, text, long_bits, ksym):
    """The C format text -> (the literal pieces around its conversions, %-escaped, prefix
    first; per conversion (Python spec after its %, normaliser, range it keeps))."""
    pieces = [prefix.replace("%", "%%")]
    specs = []
    pos = 0
    for match in CONV_RE.finditer(text):
        pieces[-1] += text[pos:match.start()].replace("%", "%%")
        pos = match.end()
        flags_, width, precision, length, conv = match.groups()
        if conv == "%":
            pieces[-1] += "%%"
            continue
        if conv == "p":
            ext = re.match(r"[A-Za-z0-9]*", text[pos:]).group(0)
            pos += len(ext)
            specs.append(_pointer(ext, long_bits, ksym))
        else:
            specs.append(_converter(flags_, width, precision, length, conv, long_bits))
        pieces.append("")
    pieces[-1] += text[pos:].replace("%", "%%")
    return pieces, specs


def _ref(arg, get, spec, fmt):
    """What fills one conversion (see formats.fields_getter): the field's name or (name,
    index) when its value prints as it is, else a function record -> normalised value."""
    _, norm, kept = spec
    field, index = _number_field(arg, fmt)
    if norm is not None and not _in_range(field, kept):
        return _then(get, norm)
    name = getter_name(arg, fmt)
    if name:
        return name
    return (field.name, index) if index is not None else get


def getter_name(expr, fmt):
    """The field name when expr is REC->f or __get_str(f) (the record's value as it is)."""
    expr = strip_expr(expr)
    match = REC_RE.match(expr)
    if match and match.group(2) is None and match.group(1) in fmt.by_name:
        return match.group(1)
    match = GET_STR_RE.match(expr)
    if match and match.group(1) in fmt.by_name:
        return match.group(1)
    return None


def _join(pieces, specs, keys):
    out = [pieces[0]]
    for (spec, _, _), key, piece in zip(specs, keys, pieces[1:]):
        out.append("%" + key + spec + piece)
    return "".join(out)


def _then(get, conv):
    return lambda rec: conv(get(rec))
