"""A local Apache Kafka (KRaft), one node or a cluster of three, built from the official jars on Maven Central.

Why this exists: not every dev/CI box has a Docker engine, yet `make run` and the integration
tests need a real broker. The jars come from Maven Central through `mvn` (strict checksums) and are
checked again against `artifacts.sha256`, so the broker is reproducible from repo files alone.

    python -m deploy.kafka.launcher resolve                  # fetch + verify the jars (cached)
    python -m deploy.kafka.launcher run [--data-dir D] [--port P] [--brokers 3]
    python -m deploy.kafka.launcher create-topics --bootstrap-servers HOST:PORT
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ctypes
import fcntl
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from ticketstream_shared.runtime.kafka_admin import ensure_topics, min_in_sync, wait_for_broker
from ticketstream_shared.runtime.settings import KafkaSettings

KAFKA_DIR = Path(__file__).resolve().parent
REPO_ROOT = KAFKA_DIR.parents[1]
POM = KAFKA_DIR / "pom.xml"
CHECKSUMS = KAFKA_DIR / "artifacts.sha256"
DEFAULT_LIBS_DIR = REPO_ROOT / ".local" / "kafka" / "libs"
DEFAULT_DATA_DIR = REPO_ROOT / ".local" / "kafka" / "data"
DEFAULT_PORT = 9092

#: Written into the libs dir once its jars matched CHECKSUMS; holds a digest of the pom and the list,
#: so editing either one triggers a fresh resolve while an unchanged checkout never runs Maven again.
#: Its mtime is also the Makefile's target for `resolve`.
STAMP_NAME = ".verified"
#: Small heap: a dev broker with a handful of topics, sharing 2 cores with the services and tests.
JVM_OPTIONS = (
    "-Xms256m",
    "-Xmx768m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
_LOG_TAIL_LINES = 25
_FIRST_ERRORS = 3

#: Kafka 4 logs through log4j2 and the jars ship no configuration; without one log4j2 only prints
#: errors. Everything goes to stdout, which start() redirects into data_dir/server.log. log4j2's own
#: shutdown hook would race Kafka's and swallow the shutdown messages, hence `shutdownHook = disable`.
_LOG4J2_PROPERTIES = """\
status = warn
shutdownHook = disable
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
"""


class KafkaLauncherError(RuntimeError):
    """The local broker could not be resolved, formatted or started; the message says why."""


def resolve_jars(libs_dir: Path = DEFAULT_LIBS_DIR) -> Path:
    """Return a libs dir holding exactly the jars of CHECKSUMS, running Maven only when not cached.

    The cached jars are re-hashed on every call (~50 ms), so a damaged cache is fetched again. A file
    lock serialises callers, because parallel test sessions share one libs dir.
    """
    expected = _read_checksums()
    fingerprint = hashlib.sha256(POM.read_bytes() + CHECKSUMS.read_bytes()).hexdigest()
    stamp = libs_dir / STAMP_NAME
    libs_dir.mkdir(parents=True, exist_ok=True)
    with (libs_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and stamp.read_text().strip() == fingerprint and not _jar_problems(libs_dir, expected):
            stamp.touch()  # newer than the pom again, so make stops asking after a mere touch of it
            return libs_dir
        _copy_dependencies(libs_dir)
        if problems := _jar_problems(libs_dir, expected):
            raise KafkaLauncherError(
                f"the jars in {libs_dir} do not match {CHECKSUMS}:\n  "
                + "\n  ".join(problems)
                + f"\nIf {POM.name} was changed on purpose, review the jars, then regenerate the list with:\n"
                f"  (cd {libs_dir} && sha256sum *.jar) > {CHECKSUMS}"
            )
        stamp.write_text(fingerprint + "\n")
    return libs_dir


def _read_checksums() -> dict[str, str]:
    """Parse CHECKSUMS (`sha256sum` output run inside the libs dir) into {jar name: digest}."""
    entries: dict[str, str] = {}
    for line in CHECKSUMS.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            entries[name.lstrip("*")] = digest.lower()
    return entries


def _copy_dependencies(libs_dir: Path) -> None:
    """Let Maven copy the runtime closure of POM into a libs dir emptied of earlier jars."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaLauncherError("Maven (`mvn`) is not on PATH; it is needed once to fetch the Kafka jars")
    for stale in [*libs_dir.glob("*.jar"), libs_dir / STAMP_NAME]:
        stale.unlink(missing_ok=True)
    command = [
        mvn, "-B", "-q", "-C", "-f", str(POM), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={libs_dir}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise KafkaLauncherError(
            f"`{' '.join(command)}` failed ({result.returncode}):\n{_tail(result.stdout + result.stderr)}"
        )


def _jar_problems(libs_dir: Path, expected: dict[str, str]) -> list[str]:
    """Every way the jars in libs_dir differ from the reviewed list: none may run otherwise."""
    actual = {jar.name: hashlib.sha256(jar.read_bytes()).hexdigest() for jar in libs_dir.glob("*.jar")}
    return [
        *(f"missing: {name}" for name in sorted(expected.keys() - actual.keys())),
        *(f"unexpected: {name}" for name in sorted(actual.keys() - expected.keys())),
        *(
            f"checksum mismatch: {name}"
            for name in sorted(expected.keys() & actual.keys())
            if expected[name] != actual[name]
        ),
    ]


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now, distinct, and outside the kernel's ephemeral range: a port from that range
    can be taken as the source port of any outgoing connection between a broker's stop and its restart."""
    low, high = _ephemeral_range()
    candidates = [port for port in range(10_000, 30_000) if not low <= port <= high]
    random.shuffle(candidates)
    chosen: list[int] = []
    for port in candidates:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen.append(port)
        if len(chosen) == count:
            return chosen
    raise KafkaLauncherError(f"no {count} free ports on 127.0.0.1")


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home, "bin", "java")) if java_home else shutil.which("java")
    if not java or not Path(java).is_file():
        raise KafkaLauncherError("no `java` found (JAVA_HOME or PATH); Kafka 4 needs Java 17+")
    return java


