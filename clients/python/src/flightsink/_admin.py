"""The server's admin actions (docs/protocol.md section 8): named writers and open transactions.

Each function makes one DoAction call and returns the server's JSON answer as a dict. They take the
connection keywords of writer_status (token=, username=/password=, TLS). A principal sees and resets
only its own writers; one with auth.principals[].admin sees all and names another's with principal=.
"""

import json
from typing import Any, Dict, Optional

import pyarrow as pa
import pyarrow.flight as flight

from ._errors import ProtocolError, from_exception
from ._writer import Location, _connect


def _action(location: Location, action_type: str, body: Dict[str, Any], conn: Dict[str, Any]) -> Dict[str, Any]:
    keys = ("call_headers", "tls_root_certs", "cert_chain", "private_key", "override_hostname",
            "disable_server_verification", "token", "username", "password")
    unknown = set(conn) - set(keys)
    if unknown:
        raise TypeError(f"unexpected keyword arguments: {sorted(unknown)}")
    args = {k: conn.get(k) for k in keys}
    args["disable_server_verification"] = bool(conn.get("disable_server_verification", False))
    client, recorder, headers = _connect(location, **args)
    try:
        action = flight.Action(action_type, json.dumps(body).encode())
        options = flight.FlightCallOptions(headers=headers or None)
        try:
            results = list(client.do_action(action, options=options))
        except pa.ArrowException as e:
            raise from_exception(e, recorder.reason) from None
        if not results:
            raise ProtocolError(f"{action_type} returned no result")
        answer: Dict[str, Any] = json.loads(results[0].body.to_pybytes())
        return answer
    finally:
        client.close()


def _writer_body(writer_id: str, principal: Optional[str]) -> Dict[str, Any]:
    body: Dict[str, Any] = {"writer_id": writer_id}
    if principal is not None:
        body["principal"] = principal
    return body


def writers_list(location: Location, *, principal: Optional[str] = None, **conn: Any) -> Dict[str, Any]:
    """The caller's named writers (an admin's: every principal's, or principal='s): {"writers": [...]}."""
    return _action(location, "writers-list", {} if principal is None else {"principal": principal}, conn)


def writer_show(location: Location, writer_id: str, *, principal: Optional[str] = None, **conn: Any) -> Dict[str, Any]:
    """One writer's committed progress (its last commit included), without fencing it."""
    return _action(location, "writer-show", _writer_body(writer_id, principal), conn)


def writer_reset(location: Location, writer_id: str, *, principal: Optional[str] = None, **conn: Any) -> Dict[str, Any]:
    """Fence the writer's streams on every replica, then forget its progress (next stream: checkpoint 1)."""
    return _action(location, "writer-reset", _writer_body(writer_id, principal), conn)


def transactions_list(location: Location, **conn: Any) -> Dict[str, Any]:
    """The open transactions of the server's transactional ids: {"transactions": [...], "linger_after_ms": N}."""
    return _action(location, "transactions-list", {}, conn)


def transaction_abort(location: Location, transactional_id: str, **conn: Any) -> Dict[str, Any]:
    """Abort a lingering transaction; any other is refused (FailedPreconditionError, reason txn_not_abortable)."""
    return _action(location, "transaction-abort", {"transactional_id": transactional_id}, conn)
