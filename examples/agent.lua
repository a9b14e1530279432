-- examples/agent.lua: every configuration key of healthagent, with its
-- default. Use with `healthagent --config examples/agent.lua`. The file is
-- Lua (no io/os libraries) and returns a table; an unknown key or a bad value
-- stops the agent at start-up with a one-line error naming the key.
-- Precedence: command line > environment > this file > defaults.
return {
  -- Addresses to listen on: "host:port" or "[v6]:port". kubelet probes the pod
  -- IP, hence 0.0.0.0. Env: HEALTHAGENT_LISTEN="0.0.0.0:8080,[::]:8080".
  listen = { "0.0.0.0:8080" },

  -- Directory of check scripts (*.lua; names beginning with '.' are ignored).
  -- Default: the bundled scripts/. Env: HEALTHAGENT_SCRIPTS.
  -- scripts = "/etc/healthagent/scripts",

  -- Where require finds the health.* Lua library. Default: the bundled lualib/.
  -- lualib = "/usr/share/healthagent/lualib",

  -- Bearer token: clients that send "Authorization: Bearer <token>" see
  -- outputs and details, and may use the admin endpoints (/-/*).
  -- Env: HEALTHAGENT_TOKEN, HEALTHAGENT_TOKEN_FILE; flag --token-file.
  -- token = "change-me",
  -- token_file = "/var/run/secrets/healthagent/token",

  -- Clients from these networks see outputs and details, and reach the admin
  -- endpoints when no token is configured.
  trusted_networks = { "127.0.0.0/8", "::1/128" },

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

  -- HTTP: HTTP/1 request-header timeout and HTTP/2 idle timeout.
  request_timeout = "5s",
  idle_timeout = "10s",

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

  -- Per probe: paths added to the canonical one and the aliases (at most 8;
  -- "/", "/status", "/metrics", "/info", "/-/..." and "/groupz/..." are
  -- reserved), and the HTTP codes for success (UP, WARN) and failure (DOWN, INIT).
  probes = {
    liveness = { paths = {}, success_status = 200, failure_status = 503 },
    readiness = { paths = {}, success_status = 200, failure_status = 503 },
    startup = { paths = {}, success_status = 200, failure_status = 503 },
    health = { paths = {}, success_status = 200, failure_status = 503 },
  },
}
