"""A private RabbitMQ node for tests: loopback, free ports, a temporary folder, stopped by PID.

Recipe: ../shared/RECIPES.md ("RabbitMQ"). The Debian package is installed with apt-get when
missing (as root); a node that cannot be started fails under CI=true and skips elsewhere
(``tests.servers.unavailable``). Start one node per test module and reuse it: it takes 7-10 s.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import apt_install, free_port, unavailable

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
RABBITMQCTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")
START_SECONDS = 60.0


def _epmd() -> str | None:
    found = sorted(glob.glob("/usr/lib/erlang/erts-*/bin/epmd"))
    return found[-1] if found else None


def ensure_installed() -> None:
    """Install the Debian package when missing; fail (CI) or skip when that is impossible."""
    if not RABBITMQ_SERVER.exists() or _epmd() is None:
        apt_install("rabbitmq-server")
    if not RABBITMQ_SERVER.exists() or _epmd() is None:
        unavailable("rabbitmq-server is not installed and could not be installed with apt-get")


@dataclass
class RabbitNode:
    """One RabbitMQ node in ``base``; ``start``/``stop``/``restart`` keep ports and data."""

    base: Path
    port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    epmd_port: int = field(default_factory=free_port)
    _server: subprocess.Popen[bytes] | None = None
    _epmd: subprocess.Popen[bytes] | None = None

    @property
    def nodename(self) -> str:
        return f"edi{self.port}@localhost"

    def env(self) -> dict[str, str]:
        """The environment the node (and rabbitmqctl) run with."""
        base = self.base
        return {
            **os.environ,
            "HOME": str(base),
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_LOGS": str(base / "log" / "node.log"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def start(self) -> None:
        """Start epmd (once) and the node; return when it accepts AMQP connections."""
        epmd = _epmd()
        assert epmd is not None
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "log").mkdir(exist_ok=True)
        (self.base / "rabbitmq.conf").write_text(
            f"loopback_users = none\nlisteners.tcp.1 = 127.0.0.1:{self.port}\n"
        )
        (self.base / "enabled_plugins").write_text("[].\n")
        (self.base / "rabbitmq-env.conf").write_text("")
        if self._epmd is None:
            self._epmd = subprocess.Popen(
                [epmd, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        self._server = subprocess.Popen(
            [str(RABBITMQ_SERVER)],
            env=self.env(),
            cwd=self.base,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        import pika
        import pika.exceptions

        params = pika.ConnectionParameters(
            "127.0.0.1", self.port, connection_attempts=1, socket_timeout=2
        )
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            assert self._server is not None
            if self._server.poll() is not None:
                break
            try:
                pika.BlockingConnection(params).close()
                return
            except pika.exceptions.AMQPError:
                time.sleep(0.3)
        log = self.base / "log" / "node.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
        self.stop()
        unavailable(f"RabbitMQ node did not start on port {self.port}: {tail}")

    def stop_server(self) -> None:
        """Stop the node gracefully (SIGTERM to the wrapper), waiting for it to exit."""
        server, self._server = self._server, None
        if server is None or server.poll() is not None:
            return
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    def stop(self) -> None:
        """Stop the node, then epmd."""
        self.stop_server()
        epmd, self._epmd = self._epmd, None
        if epmd is not None and epmd.poll() is None:
            epmd.terminate()
            epmd.wait(timeout=10)

    def restart(self) -> None:
        """Stop and start the node on the same ports with the same data."""
        self.stop_server()
        self.start()

    def ctl(self, *args: str) -> str:
        """Run ``rabbitmqctl`` against this node; its standard output."""
        done = subprocess.run(
            [str(RABBITMQCTL), "-n", self.nodename, "-q", *args],
            env=self.env(),
            capture_output=True,
            check=True,
            timeout=60,
        )
        return done.stdout.decode()
