#!/usr/bin/python3
"""tests/abuse/abuse.py: the network abuse suite, black-box against the real
binary on loopback. One scenario per run (ctest abuse/<name>, label "abuse"):

    HA_BIN=build/healthagent /usr/bin/python3 tests/abuse/abuse.py hpack_window0

Every scenario starts the agent, attacks it for a bounded count and time,
and asserts that it stays alive, that probes from a fresh client (another
loopback address) are answered at once, and that its RSS and descriptor
counts stay bounded during the attack and come back near their baseline
after. Sanitizer builds (HA_SANITIZE) keep the functional assertions; their
RSS bounds are wider (shadow memory and quarantine)."""

import os
import resource
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("HA_BIN") or os.path.join(ROOT, "build", "healthagent")
SANITIZED = bool(os.environ.get("HA_SANITIZE"))
MIB = 1024 * 1024
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRESH = "127.0.0.2"   # the fresh client: another loopback address
MESH = "127.0.0.6"    # where Istio's sidecar delivers every mesh peer from

SCRIPT = 'health.check { name = "db", probes = { "readiness", "liveness" }, run = function() return true, "fine" end }\n'


def fail(msg):
    raise AssertionError(msg)


# --- HTTP/2 frames ----------------------------------------------------------

def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


DATA, HEADERS, RST, SETTINGS, PING, GOAWAY, WINUPD, CONT = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, END_HEADERS = 1, 4


def hlen(x):
    if len(x) < 127:
        return bytes([len(x)])
    n = len(x) - 127
    out = [127]
    while n >= 128:
        out.append((n & 127) | 128)
        n >>= 7
    return bytes(out + [n])


def lit(name, value, index=False):
    return (b"\x40" if index else b"\x00") + hlen(name) + name + hlen(value) + value


def req_block(path, method=b"\x82"):
    """HPACK: method (0x82 GET, 0x83 POST), scheme http, :path, :authority."""
    return method + b"\x86" + lit(b":path", path) + lit(b":authority", b"x")


def settings(window=None):
    return frame(SETTINGS, 0, 0, struct.pack(">HI", 4, window) if window is not None else b"")


def parse_frames(buf):
    out, i = [], 0
    while i + 9 <= len(buf):
        n = int.from_bytes(buf[i:i + 3], "big")
        if i + 9 + n > len(buf):
            break
        out.append((buf[i + 3], buf[i + 4], int.from_bytes(buf[i + 5:i + 9], "big") & 0x7fffffff, buf[i + 9:i + 9 + n]))
        i += 9 + n
    return out


# --- the agent ----------------------------------------------------------------

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


AGENTS = []  # every agent started: killed at exit whatever happened


