"""The `invoke boards` table."""

from __future__ import annotations

from host.profiles import list_boards, reachable as probe_reachable


def board_rows(reachable: bool = False) -> list[list[str]]:
    boards = list_boards()
    up = probe_reachable(boards) if reachable else {}
    rows = []
    for b in boards:
        where = "local" if b.transport.kind == "local" else f"ssh {b.transport.host}:{b.transport.port}"
        row = [b.name, b.arch, where]
        if reachable:
            row.append("yes" if up[b.name] else "no")
        rows.append(row)
    return rows


def print_boards(reachable: bool = False) -> None:
    header = ["BOARD", "ARCH", "TRANSPORT"] + (["REACHABLE"] if reachable else [])
    rows = [header] + board_rows(reachable)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
