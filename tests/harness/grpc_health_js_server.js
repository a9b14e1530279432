'use strict';
// The grpc-js health server of tests/bench/grpc_check.sh: the
// grpc-health-check package's HealthImplementation on @grpc/grpc-js, services
// "" and "readiness" SERVING.
//
//   node grpc_health_js_server.js HOST:PORT
const grpc = require('./node_modules/@grpc/grpc-js');
const { HealthImplementation } = require('./node_modules/grpc-health-check');

const server = new grpc.Server();
new HealthImplementation({ '': 'SERVING', readiness: 'SERVING' }).addToServer(server);
server.bindAsync(process.argv[2], grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    console.error(err.message);
    process.exit(1);
  }
  console.log(`listening on ${process.argv[2]}`);
});
