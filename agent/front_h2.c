/* front_h2.c: RST_STREAM from the handler (see front_h2.h). The only file
 * that includes <h2o/http2_internal.h>; compat/khash.h lets it compile. */
#include "front_h2.h"

#include <h2o/http2.h>
#include <h2o/http2_internal.h>

bool front_h2_reset(h2o_req_t *req, int error)
{
    if (req->version < 0x200 || error >= 0)
        return false;
    h2o_http2_conn_t *conn = (h2o_http2_conn_t *)req->conn;
    h2o_http2_stream_t *stream = H2O_STRUCT_FROM_MEMBER(h2o_http2_stream_t, req, req);
    /* in the handler, a request stream is in SEND_HEADERS until it answers */
    if (conn->state >= H2O_HTTP2_CONN_STATE_IS_CLOSING || h2o_http2_stream_is_push(stream->stream_id) ||
        stream->state != H2O_HTTP2_STREAM_STATE_SEND_HEADERS)
        return false;
    /* what h2o does itself for a stream it refuses (connection.c's
     * stream_send_error, then h2o_http2_stream_reset) */
    h2o_http2__encode_rst_stream_frame(&conn->_write.buf, stream->stream_id, -error);
    h2o_http2_conn_request_write(conn);
    h2o_http2_stream_reset(conn, stream);
    return true;
}
