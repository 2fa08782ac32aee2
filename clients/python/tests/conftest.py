"""Makes the package importable straight from the tree: clients/python on
sys.path, and the flatc-generated wald.proto in $WALD_PYTHON_GEN (made here
with flatc --python if it is not set). $WALD_BINARY names the daemon."""

import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
if not os.environ.get("WALD_PYTHON_GEN"):
    gen = tempfile.mkdtemp(prefix="wald-python-gen-")
    schema = os.path.join(ROOT, "..", "..", "protocol", "wald.fbs")
    subprocess.run(["flatc", "--python", "-o", gen, schema], check=True)
    os.environ["WALD_PYTHON_GEN"] = gen

import wald  # noqa: E402 (after the path set-up above)


class Daemon:
    def __init__(self, tmp, *args):
        self.dir = str(tmp / "data")
        self.socket = str(tmp / "wald.sock")
        self.args = list(args)
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [os.environ["WALD_BINARY"], "--dir", self.dir, "--socket", self.socket, "--stats-interval", "0"]
            + self.args,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                wald.connect(self.socket).close()
                return
            except wald.DaemonGone:
                time.sleep(0.02)
        raise RuntimeError("wald did not start")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)


@pytest.fixture
def daemon(tmp_path):
    """A wald on a temp dir and socket, stopped after the test."""
    d = Daemon(tmp_path)
    yield d
    d.stop()


@pytest.fixture
def make_daemon(tmp_path):
    """Starts a wald with extra options; stopped after the test."""
    made = []

    def make(*args):
        made.append(Daemon(tmp_path, *args))
        return made[-1]

    yield make
    for d in made:
        d.stop()
