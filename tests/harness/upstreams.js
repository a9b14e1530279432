'use strict';
// Upstreams and fault fixtures for healthagent's integration tests, in one
// Node.js process. Started by servers.sh, which passes everything through
// the HA_* environment variables it also writes to DIR/env:
//
//   HA_HTTP_PORT            HTTP/1.1, routes below, plus /grpc/set control
//   HA_HTTPS_PORT           TLS (HA_CERT_FILE signed by HA_CA_FILE), h2 + http/1.1 by ALPN
//   HA_HTTPS_EXPIRED_PORT   TLS with an expired certificate from the same CA
//   HA_H2C_PORT             HTTP/2 cleartext, prior knowledge
//   HA_GRPC_PORT            gRPC grpc.health.v1.Health (Check, Watch), plaintext
//   HA_GRPC_TLS_PORT        the same health service over TLS
//   HA_SILENT_PORT          accepts, reads and discards, never writes
//   HA_TRICKLE_PORT         accepts and writes one byte a second, forever
//   HA_CLOSE_PORT           accepts and closes at once (clean FIN)
//   HA_RESET_PORT           accepts and resets at once (RST)
//
// Routes (same on every HTTP port):
//   /ok                 200 "ok"
//   /status/<code>      that status (200..599), body "status <code>"
//   /slow?ms=N          200 "slow" after N milliseconds (default 1000)
//   /big                200 with a 10 MiB body of 'x'
//   /chunked            200, chunked on HTTP/1.1: "chunk 0\n" .. "chunk 4\n"
//   /redirect           302 to /ok; ?code=N (300..308) another status, ?to=URL another
//                       target, ?hops=K first K more redirects to itself (hops=K-1)
//   /echo               200 JSON {method, url, path, query, httpVersion, headers, body}
//   /grpc/set?service=S&status=SERVING|NOT_SERVING|UNKNOWN|SERVICE_UNKNOWN
//                       switch a gRPC health status (SERVICE_UNKNOWN removes S)
//   /grpc/reset         back to "" and "app" SERVING, nothing else
//
// When every listener is up it writes its pid to HA_UPSTREAMS_PID_FILE
// (written to a temporary name, then renamed: the file's presence means ready).

const fs = require('fs');
const http = require('http');
const http2 = require('http2');
const net = require('net');
const path = require('path');

const grpc = require('./node_modules/@grpc/grpc-js');
const protoLoader = require('./node_modules/@grpc/proto-loader');

const HOST = process.env.HA_HOST || '127.0.0.1';

function port(name) {
  const v = Number(process.env[name]);
  if (!Number.isInteger(v) || v <= 0 || v > 65535) {
    throw new Error(`upstreams.js: ${name} is not a port: ${process.env[name]}`);
  }
  return v;
}

function log(...args) {
  console.log(new Date().toISOString(), ...args);
}

const BIG = Buffer.alloc(10 * 1024 * 1024, 'x');

/* gRPC health state: service name -> status name. */
const DEFAULT_HEALTH = [['', 'SERVING'], ['app', 'SERVING']];
const health = new Map(DEFAULT_HEALTH);
const watchers = new Set(); /* {service, call} of open Watch streams */
const STATUSES = new Set(['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN']);

function notifyWatchers(service) {
  for (const w of watchers) {
    if (w.service === service) {
      w.call.write({ status: health.get(service) || 'SERVICE_UNKNOWN' });
    }
  }
}

function setHealth(service, status) {
  if (status === 'SERVICE_UNKNOWN') health.delete(service);
  else health.set(service, status);
  notifyWatchers(service);
}

/* ---- HTTP (every version) ---- */

function send(res, code, body, headers) {
  const h = Object.assign({ 'content-type': 'text/plain' }, headers || {});
  if (body !== null) h['content-length'] = Buffer.byteLength(body);
  res.writeHead(code, h);
  res.end(body === null ? undefined : body);
}

