// kubelet_client.go: probes URLs the way kubelet's HTTP prober does, one
// probe after another for a while, and prints what it measured.
//
//	kubelet_client <url>[,<url>...] <seconds>
//
// Like pkg/probe/http in Kubernetes: an http.Transport with keep-alives
// disabled (a new TCP connection per probe, closed after it), a 1 s timeout
// per probe, the body read (kubelet keeps at most 10 KiB of it), status
// 200-399 counted as success.
//
// With several URLs the probes take turns (one to each URL, then again), so
// that every server is measured in the same moments: this host's latency
// drifts by tens of percent within seconds, which separate runs would read as
// differences between the servers. Output, one line per URL:
//
//	url=U probes=N failed=F rps=R p50_us=A p99_us=B max_us=C
//
// where rps is what one such client gets from that server alone: probes per
// second of the time spent probing it (with one URL, the run's own rate).
// Exit status 0 when every probe succeeded, 1 otherwise.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// target is one URL and what its probes measured.
type target struct {
	url    string
	lat    []time.Duration
	spent  time.Duration
	failed int
}

// probe makes one probe of t with client and records it.
func probe(client *http.Client, t *target) {
	t0 := time.Now()
	resp, err := client.Get(t.url)
	if err == nil {
		_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 10*1024))
		resp.Body.Close()
		if err == nil && (resp.StatusCode < 200 || resp.StatusCode >= 400) {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
	}
	d := time.Since(t0)
	t.lat = append(t.lat, d)
	t.spent += d
	if err != nil {
		t.failed++
		if t.failed <= 3 {
			fmt.Fprintln(os.Stderr, "kubelet_client:", t.url+":", err)
		}
	}
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: kubelet_client <url>[,<url>...] <seconds>")
		os.Exit(2)
	}
	secs, err := strconv.ParseFloat(os.Args[2], 64)
	if err != nil || secs <= 0 {
		fmt.Fprintln(os.Stderr, "kubelet_client: bad duration", os.Args[2])
		os.Exit(2)
	}
	var targets []*target
	for _, u := range strings.Split(os.Args[1], ",") {
		targets = append(targets, &target{url: u})
	}
	client := &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true},
		Timeout:   time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	start := time.Now()
	end := start.Add(time.Duration(secs * float64(time.Second)))
	for time.Now().Before(end) {
		for _, t := range targets {
			probe(client, t)
		}
	}
	elapsed := time.Since(start)
	bad := false
	for _, t := range targets {
		lat := t.lat
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		pct := func(p float64) int64 {
			if len(lat) == 0 {
				return 0
			}
			return lat[int(p*float64(len(lat)-1))].Microseconds()
		}
		over := t.spent
		if len(targets) == 1 {
			over = elapsed
		}
		rps := 0.0
		if over > 0 {
			rps = float64(len(lat)) / over.Seconds()
		}
		fmt.Printf("url=%s probes=%d failed=%d rps=%.1f p50_us=%d p99_us=%d max_us=%d\n", t.url, len(lat),
			t.failed, rps, pct(0.50), pct(0.99), pct(1.0))
		if t.failed > 0 || len(lat) == 0 {
			bad = true
		}
	}
	if bad {
		os.Exit(1)
	}
}
