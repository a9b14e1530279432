-- Free space on the file system the agent runs in (its working directory):
-- WARN under 10 % free, DOWN under 5 %. A full disk breaks logs, temp files
-- and databases long before anything else notices. Readiness only: a restart
-- frees no space.
health.checks.disk {
  name = "disk",
  probes = { "readiness" },
  path = ".",
  min_free_percent = 5,
  warn_free_percent = 10,
  interval = "30s",
  timeout = "5s",
}
