"""The real ``serve`` program: gunicorn (and nginx when installed) as subprocesses on a free port."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from tests.container.dnn_regressor_support import SERVE, TrainedModel, clean_env, free_port


def _start(model_dir: Path, port: int, **env: str) -> subprocess.Popen[str]:
    settings = {"SERVE_WITH_NGINX": "false", "MODEL_SERVER_WORKERS": "2", **env}
    environment = clean_env(SAGEMAKER_BIND_TO_PORT=str(port), SM_MODEL_DIR=str(model_dir), **settings)
    return subprocess.Popen(
        [sys.executable, str(SERVE)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _request(port: int, method: str, path: str, body: str | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read().decode()
    finally:
        conn.close()


def _wait_for_ping(proc: subprocess.Popen[str], port: int, want: int, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"serve exited early with {proc.returncode}:\n{proc.stdout.read()}"
        try:
            status, _, body = _request(port, "GET", "/ping")
            last = f"{status} {body}"
            if status == want:
                return body
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise AssertionError(f"/ping never answered {want} within {timeout} s (last: {last})")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def _family(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def _all_gone(processes: list[psutil.Process], timeout: float = 10) -> bool:
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


def test_gunicorn_serves_and_stops_cleanly_on_sigterm(trained_model: TrainedModel, regressor) -> None:
    port = free_port()
    proc = _start(trained_model.model_dir, port)
    try:
        _wait_for_ping(proc, port, 200)
        rows = trained_model.test_rows[:3, 1:]
        status, ctype, body = _request(
            port,
            "POST",
            "/invocations",
            "\n".join(",".join(map(str, r)) for r in rows),
            {"Content-Type": "text/csv"},
        )
        assert status == 200 and ctype.startswith("text/csv")
        assert [float(v) for v in body.split()] == pytest.approx(regressor.predict(rows).tolist(), rel=1e-6)
        status, ctype, body = _request(
            port,
            "POST",
            "/invocations",
            json.dumps({"instances": rows.tolist()}),
            {"Content-Type": "application/json", "Accept": "application/json"},
        )
        assert status == 200 and len(json.loads(body)["predictions"]) == 3
        # a chunked body (no Content-Length), as streaming clients send it, split mid-row
        csv_body = "\n".join(",".join(map(str, r)) for r in rows).encode()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/invocations", body=iter([csv_body[:7], csv_body[7:]]),
                     headers={"Content-Type": "text/csv"}, encode_chunked=True)
        chunked = conn.getresponse()
        assert chunked.status == 200
        assert [float(v) for v in chunked.read().split()] == pytest.approx(regressor.predict(rows).tolist(), rel=1e-6)
        conn.close()
        status, _, body = _request(port, "POST", "/invocations", "1,2", {"Content-Type": "text/csv"})
        assert status == 400 and "expected 3 features" in body
        status, _, body = _request(port, "GET", "/execution-parameters")
        assert json.loads(body)["MaxConcurrentTransforms"] == 2
        status, _, body = _request(
            port, "POST", "/invocations", "1," * 3_500_000, {"Content-Type": "text/csv"}
        )
        assert status == 413 and "6 MB" in body

        family = _family(proc.pid)
        assert len(family) >= 3  # gunicorn master + 2 workers
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert _all_gone(family), "gunicorn processes outlived serve"
        with pytest.raises(OSError):
            _request(port, "GET", "/ping")
    finally:
        _stop(proc)
    assert "serve: stopped" in proc.stdout.read()


def test_serve_exits_non_zero_when_gunicorn_dies(tmp_path: Path) -> None:
    port = free_port()
    # No model: workers answer 503 at once without importing TensorFlow.
    proc = _start(tmp_path / "missing-model", port, MODEL_SERVER_WORKERS="1")
    try:
        reason = _wait_for_ping(proc, port, 503)
        assert "does not exist" in reason
        gunicorn = next(p for p in _family(proc.pid) if p.ppid() == proc.pid)
        gunicorn.kill()
        assert proc.wait(timeout=30) != 0
    finally:
        _stop(proc)
    assert "gunicorn exited with code" in proc.stdout.read()


def test_bad_serving_settings_exit_with_a_message() -> None:
    env = clean_env(MODEL_SERVER_WORKERS="many", SERVE_WITH_NGINX="false")
    result = subprocess.run([sys.executable, str(SERVE)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "MODEL_SERVER_WORKERS='many' must be an integer" in result.stderr


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (make system-deps installs it as root)")
def test_nginx_fronts_gunicorn_when_installed(trained_model: TrainedModel) -> None:
    port = free_port()
    proc = _start(trained_model.model_dir, port, SERVE_WITH_NGINX="true", MODEL_SERVER_WORKERS="1")
    try:
        _wait_for_ping(proc, port, 200)
        status, _, body = _request(port, "POST", "/invocations", "5,-100,0", {"Content-Type": "text/csv"})
        assert status == 200 and float(body) > 0
        status, _, body = _request(
            port, "POST", "/invocations", "1," * 3_500_000, {"Content-Type": "text/csv"}
        )
        assert status == 413 and "6 MB" in body
        assert any("nginx" in p.name() for p in _family(proc.pid))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        _stop(proc)


class TestSupervisorPieces:
    def test_gunicorn_command_uses_this_interpreter_and_no_control_socket(self) -> None:
        from dnn_regressor.supervisor import gunicorn_command, settings_from_env

        settings = settings_from_env(
            {"MODEL_SERVER_WORKERS": "3", "MODEL_SERVER_TIMEOUT": "9", "SERVE_WITH_NGINX": "false"}
        )
        assert settings.port == 8080 and settings.workers == 3 and not settings.use_nginx
        command = gunicorn_command(settings, "0.0.0.0:8080")
        assert command[:3] == [sys.executable, "-m", "gunicorn"] and command[-1] == "wsgi:app"
        assert "--no-control-socket" in command
        assert (
            command[command.index("--workers") + 1] == "3" and command[command.index("--timeout") + 1] == "9"
        )

    def test_workers_default_to_cpu_count(self) -> None:
        from dnn_regressor.supervisor import settings_from_env

        assert settings_from_env({}).workers == (os.cpu_count() or 1)

    def test_nginx_template_is_fully_rendered(self, tmp_path: Path) -> None:
        from dnn_regressor.supervisor import NGINX_TEMPLATE, render_nginx_conf

        text = render_nginx_conf(
            NGINX_TEMPLATE.read_text(),
            port=8123,
            socket_path=tmp_path / "g.sock",
            scratch=tmp_path,
            timeout=60,
        )
        assert not re.search(
            r"@[A-Z_]+@", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        )
        assert "listen 8123 deferred;" in text and f"server unix:{tmp_path / 'g.sock'};" in text
        assert "ping|invocations|execution-parameters" in text


def test_large_and_pipelined_requests_on_one_keep_alive_connection(trained_model: TrainedModel, regressor) -> None:
    """Bodies read past gunicorn's 1 KB Body pieces: a 1,000-row body, then two requests sent in
    one write (the second starts inside the first's last socket chunk), all on one connection."""
    import socket

    port = free_port()
    proc = _start(trained_model.model_dir, port, MODEL_SERVER_WORKERS="1")
    try:
        _wait_for_ping(proc, port, 200)
        rows = np.tile(trained_model.test_rows[:, 1:], (3, 1))[:1000]
        big = ("\n".join(",".join(f"{v:.6f}" for v in r) for r in rows) + "\n").encode()
        small = b"5,-100,0\n"
        third = big[: big.index(b"\n", 9000) + 1]  # a body that ends a few bytes into a socket chunk

        def request(body: bytes) -> bytes:
            head = f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\nContent-Length: {len(body)}\r\n\r\n"
            return head.encode() + body

        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(request(big))
            sock.sendall(request(small) + request(third))  # pipelined
            answers: list[bytes] = []
            received = b""
            while len(answers) < 3:
                head, sep, rest = received.partition(b"\r\n\r\n")
                match = re.search(rb"Content-Length: (\d+)", head) if sep else None
                if match and len(rest) >= int(match.group(1)):
                    length = int(match.group(1))
                    assert head.startswith(b"HTTP/1.1 200"), (head, rest[:length])
                    answers.append(rest[:length])
                    received = rest[length:]
                    continue
                chunk = sock.recv(1 << 16)
                assert chunk, f"connection closed after {len(answers)} answers: {received[-300:]!r}"
                received += chunk
        first = np.array(answers[0].split(), dtype=np.float64)
        np.testing.assert_allclose(first, regressor.predict(rows), rtol=1e-6)
        assert float(answers[1]) == pytest.approx(float(regressor.predict(np.array([[5, -100, 0]]))[0]), rel=1e-6)
        np.testing.assert_allclose(
            np.array(answers[2].split(), dtype=np.float64), regressor.predict(rows[: third.count(b"\n")]), rtol=1e-6
        )
    finally:
        _stop(proc)


def test_read_exactly_uses_gunicorns_length_reader_and_leaves_pipelined_bytes() -> None:
    import socket

    from dnn_regressor.predictor import _read_exactly
    from gunicorn.http.body import Body, LengthReader
    from gunicorn.http.unreader import SocketUnreader

    payload = bytes(range(256)) * 400  # 102,400 bytes: many 8 KB socket chunks
    left, right = socket.socketpair()
    try:
        left.sendall(payload + b"NEXT REQUEST")
        left.shutdown(socket.SHUT_WR)
        unreader = SocketUnreader(right)
        body = Body(LengthReader(unreader, len(payload)))
        calls: list[int] = []
        original = body.read
        body.read = lambda size=None: calls.append(size) or original(size)  # type: ignore[method-assign]
        assert _read_exactly(body, len(payload)) == payload
        assert calls == [], "Body.read (1 KB pieces) was used"
        assert body.read(10) == b""  # the body is consumed...
        assert unreader.read() + unreader.read() == b"NEXT REQUEST"  # ...and the next request is intact
    finally:
        left.close()
        right.close()
    # any other stream is read the WSGI way
    import io

    assert _read_exactly(io.BytesIO(b"abcdef"), 4) == b"abcd"
