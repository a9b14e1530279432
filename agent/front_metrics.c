/* front_metrics.c: the Prometheus exposition of the snapshot and of the
 * front's own state (see front_metrics.h). Every family has HELP and TYPE
 * lines, base units (seconds, bytes) and contiguous samples. */
#include "front_metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Label values of le, matching snapshot_bucket_us. */
static const char *const metrics_le[HA_NBUCKETS] = {
    "0.001", "0.0025", "0.01", "0.025", "0.1", "0.25", "1", "2.5", "10",
};

static const char *const metrics_result[HA_NRESULTS] = {"up", "warn", "down", "timeout", "error"};

/* The state set of healthagent_check_status, in display order. */
static const ha_status metrics_states[4] = {HA_UP, HA_WARN, HA_DOWN, HA_INIT};

static const char *const metrics_probe[HA_NPROBES] = {"liveness", "readiness", "startup", "health"};

/* --- formatting ------------------------------------------------------------ */

static void metrics_u64(ha_buf *b, uint64_t v)
{
    char t[HA_U64_DIGITS];
    buf_add(b, t, (size_t)(ha_put_u64(t, v) - t));
}

/* v / 10^digits with exactly that many decimals: seconds from ms or us. */
static void metrics_fixed(ha_buf *b, int64_t v, int digits)
{
    uint64_t scale = 1;
    for (int i = 0; i < digits; i++)
        scale *= 10;
    if (v < 0) {
        buf_addc(b, '-');
        v = -v;
    }
    metrics_u64(b, (uint64_t)v / scale);
    char t[8];
    uint64_t frac = (uint64_t)v % scale;
    for (int i = digits - 1; i >= 0; i--) {
        t[i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    buf_addc(b, '.');
    buf_add(b, t, (size_t)digits);
}

void front_metrics_label(ha_buf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0; /* bytes copied as they are, pending */
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        const char *esc = c == '\\' ? "\\\\" : c == '"' ? "\\\"" : c == '\n' ? "\\n" : NULL;
        size_t ul = c < 0x80 ? 1 : buf_utf8_len(p + i, n - i);
        if (esc == NULL && ul) {
            i += ul;
            run += ul;
            continue;
        }
        buf_add(b, p + i - run, run);
        run = 0;
        buf_adds(b, esc ? esc : "\xef\xbf\xbd");
        i++;
    }
    buf_add(b, p + n - run, run);
}

static void metrics_family(ha_buf *b, const char *name, const char *type, const char *help)
{
    buf_adds(b, "# HELP ");
    buf_adds(b, name);
    buf_addc(b, ' ');
    buf_adds(b, help);
    buf_adds(b, "\n# TYPE ");
    buf_adds(b, name);
    buf_addc(b, ' ');
    buf_adds(b, type);
    buf_addc(b, '\n');
}

/* --- the snapshot's families ---------------------------------------------- */

/* The check families are most of a scrape (24 lines per check), so they are
 * written with raw pointer stores into room reserved once per check: no
 * printf, no per-piece bounds check. */

#define METRICS_LINE_MAX 96 /* bytes of a line beside the check's label value */

static const ha_hist metrics_no_hist; /* a check without any result */

static const ha_hist *metrics_hist(const ha_snap_check *c) { return c->hist ? c->hist : &metrics_no_hist; }

/* A check's label value, escaped once per render. */
typedef struct {
    const char *p;
    size_t len;
} metrics_label;

static char *metrics_put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) metrics_put((p), (lit), sizeof(lit) - 1)