class Agent:
    def __init__(self, config="", nofile=None, env=None):
        AGENTS.append(self)
        self.dir = tempfile.mkdtemp(prefix="ha-abuse.")
        os.mkdir(self.dir + "/scripts")
        with open(self.dir + "/scripts/a.lua", "w") as f:
            f.write(SCRIPT)
        with open(self.dir + "/agent.lua", "w") as f:
            f.write("return { shutdown_delay = 0, %s }\n" % config)
        self.log_path = self.dir + "/agent.log"
        for _ in range(5):
            self.port = free_port()
            e = dict(os.environ)
            if SANITIZED:
                # freed memory waits in ASan's quarantine (256 MiB by default):
                # a small one keeps RSS about what the agent holds
                e["ASAN_OPTIONS"] = e.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=8"
            e.update(env or {})

            def limits():
                if nofile:
                    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

            self.proc = subprocess.Popen(
                [BIN, "--config", self.dir + "/agent.lua", "--scripts", self.dir + "/scripts", "--listen",
                 "127.0.0.1:%d" % self.port], stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT, env=e,
                preexec_fn=limits)
            deadline = time.time() + 10
            while time.time() < deadline and self.proc.poll() is None:
                if self.probe(src="127.0.0.1", timeout=0.5)[0] == 200:
                    return
                time.sleep(0.05)
            log = self.log()
            if "address already in use" not in log:
                self.stop()
                fail("agent did not start:\n" + log)
        fail("no free port")

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def rss_mib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        return 0.0

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def connect(self, src="127.0.0.1"):
        s = socket.socket()
        s.bind((src, 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", self.port))
        return s

    def probe(self, path="/livez", src=FRESH, timeout=1.0, headers=None, method="GET"):
        """One HTTP/1.1 request on a new connection: (status, body, seconds)."""
        t0 = time.time()
        try:
            s = socket.socket()
            s.bind((src, 0))
            s.settimeout(timeout)
            s.connect(("127.0.0.1", self.port))
            extra = "".join("%s: %s\r\n" % kv for kv in (headers or {}).items())
            s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: 0\r\nConnection: close\r\n\r\n"
                       % (method, path, extra)).encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            s.close()
            head, _, body = data.partition(b"\r\n\r\n")
            return int(head.split(b" ")[1]), body, time.time() - t0
        except (OSError, IndexError, ValueError):
            return 0, b"", time.time() - t0

    def assert_probes(self, what):
        """Fresh clients are answered at once: /livez and /readyz, 200 (within
        milliseconds when the host is idle; 3 s is the margin for a loaded one)."""
        for path in ("/livez", "/readyz"):
            status, body, secs = self.probe(path, timeout=3.0)
            if status != 200:
                fail("%s: fresh probe %s answered %s after %.2fs\n%s" % (what, path, status, secs, self.log()[-3000:]))
        if not self.alive():
            fail("%s: agent died\n%s" % (what, self.log()[-3000:]))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        log = self.log()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if marker in log:
                fail("sanitizer report in the agent's log:\n" + log)
        subprocess.call(["rm", "-rf", self.dir])
        return log


class Watch:
    """Samples the agent's RSS and descriptor count every 50 ms."""

    def __init__(self, agent):
        self.agent, self.rss, self.fds, self.stop_ = agent, 0.0, 0, False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop_:
            try:
                self.rss = max(self.rss, self.agent.rss_mib())
                self.fds = max(self.fds, self.agent.fds())
            except OSError:
                return
            time.sleep(0.05)

    def done(self):
        self.stop_ = True
        self.t.join()
        return self


def wait_until(pred, timeout, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def closed_by_peer(s, timeout):
    """True when the agent ends the connection (EOF or reset) within timeout,
    reading and discarding what it sends."""
    s.settimeout(0.2)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if not s.recv(65536):
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


def check_bounds(a, w, base_rss, base_fds, during_mib, after_mib, what):
    """RSS under during_mib through the attack and under after_mib within
    5 s after it; descriptors back within 4 of the baseline."""
    slack = 1.0 if not SANITIZED else 8.0
    print("%s: RSS baseline %.1f MiB, peak %.1f MiB; fds baseline %d, peak %d" % (what, base_rss, w.rss, base_fds, w.fds))
    if w.rss > during_mib * slack:
        fail("%s: RSS reached %.1f MiB during the attack (bound %.0f MiB)" % (what, w.rss, during_mib * slack))
    if not wait_until(lambda: a.rss_mib() < max(after_mib * slack, base_rss + 2), 5, 0.2):
        fail("%s: RSS still %.1f MiB 5 s after the attack (bound %.0f MiB)" % (what, a.rss_mib(), after_mib * slack))
    if not wait_until(lambda: a.fds() <= base_fds + 4, 5, 0.2):
        print(subprocess.run("ss -tanoi '( sport = :%d )'" % a.port, shell=True, capture_output=True,
                             text=True).stdout[:4000])
        fail("%s: %d descriptors 5 s after the attack, baseline %d" % (what, a.fds(), base_fds))
    print("%s: after: RSS %.1f MiB, fds %d" % (what, a.rss_mib(), a.fds()))


# --- scenarios ------------------------------------------------------------------

def hpack_window0():
    """Issue 8 item 1: one 4 KB literal under incremental indexing, then HEADERS
    frames of ~15,900 one-byte references to it, window 0, 10 connections."""
    a = Agent()
    base_rss, base_fds = a.rss_mib(), a.fds()
    w = Watch(a)
    socks = []
    for _ in range(10):
        s = a.connect()
        d = PREFACE + settings(0) + frame(HEADERS, END_STREAM | END_HEADERS, 1,
                                          req_block(b"/readyz") + lit(b"x-bomb", b"A" * 4000, index=True))
        for i in range(100):
            d += frame(HEADERS, END_STREAM | END_HEADERS, 3 + 2 * i, req_block(b"/healthz?verbose") + b"\xbe" * 15900)
        try:
            s.sendall(d)
        except OSError:
            pass  # the agent may end the connection mid-send
        socks.append(s)
        a.assert_probes("hpack amplification")
    time.sleep(1)
    a.assert_probes("hpack amplification")
    for s in socks:
        s.close()
    w.done()
    check_bounds(a, w, base_rss, base_fds, 32, 16, "hpack amplification")
    a.stop()


def continuation_amplification():
    """The same amplification spread over CONTINUATION frames (h2o takes up
    to 417 KB per header block, ~27 MB decoded): 10 connections with prior
    knowledge and 10 through an h2c upgrade each send three 400 KB blocks of
    references; each is ended at the first block past 32 KiB, before h2o
    decodes it."""
    a = Agent()
    base_rss, base_fds = a.rss_mib(), a.fds()
    w = Watch(a)
    def attack(first_sid):
        """A 4 KB literal indexed on stream first_sid, then three 400 KB blocks of references to it."""
        d = frame(HEADERS, END_STREAM | END_HEADERS, first_sid,
                  req_block(b"/readyz") + lit(b"x-bomb", b"A" * 4000, index=True))
        for k in range(3):
            sid = first_sid + 2 + 2 * k
            d += frame(HEADERS, END_STREAM, sid, req_block(b"/readyz") + b"\xbe" * 16000)
            for i in range(24):
                d += frame(CONT, END_HEADERS if i == 23 else 0, sid, b"\xbe" * 16384)
        return d

    socks = []
    for upgrade in (False, True):
        for _ in range(10):
            s = a.connect()
            if upgrade:  # stream 1 is the upgraded request
                s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                          b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
                if b"101" not in s.recv(4096):
                    fail("no 101 for the h2c upgrade")
            try:
                s.sendall(PREFACE + settings(0) + attack(3 if upgrade else 1))
            except OSError:
                pass  # the agent may end the connection mid-send
            socks.append(s)
        a.assert_probes("CONTINUATION amplification")
    ended = sum(1 for s in socks if closed_by_peer(s, 3))
    if ended != len(socks):
        fail("%d of %d connections sending 400 KB header blocks were not ended" % (len(socks) - ended, len(socks)))
    for s in socks:
        s.close()
    w.done()
    if "closed: HTTP/2 header block larger than 32 KiB" not in a.log():
        fail("no log line for the header blocks:\n" + a.log())
    check_bounds(a, w, base_rss, base_fds, 32, 16, "CONTINUATION amplification")
    a.stop()


def h2_refusals():
    """Refused requests end with RST_STREAM at once even at window 0: headers
    beyond the bound (ENHANCE_YOUR_CALM) and requests in flight beyond 32 per
    connection (REFUSED_STREAM); HTTP/1 gets 431."""
    a = Agent()
    s = a.connect()
    d = PREFACE + settings(0) + frame(HEADERS, END_STREAM | END_HEADERS, 1,
                                      req_block(b"/readyz") + lit(b"x-bomb", b"A" * 4000, index=True))
    for i in range(20):  # amplified: 15,900 headers each
        d += frame(HEADERS, END_STREAM | END_HEADERS, 3 + 2 * i, req_block(b"/readyz") + b"\xbe" * 15900)
    for i in range(40):  # plain, held by the zero window
        d += frame(HEADERS, END_STREAM | END_HEADERS, 43 + 2 * i, req_block(b"/readyz"))
    s.sendall(d)
    got, deadline = b"", time.time() + 3
    s.settimeout(0.3)
    while time.time() < deadline:
        try:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        except socket.timeout:
            pass
        fr = parse_frames(got)
        if sum(1 for f in fr if f[0] in (RST, HEADERS)) >= 61:
            break
    fr = parse_frames(got)
    calm = [f[2] for f in fr if f[0] == RST and f[3] == struct.pack(">I", 0xb)]
    refused = [f[2] for f in fr if f[0] == RST and f[3] == struct.pack(">I", 0x7)]
    answered = [f[2] for f in fr if f[0] == HEADERS]
    print("h2 refusals: %d ENHANCE_YOUR_CALM, %d REFUSED_STREAM, %d answered" % (len(calm), len(refused), len(answered)))
    if calm != [3 + 2 * i for i in range(20)]:
        fail("amplified requests: want RST_STREAM ENHANCE_YOUR_CALM on streams 3..41, got %r" % calm)
    if len(answered) != 32 or len(refused) != 9:
        fail("want 32 requests in flight and 9 refused, got %d and %d" % (len(answered), len(refused)))
    a.assert_probes("h2 refusals")
    s.close()
    # HTTP/1: 431 for too many headers or too many header bytes
    many = dict(("x-h%d" % i, "v") for i in range(70))
    if a.probe("/readyz", headers=many)[0] != 431:
        fail("70 headers on HTTP/1: want 431")
    if a.probe("/readyz", headers={"x-big": "a" * 17000})[0] != 431:
        fail("17,000 header bytes on HTTP/1: want 431")
    if a.probe("/readyz", headers=dict(("x-h%d" % i, "v") for i in range(60)))[0] != 200:
        fail("60 small headers on HTTP/1: want 200")
    # h2load -m10 (10 streams per connection) is unaffected
    if subprocess.call(["which", "h2load"], stdout=subprocess.DEVNULL) == 0:
        out = subprocess.run(["h2load", "-n2000", "-c4", "-m10", "http://127.0.0.1:%d/readyz" % a.port],
                             capture_output=True, text=True, timeout=60).stdout
        if "2000 succeeded" not in out or "0 failed" not in out:
            fail("h2load -m10:\n" + out)
    a.stop()


def held_h2_window0():
    """Issue 8 item 2a: preface, SETTINGS_INITIAL_WINDOW_SIZE 0, one GET, then
    silence, on 200 connections: send_timeout (2 s here) closes every one."""
    a = Agent('send_timeout = "2s"')
    base_rss, base_fds = a.rss_mib(), a.fds()
    w = Watch(a)
    socks = []
    for i in range(200):
        s = a.connect()
        s.sendall(PREFACE + settings(0) + frame(HEADERS, END_STREAM | END_HEADERS, 1, req_block(b"/readyz")))
        socks.append(s)
    time.sleep(0.5)
    if a.fds() < base_fds + 190:
        fail("the 200 connections should be open before send_timeout (%d fds)" % a.fds())
    a.assert_probes("held HTTP/2 connections")
    t0 = time.time()
    if not all(closed_by_peer(s, 6) for s in socks):
        fail("HTTP/2 connections at window 0 still open %.1fs after send_timeout 2s" % (time.time() - t0))
    print("held HTTP/2: all 200 closed within %.1fs" % (time.time() - t0))
    for s in socks:
        s.close()
    w.done()
    a.assert_probes("held HTTP/2 connections")
    check_bounds(a, w, base_rss, base_fds, 32, 16, "held HTTP/2 connections")
    if "closed: send_timeout" not in a.log():
        fail("no log line for the send_timeout closes:\n" + a.log())
    a.stop()


def held_h1_pipeline():
    """Issue 8 item 2b: ~900 KB of pipelined GETs and never reading, on 20
    connections: send_timeout closes them."""
    a = Agent('send_timeout = "2s"')
    base_rss, base_fds = a.rss_mib(), a.fds()
    w = Watch(a)
    one = b"GET /readyz?verbose HTTP/1.1\r\nHost: x\r\n\r\n"
    blob = one * (900 * 1024 // len(one))
    socks = []
    for _ in range(20):
        s = a.connect()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setblocking(False)
        sent = 0
        t_end = time.time() + 1
        while sent < len(blob) and time.time() < t_end:
            try:
                sent += s.send(blob[sent:])
            except BlockingIOError:
                time.sleep(0.01)
        socks.append(s)
    a.assert_probes("pipelining without reading")
    t0 = time.time()
    ok = wait_until(lambda: a.fds() <= base_fds + 2, 15, 0.2)
    if not ok:
        fail("pipelining connections still open %.1fs later (%d fds, baseline %d)" % (time.time() - t0, a.fds(), base_fds))
    print("pipelining: closed within %.1fs" % (time.time() - t0))
    for s in socks:
        s.close()
    w.done()
    a.assert_probes("pipelining without reading")
    check_bounds(a, w, base_rss, base_fds, 32, 16, "pipelining without reading")
    a.stop()


def flood(a, name, first, unit, seconds=5, max_bytes=64 * MIB):
    """Sends first, then unit over and over (bounded in time and bytes);
    returns how long the agent took to end the connection, or None."""
    s = a.connect()
    s.setblocking(False)
    t0 = time.time()
    pending = first
    chunk = unit * max(1, 65536 // len(unit))
    total = 0
    while time.time() - t0 < seconds and total < max_bytes:
        try:
            n = s.send(pending)
            total += n
            pending = pending[n:] or chunk
        except BlockingIOError:
            time.sleep(0.001)
        except OSError:
            s.close()
            return time.time() - t0
        try:
            if s.recv(65536) == b"":
                s.close()
                return time.time() - t0
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            return time.time() - t0
    s.close()
    return None


def frames_without_progress():
    """Issue 8 item 3 and the SETTINGS/PING/WINDOW_UPDATE floods: zero-length
    CONTINUATION frames, empty DATA frames, SETTINGS, PING, WINDOW_UPDATE;
    each connection is ended within 2 s."""
    a = Agent()
    base_rss, base_fds = a.rss_mib(), a.fds()
    w = Watch(a)
    cases = [
        ("zero-length CONTINUATION", PREFACE + settings() + frame(HEADERS, 0, 1, req_block(b"/readyz")), frame(CONT, 0, 1)),
        ("empty DATA", PREFACE + settings() + frame(HEADERS, END_HEADERS, 1, req_block(b"/-/ready", b"\x83")),
         frame(DATA, 0, 1)),
        ("SETTINGS", PREFACE + settings(), settings()),
        ("PING", PREFACE + settings(), frame(PING, 0, 0, b"12345678")),
        ("WINDOW_UPDATE", PREFACE + settings(), frame(WINUPD, 0, 0, struct.pack(">I", 1))),
    ]
    for name, first, unit in cases:
        secs = flood(a, name, first, unit)
        if secs is None or secs > 2:
            fail("%s flood: connection not ended within 2s (%s)" % (name, secs))
        print("%s flood: ended after %.2fs" % (name, secs))
        a.assert_probes(name + " flood")
    w.done()
    if "closed: frames without requests" not in a.log():
        fail("no log line for the ended floods:\n" + a.log())
    check_bounds(a, w, base_rss, base_fds, 32, 16, "floods")
    a.stop()


def rapid_reset():
    """HTTP/2 rapid reset: HEADERS then RST_STREAM, 20,000 streams on 4
    connections. The agent stays up and bounded; fresh probes are answered."""
    a = Agent()
    base_rss, base_fds = a.rss_mib(), a.fds()
    w = Watch(a)
    for c in range(4):
        s = a.connect()
        s.setblocking(False)
        buf = bytearray(PREFACE + settings())
        for i in range(5000):
            sid = 1 + 2 * i
            buf += frame(HEADERS, END_STREAM | END_HEADERS, sid, req_block(b"/readyz"))
            buf += frame(RST, 0, sid, struct.pack(">I", 8))
        data, t0 = bytes(buf), time.time()
        while data and time.time() - t0 < 10:
            try:
                data = data[s.send(data):]
            except BlockingIOError:
                time.sleep(0.001)
            except OSError:
                break
            try:
                s.recv(1 << 20)
            except (BlockingIOError, OSError):
                pass
        a.assert_probes("rapid reset")
        s.close()
    w.done()
    check_bounds(a, w, base_rss, base_fds, 32, 16, "rapid reset")
    a.stop()


def slowloris():
    """300 connections dribbling request headers a byte at a time:
    request_timeout (2 s here) ends them; fresh probes are answered."""
    a = Agent('request_timeout = "2s"')
    base_rss, base_fds = a.rss_mib(), a.fds()
    w = Watch(a)
    socks = [a.connect(src) for src in ("127.0.0.1", "127.0.0.3", "127.0.0.4") for _ in range(100)]
    line = b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-a: " + b"b" * 100
    t0 = time.time()
    closed_at = None
    open_ = list(socks)
    for i in range(len(line)):
        if time.time() - t0 > 8:
            break
        for s in list(open_):
            try:
                s.send(line[i:i + 1])
            except OSError:
                open_.remove(s)
        if i % 5 == 0:
            a.assert_probes("slowloris")
        if a.fds() <= base_fds + 2:
            closed_at = time.time() - t0
            break
        time.sleep(0.1)
    if closed_at is None or closed_at > 5:
        fail("slowloris connections still open after %.1fs (%d fds, baseline %d)" % (time.time() - t0, a.fds(), base_fds))
    print("slowloris: closed after %.1fs (request_timeout 2s)" % closed_at)
    for s in socks:
        s.close()
    w.done()
    check_bounds(a, w, base_rss, base_fds, 32, 16, "slowloris")
    a.stop()


def read_answer(s, timeout=3.0):
    """What the agent sends on s until it closes: (status, whole answer)."""
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    try:
        return int(data.split(b" ")[1]), data
    except (IndexError, ValueError):
        return 0, data


def silent_connections():
    """300 connections from three addresses that send nothing after the
    handshake (they wait a second in the kernel, the listener's deferred
    accept, then in the front's set of early connections, not in h2o): the
    agent ends every one after request_timeout (2 s here) from the handshake,
    not before, and not later than its sweep a second after; meanwhile probes
    are answered, a probe sent 1 s after its connect is answered, and so is one
    whose request comes in two parts. Descriptors go back to the baseline."""
    a = Agent('request_timeout = "2s"')
    base_rss, base_fds = a.rss_mib(), a.fds()
    w = Watch(a)
    t0 = time.time()
    socks = [a.connect(src) for src in ("127.0.0.1", "127.0.0.3", "127.0.0.4") for _ in range(100)]
    late = a.connect("127.0.0.5")
    split = a.connect("127.0.0.6")
    if not wait_until(lambda: a.fds() >= base_fds + 302, 2):
        fail("the agent holds %d descriptors, want %d + 302" % (a.fds(), base_fds))
    a.assert_probes("silent connections")
    split.sendall(b"GET /readyz HTTP/1.1\r\nHo")
    time.sleep(1.0)
    late.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, data = read_answer(late)
    if status != 200 or b'"status":"UP"' not in data:
        fail("a request sent 1 s after its connect: %r" % data[:300])
    split.sendall(b"st: x\r\nConnection: close\r\n\r\n")
    status, data = read_answer(split)
    if status != 200 or b'"status":"UP"' not in data:
        fail("a request in two parts: %r" % data[:300])
    ended = []
    for s_ in socks:
        if closed_by_peer(s_, max(0.05, t0 + 4.5 - time.time())):
            ended.append(time.time() - t0)
    print("silent connections: %d of %d ended, between %.1fs and %.1fs after connect (request_timeout 2s)"
          % (len(ended), len(socks), min(ended or [0]), max(ended or [0])))
    if len(ended) != len(socks):
        fail("%d of %d silent connections still open after 4.5 s" % (len(socks) - len(ended), len(socks)))
    if min(ended) < 1.9:
        fail("a silent connection was ended after %.2fs, before request_timeout" % min(ended))
    if max(ended) > 3.6:
        fail("a silent connection was ended after %.2fs, later than request_timeout and the sweep's second"
             % max(ended))
    for s_ in socks + [late, split]:
        s_.close()
    if not wait_until(lambda: a.fds() <= base_fds, 2):
        fail("descriptors: %d, baseline %d" % (a.fds(), base_fds))
    w.done()
    a.assert_probes("silent connections ended")
    check_bounds(a, w, base_rss, base_fds, 32, 16, "silent connections")
    # at shutdown, silent connections do not hold the agent up
    held = [a.connect() for _ in range(20)]
    t1 = time.time()
    a.stop()
    if time.time() - t1 > 3:
        fail("shutdown with 20 silent connections took %.1fs" % (time.time() - t1))
    for s_ in held:
        s_.close()
    # the second a silent connection spent in the kernel's queue (deferred
    # accept) counts: with 2.5 s it is ended at the sweep that follows 2.5 s
    # after its handshake (about 3.0 s), not 2.5 s after its accept (4.0 s)
    a = Agent('request_timeout = "2500ms"')
    base_fds = a.fds()
    t0 = time.time()
    socks = [a.connect() for _ in range(10)]
    with open("/proc/sys/net/ipv4/tcp_syncookies") as f:
        deferring = f.read().strip() in ("1", "2")
    time.sleep(0.5)
    if deferring and a.fds() != base_fds:
        fail("deferred accept: the agent took %d silent connections within 0.5 s of their handshake"
             % (a.fds() - base_fds))
    ended = [time.time() - t0 for s_ in socks if closed_by_peer(s_, max(0.05, t0 + 5 - time.time()))]
    print("request_timeout 2500ms: %d of 10 silent connections ended, between %.2fs and %.2fs"
          % (len(ended), min(ended or [0]), max(ended or [0])))
    if len(ended) != 10 or max(ended) > 3.6 or min(ended) < 2.45:
        fail("request_timeout 2500ms: silent connections ended after %s s" % ["%.2f" % e for e in ended])
    for s_ in socks:
        s_.close()
    a.stop()
    # a request_timeout under the sweep's second is kept (the sweep runs that often)
    a = Agent('request_timeout = "300ms"')
    t0 = time.time()
    socks = [a.connect() for _ in range(10)]
    ended = [time.time() - t0 for s_ in socks if closed_by_peer(s_, max(0.05, t0 + 2 - time.time()))]
    print("request_timeout 300ms: %d of 10 silent connections ended, the last after %.2fs" % (len(ended), max(ended or [0])))
    if len(ended) != 10 or max(ended) > 0.9 or min(ended) < 0.25:
        fail("request_timeout 300ms: silent connections ended after %s s" % ["%.2f" % e for e in ended])
    for s_ in socks:
        s_.close()
    a.stop()


def hold_many(a, n, src="127.0.0.1"):
    socks = []
    for _ in range(n):
        try:
            socks.append(a.connect(src))
        except OSError:
            break
    return socks


def conn_caps():
    """One address opens 2,000 connections: it gets 256 (the per-address cap),
    the others are reset at accept (those the kernel lets in with SYN cookies
    at once, the deferred ones after the deferral); a probe from another
    address is answered at once, and so is a probe from the attacker's address
    once it lets go.
    Descriptors go back to the baseline within request_timeout (2 s here) and
    the sweep's second: the kernel holds connections that sent nothing for
    the listener's deferred accept (1 s), and a few of those the attacker
    closed meanwhile are handed over without their end (23 of 2,000 here),
    to be ended as silent connections."""
    a = Agent('request_timeout = "2s"')
    base_rss, base_fds = a.rss_mib(), a.fds()
    w = Watch(a)
    socks = hold_many(a, 2000)
    time.sleep(0.5)
    held = a.fds() - base_fds
    print("2,000 connections from one address: the agent holds %d" % held)
    if held > 256 + 2 or held < 250:
        fail("per-address cap: the agent holds %d connections from one address, want 256" % held)
    status, _, secs = a.probe()
    if status != 200 or secs > 0.5:
        fail("a probe from another address: %s after %.2fs" % (status, secs))
    if "refused: max_connections_per_address reached" not in a.log():
        fail("no log line for the refused connections:\n" + a.log())
    for s in socks:
        s.close()
    w.done()
    a.assert_probes("connection caps")
    if a.probe(src="127.0.0.1")[0] != 200:
        fail("the attacker's address is not answered after it let go")
    check_bounds(a, w, base_rss, base_fds, 32, 16, "connection caps")
    a.stop()


def ulimit_256():
    """With ulimit -n 256 the caps shrink to fit (168 connections, 84 per
    address, 24 more for addresses holding fewer than 4): two attacking
    addresses (127.0.0.1, 127.0.0.3) at their caps take neither the
    descriptors the engine needs nor the room of a fresh probe.
    request_timeout is 2 s, as in conn_caps: with the half-open queue full,
    the kernel may give the listener two sockets for one connection of the
    attacker's (one from its handshake, one from its end, which only the
    second sees), and the first is ended as a silent connection."""
    a = Agent('rescan_interval = "1s", request_timeout = "2s"', nofile=256)
    if "at most 168 at once (descriptor limit 256), 84 per client address, 24 more" not in a.log():
        fail("caps not derived from the descriptor limit:\n" + a.log())
    base_rss, base_fds = a.rss_mib(), a.fds()
    w = Watch(a)
    socks = hold_many(a, 600) + hold_many(a, 600, "127.0.0.3")
    time.sleep(0.5)
    print("ulimit 256: %d descriptors with 1,200 connection attempts" % a.fds())
    if a.fds() > 240:
        fail("%d descriptors open: too close to the limit of 256" % a.fds())
    a.assert_probes("ulimit -n 256")
    time.sleep(1.5)  # a rescan of the scripts runs meanwhile
    a.assert_probes("ulimit -n 256")
    for s in socks:
        s.close()
    w.done()
    if "Too many open files" in a.log():
        fail("descriptors ran out:\n" + a.log())
    check_bounds(a, w, base_rss, base_fds, 32, 16, "ulimit -n 256")
    a.stop()


def cpu_seconds(a):
    with open("/proc/%d/stat" % a.proc.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def nofile_state(pid):
    """The agent's descriptor limits as prlimit prints them ([soft, hard]),
    its open descriptors, and the lowest free number (its next descriptor: a
    soft limit there leaves it none)."""
    old = subprocess.run(["prlimit", "--pid", pid, "--nofile", "--raw", "--noheadings", "-o", "SOFT,HARD"],
                         capture_output=True, text=True, check=True).stdout.split()
    fds = sorted(int(x) for x in os.listdir("/proc/%s/fd" % pid))
    free = next(i for i in range(len(fds) + 1) if i >= len(fds) or fds[i] != i)
    return old, fds, free


def out_of_descriptors():
    """The descriptor limit of the running agent drops to what it holds
    (prlimit): each new connection is reset at once, with the spare
    descriptor, not left in the backlog until the client's timeout and not
    spinning the loop on a listener that stays readable; the log says why;
    with the limit back, probes are answered again."""
    a = Agent()
    pid = str(a.proc.pid)
    old, fds, free = nofile_state(pid)
    subprocess.check_call(["prlimit", "--pid", pid, "--nofile=%d:%s" % (free, old[1])])
    cpu0 = cpu_seconds(a)
    reset = 0
    for _ in range(50):
        status, _, secs = a.probe("/livez", src="127.0.0.1", timeout=2.0)
        if status == 0 and secs < 1.0:
            reset += 1
    time.sleep(0.5)
    cpu = cpu_seconds(a) - cpu0
    subprocess.check_call(["prlimit", "--pid", pid, "--nofile=%s:%s" % (old[0], old[1])])
    print("out of descriptors: %d of 50 reset at once, %.2f s CPU" % (reset, cpu))
    if reset != 50:
        fail("%d of 50 connections were reset at once without descriptors\n%s" % (reset, a.log()[-2000:]))
    if cpu > 1.0:
        fail("the agent spun without descriptors: %.2f s CPU" % cpu)
    if "refused: out of file descriptors" not in a.log():
        fail("no log line says why:\n" + a.log()[-2000:])
    a.assert_probes("descriptors back")
    a.stop()


def out_of_descriptors_no_spare():
    """The descriptor limit of the running agent drops below its spare
    descriptor too (prlimit), so pending connections cannot even be reset:
    the front stops polling its listener for a second at a time instead of
    spinning on it, says so, and serves the clients that waited once the
    limit is back."""
    a = Agent()
    pid = str(a.proc.pid)
    old, fds, free = nofile_state(pid)
    nulls = [n for n in fds if n > 2 and os.readlink("/proc/%s/fd/%d" % (pid, n)) == "/dev/null"]
    if not nulls:
        fail("no spare descriptor (/dev/null) found among %r" % fds)
    subprocess.check_call(["prlimit", "--pid", pid, "--nofile=%d:%s" % (min(free, min(nulls)), old[1])])
    cpu0 = cpu_seconds(a)
    waiting = []
    for _ in range(10):
        s = a.connect()
        s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        waiting.append(s)
    time.sleep(2.5)
    cpu = cpu_seconds(a) - cpu0
    subprocess.check_call(["prlimit", "--pid", pid, "--nofile=%s:%s" % (old[0], old[1])])
    print("out of descriptors, no spare: %.2f s CPU in 2.5 s" % cpu)
    if cpu > 0.5:
        fail("the agent spun without descriptors: %.2f s CPU in 2.5 s" % cpu)
    if "out of file descriptors and none spare: not accepting for 1s" not in a.log():
        fail("no log line says why:\n" + a.log()[-2000:])
    served = 0
    for s in waiting:
        s.settimeout(5)
        try:
            if s.recv(4096).startswith(b"HTTP/1.1 200"):
                served += 1
        except OSError:
            pass
        s.close()
    if served != 10:
        fail("%d of the 10 clients that waited were served once the limit was back\n%s" % (served, a.log()[-2000:]))
    a.assert_probes("descriptors back")
    a.stop()


def admin_mesh():
    """Issue 8 item 4: with the default configuration and no token, a client
    from 127.0.0.6 can neither change state nor read outputs; with a token, the
    same client can when it sends the token."""
    a = Agent()
    for path, method in (("/-/drain", "POST"), ("/-/ready", "PUT"), ("/-/reload", "POST"), ("/-/status", "GET")):
        for src in (MESH, "127.0.0.1"):
            status, body, _ = a.probe(path, src=src, method=method)
            if status != 403 or body:
                fail("no token: %s %s from %s answered %s %r" % (method, path, src, status, body))
    status, body, _ = a.probe("/readyz", src=MESH)
    if status != 200 or b"fine" in body:
        fail("no token: /readyz from 127.0.0.6 shows outputs: %r" % body)
    status, body, _ = a.probe("/readyz?verbose", src=MESH)
    if b"fine" in body:
        fail("no token: /readyz?verbose from 127.0.0.6 shows outputs: %r" % body)
    a.stop()

    token = "mesh-test-token-0123456789"
    a = Agent('token = "%s"' % token)
    auth = {"Authorization": "Bearer " + token}
    if a.probe("/-/drain", src=MESH, method="POST")[0] != 401:
        fail("token set: /-/drain without it from 127.0.0.6 must be 401")
    if a.probe("/readyz", src=MESH)[0] != 200:
        fail("the refused drain changed readiness")
    if b"fine" not in a.probe("/readyz", src=MESH, headers=auth)[1]:
        fail("token set: /readyz with it from 127.0.0.6 must show outputs")
    if a.probe("/-/drain", src=MESH, method="POST", headers=auth)[0] != 200:
        fail("token set: /-/drain with it from 127.0.0.6 must be 200")
    if not wait_until(lambda: a.probe("/readyz")[0] == 503, 2):
        fail("drained with the token, /readyz still 200")
    a.stop()


SCENARIOS = dict((f.__name__, f) for f in (hpack_window0, continuation_amplification, h2_refusals, held_h2_window0, held_h1_pipeline,
                                            silent_connections, frames_without_progress, rapid_reset, slowloris, conn_caps, ulimit_256,
                                            out_of_descriptors, out_of_descriptors_no_spare, admin_mesh))

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in SCENARIOS:
        sys.exit("usage: abuse.py " + "|".join(SCENARIOS))
    try:
        SCENARIOS[sys.argv[1]]()
    finally:
        for agent in AGENTS:
            if getattr(agent, "proc", None) is not None and agent.proc.poll() is None:
                agent.proc.kill()
                agent.proc.wait()
            subprocess.call(["rm", "-rf", agent.dir])
    print("ok: " + sys.argv[1])
