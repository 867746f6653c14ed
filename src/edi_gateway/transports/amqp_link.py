"""RabbitMQ connections for the AMQP transports: parameters, topology, errors mapped.

pika's exceptions never leave the AMQP transports: :func:`transport_error` turns them into a
:class:`TransportError` with a stable code and a message that says what to do.
"""

from __future__ import annotations

import ssl
from urllib.parse import quote

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from edi_gateway.errors import ErrorCode
from edi_gateway.transports.amqp_spec import AmqpConnector
from edi_gateway.transports.base import TransportError
from edi_gateway.transports.tls import client_tls

# Errors of the link itself; pika raises some socket and TLS errors unwrapped.
LINK_ERRORS = (pika.exceptions.AMQPError, OSError)


def broker_port(conn: AmqpConnector) -> int:
    """The configured port, else the AMQP default (5671 with TLS)."""
    return conn.port or (5671 if conn.tls else 5672)


def broker_url(conn: AmqpConnector) -> str:
    """``amqp(s)://host:port/vhost`` for messages and delivery receipts (no credentials)."""
    scheme = "amqps" if conn.tls else "amqp"
    return f"{scheme}://{conn.host}:{broker_port(conn)}/{quote(conn.virtual_host, safe='')}"


def parameters(conn: AmqpConnector) -> pika.ConnectionParameters:
    """pika's connection parameters for ``conn`` (reads the password secret)."""
    ssl_options = None
    if conn.tls:
        context = client_tls(conn.ca_file)
        ssl_options = pika.SSLOptions(context, server_hostname=conn.host)
    return pika.ConnectionParameters(
        host=conn.host,
        port=broker_port(conn),
        virtual_host=conn.virtual_host,
        credentials=pika.PlainCredentials(conn.username, conn.password.value()),
        heartbeat=conn.heartbeat,
        blocked_connection_timeout=conn.blocked_timeout,
        socket_timeout=conn.connect_timeout,
        stack_timeout=conn.connect_timeout,
        connection_attempts=1,
        retry_delay=0,
        ssl_options=ssl_options,
        client_properties={"connection_name": f"edi-gateway {conn.name}"},
    )


def connect(conn: AmqpConnector) -> BlockingConnection:
    """A new blocking connection to the broker; TransportError when it cannot be opened."""
    params = parameters(conn)
    try:
        return BlockingConnection(params)
    except LINK_ERRORS as exc:
        raise transport_error(conn, exc, "connect to") from exc


def close_quietly(connection: BlockingConnection | None) -> None:
    """Close ``connection`` if it is still open; errors of a dead link are ignored."""
    if connection is None:
        return
    try:
        if connection.is_open:
            connection.close()
    except LINK_ERRORS:
        pass


def declare_inbound(channel: BlockingChannel, conn: AmqpConnector) -> None:
    """Declare (or, with ``declare: false``, check) the inbound queue and its dead letters.

    The queue is durable and rejects into ``dead_letter_exchange`` (direct, durable) with the
    queue's name as routing key; ``dead_letter_queue`` (durable) is bound to it by that key,
    so one dead-letter exchange can serve several connectors.
    """
    assert conn.queue is not None and conn.dead_letter_queue is not None
    if not conn.declare:
        channel.queue_declare(conn.queue, passive=True)
        return
    channel.exchange_declare(conn.dead_letter_exchange, exchange_type="direct", durable=True)
    channel.queue_declare(conn.dead_letter_queue, durable=True)
    channel.queue_bind(  # type: ignore[no-untyped-call]  # (types-pika-ts lacks it)
        conn.dead_letter_queue, conn.dead_letter_exchange, routing_key=conn.queue
    )
    channel.queue_declare(conn.queue, durable=True, arguments=queue_arguments(conn))


def queue_arguments(conn: AmqpConnector) -> dict[str, object]:
    """The arguments the inbound queue is declared with (a partner declaring it must match)."""
    return {
        "x-dead-letter-exchange": conn.dead_letter_exchange,
        "x-dead-letter-routing-key": conn.queue,
    }


def transport_error(conn: AmqpConnector, exc: BaseException, doing: str) -> TransportError:
    """``exc`` from pika (or the socket under it) as a TransportError naming what to do."""
    where = f"RabbitMQ at {broker_url(conn)} (connector {conn.name!r})"
    if isinstance(
        exc, pika.exceptions.ProbableAuthenticationError | pika.exceptions.AuthenticationError
    ):
        return TransportError(
            f"{where} refused the login of user {conn.username!r}: check username and the "
            "password secret the connector names",
            recoverable=False,
            code=ErrorCode.AUTH_FAILED,
        )
    if isinstance(exc, pika.exceptions.ProbableAccessDeniedError):
        return TransportError(
            f"{where}: user {conn.username!r} may not use virtual host {conn.virtual_host!r} "
            "(or it does not exist): check virtual_host and the user's permissions",
            recoverable=False,
            code=ErrorCode.AUTH_FAILED,
        )
    closed = _closed_by_broker(exc)
    if closed is not None:
        return _refusal(where, doing, *closed)
    if _tls_failure(exc) is not None:
        return TransportError(
            f"cannot {doing} {where}: TLS handshake failed ({_tls_failure(exc)}); check host, "
            "port, tls and ca_file",
            recoverable=False,
            code=ErrorCode.TLS_FAILED,
        )
    return TransportError(
        f"cannot {doing} {where}: {_describe(exc)}; it is tried again on the next cycle",
        recoverable=True,
        code=ErrorCode.CONNECTION_FAILED,
    )


def _closed_by_broker(exc: BaseException) -> tuple[int, str] | None:
    if isinstance(
        exc, pika.exceptions.ChannelClosedByBroker | pika.exceptions.ConnectionClosedByBroker
    ):
        return int(exc.reply_code), str(exc.reply_text)
    return None


def _refusal(where: str, doing: str, code: int, text: str) -> TransportError:
    """The broker closed the channel or connection with AMQP reply ``code``."""
    if code == 403:  # ACCESS_REFUSED: no permission on this queue or exchange
        return TransportError(
            f"{where} refused to let the user {doing} it: {text}; grant the user configure, "
            "write and read permissions on these names (rabbitmqctl set_permissions)",
            recoverable=False,
            code=ErrorCode.AUTH_FAILED,
        )
    if code == 404:  # NOT_FOUND: a queue or exchange that does not exist
        return TransportError(
            f"{where}: {text}; create it on the broker, or correct the connector's names "
            "(inbound connectors with declare: true create their queues themselves)",
            recoverable=False,
            code=ErrorCode.CONFIG_INVALID,
        )
    if code == 406:  # PRECONDITION_FAILED: declared before with other settings
        return TransportError(
            f"{where}: {text}; the queue or exchange exists with other settings: delete it "
            "(after moving its messages) or let an administrator set them and use declare: false",
            recoverable=False,
            code=ErrorCode.CONFIG_INVALID,
        )
    return TransportError(
        f"{where} closed the link while trying to {doing} it: ({code}) {text}; it is tried "
        "again on the next cycle",
        recoverable=True,
        code=ErrorCode.CONNECTION_FAILED,
    )


def _tls_failure(exc: BaseException) -> str | None:
    """The TLS error somewhere inside ``exc`` (pika wraps them in connection errors)."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, ssl.SSLError):
            return str(item.reason or item)
        if isinstance(item, BaseException):
            todo.extend(item.args)
            todo.extend(x for x in (item.__cause__, item.__context__) if x is not None)
        elif isinstance(item, list | tuple):
            todo.extend(item)
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
