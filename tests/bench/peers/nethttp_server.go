// nethttp_server.go: the Go net/http peer of conn_close.sh. One listener on
// 127.0.0.1:<port>, GOMAXPROCS=1, every request answered 200 with the same
// static JSON body the reference server sends (application/json, no-store).
//
//	go run nethttp_server.go <port>
package main

import (
	"net/http"
	"os"
	"runtime"
)

var body = []byte(`{"status":"UP","components":{"self":{"status":"UP"}}}`)

func main() {
	runtime.GOMAXPROCS(1)
	if len(os.Args) != 2 {
		os.Stderr.WriteString("usage: nethttp_server <port>\n")
		os.Exit(2)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		w.Write(body)
	})
	if err := http.ListenAndServe("127.0.0.1:"+os.Args[1], nil); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
}
