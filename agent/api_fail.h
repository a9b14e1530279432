/* api_fail.h: the one vocabulary of the check library's I/O failures. Every
 * api_* module and the database clients return these messages as
 * `nil, message` for the same failures, so a script (and whoever reads a
 * probe's output) sees one wording per cause:
 *
 *   resolution   cannot resolve host 'db.internal'   (+ ": <reason>" unless not found)
 *   refused      connection refused
 *   timeout      timeout
 *   reset        connection reset
 *   closed       closed                              (the peer ended the connection)
 *   unreachable  host unreachable, network unreachable
 *   TLS          tls: <what>                         (certificate has expired, ...)
 */
#ifndef HA_API_FAIL_H
#define HA_API_FAIL_H

#include <stddef.h>

#define API_FAIL_TIMEOUT "timeout"
#define API_FAIL_REFUSED "connection refused"
#define API_FAIL_RESET "connection reset"
#define API_FAIL_CLOSED "closed"
#define API_FAIL_TLS "tls: " /* prefix of every TLS failure */

/* The message for a libuv error code (UV_E*; UV_EAI_* read as a failed
 * resolution of an unnamed host). Static, never NULL. */
const char *api_fail_uv(int code);

/* The message for an errno value (what libcurl and the database libraries
 * report): api_fail_uv of its libuv code. */
const char *api_fail_errno(int err);

/* Our message for a library's text that names a system error the way
 * strerror(3) does ("Connection refused", "Connection reset by peer",
 * "Connection timed out", "No route to host", "Network is unreachable") or
 * says the server closed the connection; NULL when text names none. */
const char *api_fail_text(const char *text);

/* Writes the message of a failed resolution of host with libuv code code
 * (UV_EAI_*) into buf: "cannot resolve host 'x'" when the name has no
 * address, "cannot resolve host 'x': <reason>" otherwise. */
void api_fail_resolve(char *buf, size_t len, const char *host, int code);

/* Writes the message of a failed certificate verification (an X509_V_ERR_*
 * result; name: the host name or address checked): "tls: certificate has
 * expired", "tls: certificate is not yet valid", "tls: certificate does not
 * match host name 'x'", or "tls: certificate verify failed: <reason>". */
void api_fail_tls_verify(char *buf, size_t len, long result, const char *name);

#endif