def _random_cluster_id() -> str:
    """A Kafka Uuid as the storage tool prints it: URL-safe base64 of 16 random bytes, no padding."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):  # Kafka rejects these: they look like CLI flags
            return cluster_id


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that has Linux SIGTERM the broker when its parent dies.

    Why: a test run killed by a timeout, or a crashed `run`, must not leave a JVM holding the port.
    Linux ties this to the thread that spawned the broker, so start it from a long-lived thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _tail(text: str) -> str:
    return "\n".join(text.splitlines()[-_LOG_TAIL_LINES:])


#: A KRaft node's log line on becoming the quorum's leader:
#: "[RaftManager id=2] Completed transition to Leader(localVoterNode=..., epoch=7, ...".
_LEADER_LINE = re.compile(r"\[RaftManager id=(\d+)\] Completed transition to Leader\(.*?\bepoch=(\d+)")


class _Running:
    """`with kafka:` starts it and stops it at the end, whatever happens."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class LocalKafka(_Running):
    """One JVM acting as KRaft controller and broker on 127.0.0.1, with its state in data_dir: alone (node 1, the
    default), or as one node of a LocalKafkaCluster (`node_id`, the cluster's `voters`, `replicas` and `cluster_id`).

    The storage is formatted once and then reused, so topics and messages survive stop()/start()
    and restarts of `run`. Ports given as 0 are picked once, here, so bootstrap_servers stays the
    same across restarts of this object. server.log holds the output of the latest start only.
    """

    def __init__(
        self,
        data_dir: Path | str,
        port: int = 0,
        controller_port: int = 0,
        *,
        node_id: int = 1,
        voters: str | None = None,
        replicas: int = 1,
        cluster_id: str | None = None,
        libs_dir: Path = DEFAULT_LIBS_DIR,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        needed = (port == 0) + (controller_port == 0)
        free = iter(free_ports(needed) if needed else ())
        self.port = port or next(free)
        self.controller_port = controller_port or next(free)
        if self.port == self.controller_port:
            raise ValueError(f"broker and controller cannot share port {self.port}")
        self.node_id = node_id
        self.voters = voters or f"{node_id}@127.0.0.1:{self.controller_port}"
        self.replicas = replicas
        self.cluster_id = cluster_id
        self.libs_dir = libs_dir
        self.start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def _log_dirs(self) -> Path:
        return self.data_dir / "kafka-logs"

    def server_properties(self) -> dict[str, str]:
        """The broker configuration: loopback only, no auto-created topics; every topic (the internal ones too) on
        `replicas` nodes, a write acknowledged by all in-sync replicas needing two of them when there are three."""
        replicas, in_sync = str(self.replicas), str(min_in_sync(self.replicas))
        return {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            # A static voter set (not `--standalone`) stores no endpoint in the metadata log, so
            # the controller port may differ between restarts.
            "controller.quorum.voters": self.voters,
            "controller.listener.names": "CONTROLLER",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self._log_dirs),
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "default.replication.factor": replicas,
            "min.insync.replicas": in_sync,
            "offsets.topic.replication.factor": replicas,
            # Fewer internal partitions than the default 50: the first group join is much faster.
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": in_sync,
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": in_sync,
            "group.initial.rebalance.delay.ms": "0",
            # sla's standbys take a dead replica's partitions over once its session expires: a service may ask for
            # a session as short as a second (the broker's default floor is six).
            "group.min.session.timeout.ms": "1000",
        }

    def start(self) -> None:
        """Start the broker and return once it serves requests; raise with the log tail otherwise."""
        self.launch()
        try:
            asyncio.run(self.ready())
        except BaseException:
            self.stop()
            raise

    def launch(self) -> None:
        """Start the JVM without waiting for it to serve (the nodes of a cluster wait for each other's votes)."""
        if self._process is not None:
            raise KafkaLauncherError(f"broker on {self.bootstrap_servers} is already running")
        libs = resolve_jars(self.libs_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "server.properties"
        config.write_text("".join(f"{key}={value}\n" for key, value in self.server_properties().items()))
        log4j2 = self.data_dir / "log4j2.properties"
        log4j2.write_text(_LOG4J2_PROPERTIES)
        java = [_java(), *JVM_OPTIONS, f"-Dlog4j2.configurationFile={log4j2}", "-cp", str(libs / "*")]
        if not (self._log_dirs / "meta.properties").is_file():
            self._format(java, config)
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [*java, "kafka.Kafka", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C reaches us, and we stop the broker in order
                preexec_fn=_die_with_parent(),
            )

    async def ready(self) -> None:
        """Return once the launched broker serves requests; raise with the log tail if it does not or dies."""
        if self._process is None:
            raise KafkaLauncherError("broker was not launched")
        await self._await_ready(self._process)

    def _format(self, java: list[str], config: Path) -> None:
        """Write a fresh cluster id and the bootstrap metadata; only ever done on an empty data dir."""
        cluster_id = self.cluster_id or _random_cluster_id()
        command = [*java, "kafka.tools.StorageTool", "format", "--cluster-id", cluster_id,
                   "--config", str(config)]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise KafkaLauncherError(
                f"formatting {self._log_dirs} failed ({result.returncode}):\n{_tail(result.stdout + result.stderr)}"
            )

    async def _await_ready(self, process: subprocess.Popen[bytes]) -> None:
        """Probe until the broker answers, watching the JVM so a crash fails fast instead of timing out."""
        probe = asyncio.ensure_future(wait_for_broker(self.bootstrap_servers, self.start_timeout_s))
        while not probe.done():
            if process.poll() is not None:
                probe.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await probe
                raise KafkaLauncherError(f"Kafka exited with {process.returncode} while starting; {self._log_tail()}")
            await asyncio.wait({probe}, timeout=0.25)
        try:
            probe.result()
        except TimeoutError as exc:
            raise KafkaLauncherError(
                f"Kafka did not answer on {self.bootstrap_servers} within {self.start_timeout_s:.0f}s; "
                f"{self._log_tail()}"
            ) from exc

    def _log_tail(self) -> str:
        """The first errors (with the exception line after each) and the last lines of server.log.

        Both, because a failed start logs hundreds of shutdown lines after the error that caused it.
        """
        lines = self.log_path.read_text(errors="replace").splitlines() if self.log_path.is_file() else []
        errors = [n for n, line in enumerate(lines) if "] ERROR " in line][:_FIRST_ERRORS]
        first_errors = "\n".join(line for n in errors for line in lines[n : n + 2])
        last_lines = "\n".join(lines[-_LOG_TAIL_LINES:])
        return f"first errors in {self.log_path}:\n{first_errors}\nlast lines:\n{last_lines}"

    def wait(self, timeout_s: float | None = None) -> int | None:
        """The broker's exit code once it has exited, or None if still running after `timeout_s`."""
        if self._process is None:
            raise KafkaLauncherError("broker was not started")
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self._process.wait(timeout_s)
        return None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash or a lost machine: no clean shutdown, the log recovers on the next start."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def stop(self) -> None:
        """SIGTERM for a clean shutdown (no log recovery on the next start), SIGKILL if it hangs."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class LocalKafkaCluster(_Running):
    """`brokers` nodes on 127.0.0.1, each a KRaft controller and broker, the controllers one quorum: every topic
    replicated on all of them, min.insync.replicas 2 (see min_in_sync), so any one node may die. Node N keeps its
    state in data_dir/node-N; the cluster id is kept in data_dir, so a node whose storage is lost is formatted into
    the same cluster. `port` (if given) is the first node's, the others follow it."""

    def __init__(self, data_dir: Path | str, brokers: int = 3, port: int = 0, **node_options: Any) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        free = free_ports(brokers if port else 2 * brokers)
        ports = [port + n for n in range(brokers)] if port else free[brokers:]
        controller_ports = free[:brokers]
        voters = ",".join(f"{n + 1}@127.0.0.1:{controller_ports[n]}" for n in range(brokers))
        cluster_id_file = self.data_dir / "cluster.id"
        if not cluster_id_file.is_file():
            cluster_id_file.write_text(_random_cluster_id())
        cluster_id = cluster_id_file.read_text().strip()
        self.nodes = [
            LocalKafka(
                self.data_dir / f"node-{n + 1}",
                ports[n],
                controller_ports[n],
                node_id=n + 1,
                voters=voters,
                replicas=brokers,
                cluster_id=cluster_id,
                **node_options,
            )
            for n in range(brokers)
        ]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap_servers for node in self.nodes)

    @property
    def replicas(self) -> int:
        return len(self.nodes)

    def start(self) -> None:
        """Start every node that is not running and return once each serves requests (they elect a controller
        among themselves first, so they are launched together)."""
        starting = [node for node in self.nodes if not node.running]
        for node in starting:
            node.launch()

        async def all_ready() -> None:
            await asyncio.gather(*(node.ready() for node in starting))

        try:
            asyncio.run(all_ready())
        except BaseException:
            self.stop()
            raise

    def node(self, node_id: int) -> LocalKafka:
        return self.nodes[node_id - 1]

    def controller_leader(self) -> LocalKafka:
        """The node leading the controller quorum now: of the leaderships the running nodes logged, the one of the
        highest epoch (Kafka's admin API has it too, but aiokafka does not speak DescribeQuorum)."""
        elected = [
            (int(epoch), int(node_id))
            for node in self.nodes
            if node.running and node.log_path.is_file()
            for node_id, epoch in _LEADER_LINE.findall(node.log_path.read_text(errors="replace"))
        ]
        if not elected:
            raise KafkaLauncherError("no node has logged a controller leadership yet")
        return self.node(max(elected)[1])

    def wait(self, timeout_s: float | None = None) -> int | None:
        """The exit code of the first node found to have exited, or None if all still run after `timeout_s`."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while (code := next((c for node in self.nodes if (c := node.wait(0)) is not None), None)) is None:
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(0.1)
        return code

    def stop(self) -> None:
        """All nodes at once: one by one, the last would wait for a quorum already gone before it gave up."""
        with ThreadPoolExecutor(len(self.nodes)) as stopping:
            list(stopping.map(LocalKafka.stop, self.nodes))


#: Under a process runner, Ctrl-C reaches the broker and its clients at once; the broker stays up this long so
#: the services can commit their last batch and leave their groups before it goes.
CLIENTS_GRACE_S = 2.0


def _run(data_dir: Path, port: int, brokers: int) -> int:
    """Foreground broker (or cluster) for a process runner: exit 0 on SIGTERM/SIGINT, 1 if a broker dies."""
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    kafka = LocalKafka(data_dir, port) if brokers == 1 else LocalKafkaCluster(data_dir, brokers, port)
    kafka.start()
    try:
        asyncio.run(ensure_topics(kafka.bootstrap_servers, replication_factor=brokers))
        print(f"Kafka ready on {kafka.bootstrap_servers} (logs: {kafka.data_dir}/**/server.log)", flush=True)
        while not stopping.is_set():
            code = kafka.wait(0.5)
            if code is not None:
                print(f"Kafka exited unexpectedly with {code}; see {kafka.data_dir}/**/server.log", file=sys.stderr)
                return 1
        kafka.wait(CLIENTS_GRACE_S)
        return 0
    finally:
        kafka.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.kafka.launcher", description="Local single-node Kafka (KRaft) for ticketstream."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    resolve = commands.add_parser("resolve", help="fetch and verify the Kafka jars (cached)")
    resolve.add_argument("--libs-dir", type=Path, default=DEFAULT_LIBS_DIR)
    run = commands.add_parser("run", help="run the broker in the foreground, with the topics created")
    run.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    run.add_argument("--port", type=int, default=DEFAULT_PORT, help="the first broker's; the others follow it")
    run.add_argument("--brokers", type=int, choices=(1, 3), default=1, help="1 node, or a cluster of 3")
    create = commands.add_parser(
        "create-topics",
        help="create the ticketstream topics on a running broker (security from the KAFKA_* variables)",
    )
    create.add_argument("--bootstrap-servers", help="default: KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:9092")
    create.add_argument("--replication-factor", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        if args.command == "resolve":
            print(resolve_jars(args.libs_dir))
            return 0
        if args.command == "run":
            return _run(args.data_dir, args.port, args.brokers)
        security = KafkaSettings().kafka_client_config()
        bootstrap = args.bootstrap_servers or security.pop("bootstrap_servers")
        security.pop("bootstrap_servers", None)
        asyncio.run(ensure_topics(bootstrap, replication_factor=args.replication_factor, **security))
        return 0
    except KafkaLauncherError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
