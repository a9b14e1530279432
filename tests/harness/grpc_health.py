#!/usr/bin/python3
"""A grpc.health.v1 client on Debian's python3-grpcio (gRPC core), the
second independent client implementation of the gRPC server specs. The
messages are encoded by hand: python3-grpcio ships no health stubs.

  /usr/bin/python3 grpc_health.py check HOST:PORT [SERVICE] [--timeout S]
      prints the status name, or "error CODE: details" (exit 1)
  /usr/bin/python3 grpc_health.py watch HOST:PORT [SERVICE] [--timeout S]
      prints each status as it arrives, then "end CODE: details"
  /usr/bin/python3 grpc_health.py list HOST:PORT [--timeout S]
      prints "SERVICE=STATUS" lines sorted by service, or "error ..."
"""
import sys

import grpc

NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_varint(b, i):
    n = shift = 0
    while True:
        x = b[i]
        i += 1
        n |= (x & 0x7F) << shift
        shift += 7
        if not x & 0x80:
            return n, i


def fields(b):
    """Yields (number, value) of a message: ints for varints, bytes otherwise."""
    i = 0
    while i < len(b):
        key, i = read_varint(b, i)
        kind = key & 7
        if kind == 0:
            v, i = read_varint(b, i)
        elif kind == 2:
            n, i = read_varint(b, i)
            v, i = b[i:i + n], i + n
        else:
            raise ValueError("unexpected wire type %d" % kind)
        yield key >> 3, v


def status_of(msg):
    st = 0
    for num, v in fields(msg):
        if num == 1:
            st = v
    return NAMES.get(st, str(st))


def encode_request(service):
    s = service.encode()
    return b"\x0a" + varint(len(s)) + s if s else b""


def main(argv):
    timeout = 5.0
    if "--timeout" in argv:
        i = argv.index("--timeout")
        timeout = float(argv[i + 1])
        del argv[i:i + 2]
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    mode, target = argv[0], argv[1]
    service = argv[2] if len(argv) > 2 else ""
    ident = lambda b: b
    with grpc.insecure_channel(target) as ch:
        try:
            if mode == "check":
                call = ch.unary_unary("/grpc.health.v1.Health/Check", request_serializer=ident,
                                      response_deserializer=ident)
                print(status_of(call(encode_request(service), timeout=timeout)))
            elif mode == "watch":
                call = ch.unary_stream("/grpc.health.v1.Health/Watch", request_serializer=ident,
                                       response_deserializer=ident)
                for msg in call(encode_request(service), timeout=timeout):
                    print(status_of(msg), flush=True)
                print("end OK", flush=True)
            elif mode == "list":
                call = ch.unary_unary("/grpc.health.v1.Health/List", request_serializer=ident,
                                      response_deserializer=ident)
                out = {}
                for num, entry in fields(call(b"", timeout=timeout)):
                    if num == 1:
                        key, st = "", "UNKNOWN"
                        for n2, v2 in fields(entry):
                            if n2 == 1:
                                key = v2.decode()
                            elif n2 == 2:
                                st = status_of(v2)
                        out[key] = st
                for k in sorted(out):
                    print("%s=%s" % (k, out[k]))
            else:
                print(__doc__, file=sys.stderr)
                return 2
        except grpc.RpcError as e:
            word = "end" if mode == "watch" else "error"
            print("%s %s: %s" % (word, e.code().name, e.details()), flush=True)
            return 0 if mode == "watch" else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
