#!/usr/bin/python3
"""Raw HTTP/2 peers for the gRPC server specs, on python3-h2: what real
gRPC clients never send. Each mode prints "key=value" lines to assert on.

  edges HOST:PORT         protocol edges: 415, UNIMPLEMENTED as Trailers-Only,
                          INTERNAL / INVALID_ARGUMENT for malformed messages,
                          malformed grpc-timeout, percent-encoded grpc-message,
                          the server's SETTINGS, oversized headers (431)
  rapid-reset HOST:PORT N opens and resets N streams as fast as it can
  garbage HOST:PORT       bytes that are not HTTP/2, then a broken frame
  conns HOST:PORT N       opens N connections at once, counts those served
  noread HOST:PORT N SECS opens N Watch streams, never reads, holds SECS
"""
import socket
import struct
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.settings

PATH = "/grpc.health.v1.Health/"


def frame(msg):
    return b"\x00" + struct.pack(">I", len(msg)) + msg


def req(service):
    s = service.encode()
    return frame(b"\x0a" + bytes([len(s)]) + s if s else b"")


def dial(target):
    host, port = target.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=5)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return sock, conn


def headers(method="Check", ctype="application/grpc", extra=()):
    return [(":method", "POST"), (":scheme", "http"), (":path", PATH + method),
            (":authority", "x"), ("content-type", ctype), ("te", "trailers")] + list(extra)


def call(sock, conn, hdrs, body, end=True):
    """One request; returns (response headers, body bytes, trailers, headers_had_end_stream)."""
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, hdrs, end_stream=body is None)
    if body is not None:
        conn.send_data(sid, body, end_stream=end)
    sock.sendall(conn.data_to_send())
    resp, data, trailers, ended_on_headers = None, b"", None, False
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        for ev in conn.receive_data(chunk):
            if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                resp = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                data += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, sid)
            elif isinstance(ev, h2.events.TrailersReceived) and ev.stream_id == sid:
                trailers = dict(ev.headers)
            elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                ended_on_headers = trailers is None and data == b""
                sock.sendall(conn.data_to_send())
                return resp, data, trailers, ended_on_headers
            elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                return resp, data, {"reset": str(ev.error_code)}, False
        sock.sendall(conn.data_to_send())


def edges(target):
    sock, conn = dial(target)
    # the server's SETTINGS arrive with its preface
    sock.settimeout(2)
    out = {}
    for ev in conn.receive_data(sock.recv(65536)):
        if isinstance(ev, h2.events.RemoteSettingsChanged):
            for k, v in ev.changed_settings.items():
                out["settings_%d" % int(k)] = v.new_value
    sock.sendall(conn.data_to_send())
    for k in sorted(out):
        print("%s=%s" % (k, out[k]))

    def show(name, r):
        resp, data, trailers, only = r
        t = trailers or {}
        h = resp or {}
        print("%s.http=%s" % (name, h.get(":status")))
        print("%s.trailers_only=%s" % (name, only))
        print("%s.status=%s" % (name, (t.get("grpc-status") or h.get("grpc-status"))))
        print("%s.message=%s" % (name, (t.get("grpc-message") or h.get("grpc-message"))))
        print("%s.body=%s" % (name, data.hex()))

    show("ok", call(sock, conn, headers(), req("")))
    show("ctype", call(sock, conn, headers(ctype="application/json"), req("")))
    show("ctype_plus", call(sock, conn, headers(ctype="application/grpc+proto"), req("")))
    show("unknown_method", call(sock, conn, headers("Nope"), req("")))
    show("unknown_service_path", call(sock, conn, headers(extra=()) [:2] + [(":path", "/x.Y/Check")] +
                                      headers()[3:], req("")))
    show("no_message", call(sock, conn, headers(), None))
    show("truncated_frame", call(sock, conn, headers(), b"\x00\x00\x00"))
    show("truncated_message", call(sock, conn, headers(), b"\x00\x00\x00\x00\x09\x0a"))
    show("two_messages", call(sock, conn, headers(), req("") + req("")))
    show("compressed", call(sock, conn, headers(), b"\x01" + req("")[1:]))
    show("bad_proto", call(sock, conn, headers(), frame(b"\x0a\x7f")))
    show("bad_wire_type", call(sock, conn, headers(), frame(b"\x08\x01")))
    show("unknown_field", call(sock, conn, headers(), frame(b"\x10\x05" + b"\x0a\x00")))
    show("bad_timeout", call(sock, conn, headers(extra=[("grpc-timeout", "soon")]), req("")))
    show("percent", call(sock, conn, headers(), req("caf\u00e9 100%")))
    show("too_large", call(sock, conn, headers(), frame(b"\x0a" + b"\x80\x40" + b"a" * 8192)))
    show("big_headers", call(sock, conn, headers(extra=[("x-pad-%d" % i, "v" * 1000) for i in range(20)]),
                             req("")))
    show("list", call(sock, conn, headers("List"), frame(b"")))
    sock.close()


