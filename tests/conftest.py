"""Test configuration: markers, quiet TensorFlow, and no network.

Markers:
  large        slow behavioural checks (run by `make test`; deselect with
               -m "not large" for a quick loop).
  extra_large  paper-scale runs, never in CI (`make test-extra`).
"""

import os
import socket

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402

_real_connect = socket.socket.connect


def _guarded_connect(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and (
        host.startswith("127.") or host in ("localhost", "::1")
        or self.family == socket.AF_UNIX
    ):
        return _real_connect(self, address)
    raise RuntimeError(
        f"Network access to {address} attempted during tests: the garden "
        "must work offline."
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "large: slow behavioural check")
    config.addinivalue_line(
        "markers", "extra_large: paper-scale run, never in CI")


def pytest_collection_modifyitems(config, items):
    if config.getoption("-m"):
        return
    skip = pytest.mark.skip(reason="extra_large: run with -m extra_large")
    for item in items:
        if "extra_large" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch, request):
    if "extra_large" not in request.keywords:
        monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    yield
