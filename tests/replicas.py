"""Processes of a service as `make run` starts them (deploy/Procfile), on a broker of their own: kills and restarts
must not disturb the session's broker, nor its processes read what other tests left on the session's topics."""

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deploy.kafka.launcher import LocalKafka, free_ports
from deploy.processes import ServiceProcess, procfile_processes
from tests.keys import keys_file
from tests.polling import eventually
from ticketstream_shared.runtime.kafka_admin import ensure_topics


@contextmanager
def replicas(service: str, count: int, root: Path, **settings: str) -> Iterator[tuple[str, list[ServiceProcess]]]:
    """`count` processes of `service` (their variables: `settings`), each ready; the broker's address and them. They
    take the test keys (tests/keys.py) and are stopped at the end."""
    with LocalKafka(root / "kafka") as kafka:
        asyncio.run(ensure_topics(kafka.bootstrap_servers))
        environment = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "API_KEYS_FILE": str(keys_file(root / "api-keys.json")),
            "STATE_ROOT": str(root / "state"),
            "LOG_LEVEL": "WARNING",
            **settings,
        }
        names = [f"{service}.{n + 1}" for n in range(count)]
        ports = dict(zip(names, free_ports(count), strict=True))
        processes = list(procfile_processes({service: count}, environment, ports, root).values())
        try:
            for process in processes:
                process.start()
            for process in processes:
                eventually(process.ready, timeout_s=90, what=f"{process.name} ready")
            yield kafka.bootstrap_servers, processes
        finally:
            for process in processes:
                process.stop()
