"""`invoke boot-report` on a real emulated board: qemu-aarch64 running without initcall_debug is
left alone unless asked, then restarted with initcall_debug on its kernel command line, and its
kernel log, read through the agent, lists the real initcalls with their durations. One board of
its own (the session's boards boot without initcall_debug), its state in the test's directory."""

from __future__ import annotations

import pytest

import host.qemu
from host.bootreport import INITCALL_DEBUG, make_report, records_from_board, render_html, table_text
from host.errors import BoardtraceError
from host.profiles import load_board
from host.qemu import runner
from tests.qemu.conftest import image_or_skip

pytestmark = pytest.mark.qemu


def test_a_board_restarted_with_initcall_debug_reports_its_initcalls(tmp_path, monkeypatch):
    board = load_board("qemu-aarch64")
    image = image_or_skip(board)
    state = tmp_path / "run"
    monkeypatch.setattr(host.qemu, "STATE", state)   # not build/qemu/run: a board there may be in use
    plain = runner.up(board, image, state, say=lambda _: None)
    try:
        assert plain.append == runner.kernel_command_line(board) and INITCALL_DEBUG not in plain.append.split()
        with pytest.raises(BoardtraceError, match=r"^board qemu-aarch64 is running without initcall_debug "
                                                  r"\(kernel command line: .*\); `invoke boot-report --board "
                                                  r"qemu-aarch64 --reboot` restarts it with initcall_debug$"):
            records_from_board(board)
        assert runner.status(board, state) == plain             # not restarted unasked

        records = records_from_board(board, reboot=True)
        running = runner.status(board, state)
        assert running is not None and running.pid != plain.pid
        assert running.append == runner.kernel_command_line(board, INITCALL_DEBUG) == plain.append + " initcall_debug"
        assert any(r.text == f"Kernel command line: {running.append}" for r in records)
        with pytest.raises(BoardtraceError, match="runs without nokaslr on its kernel command line"):
            runner.up(board, image, state, extra_append="nokaslr")
        assert runner.status(board, state) == running
    finally:
        runner.down(board, state)

    report = make_report(records, board.name)
    assert report.kernel == image.facts["kernel"]["release"]
    assert report.first_seq == 0 and len(report.initcalls) > 300
    assert all(call.pid is not None and call.duration_us >= 0 for call in report.initcalls)
    names = {call.name for call in report.initcalls}
    assert {"inet_init", "virtio_pci_driver_init [virtio_pci]", "virtio_net_driver_init [virtio_net]"} <= names
    durations = [call.duration_us for call in report.initcalls]
    assert durations == sorted(durations, reverse=True)
    # run one after the other (pid 1, then /init's module loads): their sum fits in the time
    # until the last one returned, which is before the last log record
    assert 10_000 < report.total_us <= report.end_ns // 1000 <= max(r.ts_ns for r in records) // 1000
    assert table_text(report, 5).splitlines()[2].split()[0] == report.initcalls[0].function
    page = render_html(report, tmp_path / "boot.html").read_text()
    assert page.count('<g class="bar ') == len(report.initcalls)