function handle(req, res) {
  const u = new URL(req.url, 'http://placeholder');
  const p = u.pathname;
  let m;

  if (p === '/ok') return send(res, 200, 'ok');

  if ((m = /^\/status\/(\d{3})$/.exec(p))) {
    const code = Number(m[1]);
    if (code < 200 || code > 599) return send(res, 400, 'status must be 200..599');
    const noBody = code === 204 || code === 304 || req.method === 'HEAD';
    return send(res, code, noBody ? null : `status ${code}`);
  }

  if (p === '/slow') {
    const ms = Number(u.searchParams.get('ms') || 1000);
    if (!Number.isFinite(ms) || ms < 0) return send(res, 400, 'bad ms');
    const t = setTimeout(() => send(res, 200, 'slow'), ms);
    res.on('close', () => clearTimeout(t));
    return undefined;
  }

  if (p === '/big') {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG.length });
    return res.end(req.method === 'HEAD' ? undefined : BIG);
  }

  if (p === '/chunked') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    let i = 0;
    const t = setInterval(() => {
      res.write(`chunk ${i}\n`);
      if (++i === 5) { clearInterval(t); res.end(); }
    }, 20);
    res.on('close', () => clearInterval(t));
    return undefined;
  }

  if (p === '/redirect') {
    const code = Number(u.searchParams.get('code') || 302);
    const hops = Number(u.searchParams.get('hops') || 0);
    if (!(code >= 300 && code <= 308) || !(hops >= 0)) return send(res, 400, 'bad code or hops');
    let location = u.searchParams.get('to') || '/ok';
    if (hops > 0) {
      u.searchParams.set('hops', String(hops - 1));
      location = `/redirect?${u.searchParams}`;
    }
    req.resume(); /* a request body is not read, but must not stall the socket */
    return send(res, code, 'redirect', { location });
  }

  if (p === '/echo') {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.stringify({
        method: req.method,
        url: req.url,
        path: p,
        query: Object.fromEntries(u.searchParams),
        httpVersion: req.httpVersion,
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      });
      send(res, 200, body, { 'content-type': 'application/json' });
    });
    return undefined;
  }

  if (p === '/grpc/set') {
    const service = u.searchParams.get('service') || '';
    const status = u.searchParams.get('status') || '';
    if (!STATUSES.has(status)) return send(res, 400, `unknown status "${status}"`);
    setHealth(service, status);
    log(`grpc health: "${service}" -> ${status}`);
    return send(res, 200, JSON.stringify({ service, status }), { 'content-type': 'application/json' });
  }

  if (p === '/grpc/reset') {
    for (const s of [...health.keys()]) {
      if (!DEFAULT_HEALTH.some(([d]) => d === s)) setHealth(s, 'SERVICE_UNKNOWN');
    }
    for (const [s, st] of DEFAULT_HEALTH) setHealth(s, st);
    return send(res, 200, 'reset');
  }

  return send(res, 404, 'not found');
}

function listen(server, p, name) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: HOST, port: p, backlog: 511 }, () => {
      server.removeListener('error', reject);
      server.on('error', (e) => log(`${name}: ${e.message}`));
      log(`${name} listening on ${HOST}:${p}`);
      resolve(server);
    });
  });
}

/* ---- gRPC ---- */

function makeGrpcServer() {
  const def = protoLoader.loadSync(path.join(__dirname, 'health.proto'), {
    keepCase: true, enums: String, defaults: true, longs: String,
  });
  const proto = grpc.loadPackageDefinition(def);
  const server = new grpc.Server();
  server.addService(proto.grpc.health.v1.Health.service, {
    Check(call, cb) {
      const status = health.get(call.request.service);
      if (status === undefined) {
        cb({ code: grpc.status.NOT_FOUND, details: `unknown service "${call.request.service}"` });
      } else {
        cb(null, { status });
      }
    },
    Watch(call) {
      const w = { service: call.request.service, call };
      watchers.add(w);
      const done = () => watchers.delete(w);
      call.on('cancelled', done);
      call.on('close', done);
      call.on('error', done);
      call.write({ status: health.get(w.service) || 'SERVICE_UNKNOWN' });
    },
  });
  return server;
}

