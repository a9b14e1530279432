'use strict';
// Watch fan-out on @grpc/grpc-js: opens CONNS connections (one channel each,
// no shared subchannels) with PER Watch streams each on SERVICE, waits for
// every first status, reports the agent's RSS per stream, then drains the
// agent through its admin API and times the last watcher's NOT_SERVING.
//
//   node grpc_watch_flood.js HOST:PORT CONNS PER SERVICE AGENT_PID ADMIN_URL TOKEN
//
// Prints key=value lines: streams, rss_before_kib, rss_after_kib,
// bytes_per_stream, open_ms, fanout_ms (POST /-/drain to the last message).
const fs = require('fs');
const http = require('http');
const path = require('path');
const grpc = require('./node_modules/@grpc/grpc-js');
const protoLoader = require('./node_modules/@grpc/proto-loader');

const [target, conns, per, service, pid, admin, token] = process.argv.slice(2);
const nconns = Number(conns);
const nper = Number(per);
const def = protoLoader.loadSync(path.join(__dirname, 'health.proto'), { keepCase: true, enums: String, defaults: true });
const { Health } = grpc.loadPackageDefinition(def).grpc.health.v1;

function rssKiB() {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/);
  return Number(m[1]);
}

function post(url) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { Authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      if (res.statusCode !== 200) reject(new Error(`POST ${url}: HTTP ${res.statusCode}`));
      res.on('end', resolve);
    });
    req.on('error', reject);
    req.end();
  });
}

const before = rssKiB();
const t0 = Date.now();
const total = nconns * nper;
let first = 0;
let changed = 0;
let drainAt = 0;
const clients = [];
const calls = [];
for (let c = 0; c < nconns; c++) {
  const client = new Health(target, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1, 'grpc.max_concurrent_streams': nper,
  });
  clients.push(client);
  for (let i = 0; i < nper; i++) {
    const call = client.Watch({ service });
    let seen = 0;
    call.on('data', (r) => {
      seen++;
      if (seen === 1 && ++first === total) allOpen();
      if (drainAt && r.status === 'NOT_SERVING' && ++changed === total) allChanged();
    });
    call.on('error', (err) => {
      if (err.code !== grpc.status.CANCELLED) {
        console.log(`error=${err.code} ${err.details}`);
        process.exit(1);
      }
    });
    calls.push(call);
  }
}

function allOpen() {
  const openMs = Date.now() - t0;
  setTimeout(() => {
    const after = rssKiB();
    console.log(`streams=${total}`);
    console.log(`open_ms=${openMs}`);
    console.log(`rss_before_kib=${before}`);
    console.log(`rss_after_kib=${after}`);
    console.log(`bytes_per_stream=${Math.round(((after - before) * 1024) / total)}`);
    drainAt = process.hrtime.bigint();
    post(`${admin}/-/drain`).catch((e) => { console.log(`error=drain ${e.message}`); process.exit(1); });
  }, 500);
}

function allChanged() {
  const ms = Number(process.hrtime.bigint() - drainAt) / 1e6;
  console.log(`fanout_ms=${ms.toFixed(1)}`);
  for (const call of calls) call.cancel();
  for (const client of clients) client.close();
  process.exit(0);
}

setTimeout(() => {
  console.log(`error=timeout first=${first} changed=${changed} of ${total}`);
  process.exit(1);
}, 120000);
