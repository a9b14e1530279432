/* api_fail.c: the check library's failure messages (see api_fail.h). */
#include "api_fail.h"

#include <stdio.h>
#include <string.h>

#include <openssl/x509_vfy.h>
#include <uv.h>

const char *api_fail_uv(int code)
{
    switch (code) {
    case UV_ECONNREFUSED: return API_FAIL_REFUSED;
    case UV_ETIMEDOUT: return API_FAIL_TIMEOUT;
    case UV_ECONNRESET: return API_FAIL_RESET;
    case UV_EPIPE:
    case UV_EOF:
    case UV_ECANCELED: return API_FAIL_CLOSED;
    case UV_ENETUNREACH: return "network unreachable";
    case UV_EHOSTUNREACH: return "host unreachable";
    case UV_EADDRNOTAVAIL: return "address not available";
    case UV_ENOMEM: return "not enough memory";
    case UV_EAI_NONAME:
    case UV_EAI_NODATA:
    case UV_EAI_ADDRFAMILY:
    case UV_EAI_AGAIN:
    case UV_EAI_FAIL: return "cannot resolve host";
    case UV_EAI_CANCELED: return API_FAIL_CLOSED;
    default: return uv_strerror(code);
    }
}

const char *api_fail_errno(int err)
{
    return api_fail_uv(uv_translate_sys_error(err));
}

void api_fail_resolve(char *buf, size_t len, const char *host, int code)
{
    if (code == UV_EAI_NONAME || code == UV_EAI_NODATA || code == UV_EAI_ADDRFAMILY || code == 0)
        snprintf(buf, len, "cannot resolve host '%s'", host);
    else
        snprintf(buf, len, "cannot resolve host '%s': %s", host, uv_strerror(code));
}

const char *api_fail_text(const char *text)
{
    static const struct {
        const char *says, *msg;
    } known[] = {
        {"Connection refused", API_FAIL_REFUSED},
        {"Connection reset by peer", API_FAIL_RESET},
        {"Connection timed out", API_FAIL_TIMEOUT},
        {"No route to host", "host unreachable"},
        {"Network is unreachable", "network unreachable"},
        {"Server closed the connection", API_FAIL_CLOSED},
        {"server closed the connection unexpectedly", API_FAIL_CLOSED},
        {"Lost connection to server", API_FAIL_CLOSED},
    };
    for (size_t i = 0; text != NULL && i < sizeof known / sizeof known[0]; i++)
        if (strstr(text, known[i].says) != NULL)
            return known[i].msg;
    return NULL;
}

void api_fail_tls_verify(char *buf, size_t len, long result, const char *name)
{
    switch (result) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        snprintf(buf, len, API_FAIL_TLS "certificate has expired");
        break;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        snprintf(buf, len, API_FAIL_TLS "certificate is not yet valid");
        break;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        snprintf(buf, len, API_FAIL_TLS "certificate does not match host name '%s'", name ? name : "");
        break;
    default:
        snprintf(buf, len, API_FAIL_TLS "certificate verify failed: %s", X509_verify_cert_error_string(result));
    }
}
