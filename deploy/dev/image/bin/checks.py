"""Dependency checks shared by the replica's services, in-process as the real services do them."""
import socket, struct


def redis_ok(host="redis", port=6379):
    try:
        with socket.create_connection((host, port), timeout=1.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise OSError("connection closed")
        data += chunk
    return data


def postgres_ok(host="postgres", port=5432):
    # pg_isready's check (libpq's PQping) without a process per request, as the real service
    # answers from its pool: a startup packet, and any answer but "cannot connect now" (57P03)
    # means the server accepts connections. The whole answer is read before closing, so the
    # server sees a clean end of connection, not a reset it would log.
    params = b"user\0app\0database\0app\0\0"
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            s.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
            kind, length = struct.unpack("!ci", recv_exact(s, 5))
            body = recv_exact(s, length - 4)
            if kind == b"R":
                return True
            return kind == b"E" and b"C57P03\0" not in body
    except (OSError, struct.error):
        return False
