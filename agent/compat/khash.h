/* compat/khash.h: the little of klib's khash.h that <h2o/http2_internal.h>
 * needs to compile (Debian's libh2o-dev installs that header but not
 * khash.h). Only front_h2.c sees it. The stream table is an opaque pointer
 * here: the lookup macros compile to "not found", so nothing built with
 * this header may call h2o_http2_conn_get_stream (front_h2.c does not). */
#ifndef HA_COMPAT_KHASH_H
#define HA_COMPAT_KHASH_H

#include <stddef.h>
#include <stdint.h>

typedef unsigned int khint_t;
typedef khint_t khiter_t;

#define khash_t(name) kh_##name##_t
#define KHASH_MAP_INIT_INT64(name, khval_t) typedef struct kh_##name##_s kh_##name##_t;
#define kh_get(name, h, k) ((void)(h), (void)(k), (khiter_t)0)
#define kh_end(h) ((void)(h), (khiter_t)0)
#define kh_val(h, x) ((void)(h), (void)(x), NULL)

#endif
