/* config.h: the agent's configuration: defaults, the Lua config file,
 * environment overrides and the command line, validated into one struct. */
#ifndef HA_CONFIG_H
#define HA_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "cidr.h"
#include "common.h"

#define HA_MAX_LISTEN 16
#define HA_MAX_EXTRA_PATHS 8 /* paths one probe may add in the config */
#define HA_MAX_PATHS (3 + HA_MAX_EXTRA_PATHS) /* canonical + built-in aliases + extra */
#define HA_TOKEN_MIN 16 /* characters of a bearer token, at least */

typedef struct {
    char *paths[HA_MAX_PATHS]; /* owned; what the probe answers: paths[0] is the canonical
                                  one ("/readyz"), then the built-in aliases (unless
                                  aliases = false), then extra[], without repeats */
    int npaths;
    char *extra[HA_MAX_EXTRA_PATHS]; /* owned: probes.<probe>.paths of the config */
    int nextra;
    int success_status;        /* HTTP code for UP and WARN (default 200) */
    int failure_status;        /* HTTP code for DOWN and INIT (default 503) */
    int codes[HA_NSTATUS];     /* status_codes: per ha_status, 0: success/failure_status
                                  (liveness reads INIT as passing unless codes[HA_INIT] is set) */
} ha_probe_conf;

/* Who may see /metrics or the status page. */
typedef enum {
    HA_ACCESS_PUBLIC = 0,          /* everyone (the default) */
    HA_ACCESS_TRUSTED = 1,         /* trusted networks or the bearer token; 403 for the others */
    HA_ACCESS_OFF = 2,             /* not served: 404 */
} ha_access;

typedef struct {
    char *listen[HA_MAX_LISTEN];   /* owned "host:port" / "[v6]:port" */
    int nlisten;
    bool listen_set;               /* config_add_listen was called: the next call appends */
    char *grpc_listen[HA_MAX_LISTEN]; /* owned "host:port": gRPC health listeners; none: off */
    int ngrpc_listen;
    bool grpc_listen_set;          /* config_add_grpc_listen was called: the next call appends */
    char *scripts_dir;             /* owned; scripts served */
    char *lualib_dir;              /* owned; where require finds health.* */
    char *token;                   /* owned, may be NULL: bearer token */
    bool token_file_optional;      /* token_file / HEALTHAGENT_TOKEN_FILE may be absent: then no token */
    char *token_file_absent;       /* owned, may be NULL: the optional token file found absent */
    ha_cidr_list trusted;          /* clients that see details and reach /-/ */
    uint64_t memory_limit;         /* bytes of Lua heap per scripts generation */
    uint64_t check_memory_limit;   /* bytes one check may hold at once */
    uint64_t watchdog_ns;          /* engine stall that fails /livez */
    uint64_t max_wait_ns;          /* longest a probe waits for runs before answering (0: never) */
    uint64_t default_timeout_ns;   /* check timeout when the script gives none */
    uint64_t default_ttl_ns;       /* check ttl when the script gives none */
    uint64_t idle_timeout_ns;      /* HTTP keep-alive idle timeout */
    uint64_t request_timeout_ns;   /* HTTP/1 request header timeout */
    uint64_t send_timeout_ns;      /* a connection owing output that makes no progress this long is closed */
    int max_connections;           /* client connections at once; 0: derived from the descriptor limit */
    int max_connections_per_address; /* client connections at once from one address */
    uint64_t shutdown_delay_ns;    /* SIGTERM: keep answering (readyz 503) this long */
    uint64_t shutdown_timeout_ns;  /* then exit within this */
    uint64_t rescan_ns;            /* periodic content-hash rescan of scripts */
    int log_json;                  /* 1: one JSON object per log line */
    int log_level;                 /* LOG_* from log.h */
    bool aliases;                  /* serve the built-in alias paths (default true) */
    ha_probe_conf probes[HA_NPROBES]; /* by ha_probe_index */
    ha_access metrics;             /* GET /metrics */
    ha_access status_page;         /* GET / and /status */
    int history;                   /* past results kept per check, 0..HA_HIST_MAX (default 60) */
    char *config_file;             /* owned, may be NULL */
    char *token_file;              /* owned, may be NULL: where the token was read (scripts may not open it) */
} ha_config;

/* Fills cfg with the defaults. Never fails. */
void config_defaults(ha_config *cfg);
/* The install paths: the library's directory (lualib/) and the bundled
 * scripts' (scripts/) when none is configured. The first that exists of
 * <bindir>/../<name> (the build tree), <bindir>/../share/healthagent/<name>
 * (a relocated install) and the install prefix's, else the source tree's.
 * Returned strings are static, resolved once. */
const char *config_default_lualib(void);
const char *config_default_scripts(void);
/* Loads a Lua config file over cfg. Returns 0, or -1 with a one-line message
 * naming the file and the field in err (size errlen). */
int config_load_file(ha_config *cfg, const char *path, char *err, size_t errlen);
/* Applies HEALTHAGENT_LISTEN, HEALTHAGENT_SCRIPTS, HEALTHAGENT_TOKEN,
 * HEALTHAGENT_TOKEN_FILE, HEALTHAGENT_LOG_FORMAT, HEALTHAGENT_LOG_LEVEL.
 * Returns 0 or -1 with err. */
int config_apply_env(ha_config *cfg, char *err, size_t errlen);
/* What every command does first: loads the config file path (the --config
 * value; NULL: $HEALTHAGENT_CONFIG, or none), then applies the environment
 * over it. Returns 0 or -1 with a one-line message in err. */
int config_load(ha_config *cfg, const char *path, char *err, size_t errlen);
/* Reads a token file (trailing whitespace stripped). Returns 0 or -1. */
int config_read_token(ha_config *cfg, const char *path, char *err, size_t errlen);
/* Adds a listen address, replacing the defaults the first time. */
int config_add_listen(ha_config *cfg, const char *addr, char *err, size_t errlen);
/* Adds a gRPC listen address (--grpc-listen), replacing the config file's
 * the first time. */
int config_add_grpc_listen(ha_config *cfg, const char *addr, char *err, size_t errlen);
void config_free(ha_config *cfg);

/* The one table of reserved paths, consulted by the config (probe paths)
 * and by script loading (check names): the front's own routes ("/",
 * "/status", "/metrics", "/info", "/actuator/info", "/-/...", "/groupz/...")
 * and every path a probe of cfg answers. Returns NULL when path[0..len) is
 * free, else what owns it ("the admin endpoints", "probe readiness"). */
const char *config_path_owner(const ha_config *cfg, const char *path, size_t len);

/* Why p cannot be a group's extra path (health.group's path), written
 * into why: not a path the front can route to as given, a reserved path
 * (config_path_owner), or one below a probe path (it would shadow that
 * probe's "<path>/<check>"). Returns true when it cannot, false when p is
 * free. */
bool config_path_invalid(const ha_config *cfg, const char *p, char *why, size_t len);

/* True when name is reserved for the probes and may not name a check (or a
 * group): "liveness", "readiness", "startup", "health". */
bool config_name_reserved(const char *name);

#endif
