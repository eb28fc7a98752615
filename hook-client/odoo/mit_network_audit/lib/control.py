"""The collector's control socket (a local Unix stream socket; no network):
the one way Odoo obtains what only the collector can make, a signed export,
since the signing keys never enter the database Odoo reads."""

import json
import socket

#: An export of a large journal takes a while to sign and send.
TIMEOUT_SECS = 300


class ControlError(Exception):
    """The collector could not be asked, or refused: the message says which."""


def request(path, message, timeout=TIMEOUT_SECS):
    """Sends one JSON request line and returns the whole reply (bytes)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
        except FileNotFoundError:
            raise ControlError(f"the collector's control socket {path} does not exist: is "
                               "egress-collector running on this host?") from None
        except PermissionError:
            raise ControlError(f"no permission to open {path}: give Odoo's user access "
                               "(the socket's group, and control.export_uids)") from None
        except OSError as error:
            raise ControlError(f"the collector at {path} does not answer ({error})") from None
        sock.sendall(json.dumps(message).encode() + b"\n")
        chunks = []
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    except socket.timeout:
        raise ControlError(f"the collector at {path} did not finish within {timeout} s") from None
    finally:
        sock.close()


def export(path, database, first_seq, last_seq=None):
    """The signed export file (docs/EXPORT_FORMAT.md) of rows
    ``first_seq..last_seq`` (to the journal's end when None), as bytes."""
    message = {"cmd": "export", "db": database, "from": first_seq}
    if last_seq is not None:
        message["to"] = last_seq
    reply = request(path, message)
    try:
        doc = json.loads(reply)
    except ValueError:
        raise ControlError("the collector's reply is not JSON") from None
    if doc.get("type") == "error":
        raise ControlError(f"the collector refused the export: {doc.get('message')}")
    if doc.get("format") != "egress-audit-export":
        raise ControlError("the collector's reply is not an export file")
    return reply


def forensic(path, cmd, database, user_id, user_name, timeout=60, **fields):
    """One forensic request (``forensic_enable``, ``forensic_disable``,
    ``forensic_status``, ``forensic_read``) on behalf of an Odoo user, whose
    id and name the collector journals; the reply as a dict."""
    message = {"cmd": cmd, "db": database, "odoo_uid": user_id, "odoo_user": user_name}
    # Odoo's empty fields are False: left out, as None and "".
    message.update({k: v for k, v in fields.items() if v is not None and v is not False and v != ""})
    reply = request(path, message, timeout=timeout)
    try:
        doc = json.loads(reply)
    except ValueError:
        raise ControlError("the collector's reply is not JSON") from None
    if doc.get("type") == "error":
        raise ControlError(doc.get("message") or "refused")
    return doc
