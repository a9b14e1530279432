// grpc_health_server.go: the reference for tests/bench/grpc_check.sh: grpc-go's
// own health service (google.golang.org/grpc/health), from Debian's
// golang-google-grpc-dev, built in GOPATH mode (GOPATH=/usr/share/gocode,
// GO111MODULE=off). Services "" and "readiness" are SERVING.
//
//	GOMAXPROCS=1 grpc_health_server 127.0.0.1:PORT
package main

import (
	"log"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: grpc_health_server HOST:PORT")
	}
	lis, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	s := grpc.NewServer()
	h := health.NewServer()
	h.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	h.SetServingStatus("readiness", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, h)
	log.Fatal(s.Serve(lis))
}
