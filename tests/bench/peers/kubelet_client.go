// kubelet_client.go: probes a URL the way kubelet's HTTP prober does, one
// probe after another for a while, and prints what it measured.
//
//	kubelet_client <url> <seconds>
//
// Like pkg/probe/http in Kubernetes: an http.Transport with keep-alives
// disabled (a new TCP connection per probe, closed after it), a 1 s timeout
// per probe, the body read (kubelet keeps at most 10 KiB of it), status
// 200-399 counted as success. Output, one line:
//
//	probes=N failed=F rps=R p50_us=A p99_us=B max_us=C
//
// Exit status 0 when every probe succeeded, 1 otherwise.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: kubelet_client <url> <seconds>")
		os.Exit(2)
	}
	secs, err := strconv.ParseFloat(os.Args[2], 64)
	if err != nil || secs <= 0 {
		fmt.Fprintln(os.Stderr, "kubelet_client: bad duration", os.Args[2])
		os.Exit(2)
	}
	client := &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true},
		Timeout:   time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	var lat []time.Duration
	failed := 0
	start := time.Now()
	end := start.Add(time.Duration(secs * float64(time.Second)))
	for time.Now().Before(end) {
		t0 := time.Now()
		resp, err := client.Get(os.Args[1])
		if err == nil {
			_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 10*1024))
			resp.Body.Close()
			if err == nil && (resp.StatusCode < 200 || resp.StatusCode >= 400) {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		lat = append(lat, time.Since(t0))
		if err != nil {
			failed++
			if failed <= 3 {
				fmt.Fprintln(os.Stderr, "kubelet_client:", err)
			}
		}
	}
	elapsed := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) int64 {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(p*float64(len(lat)-1))].Microseconds()
	}
	fmt.Printf("probes=%d failed=%d rps=%.1f p50_us=%d p99_us=%d max_us=%d\n", len(lat), failed,
		float64(len(lat))/elapsed.Seconds(), pct(0.50), pct(0.99), pct(1.0))
	if failed > 0 || len(lat) == 0 {
		os.Exit(1)
	}
}