function bindGrpc(server, p, creds, name) {
  return new Promise((resolve, reject) => {
    server.bindAsync(`${HOST}:${p}`, creds, (err) => {
      if (err) return reject(err);
      log(`${name} listening on ${HOST}:${p}`);
      return resolve();
    });
  });
}

/* ---- fault fixtures ---- */

function faultServer(onSocket) {
  const sockets = new Set();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    onSocket(s);
  });
  server.sockets = sockets;
  return server;
}

const silent = faultServer((s) => {
  s.resume(); /* read and discard: the client's writes never block */
  s.on('end', () => s.destroy());
});

const TRICKLE = Buffer.from('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n');
const trickle = faultServer((s) => {
  s.resume();
  let i = 0;
  const tick = () => {
    if (s.destroyed) return;
    s.write(i < TRICKLE.length ? TRICKLE.subarray(i, i + 1) : '.');
    i++;
  };
  tick();
  const t = setInterval(tick, 1000);
  s.on('close', () => clearInterval(t));
  s.on('end', () => s.destroy());
});

const closer = faultServer((s) => s.end());
const resetter = faultServer((s) => {
  if (typeof s.resetAndDestroy === 'function') s.resetAndDestroy();
  else { s.setNoDelay(true); s.destroy(); }
});

/* ---- main ---- */

async function main() {
  const tls = {
    key: fs.readFileSync(process.env.HA_KEY_FILE),
    cert: fs.readFileSync(process.env.HA_CERT_FILE),
  };
  const expired = {
    key: fs.readFileSync(process.env.HA_KEY_FILE),
    cert: fs.readFileSync(process.env.HA_EXPIRED_CERT_FILE),
  };

  const h1 = http.createServer(handle);
  h1.keepAliveTimeout = 30000;
  const h2s = http2.createSecureServer({ ...tls, allowHTTP1: true }, handle);
  const h2e = http2.createSecureServer({ ...expired, allowHTTP1: true }, handle);
  const h2c = http2.createServer(handle);

  const grpcPlain = makeGrpcServer();
  const grpcTls = makeGrpcServer();
  const grpcCreds = grpc.ServerCredentials.createSsl(
    null, [{ private_key: tls.key, cert_chain: tls.cert }], false);

  await Promise.all([
    listen(h1, port('HA_HTTP_PORT'), 'http'),
    listen(h2s, port('HA_HTTPS_PORT'), 'https'),
    listen(h2e, port('HA_HTTPS_EXPIRED_PORT'), 'https-expired'),
    listen(h2c, port('HA_H2C_PORT'), 'h2c'),
    bindGrpc(grpcPlain, port('HA_GRPC_PORT'), grpc.ServerCredentials.createInsecure(), 'grpc'),
    bindGrpc(grpcTls, port('HA_GRPC_TLS_PORT'), grpcCreds, 'grpc-tls'),
    listen(silent, port('HA_SILENT_PORT'), 'silent'),
    listen(trickle, port('HA_TRICKLE_PORT'), 'trickle'),
    listen(closer, port('HA_CLOSE_PORT'), 'close'),
    listen(resetter, port('HA_RESET_PORT'), 'reset'),
  ]);

  const pidFile = process.env.HA_UPSTREAMS_PID_FILE;
  if (pidFile) {
    fs.writeFileSync(`${pidFile}.tmp`, `${process.pid}\n`);
    fs.renameSync(`${pidFile}.tmp`, pidFile);
  }
  log(`ready, pid ${process.pid}`);

  const shutdown = (sig) => {
    log(`${sig}: exiting`);
    process.exit(0);
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main().catch((e) => {
  log(`fatal: ${e.stack || e}`);
  process.exit(1);
});