def rapid_reset(target, n):
    sock, conn = dial(target)
    sent = 0
    goaway = None
    sock.settimeout(0.001)
    t0 = time.time()
    try:
        for i in range(n):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, headers(), end_stream=False)
            conn.reset_stream(sid)
            sent += 1
            if i % 50 == 0:
                sock.sendall(conn.data_to_send())
                try:
                    for ev in conn.receive_data(sock.recv(65536)):
                        if isinstance(ev, h2.events.ConnectionTerminated):
                            goaway = ev.error_code
                except socket.timeout:
                    pass
                if goaway is not None:
                    break
        sock.sendall(conn.data_to_send())
    except (BrokenPipeError, ConnectionResetError, h2.exceptions.ProtocolError):
        pass
    sock.settimeout(2)
    try:
        while goaway is None:
            chunk = sock.recv(65536)
            if not chunk:
                break
            for ev in conn.receive_data(chunk):
                if isinstance(ev, h2.events.ConnectionTerminated):
                    goaway = ev.error_code
    except (socket.timeout, ConnectionResetError, h2.exceptions.ProtocolError):
        pass
    print("sent=%d" % sent)
    print("goaway=%s" % (int(goaway) if goaway is not None else None))
    print("seconds=%.3f" % (time.time() - t0))


def garbage(target):
    host, port = target.rsplit(":", 1)
    for name, payload in [("http1", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), ("random", bytes(range(256)) * 4)]:
        s = socket.create_connection((host, int(port)), timeout=3)
        s.sendall(payload)
        t0 = time.time()
        got = b""
        try:
            while True:
                c = s.recv(65536)
                if not c:
                    break
                got += c
        except (socket.timeout, ConnectionResetError):
            pass
        print("%s.closed_after=%.3f" % (name, time.time() - t0))
        s.close()
    # a valid preface, then a frame of an unknown stream state: DATA on stream 0
    sock, conn = dial(target)
    sock.sendall(b"\x00\x00\x04\x00\x00\x00\x00\x00\x00abcd")
    goaway = None
    try:
        while True:
            c = sock.recv(65536)
            if not c:
                break
            for ev in conn.receive_data(c):
                if isinstance(ev, h2.events.ConnectionTerminated):
                    goaway = int(ev.error_code)
    except (socket.timeout, ConnectionResetError, h2.exceptions.ProtocolError):
        pass
    print("bad_frame.goaway=%s" % goaway)


def conns(target, n):
    socks = []
    for _ in range(n):
        sock, conn = dial(target)
        socks.append((sock, conn))
    served = closed = 0
    for sock, conn in socks:
        sock.settimeout(2)
        try:
            c = sock.recv(65536)
            if c:
                served += 1
            else:
                closed += 1
        except (socket.timeout, ConnectionResetError):
            closed += 1
    print("served=%d" % served)
    print("closed=%d" % closed)
    for sock, _ in socks:
        sock.close()


def noread(target, n, secs):
    host, port = target.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    for _ in range(n):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, headers("Watch"), end_stream=False)
        conn.send_data(sid, req("readiness"), end_stream=True)
    sock.sendall(conn.data_to_send())
    print("opened=%d" % n, flush=True)
    time.sleep(secs)
    # closed by the server? a send that fails or a read of EOF says so
    sock.settimeout(0.5)
    alive = True
    try:
        while True:
            c = sock.recv(1 << 20)
            if not c:
                alive = False
                break
    except socket.timeout:
        pass
    except ConnectionResetError:
        alive = False
    print("alive=%s" % alive)


def main(argv):
    mode, target = argv[0], argv[1]
    if mode == "edges":
        edges(target)
    elif mode == "rapid-reset":
        rapid_reset(target, int(argv[2]))
    elif mode == "garbage":
        garbage(target)
    elif mode == "conns":
        conns(target, int(argv[2]))
    elif mode == "noread":
        noread(target, int(argv[2]), float(argv[3]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
