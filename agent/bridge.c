/* bridge.c: the thread boundary (see bridge.h). */
#include "bridge.h"

#include <stdlib.h>
#include <string.h>

void bridge_init(ha_bridge *b)
{
    memset(b, 0, sizeof *b);
    atomic_init(&b->latest, NULL);
    atomic_init(&b->heartbeat_ns, uv_hrtime());
    uv_mutex_init(&b->lock);
}

void bridge_dispose(ha_bridge *b)
{
    snapshot_free(atomic_exchange(&b->latest, NULL));
    ha_msg *m = b->head;
    while (m) {
        ha_msg *next = m->next;
        free(m);
        m = next;
    }
    b->head = b->tail = NULL;
    uv_mutex_destroy(&b->lock);
}

void bridge_publish(ha_bridge *b, ha_snapshot *s, bool wake)
{
    snapshot_free(atomic_exchange_explicit(&b->latest, s, memory_order_acq_rel));
    if (wake && b->front_wakeup)
        uv_async_send(b->front_wakeup);
}

ha_snapshot *bridge_take(ha_bridge *b)
{
    return atomic_exchange_explicit(&b->latest, NULL, memory_order_acq_rel);
}

int bridge_send(ha_bridge *b, ha_msg_type type, int arg, const char *text, size_t len)
{
    return bridge_send_seq(b, type, arg, 0, text, len);
}

int bridge_send_seq(ha_bridge *b, ha_msg_type type, int arg, uint64_t seq, const char *text, size_t len)
{
    ha_msg *m = malloc(sizeof *m + len + 1);
    if (m == NULL)
        return -1;
    m->next = NULL;
    m->type = type;
    m->arg = arg;
    m->seq = seq;
    m->len = len;
    if (len)
        memcpy(m->text, text, len);
    m->text[len] = '\0';
    uv_mutex_lock(&b->lock);
    if (b->tail)
        b->tail->next = m;
    else
        b->head = m;
    b->tail = m;
    uv_mutex_unlock(&b->lock);
    uv_async_send(b->engine_wakeup);
    return 0;
}

ha_msg *bridge_receive(ha_bridge *b)
{
    uv_mutex_lock(&b->lock);
    ha_msg *m = b->head;
    b->head = b->tail = NULL;
    uv_mutex_unlock(&b->lock);
    return m;
}
