/*  status.c: what /api/v1/ws/status and /metrics show. */
#include <string.h>

#include "clock.h"
#include "gateway.h"

static const char *
s_state_name(uint8_t state)
{
    switch (state) {
    case GW_S_WAIT_CONFIRM:
        return "subscribing";
    case GW_S_SYNC_WANTED:
    case GW_S_SYNCING:
        return "syncing";
    case GW_S_LIVE:
        return "live";
    case GW_S_CLOSING:
        return "closing";
    default:
        return "http";
    }
}

static void
s_user_status(gateway_t *gw, const char *user_id, buf_t *out)
{
    gw_user_t *u = gw_user_find(gw, user_id, strlen(user_id));
    buf_append_str(out, ",\"user_id\":");
    event_json_string(out, user_id, strlen(user_id));
    buf_printf(out, ",\"connections\":%u,\"sessions\":[", u ? u->ring.ncursors : 0u);
    for (gw_cursor_t *c = u ? u->ring.first : NULL; c; c = c->next) {
        gw_session_t *s = gw_session_of(c);
        buf_printf(out, "%s{\"id\":%u,\"state\":\"%s\",\"last_seq\":%llu,\"connected_at\":%lld}",
                   c == u->ring.first ? "" : ",", s->id, s_state_name(s->state),
                   (unsigned long long)s->last_seq, (long long)s->connected_ms);
    }
    buf_append_char(out, ']');
    if (u && u->epoch_len) {
        buf_append_str(out, ",\"epoch\":");
        event_json_string(out, u->epoch, u->epoch_len);
    }
}

void
gw_status_render(gateway_t *gw, const char *user_id, buf_t *out)
{
    buf_append_str(out, "{\"gateway\":");
    event_json_string(out, gw->name, strlen(gw->name));
    if (user_id)
        s_user_status(gw, user_id, out);
    else {
        const gw_stats_t *st = &gw->stats;
        buf_printf(out,
                   ",\"role\":\"admin\",\"connections\":%u,\"users\":%zu,\"broker\":{\"up\":%s,"
                   "\"epoch\":",
                   gw->nsessions, strmap_size(gw->users), gw->broker_up ? "true" : "false");
        event_json_string(out, gw->broker_epoch, strlen(gw->broker_epoch));
        buf_printf(out,
                   "},\"uptime_s\":%lld,\"connections_total\":%llu,\"auth_failures\":%llu,"
                   "\"events_received\":%llu,\"frames_sent\":%llu,\"syncs\":%llu,\"gaps\":%llu,"
                   "\"slow_consumers\":%llu",
                   (long long)((clock_mono_ms() - gw->started_ms) / 1000),
                   (unsigned long long)st->connections_total, (unsigned long long)st->auth_failures,
                   (unsigned long long)st->events_received, (unsigned long long)st->frames_sent,
                   (unsigned long long)st->syncs, (unsigned long long)st->gaps,
                   (unsigned long long)st->slow_consumers);
    }
    buf_append_char(out, '}');
}

static void
s_metric(buf_t *out, const char *name, const char *type, const char *help, unsigned long long v)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, v);
}

void
gw_status_metrics(gateway_t *gw, buf_t *out)
{
    const gw_stats_t *st = &gw->stats;
    s_metric(out, "taskcast_gateway_connections", "gauge", "Open WebSocket connections.",
             gw->nsessions);
    s_metric(out, "taskcast_gateway_users", "gauge", "Users with at least one connection.",
             strmap_size(gw->users));
    s_metric(out, "taskcast_gateway_broker_up", "gauge",
             "1 while heartbeats arrive from the broker.", (unsigned long long)gw->broker_up);
    s_metric(out, "taskcast_gateway_connections_total", "counter",
             "WebSocket connections accepted.", st->connections_total);
    s_metric(out, "taskcast_gateway_auth_failures_total", "counter",
             "Connections and status requests refused for their token.", st->auth_failures);
    s_metric(out, "taskcast_gateway_events_received_total", "counter",
             "Events received from the broker.", st->events_received);
    s_metric(out, "taskcast_gateway_frames_sent_total", "counter",
             "Task frames written to browsers.", st->frames_sent);
    s_metric(out, "taskcast_gateway_sync_requests_total", "counter",
             "Snapshot and replay requests sent to the broker.", st->syncs);
    s_metric(out, "taskcast_gateway_sync_timeouts_total", "counter",
             "Connections closed because the broker did not answer.", st->sync_timeouts);
    s_metric(out, "taskcast_gateway_seq_gaps_total", "counter",
             "Gaps in a user's seq seen on the broker link (each repaired by a replay).", st->gaps);
    s_metric(out, "taskcast_gateway_slow_consumers_total", "counter",
             "Connections closed for not keeping up.", st->slow_consumers);
    s_metric(out, "taskcast_gateway_http_requests_total", "counter", "HTTP requests served.",
             st->http_requests);
    s_metric(out, "taskcast_gateway_not_found_total", "counter",
             "Requests for routes that do not exist.", st->not_found);
    s_metric(out, "taskcast_gateway_bad_broker_messages_total", "counter",
             "Messages from the broker that could not be read.", st->bad_broker_messages);
}
