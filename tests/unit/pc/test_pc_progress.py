"""Progress bars of the scriptable PC commands: drawn on a terminal, silent otherwise."""

from __future__ import annotations

import io

from tinyim.pc.progress import transfer_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_is_drawn_on_a_terminal_up_to_the_whole_size() -> None:
    out = Terminal()
    with transfer_bar("upload report.pdf", stream=out) as progress:
        for done in range(0, 3 * 1024 * 1024 + 1, 1024 * 1024):
            progress(done, 3 * 1024 * 1024)
    text = out.getvalue()
    assert "upload report.pdf" in text
    assert "3.0/3.0 MiB" in text


def test_nothing_is_written_when_not_a_terminal() -> None:
    out = io.StringIO()
    with transfer_bar("download", stream=out) as progress:
        progress(10, 100)
        progress(100, 100)
    assert out.getvalue() == ""
