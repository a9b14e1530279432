-- Port checks with the tcp factory: UP when the connection (and, with
-- tls = true, the TLS handshake) succeeds; the socket is closed at once.
-- details: {address = "ip:port", connect_ms = n}. Every health.check field
-- (timeout, interval, failure_threshold, probes...) can be given too.

-- A plain port: is PostgreSQL accepting connections at all?
health.checks.tcp {
  name = "postgres-port",
  host = os.getenv("PGHOST") or "127.0.0.1", port = tonumber(os.getenv("PGPORT")) or 5432,
  timeout = "1s",
}

-- A TLS endpoint, verified against the system trust store and its name;
-- ca_file = "/etc/ssl/private-ca.pem" would trust a private CA instead.
health.checks.tcp {
  name = "api-tls",
  host = os.getenv("API_HOST") or "example.com", port = tonumber(os.getenv("API_PORT")) or 443, tls = true,
  timeout = "3s", interval = "30s", failure_threshold = 3, critical = false,
}