/* v / 10^digits with exactly that many decimals (v >= 0). */
static char *metrics_put_fixed(char *p, uint64_t v, int digits)
{
    static const uint64_t scale[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    p = ha_put_u64(p, v / scale[digits]);
    *p++ = '.';
    uint64_t frac = v % scale[digits];
    for (int i = digits - 1; i >= 0; i--) {
        p[i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    return p + digits;
}

/* Starts a line `<metric>{check="<label>"`; the caller reserved the room. */
static char *metrics_open(char *p, const char *metric, size_t mlen, const metrics_label *l)
{
    p = metrics_put(p, metric, mlen);
    p = PUT_LIT(p, "{check=\"");
    p = metrics_put(p, l->p, l->len);
    *p++ = '"';
    return p;
}

/* Reserves the room of one check's lines of one family; returns where to write. */
static char *metrics_begin(ha_buf *b, const metrics_label *l, int lines)
{
    buf_reserve(b, (size_t)lines * (METRICS_LINE_MAX + l->len));
    return b->data + b->len;
}

static void metrics_end(ha_buf *b, char *p)
{
    b->len = (size_t)(p - b->data);
    b->data[b->len] = '\0';
}

#define M_STATUS "healthagent_check_status"
#define M_RUNS "healthagent_check_runs_total"
#define M_BUCKET "healthagent_check_duration_seconds_bucket"
#define M_SUM "healthagent_check_duration_seconds_sum"
#define M_COUNT "healthagent_check_duration_seconds_count"
#define M_LAST "healthagent_check_last_run_timestamp_seconds"
#define M_TRANS "healthagent_check_transitions_total"
#define M_STALE "healthagent_check_stale"
#define M_LEN(m) (sizeof(m) - 1)

/* The check families, in the order a scrape shows them. */
enum { FAM_STATUS, FAM_RUNS, FAM_DURATION, FAM_LAST, FAM_STALE, FAM_TRANS, M_NFAM };

/* Lines one check has in each family. */
static const int metrics_fam_lines[M_NFAM] = {4, HA_NRESULTS, HA_NBUCKETS + 3, 1, 1, 1};

/* Appends the HELP and TYPE lines of check family fam. */
static void metrics_fam_header(ha_buf *b, int fam)
{
    switch (fam) {
    case FAM_STATUS:
        metrics_family(b, M_STATUS, "gauge", "Status of the check after thresholds: 1 for the current state, 0 for the others.");
        break;
    case FAM_RUNS:
        metrics_family(b, M_RUNS, "counter", "Completed runs of the check by result.");
        break;
    case FAM_DURATION:
        metrics_family(b, "healthagent_check_duration_seconds", "histogram", "Duration of the check's runs.");
        break;
    case FAM_LAST:
        metrics_family(b, M_LAST, "gauge", "Unix time of the check's last result, 0 before the first.");
        break;
    case FAM_STALE:
        metrics_family(b, M_STALE, "gauge",
                       "1 while the check's last result is older than its ttl (served marked stale, or past max_age), else 0.");
        break;
    default:
        metrics_family(b, M_TRANS, "counter", "Status changes of the check, the first decision out of INIT included.");
        break;
    }
}

/* Appends check i's lines of family fam (its label value l). */
static void metrics_check_lines(ha_buf *b, int fam, const ha_snapshot *s, size_t i, const unsigned char *age,
                                const metrics_label *l)
{
    static const char *const state_sfx[4] = {",status=\"UP\"} ", ",status=\"WARN\"} ", ",status=\"DOWN\"} ",
                                             ",status=\"INIT\"} "};
    const ha_snap_check *c = &s->checks[i];
    const ha_hist *h = metrics_hist(c);
    char *p = metrics_begin(b, l, metrics_fam_lines[fam]);
    switch (fam) {
    case FAM_STATUS:
        for (int k = 0; k < 4; k++) {
            p = metrics_open(p, M_STATUS, M_LEN(M_STATUS), l);
            p = metrics_put(p, state_sfx[k], strlen(state_sfx[k]));
            *p++ = c->status == metrics_states[k] ? '1' : '0';
            *p++ = '\n';
        }
        break;
    case FAM_RUNS:
        for (int r = 0; r < HA_NRESULTS; r++) {
            p = metrics_open(p, M_RUNS, M_LEN(M_RUNS), l);
            p = PUT_LIT(p, ",result=\"");
            p = metrics_put(p, metrics_result[r], strlen(metrics_result[r]));
            p = PUT_LIT(p, "\"} ");
            p = ha_put_u64(p, h->runs_by[r]);
            *p++ = '\n';
        }
        break;
    case FAM_DURATION: {
        uint64_t cum = 0, total = 0;
        for (int r = 0; r < HA_NRESULTS; r++)
            total += h->runs_by[r];
        for (int k = 0; k < HA_NBUCKETS; k++) {
            cum += h->buckets[k];
            p = metrics_open(p, M_BUCKET, M_LEN(M_BUCKET), l);
            p = PUT_LIT(p, ",le=\"");
            p = metrics_put(p, metrics_le[k], strlen(metrics_le[k]));
            p = PUT_LIT(p, "\"} ");
            p = ha_put_u64(p, cum);
            *p++ = '\n';
        }
        p = metrics_open(p, M_BUCKET, M_LEN(M_BUCKET), l);
        p = PUT_LIT(p, ",le=\"+Inf\"} ");
        p = ha_put_u64(p, total);
        *p++ = '\n';
        p = metrics_open(p, M_SUM, M_LEN(M_SUM), l);
        p = PUT_LIT(p, "} ");
        p = metrics_put_fixed(p, h->duration_sum_us, 6);
        *p++ = '\n';
        p = metrics_open(p, M_COUNT, M_LEN(M_COUNT), l);
        p = PUT_LIT(p, "} ");
        p = ha_put_u64(p, total);
        *p++ = '\n';
        break;
    }
    case FAM_LAST:
        p = metrics_open(p, M_LAST, M_LEN(M_LAST), l);
        p = PUT_LIT(p, "} ");
        p = metrics_put_fixed(p, c->time_ms > 0 ? (uint64_t)c->time_ms : 0, 3);
        *p++ = '\n';
        break;
    case FAM_STALE:
        p = metrics_open(p, M_STALE, M_LEN(M_STALE), l);
        p = PUT_LIT(p, "} ");
        *p++ = age && age[i] != HA_AGE_FRESH ? '1' : '0';
        *p++ = '\n';
        break;
    default:
        p = metrics_open(p, M_TRANS, M_LEN(M_TRANS), l);
        p = PUT_LIT(p, "} ");
        p = ha_put_u64(p, h->transitions);
        *p++ = '\n';
        break;
    }
    metrics_end(b, p);
}

static void metrics_checks(const ha_snapshot *s, const unsigned char *age, const metrics_label *lab, ha_buf *b)
{
    for (int fam = 0; fam < M_NFAM; fam++) {
        metrics_fam_header(b, fam);
        for (size_t i = 0; i < s->n; i++)
            metrics_check_lines(b, fam, s, i, age, &lab[i]);
    }
}

/* Escapes every check name once: most need nothing and point at the name,
 * or, with own, at a copy in scratch (labels that outlive the snapshot). */
static metrics_label *metrics_labels(const ha_snapshot *s, ha_buf *scratch, bool own)
{
    metrics_label *lab = malloc((s->n ? s->n : 1) * sizeof *lab);
    if (lab == NULL)
        abort(); /* like ha_buf: small and bounded by the snapshot */
    size_t *off = malloc((s->n ? s->n : 1) * sizeof *off);
    if (off == NULL)
        abort();
    for (size_t i = 0; i < s->n; i++) {
        const char *nm = s->checks[i].name;
        size_t n = strlen(nm), k = 0;
        while (k < n && nm[k] != '\\' && nm[k] != '"' && nm[k] != '\n' && (unsigned char)nm[k] < 0x80)
            k++;
        lab[i].p = nm;
        lab[i].len = n;
        off[i] = SIZE_MAX;
        if (k < n) { /* rare: escape into the scratch buffer, pointed at below */
            off[i] = scratch->len;
            front_metrics_label(scratch, nm, n);
            lab[i].len = scratch->len - off[i];
        } else if (own) {
            off[i] = scratch->len;
            buf_add(scratch, nm, n);
        }
    }
    for (size_t i = 0; i < s->n; i++)
        if (off[i] != SIZE_MAX)
            lab[i].p = scratch->data + off[i];
    free(off);
    return lab;
}

/* healthagent_group_status and healthagent_group_members, one series per
 * group (health.group; a probe's own group is the probe's series), when
 * there is one: the status as /groupz/<name> answers it now. */
static void metrics_groups(const ha_snapshot *s, const unsigned char *age, ha_buf *b)
{
    size_t n = 0;
    for (size_t i = 0; i < s->ngroups; i++)
        n += s->groups[i].probe < 0;
    if (n == 0)
        return;
    metrics_family(b, "healthagent_group_status", "gauge",
                   "1 when the group passes (UP or WARN: its success code), 0 when it fails, by health.group name.");
    for (size_t i = 0; i < s->ngroups; i++) {
        const ha_snap_group *g = &s->groups[i];
        if (g->probe >= 0)
            continue;
        ha_render_req rr = {0};
        rr.probe = HA_PI_HEALTH;
        rr.group = (ha_str){g->name, strlen(g->name)};
        rr.age = age;
        buf_adds(b, "healthagent_group_status{group=\"");
        front_metrics_label(b, g->name, strlen(g->name));
        buf_adds(b, front_render_status(s, &rr) <= HA_WARN ? "\"} 1\n" : "\"} 0\n");
    }
    metrics_family(b, "healthagent_group_members", "gauge", "Checks in the group.");
    for (size_t i = 0; i < s->ngroups; i++) {
        const ha_snap_group *g = &s->groups[i];
        if (g->probe >= 0)
            continue;
        buf_adds(b, "healthagent_group_members{group=\"");
        front_metrics_label(b, g->name, strlen(g->name));
        buf_adds(b, "\"} ");
        metrics_u64(b, g->nmembers);
        buf_addc(b, '\n');
    }
}

/* The families after the checks': the groups', the scripts', build_info. */
static void metrics_tail(const ha_snapshot *s, const unsigned char *age, const char *commit, ha_buf *b)
{
    if (s)
        metrics_groups(s, age, b);
    metrics_family(b, "healthagent_scripts_reloads_total", "counter", "Reloads of the scripts directory by result.");
    buf_adds(b, "healthagent_scripts_reloads_total{result=\"success\"} ");
    metrics_u64(b, s ? s->reloads : 0);
    buf_adds(b, "\nhealthagent_scripts_reloads_total{result=\"failure\"} ");
    metrics_u64(b, s ? s->reload_failures : 0);
    buf_addc(b, '\n');
    metrics_family(b, "healthagent_scripts_last_reload_successful", "gauge",
                   "1 when the last load of the scripts succeeded, 0 when it failed (the previous scripts serve).");
    buf_adds(b, s && s->load_error ? "healthagent_scripts_last_reload_successful 0\n"
                                   : "healthagent_scripts_last_reload_successful 1\n");
    metrics_family(b, "healthagent_scripts_last_reload_timestamp_seconds", "gauge",
                   "Unix time of the last load of the scripts, successful or not.");
    buf_adds(b, "healthagent_scripts_last_reload_timestamp_seconds ");
    metrics_fixed(b, s ? (s->load_error ? s->load_error_ms : s->reload_ms) : 0, 3);
    buf_addc(b, '\n');
    metrics_family(b, "healthagent_build_info", "gauge", "Build of the agent: always 1.");
    buf_adds(b, "healthagent_build_info{version=\"");
    front_metrics_label(b, HA_VERSION, strlen(HA_VERSION));
    buf_adds(b, "\",commit=\"");
    commit = commit ? commit : "unknown";
    front_metrics_label(b, commit, strlen(commit));
    buf_adds(b, "\"} 1\n");
}

void front_metrics_snapshot(const ha_snapshot *s, const unsigned char *age, const char *commit, ha_buf *b)
{
    if (s) {
        ha_buf scratch = HA_BUF_INIT;
        metrics_label *lab = metrics_labels(s, &scratch, false);
        metrics_checks(s, age, lab, b);
        free(lab);
        buf_free(&scratch);
    }
    metrics_tail(s, age, commit, b);
}

/* --- rendering again only what changed ------------------------------------- */

/* What a check's lines show: equal keys, equal lines (within a generation,
 * index i is the same check, its label the same). hist changes with every
 * result (a new block), runs with it; status and time_ms move without a
 * run when a dependency blocks the check. */
typedef struct {
    uint64_t name_hash, runs;
    int64_t time_ms;
    const ha_hist *hist;
    uint32_t status, age;
} metrics_key;

struct ha_metrics_memo {
    uint64_t generation;
    size_t n;
    char *body;       /* the block last rendered (one reference held), NULL: none */
    size_t len, cap;  /* its bytes, and the room it has */
    char *spare;      /* the body before (one reference held), written over by the next
                         render when nothing else holds it: no fresh pages per render */
    size_t spare_cap;
    metrics_key *key; /* n: what its check lines show */
    uint32_t *off;    /* M_NFAM * (n + 1): where check i's lines of family f start in body, at
                         f * (n + 1) + i; [f * (n + 1) + n] is where the family's lines end */
    metrics_label *lab; /* n: the label values, for this generation and count */
    ha_buf labs;      /* the escaped ones among them */
};

static metrics_key metrics_key_of(const ha_snapshot *s, size_t i, const unsigned char *age)
{
    const ha_snap_check *c = &s->checks[i];
    metrics_key k;
    memset(&k, 0, sizeof k); /* no padding bytes left to compare */
    k.name_hash = c->name_hash ? c->name_hash : snapshot_name_hash(c->name);
    k.runs = c->runs;
    k.time_ms = c->time_ms;
    k.hist = c->hist;
    k.status = (uint32_t)c->status;
    k.age = age ? age[i] : HA_AGE_FRESH;
    return k;
}

void front_metrics_memo_free(ha_metrics_memo *m, const ha_metrics_mem *mem)
{
    if (m == NULL)
        return;
    if (m->body)
        mem->release(m->body);
    if (m->spare)
        mem->release(m->spare);
    free(m->key);
    free(m->off);
    free(m->lab);
    buf_free(&m->labs);
    free(m);
}

/* Writes the changed pieces (and the tail) over the memo's body in place,
 * when each is as long as the one it replaces: most results change a
 * counter without adding a digit. Returns false, having written nothing,
 * when one is not; the caller knows nothing else holds the body. */
static bool metrics_patch(ha_metrics_memo *m, const ha_snapshot *s, const bool *changed, const uint32_t *sstart,
                          const uint32_t *slen, const ha_buf *scratch, size_t tail)
{
    size_t n = m->n, nf = n + 1;
    for (int fam = 0; s && fam < M_NFAM; fam++)
        for (size_t i = 0; i < n; i++)
            if (changed[i] && slen[fam * nf + i] != m->off[fam * nf + i + 1] - m->off[fam * nf + i])
                return false;
    for (int fam = 0; s && fam < M_NFAM; fam++)
        for (size_t i = 0; i < n; i++)
            if (changed[i])
                memcpy(m->body + m->off[fam * nf + i], scratch->data + sstart[fam * nf + i], slen[fam * nf + i]);
    size_t at = s ? m->off[(M_NFAM - 1) * nf + n] : 0; /* the tail follows the last family */
    memcpy(m->body + at, scratch->data + tail, scratch->len - tail);
    return true;
}

char *front_metrics_render(ha_metrics_memo **mp, const ha_metrics_mem *mem, const ha_snapshot *s,
                           const unsigned char *age, const char *commit, size_t *len)
{
    size_t n = s ? s->n : 0, nf = n + 1;
    ha_metrics_memo *m = *mp ? *mp : (*mp = calloc(1, sizeof **mp));
    metrics_key *key = malloc(nf * sizeof *key);
    uint32_t *off = malloc(M_NFAM * nf * sizeof *off), *sstart = malloc(M_NFAM * nf * sizeof *sstart);
    uint32_t *slen = malloc(M_NFAM * nf * sizeof *slen);
    bool *changed = malloc(nf);
    ha_buf scratch = HA_BUF_INIT, labs = HA_BUF_INIT;
    char *block = NULL;
    if (m == NULL || key == NULL || off == NULL || sstart == NULL || slen == NULL || changed == NULL)
        goto out;
    bool reuse = s && m->body && m->generation == s->generation && m->n == n;
    for (size_t i = 0; i < n; i++) {
        key[i] = metrics_key_of(s, i, age);
        changed[i] = !reuse || memcmp(&key[i], &m->key[i], sizeof key[i]) != 0;
    }
    /* pass 1, into scratch: each family's header, its changed checks'
     * lines (piece i of family f at sstart[f * nf + i], slen long), then
     * the tail */
    /* the labels of the last render serve while the checks are the same
     * (reuse); a changed name is caught by its key and escaped anew */
    metrics_label *lab = reuse ? m->lab : s ? metrics_labels(s, &labs, true) : NULL;
    for (size_t i = 0; reuse && i < n; i++)
        if (changed[i] && key[i].name_hash != m->key[i].name_hash) {
            lab = metrics_labels(s, &labs, true);
            break;
        }
    size_t hdr[M_NFAM], hlen[M_NFAM], total = 0;
    for (int fam = 0; s && fam < M_NFAM; fam++) {
        hdr[fam] = scratch.len;
        metrics_fam_header(&scratch, fam);
        hlen[fam] = scratch.len - hdr[fam];
        total += hlen[fam];
        const uint32_t *o = reuse ? &m->off[fam * nf] : NULL;
        for (size_t i = 0; i < n; i++) {
            if (!changed[i]) {
                total += o[i + 1] - o[i];
                continue;
            }
            size_t at = scratch.len;
            metrics_check_lines(&scratch, fam, s, i, age, &lab[i]);
            sstart[fam * nf + i] = (uint32_t)at;
            slen[fam * nf + i] = (uint32_t)(scratch.len - at);
            total += scratch.len - at;
        }
    }
    if (lab != m->lab) { /* fresh labels: the memo keeps them, pointing into its own labs */
        free(m->lab);
        buf_free(&m->labs);
        m->lab = lab;
        m->labs = labs;
        labs = (ha_buf)HA_BUF_INIT;
    }
    size_t tail = scratch.len;
    metrics_tail(s, age, commit, &scratch);
    total += scratch.len - tail;
    if (scratch.len > UINT32_MAX || total >= UINT32_MAX)
        goto out;
    if (reuse && total == m->len && mem->sole(m->body) && metrics_patch(m, s, changed, sstart, slen, &scratch, tail)) {
        block = m->body;
        mem->retain(block); /* the caller's */
        *len = m->len;
        free(m->key);
        m->key = key;
        key = NULL;
        goto out;
    }
    size_t cap = total + 1;
    if (m->spare && mem->sole(m->spare) && m->spare_cap >= cap) {
        block = m->spare; /* the memo's reference to it is the caller's now */
        cap = m->spare_cap;
        m->spare = NULL;
    } else {
        if (m->spare)
            mem->release(m->spare);
        m->spare = NULL;
        cap += cap / 8; /* room for the counters to grow */
        if ((block = mem->alloc(cap)) == NULL)
            goto out;
    }
    /* pass 2, into the block: a run of unchanged checks is one copy from
     * the last body */
    char *q = block;
    for (int fam = 0; s && fam < M_NFAM; fam++) {
        const uint32_t *o = reuse ? &m->off[fam * nf] : NULL;
        uint32_t *no = &off[fam * nf];
        memcpy(q, scratch.data + hdr[fam], hlen[fam]);
        q += hlen[fam];
        for (size_t i = 0; i < n;) {
            if (changed[i]) {
                no[i] = (uint32_t)(q - block);
                memcpy(q, scratch.data + sstart[fam * nf + i], slen[fam * nf + i]);
                q += slen[fam * nf + i];
                i++;
                continue;
            }
            size_t j = i;
            while (j < n && !changed[j])
                j++;
            for (size_t k = i; k < j; k++)
                no[k] = (uint32_t)(q - block) + (o[k] - o[i]);
            memcpy(q, m->body + o[i], o[j] - o[i]);
            q += o[j] - o[i];
            i = j;
        }
        no[n] = (uint32_t)(q - block);
    }
    memcpy(q, scratch.data + tail, scratch.len - tail);
    q += scratch.len - tail;
    *q = '\0';
    *len = (size_t)(q - block);
    /* the memo now follows this body */
    mem->retain(block);
    m->spare = m->body;
    m->spare_cap = m->cap;
    m->body = block;
    m->len = *len;
    m->cap = cap;
    m->generation = s ? s->generation : 0;
    m->n = n;
    free(m->key);
    free(m->off);
    m->key = key;
    m->off = off;
    key = NULL;
    off = NULL;
out:
    free(key);
    free(off);
    free(sstart);
    free(slen);
    free(changed);
    buf_free(&scratch);
    buf_free(&labs);
    return block;
}

/* --- the scrape-time families ---------------------------------------------- */

void front_metrics_count(ha_probe_counts *pc, int pi, int code)
{
    int k = 0;
    while (k < HA_METRICS_CODES - 1 && pc->by[pi][k].code != 0 && pc->by[pi][k].code != code)
        k++;
    if (pc->by[pi][k].code == 0)
        pc->by[pi][k].code = code;
    pc->by[pi][k].n++;
}

/* Fills rss and vsize in bytes from /proc/self/statm; 0 when unreadable. */
static void metrics_memory(uint64_t *rss, uint64_t *vsize)
{
    unsigned long long pages = 0, res = 0;
    *rss = *vsize = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (f == NULL)
        return;
    if (fscanf(f, "%llu %llu", &pages, &res) == 2) {
        uint64_t ps = (uint64_t)sysconf(_SC_PAGESIZE);
        *rss = res * ps;
        *vsize = pages * ps;
    }
    fclose(f);
}

/* Open descriptors: entries of /proc/self/fd but the one reading it. */
static uint64_t metrics_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    uint64_t n = 0;
    if (d == NULL)
        return 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n ? n - 1 : 0;
}

void front_metrics_live(const ha_metrics_live *m, ha_buf *b)
{
    metrics_family(b, "healthagent_probe_status", "gauge", "1 when the probe passes (success code), 0 when it fails.");
    for (int pi = 0; pi < HA_NPROBES; pi++) {
        buf_printf(b, "healthagent_probe_status{probe=\"%s\"} %d\n", metrics_probe[pi], m->probe_ok[pi] ? 1 : 0);
    }
    metrics_family(b, "healthagent_probe_requests_total", "counter", "Probe requests answered, by probe and HTTP code.");
    for (int pi = 0; pi < HA_NPROBES; pi++)
        for (int k = 0; k < HA_METRICS_CODES && m->requests->by[pi][k].code; k++) {
            buf_printf(b, "healthagent_probe_requests_total{probe=\"%s\",code=\"%d\"} ", metrics_probe[pi],
                       m->requests->by[pi][k].code);
            metrics_u64(b, m->requests->by[pi][k].n);
            buf_addc(b, '\n');
        }
    metrics_family(b, "healthagent_engine_lag_seconds", "gauge",
                   "Time since the engine's event loop last turned; an idle loop turns when the front looks "
                   "(at most a second apart), past the watchdog it is stalled.");
    buf_adds(b, "healthagent_engine_lag_seconds ");
    metrics_fixed(b, (int64_t)(m->engine_lag_ns / 1000), 6);
    buf_addc(b, '\n');
    metrics_family(b, "healthagent_engine_stalled", "gauge",
                   "1 while the watchdog finds the engine stalled (liveness fails), else 0.");
    buf_adds(b, m->stalled ? "healthagent_engine_stalled 1\n" : "healthagent_engine_stalled 0\n");
    metrics_family(b, "healthagent_engine_snapshots_total", "counter",
                   "Snapshots of every check's state the engine has handed to the front; a status change goes "
                   "at once, routine results of many checks at a rate bounded by their number.");
    buf_adds(b, "healthagent_engine_snapshots_total ");
    metrics_u64(b, m->snapshots);
    buf_addc(b, '\n');

    uint64_t rss, vsize;
    metrics_memory(&rss, &vsize);
    struct rusage ru;
    double cpu = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
              ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
    struct rlimit rl;
    uint64_t maxfds = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (uint64_t)rl.rlim_cur : 0;
    metrics_family(b, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
    buf_printf(b, "process_cpu_seconds_total %.6f\n", cpu);
    metrics_family(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    buf_adds(b, "process_resident_memory_bytes ");
    metrics_u64(b, rss);
    buf_addc(b, '\n');
    metrics_family(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    buf_adds(b, "process_virtual_memory_bytes ");
    metrics_u64(b, vsize);
    buf_addc(b, '\n');
    metrics_family(b, "process_open_fds", "gauge", "Number of open file descriptors.");
    buf_adds(b, "process_open_fds ");
    metrics_u64(b, metrics_open_fds());
    buf_addc(b, '\n');
    metrics_family(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
    buf_adds(b, "process_max_fds ");
    metrics_u64(b, maxfds);
    buf_addc(b, '\n');
    metrics_family(b, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
    buf_adds(b, "process_start_time_seconds ");
    metrics_fixed(b, m->start_ms, 3);
    buf_addc(b, '\n');
}
