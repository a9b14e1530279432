-- examples/agent.lua: every configuration key of healthagent, with its
-- default. Use with `healthagent --config examples/agent.lua`. The file is
-- Lua (no io/os libraries) and returns a table; an unknown key or a bad value
-- stops the agent at start-up with a one-line error naming the key.
-- Precedence: command line > environment > this file > defaults.
return {
  -- Addresses to listen on: "host:port" or "[v6]:port". kubelet probes the pod
  -- IP, hence 0.0.0.0. Env: HEALTHAGENT_LISTEN="0.0.0.0:8080,[::]:8080".
  listen = { "0.0.0.0:8080" },

  -- gRPC health service (grpc.health.v1: Check, Watch, List) on its own
  -- cleartext HTTP/2 listeners; none: off. docs/grpc-server.md. CLI:
  -- --grpc-listen (repeatable).
  grpc_listen = {},

  -- Directory of check scripts (*.lua; names beginning with '.' are ignored).
  -- Default: the bundled scripts/. Env: HEALTHAGENT_SCRIPTS.
  -- scripts = "/etc/healthagent/scripts",

  -- Where require finds the health.* Lua library. Default: the bundled lualib/.
  -- lualib = "/usr/share/healthagent/lualib",

  -- Bearer token (at least 16 characters): every admin endpoint (/-/*) needs
  -- "Authorization: Bearer <token>", from every address, loopback included;
  -- without a token the admin endpoints answer 403. Token holders also see
  -- outputs and details. Env: HEALTHAGENT_TOKEN, HEALTHAGENT_TOKEN_FILE;
  -- flag --token-file.
  -- token = "change-me-to-16-characters-or-more",
  -- token_file = "/var/run/secrets/healthagent/token",
  -- A token file that may be absent (an optional Kubernetes Secret): then the
  -- agent runs without a token, with a warning, instead of exiting 2.
  token_file_optional = false,

  -- Clients from these networks see outputs and details on the probes
  -- (nothing else). A start-up warning names any network wider than these:
  -- in a mesh, all of 127.0.0.0/8 is every peer (Istio delivers from 127.0.0.6).
  trusted_networks = { "127.0.0.1/32", "::1/128" },

  -- Lua heap cap of one scripts generation, and what one run may hold at once.
  memory_limit = "64MiB",
  check_memory_limit = "16MiB",

  -- Engine stalled longer than this (stuck inside a C function): /livez fails.
  watchdog = "5s",

  -- The longest a probe waits for the runs it asked for (stale checks, first
  -- runs) before it answers from what is known: a stale result marked
  -- "stale", INIT, or DOWN "no result for <max_age>". 0 to 60s; 0 never
  -- waits. Keep it below the probes' timeoutSeconds (kubelet: 1s).
  max_wait = "500ms",

  -- Defaults for checks that do not set them.
  default_timeout = "1s",
  default_ttl = "5s",

  -- HTTP: HTTP/1 request-header timeout (at least 100ms) and HTTP/2 idle
  -- timeout (at least 100ms).
  request_timeout = "5s",
  idle_timeout = "10s",

  -- A connection that owes output (a request in flight, bytes queued) and
  -- makes no progress this long is closed (at least 1s).
  send_timeout = "30s",
  -- Client connections at once: 0 takes 1024, lowered to keep a quarter of
  -- the descriptor limit (at least 64) for the engine's sockets and files.
  max_connections = 0,
  -- From one client address (at most half of max_connections). In a mesh
  -- every peer may arrive from one address (Istio: 127.0.0.6) while kubelet
  -- comes from another: this cap is then shared by the whole mesh.
  max_connections_per_address = 256,

  -- SIGTERM: /readyz fails at once and probes are answered this long, then
  -- the listeners close and the agent exits within shutdown_timeout.
  shutdown_delay = "5s",
  shutdown_timeout = "10s",

  -- Periodic rescan of the scripts directory by content hash (catches what
  -- file-system events miss).
  rescan_interval = "30s",

  -- Logs on stderr: "text" or "json" (one object per line); debug|info|warn|error.
  log_format = "text",
  log_level = "info",

  -- Built-in alias paths, served next to the canonical /livez, /readyz,
  -- /startupz and /healthz: /health/live and /health/ready (dubbo-go),
  -- /actuator/health, /actuator/health/liveness and /actuator/health/readiness
  -- (Layotto, Spring Boot Actuator; /actuator/info is /info). false: only the
  -- canonical paths and the ones below.
  aliases = true,

  -- Who gets GET /metrics (Prometheus) and the status page (GET / and /status):
  -- "public" (everyone), "trusted" (trusted_networks or the token; 403 for the
  -- others) or "off" (404). Outputs never appear in metrics; on the page they
  -- go to trusted and token clients only. docs/observability.md.
  metrics = "public",
  status_page = "public",

  -- Past results kept per check for the page and /-/status (0 to 1000): 64
  -- bytes each, 3,984 bytes per check at 60 with the counters.
  history = 60,

  -- Per probe: paths added to the canonical one and the aliases (at most 8;
  -- "/", "/status", "/metrics", "/info", "/-/..." and "/groupz/..." are
  -- reserved), and the HTTP codes for success (UP, WARN) and failure (DOWN, INIT);
  -- status_codes = { UP = 200, WARN = 200, DOWN = 503, INIT = 503 } replaces the
  -- codes of the statuses it names (liveness answers success for INIT unless
  -- status_codes.INIT is given). A script's health.group named after the probe
  -- may set them too (README "Groups, aggregation and status codes").
  probes = {
    liveness = { paths = {}, success_status = 200, failure_status = 503, status_codes = {} },
    readiness = { paths = {}, success_status = 200, failure_status = 503 },
    startup = { paths = {}, success_status = 200, failure_status = 503 },
    health = { paths = {}, success_status = 200, failure_status = 503 },
  },
}
