"""Event format files as tracefs shows them, for tests that build ring-buffer pages by hand."""

COMMON_FIELDS = (("unsigned short common_type", 0, 2, 0), ("unsigned char common_flags", 2, 1, 0),
                 ("unsigned char common_preempt_count", 3, 1, 0), ("int common_pid", 4, 4, 1))


def field_lines(fields):
    return "".join("\tfield:%s;\toffset:%d;\tsize:%d;\tsigned:%d;\n" % f for f in fields)


def event_format(name, event_id, fields, print_fmt):
    """The text of events/<system>/<name>/format: the common fields, then fields
    ((declaration, offset, size, signed) each), then the print fmt line."""
    return "name: %s\nID: %d\nformat:\n%s\n%s\nprint fmt: %s\n" % (
        name, event_id, field_lines(COMMON_FIELDS), field_lines(fields), print_fmt)
