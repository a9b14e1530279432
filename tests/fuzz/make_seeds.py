#!/usr/bin/env python3
"""make_seeds.py: writes the handmade seeds of every fuzz target into
corpus/<target>/seed-NNN (the fuzzer's own finds are named by their SHA-1).
Strings here are byte strings spelled in latin-1: "\\xff" is the byte 0xff.
Run from anywhere: python3 tests/fuzz/make_seeds.py"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def b(x):
    return x.encode("latin-1") if isinstance(x, str) else x


def write(target, seeds, ext=""):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.startswith("seed-"):
            os.remove(os.path.join(d, f))
    for i, s in enumerate(seeds):
        with open(os.path.join(d, "seed-%03d%s" % (i, ext)), "wb") as f:
            f.write(b(s))


# ---- common: the text is parsed as a duration and a size; 8+ bytes are
# also a big-endian number of nanoseconds for the format round trip.
write("common", [
    "250ms", "2s", "1.5m", "1h", "0", "0s", "0.0000015s", "31536000", "31536000s", "31536001",
    "525600m", "8760h", "8761h", "1.", "1.x", ".5", "1e3", "-1", "+1", " 1s", "1s ", "inf", "nan",
    "0.999999999999s", "18446744073709551615", "99999999999999999999ms", "64MiB", "512KiB", "1GiB",
    "65536", "1.5KiB", "9223372036854775808", "9223372036854775809", "8589934592G", "1KB", "1MB",
    "1GB", "1B", "1b", "1Kib", "0.1ms", "3600.000000001s", "1.000000000001h",
    struct.pack(">Q", 31536000 * 10**9) + b"x", struct.pack(">Q", 2**64 - 1), struct.pack(">Q", 1500),
])

# ---- cidr: lines; "?addr" is a client, anything else a network.
write("cidr", [
    "10.0.0.0/8\n?10.1.2.3\n?11.0.0.1", "::1\n?::1\n?::2", "127.0.0.1/32",
    "0.0.0.0/0\n?1.2.3.4\n?::ffff:1.2.3.4", "::/0\n?::ffff:8.8.8.8\n?8.8.8.8",
    "192.168.1.77/24\n?192.168.1.1", "fe80::1/10\n?fe80::dead:beef\n?fec0::1", "10.0.0.0/33",
    "::/129", "10.0.0.0/", "10.0.0.0/0008", "10.0.0.0/08\n?10.255.0.1", "/8", "", "1.2.3.4/32/1",
    "::ffff:10.0.0.0/104\n?10.0.0.9\n?::ffff:10.0.0.9", "2001:db8::/32\n?2001:db8:1::1\n?2001:db9::1",
    "10.0.0.1/31\n?10.0.0.0\n?10.0.0.1\n?10.0.0.2", "1.2.3\n?1.2.3", "01.2.3.4", "[::1]", "::1%lo",
    "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128", "a" * 50,
    "10.0.0.0/8\n?\x00\x0a\x01\x02\x03", "::/1\n?\x01" + "\x80" * 16, "0.0.0.0/0\n?\x02abc",
    "::ffff:0:0/96\n?1.1.1.1\n?::ffff:1.1.1.1\n?::1.1.1.1", "172.16.0.0/12\n?172.31.255.255\n?172.32.0.0",
])

# ---- json_str: first byte = length of a prefix already in the buffer.
write("json_str", [
    "\x00", "\x00hello", "\x05\"quoted\" \\back\\", "\x00\n\r\t\b\f\x01\x1f\x7f", "\x10caf\xc3\xa9",
    "\x00\xe2\x82\xac euro", "\x00\xf0\x9f\x98\x80", "\x00\xff\xfe", "\x00\xc0\xaf", "\x00\xe0\x80\xaf",
    "\x00\xed\xa0\x80", "\x00\xf4\x90\x80\x80", "\x00\xf8\x88\x80\x80\x80", "\x00\xe2\x82", "\x00\xc3",
    "\x3f" + "a" * 70, "\xff" + "\x00" * 10, "\x00\xef\xbf\xbd", "\x00\xef\xbf\xbe", "\x00</script>",
    "\x00\\u0000", "\x80\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", "\x00\xc2\x80\xdf\xbf", "\x00\xe0\xa0\x80",
    "\x00\x80\x80\x80", "\x00a\xc3(b",
])


# ---- render: the byte layout fuzz_render.c reads.
def s(x):
    x = b(x)
    return bytes([len(x)]) + x


def check(name, status=0, probes=7, critical=1, running=0, output=None, details=6, tkind=1, dur=12,
          exp=5000, timeout=2000, big_to=None):
    f = probes | critical << 3 | running << 4 | status << 5
    g = (1 if output is not None else 0) | details << 1 | tkind << 4 | (0x40 if big_to is not None else 0)
    out = bytes([f, g]) + s(name)
    if output is not None:
        out += s(output)
    out += {0: b"", 1: struct.pack(">I", 1000), 2: struct.pack(">Q", 2**63 + 5),
            3: struct.pack(">I", 77)}[tkind]
    out += struct.pack(">II", dur, exp)
    out += struct.pack(">Q", big_to) if big_to is not None else struct.pack(">H", timeout)
    return out + b"\x01"


def request(fmt=0, probe=3, full=1, give_up=0, stalled=None, override=0, load_error=None,
            reason=None, shutdown=None, only=None, checks=(), excl=(), succ=200, fail=503, now=1000):
    a = fmt | probe << 2 | full << 4 | give_up << 5
    if stalled is not None:
        a |= 0x40 | (0x80 if stalled[0] else 0)
    flags = (override | (2 if load_error is not None else 0) | (4 if reason is not None else 0) |
             1 << 3 | (0x20 if shutdown is not None else 0) | (0x40 if only is not None else 0))
    out = bytes([a, flags]) + struct.pack(">HHI", succ - 100, fail - 100, now)
    if stalled is not None:
        out += struct.pack(">Q", stalled[1]) if stalled[0] else struct.pack(">H", stalled[1])
    if shutdown is not None:
        out += s(shutdown)
    out += b"\x01"  # seq
    if load_error is not None:
        out += s(load_error)
    if reason is not None:
        out += s(reason)
    out += struct.pack(">I", 500)  # load_error_ms, kind 1
    out += bytes([len(checks)]) + b"".join(checks)
    if only is not None:
        out += bytes([only[0]]) + (s(only[1]) if only[0] & 1 else b"")
    out += bytes([len(excl)])
    for e in excl:
        out += bytes([e[0]]) + (s(e[1]) if e[0] & 1 else b"")
    return out


C = [check("db", 0, output="ok", details=0),
     check("cache", 3, output="connection refused", critical=0),
     check("disk", 1, output="90% full", details=2, probes=2),
     check("boot", 2, probes=4, tkind=0)]
WEIRD = [check("\xff\xfename", 3, output="bad \xc3\x28 utf8 \xed\xa0\x80\n\"q\"\\", details=5),
         check("ctl\x01\n\t", 3, output="line1\nline2\r\x7f", tkind=2),
         check("", 0, output="", tkind=3, details=7),
         check("a\xff", 3, output="x"), check("a\xfe", 3, output="y")]
UTF8 = [check("caf\xc3\xa9", 3, output="\xe2\x9c\x97 down \xf0\x9f\x94\xa5"),
        check("ok", 0, output="\xc3\xa9t\xc3\xa9")]
R = []
for fmt in range(3):
    R += [request(fmt, probe, checks=C) for probe in range(4)]
    R += [
        request(fmt, 3, full=0, checks=C),
        request(fmt, 3, checks=UTF8),
        request(fmt, 3, full=0, checks=UTF8),
        request(fmt, 0, stalled=(0, 3500), checks=[check("run", 0, running=1)] + C),
        request(fmt, 0, stalled=(1, 2**64 - 1), checks=[check("run", 0, running=1, big_to=2**64 - 1)]),
        request(fmt, 1, shutdown="shutting down", checks=C),
        request(fmt, 1, override=1, reason="maintenance \"now\"", checks=C),
        request(fmt, 1, override=1, checks=C),
        request(fmt, 3, give_up=1, now=10**6, checks=[check("stale", 0, exp=5),
                check("fresh", 0, exp=10**7), check("never", 2, tkind=0)]),
        request(fmt, 3, load_error="scripts/a.lua:3: boom", checks=C),
        request(fmt, 3, only=(0, None), checks=C),
        request(fmt, 3, only=(1, "nope"), checks=C),
        request(fmt, 0, only=(4, None), checks=C),  # disk is not a liveness check: 404
        request(fmt, 3, only=(1, "d\x00b"), checks=C),
        request(fmt, 3, excl=[(0, None), (1, "disk"), (1, "")], checks=C),
        request(fmt, 3, succ=299, fail=299, checks=C),
        request(fmt, 3, checks=[]),
    ]
# arbitrary bytes in names, outputs and reasons (JSON formats; the verbose
# text with such bytes is covered by the render-verbose-* corpus entries)
for fmt in range(2):
    R += [
        request(fmt, 3, checks=WEIRD),
        request(fmt, 1, shutdown="shutting down\n\xff", checks=C),
        request(fmt, 3, load_error="scripts/a.lua:3: boom \xff", checks=WEIRD),
    ]
write("render", R)

# ---- config: Lua configuration files.
write("config", [
    'return { listen = "0.0.0.0:9000" }',
    'listen = "127.0.0.1:8080"\nwatchdog = "3s"\n',
    'return { listen = { "0.0.0.0:9000", "[::]:9000" }, scripts = "/etc/ha/checks", lualib = "/usr/share/ha" }',
    'return { token = "s3cret", trusted_networks = { "10.0.0.0/8", "::1" } }',
    'return { token = "a", token_file = "t" }',
    'return { token = "bad\\ntoken" }',
    'return { token_file = "missing.txt" }',
    'return { memory_limit = "64MiB", check_memory_limit = 1048576 }',
    'return { memory_limit = 0 }',
    'return { memory_limit = -1 }',
    'return { memory_limit = 1.5 }',
    'return { watchdog = 2.5, default_timeout = "250ms", default_ttl = "1m", idle_timeout = "1h" }',
    'return { request_timeout = 0 }',
    'return { shutdown_delay = 0, shutdown_timeout = "10s", rescan_interval = 31536000 }',
    'return { rescan_interval = 31536001 }',
    'return { watchdog = 0/0 }',
    'return { watchdog = math.huge }',
    'return { log_format = "json", log_level = "debug" }',
    'return { log_format = "xml" }',
    'return { log_level = "trace" }',
    'return { probes = { readiness = { paths = { "/ready", "/readyz2" }, success_status = 204, failure_status = 500 } } }',
    'return { probes = { liveness = { paths = "/healthz" } } }',
    'return { probes = { liveness = { paths = "/-/x" } } }',
    'return { probes = { liveness = { paths = "no-slash" } } }',
    'return { probes = { startup = { success_status = 99 } } }',
    'return { probes = { bogus = {} } }',
    'return { probes = { health = { paths = { "/a", "/b", "/c", "/d", "/e", "/f", "/g", "/h" } } } }',
    'return { unknown = 1 }',
    'return { [1] = "x" }',
    'return 42',
    'return nil',
    'error("boom")',
    'error({})',
    'local t = {} for i = 1, 17 do t[i] = "127.0.0.1:" .. (8000 + i) end return { listen = t }',
    'return { listen = { "a:1", "a:1" } }',
    'return { listen = "[::1]:0" }',
    'return { listen = "::1:8080" }',
    'return { listen = {} }',
    'return { trusted_networks = {} }',
    'return { trusted_networks = { "10.0.0.0/33" } }',
    'return { scripts = "" }',
    'return { scripts = "a\\0b" }',
    'setmetatable({}, { __gc = function() end })',
    'return setmetatable({ listen = "0.0.0.0:1" }, { __index = function() error("x") end })',
    'while true do end',
    'while true do pcall(function() while true do end end) end',
    'local s = string.rep("x", 1 << 20) return { token = s }',
    'local t = {} for i = 1, 1e6 do t[i] = i end return { watchdog = #t % 7 + 1 }',
    'table.sort({3, 2, 1}, function(a, b) while true do end end)',
    'x = = 1',
    'return { listen = "0.0.0.0:8080", watchdog = "5s", probes = { readiness = { paths = { "/readyz", "/ready" } } } }',
    'dofile("/etc/passwd")',
    'return { listen = coroutine.yield() }',
], ext=".lua")


# ---- request: what one client sends on one connection to a real front
# (fuzz_request.c): HTTP/1 requests (pipelined too), an h2c upgrade, HTTP/2
# with prior knowledge, the refused shapes (too many headers, amplified
# HPACK, window 0) and admin requests with and without the token.
def h2frame(t, fl, sid, p=b""):
    return struct.pack(">I", len(p))[1:] + bytes([t, fl]) + struct.pack(">I", sid) + p


def h2lit(n, v, idx=False):
    def ln(x):
        if len(x) < 127:
            return bytes([len(x)])
        n2, o = len(x) - 127, [127]
        while n2 >= 128:
            o.append((n2 & 127) | 128)
            n2 >>= 7
        return bytes(o + [n2])
    return (b"\x40" if idx else b"\x00") + ln(n) + n + ln(v) + v


def h2req(path, method=b"\x82", extra=b""):
    return method + b"\x86" + h2lit(b":path", path) + h2lit(b":authority", b"x") + extra


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
TOK = b"Authorization: Bearer fuzz-admin-token-0123456789\r\n"


def h1(line, headers=b"", body=b""):
    return b(line) + b"\r\nHost: x\r\n" + headers + (b"Content-Length: %d\r\n" % len(body) if body else b"") + b"\r\n" + body


write("request", [
    h1("GET /readyz HTTP/1.1"), h1("GET /livez?verbose HTTP/1.1"), h1("HEAD /healthz HTTP/1.1"),
    h1("GET /readyz?exclude=db&exclude=cache&verbose=1 HTTP/1.1"), h1("GET /readyz/db HTTP/1.1"),
    h1("GET /readyz/x%20y HTTP/1.1"), h1("GET /startupz/ HTTP/1.1"), h1("GET /readyz/../livez HTTP/1.1"),
    h1("GET /healthz HTTP/1.1", b"Accept: application/health+json\r\n"),
    h1("GET /healthz?verbose HTTP/1.1", TOK), h1("GET /info HTTP/1.1"), h1("GET /nope HTTP/1.1"),
    h1("POST /readyz HTTP/1.1", body=b"x"), h1("DELETE /livez HTTP/1.1"),
    h1("GET /-/status HTTP/1.1"), h1("GET /-/status HTTP/1.1", TOK),
    h1("PUT /-/ready HTTP/1.1", TOK, b'{"ready":false,"reason":"fuzz"}'),
    h1("PUT /-/ready HTTP/1.1", TOK, b'{"ready":true}'), h1("POST /-/drain HTTP/1.1", b"Authorization: Bearer x\r\n"),
    h1("POST /-/reload HTTP/1.1", TOK), h1("GET /-/ready HTTP/1.1", TOK),
    h1("GET /readyz HTTP/1.1", b"".join(b"x-h%d: v\r\n" % i for i in range(70))),
    h1("GET /readyz HTTP/1.1", b"x-big: " + b"a" * 17000 + b"\r\n"),
    h1("GET /readyz HTTP/1.1") * 20,
    h1("GET /readyz HTTP/1.1", b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n")
    + PREFACE + h2frame(4, 0, 0),
    PREFACE + h2frame(4, 0, 0) + h2frame(1, 5, 1, h2req(b"/readyz?verbose")),
    PREFACE + h2frame(4, 0, 0, struct.pack(">HI", 4, 0)) + b"".join(h2frame(1, 5, 1 + 2 * i, h2req(b"/readyz")) for i in range(40)),
    PREFACE + h2frame(4, 0, 0) + h2frame(1, 5, 1, h2req(b"/readyz") + h2lit(b"x-bomb", b"A" * 4000, True))
    + h2frame(1, 5, 3, h2req(b"/healthz") + b"\xbe" * 2000),
    PREFACE + h2frame(4, 0, 0) + h2frame(1, 0, 1, h2req(b"/readyz")) + h2frame(9, 0, 1) * 50 + h2frame(9, 4, 1),
    PREFACE + h2frame(4, 0, 0) + h2frame(1, 4, 1, h2req(b"/-/ready", b"\x83", h2lit(b"authorization", b"Bearer fuzz-admin-token-0123456789")))
    + h2frame(0, 0, 1) * 20 + h2frame(0, 1, 1, b'{"ready":true}'),
    PREFACE + h2frame(4, 0, 0) + h2frame(6, 0, 0, b"12345678") * 10 + h2frame(8, 0, 0, struct.pack(">I", 1)) * 10,
    PREFACE + h2frame(4, 0, 0) + b"".join(h2frame(1, 5, 1 + 2 * i, h2req(b"/livez")) + h2frame(3, 0, 1 + 2 * i, struct.pack(">I", 8)) for i in range(30)),
])
