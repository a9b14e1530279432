'use strict';
// A small grpc.health.v1 client, for the self-test and for specs that want a
// reference answer:
//
//   node grpc_client.js [--ca FILE] [--watch N] [--timeout MS] HOST:PORT [SERVICE]
//
// Check: prints the status name (SERVING, NOT_SERVING, ...) and exits 0, or
// prints "error <CODE_NAME>: details" and exits 1.
// --watch N: opens a Watch stream, prints each of the first N statuses on its
// own line as it arrives, then exits 0 (1 on error or timeout).
// --watch 0: prints every status until the stream ends, then "end CODE: details".
// --list: List; prints "SERVICE=STATUS" lines sorted by service.
// --ca FILE: use TLS, trusting FILE.

const fs = require('fs');
const path = require('path');
const grpc = require('./node_modules/@grpc/grpc-js');
const protoLoader = require('./node_modules/@grpc/proto-loader');

function usage() {
  process.stderr.write('usage: node grpc_client.js [--ca FILE] [--watch N] [--timeout MS] HOST:PORT [SERVICE]\n');
  process.exit(2);
}

const args = process.argv.slice(2);
let ca = null;
let watch = -1;
let list = false;
let timeout = 5000;
const rest = [];
while (args.length) {
  const a = args.shift();
  if (a === '--ca') ca = args.shift();
  else if (a === '--watch') watch = Number(args.shift());
  else if (a === '--timeout') timeout = Number(args.shift());
  else if (a === '--list') list = true;
  else if (a.startsWith('--')) usage();
  else rest.push(a);
}
if (rest.length < 1 || rest.length > 2) usage();
const [target, service = ''] = rest;

const def = protoLoader.loadSync(path.join(__dirname, 'health.proto'), {
  keepCase: true, enums: String, defaults: true,
});
const { Health } = grpc.loadPackageDefinition(def).grpc.health.v1;
const creds = ca ? grpc.credentials.createSsl(fs.readFileSync(ca)) : grpc.credentials.createInsecure();
const client = new Health(target, creds);
const deadline = new Date(Date.now() + timeout);
const codeName = (c) => Object.keys(grpc.status).find((k) => grpc.status[k] === c) || String(c);

function fail(err) {
  console.log(`error ${codeName(err.code)}: ${err.details || err.message}`);
  client.close();
  process.exit(1);
}

if (list) {
  client.List({}, { deadline }, (err, r) => {
    if (err) return fail(err);
    for (const k of Object.keys(r.statuses).sort()) console.log(`${k}=${r.statuses[k].status}`);
    client.close();
    return process.exit(0);
  });
} else if (watch === 0) {
  const call = client.Watch({ service }, { deadline });
  call.on('data', (r) => console.log(r.status));
  call.on('error', (err) => {
    console.log(`end ${codeName(err.code)}: ${err.details || err.message}`);
    client.close();
    process.exit(0);
  });
  call.on('end', () => { console.log('end OK'); process.exit(0); });
} else if (watch > 0) {
  const call = client.Watch({ service }, { deadline });
  let seen = 0;
  call.on('data', (r) => {
    console.log(r.status);
    if (++seen === watch) {
      call.cancel();
      client.close();
      process.exit(0);
    }
  });
  call.on('error', fail);
} else {
  client.Check({ service }, { deadline }, (err, r) => {
    if (err) return fail(err);
    console.log(r.status);
    client.close();
    return process.exit(0);
  });
}
