"""Topic provisioning and broker readiness: the broker never auto-creates topics, so someone must."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from ticketstream_shared.contract.topics import TOPICS, TopicSpec

from .retry import while_down

#: Short per-attempt timeout while probing, so one hung attempt cannot eat the whole deadline.
_PROBE_REQUEST_TIMEOUT_MS = 2_000
#: The first wait between probes, and the longest: a broker starting up answers within seconds.
_RETRY_S = 0.2
_LONGEST_RETRY_S = 1.0


class TopicSetupError(RuntimeError):
    """A topic exists in a shape the contract cannot work with (e.g. too few partitions)."""


class _NotYet(Exception):
    """The broker answers, but is not ready for what is asked yet (no broker registered, partitions without
    leaders)."""


async def wait_for_broker(bootstrap_servers: str, timeout_s: float = 60.0, **client_config: Any) -> None:
    """Return once a broker answers a metadata request, else raise TimeoutError after `timeout_s`.

    An open port is not enough: a KRaft broker accepts connections before it serves requests.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    options = {"request_timeout_ms": _PROBE_REQUEST_TIMEOUT_MS, **client_config}

    async def answers() -> None:
        async with asyncio.timeout(max(deadline - loop.time(), _RETRY_S)):
            await _connect_any(bootstrap_servers)
            if not await _has_brokers(bootstrap_servers, options):
                raise _NotYet("no broker registered")

    probing = while_down(
        f"Kafka broker at {bootstrap_servers}",
        (KafkaError, OSError, TimeoutError, _NotYet),
        first_wait_s=_RETRY_S,
        longest_wait_s=_LONGEST_RETRY_S,
        give_up_after_s=timeout_s,
    )
    try:
        await probing(answers)
    except (KafkaError, OSError, TimeoutError, _NotYet) as exc:
        raise TimeoutError(
            f"no Kafka broker answered at {bootstrap_servers} within {timeout_s:.0f}s (last error: {exc!r})"
        ) from exc


async def _connect_any(bootstrap_servers: str) -> None:
    """Raise OSError unless some bootstrap address takes a TCP connection.

    Checked before aiokafka is involved, because aiokafka logs every refused connection as an error.
    """
    error = OSError(f"no address in {bootstrap_servers!r}")
    for address in bootstrap_servers.split(","):
        host, has_port, port = address.strip().rpartition(":")
        if not has_port:
            host, port = port, "9092"  # aiokafka's default port
        try:
            _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
        except OSError as exc:
            error = exc
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise error


async def _has_brokers(bootstrap_servers: str, client_config: dict[str, Any]) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **client_config)
    try:
        await admin.start()
        return bool((await admin.describe_cluster())["brokers"])
    finally:
        await admin.close()


def min_in_sync(replicas: int) -> int:
    """In-sync replicas a write needs (min.insync.replicas): with three copies two, so a write acknowledged by all
    in-sync replicas (the services' acks=all) is on two brokers at least, and the topic keeps taking writes while
    any one broker is down; with one copy, the one."""
    return min(2, replicas)


async def ensure_topics(
    bootstrap_servers: str,
    specs: Sequence[TopicSpec] = TOPICS,
    *,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
    **client_config: Any,
) -> None:
    """Create the missing topics of `specs` and return once every one of them has a leader everywhere.

    Idempotent and safe to race: topics that already exist are kept as they are, but one with fewer
    partitions than its spec raises TopicSetupError, because adding partitions would move keys
    between partitions and break per-ticket ordering, which needs a deliberate migration instead.
    """
    wanted = {spec.name: spec.partitions for spec in specs}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **client_config)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        spec.name,
                        spec.partitions,
                        replication_factor,
                        topic_configs={**spec.config, "min.insync.replicas": str(min_in_sync(replication_factor))},
                    )
                    for spec in missing
                ]
            )
            for topic, code, message in response.topic_errors:
                if code and code != TopicAlreadyExistsError.errno:
                    raise for_code(code)(f"cannot create topic {topic}: {message}")
        await _await_leaders(admin, wanted, timeout_s)
    finally:
        await admin.close()


async def _await_leaders(admin: AIOKafkaAdminClient, wanted: dict[str, int], timeout_s: float) -> None:
    """Poll metadata until every partition of `wanted` (name: partitions) has a leader.

    A freshly created topic is not usable at once: the broker learns of it from the metadata log.
    """

    async def every_partition_led() -> None:
        pending = []
        for topic in await admin.describe_topics(list(wanted)):
            name, partitions = topic["topic"], topic["partitions"]
            if topic["error_code"] == 0 and 0 < len(partitions) < wanted[name]:
                raise TopicSetupError(f"topic {name} has {len(partitions)} partitions, its spec needs {wanted[name]}")
            if topic["error_code"] or not partitions or any(p["leader"] < 0 for p in partitions):
                pending.append(name)
        if pending:
            raise _NotYet(", ".join(sorted(pending)))

    polling = while_down(
        "Kafka topic leaders",
        _NotYet,
        first_wait_s=_RETRY_S,
        longest_wait_s=_LONGEST_RETRY_S,
        give_up_after_s=timeout_s,
    )
    try:
        await polling(every_partition_led)
    except _NotYet as pending:
        raise TimeoutError(f"topics without leaders after {timeout_s:.0f}s: {pending}") from None
