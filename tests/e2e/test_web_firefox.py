"""The Web client in real headless Firefox (Debian's firefox-esr) against a real `tinyim run`.

Playwright cannot drive Debian's Firefox, so the scenario is a Node script (web/e2e/firefox.mjs,
puppeteer-core over WebDriver BiDi): two people register, become friends by username, chat both ways, see an
unread badge and clear it, reload and find the history. This test starts the server and runs the script;
the script's screenshots go to test-artifacts/web/firefox/.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator

import pytest

from tests.e2e.web_browser import ARTIFACTS, FIREFOX, REPO, require_firefox
from tests.support.server import ServerProcess
from tinyim.infra.children import die_with_parent

pytestmark = pytest.mark.e2e

SCRIPT_TIMEOUT_S = 180  # 30-50 s on a loaded machine; a hung browser must not hang the suite


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    require_firefox()
    served = ServerProcess(tmp_path_factory.mktemp("tinyim-web-firefox")).start()
    try:
        yield served
    finally:
        served.stop()


def test_two_people_chat_in_firefox(server: ServerProcess) -> None:
    node = require_firefox()
    shots = ARTIFACTS / "firefox"
    proc = subprocess.Popen(
        [node, "e2e/firefox.mjs"],
        cwd=REPO / "web",
        env={
            **os.environ,
            "TINYIM_URL": server.base_url,
            "TINYIM_SHOTS": str(shots),
            "IM_TEST_FIREFOX": FIREFOX,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # node and its two Firefoxes in one process group, ended together below
        preexec_fn=die_with_parent,
    )
    try:
        out, _ = proc.communicate(timeout=SCRIPT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"the Firefox scenario did not finish in {SCRIPT_TIMEOUT_S}s:\n{out.decode()}")
    finally:
        with contextlib.suppress(ProcessLookupError):  # a Firefox left behind by a crashed script
            os.killpg(proc.pid, signal.SIGKILL)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, (
        f"the Firefox scenario failed (screenshots: {shots}):\n{text}\n{server.log()}"
    )
    assert text.rstrip().endswith("passed"), text  # the script's last step, not an early clean exit
    assert (shots / "03-unread-badge-bob.png").stat().st_size > 0
    assert (shots / "06-after-reload-alice.png").stat().st_size > 0
