/* test_db_url.c: database URL parsing and the password redaction every
 * database client's messages go through (db_url.c). The live-server specs
 * only see redaction through the drivers' own error texts; these pin the
 * forms themselves. */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "db_url.h"

#include "testlib.h"

/* Redacts text with secret and compares; frees the copy. */
#define CHECK_REDACT(text, secret, want)              \
    do {                                              \
        char *r_ = db_url_redact((text), (secret));   \
        CHECK_STR(r_, (want));                        \
        free(r_);                                     \
    } while (0)

/* The secret found in text is want (NULL: none is found). */
static void check_secret(const char *text, const char *want)
{
    char *s = db_url_secret(text);
    if (want == NULL) {
        CHECK(s == NULL);
        if (s != NULL)
            fprintf(stderr, "  db_url_secret(\"%s\") = \"%s\", want none\n", text, s);
    } else {
        CHECK_STR(s, want);
    }
    free(s);
}

static void test_parse(void)
{
    db_url u;
    char err[128];
    CHECK_INT(db_url_parse("postgresql://app:s%40cret@db.internal:5433/orders", &u, err, sizeof err), 0);
    CHECK_STR(u.scheme, "postgresql");
    CHECK_STR(u.user, "app");
    CHECK_STR(u.password, "s@cret");
    CHECK_STR(u.host, "db.internal");
    CHECK_INT(u.port, 5433);
    CHECK_STR(u.db, "orders");
    db_url_free(&u);

    /* an unescaped '@' in the password: the last '@' ends the userinfo */
    CHECK_INT(db_url_parse("REDIS://:p@ss@[::1]:6380/2", &u, err, sizeof err), 0);
    CHECK_STR(u.scheme, "redis");
    CHECK(u.user == NULL);
    CHECK_STR(u.password, "p@ss");
    CHECK_STR(u.host, "::1");
    CHECK_INT(u.port, 6380);
    CHECK_STR(u.db, "2");
    db_url_free(&u);

    CHECK_INT(db_url_parse("mysql://10.0.0.7", &u, err, sizeof err), 0);
    CHECK(u.port == 0 && u.db == NULL && u.password == NULL);
    db_url_free(&u);

    /* refusals: the reason never carries the password */
    static const struct {
        const char *url, *why;
    } bad[] = {
        {"db.internal:5432", "expected scheme://[user[:password]@]host[:port][/db]"},
        {"redis://:topsecret@", "no host in URL"},
        {"redis://:topsecret@h:0", "bad port in URL"},
        {"redis://:topsecret@h:65536", "bad port in URL"},
        {"redis://:topsecret@h:", "bad port in URL"},
        {"redis://:top%zzsecret@h", "bad password escape in URL"},
        {"redis://:top%00secret@h", "bad password escape in URL"},
        {"redis://:topsecret@[::1", "unterminated [IPv6] host in URL"},
        {"redis://:topsecret@h%4", "bad host in URL"},
    };
    for (size_t i = 0; i < HA_ARRAY_SIZE(bad); i++) {
        memset(&u, 0x5a, sizeof u);
        CHECK_INT(db_url_parse(bad[i].url, &u, err, sizeof err), -1);
        CHECK_STR(err, bad[i].why);
        CHECK(strstr(err, "topsecret") == NULL);
        CHECK(u.scheme == NULL && u.password == NULL && u.host == NULL); /* freed and zeroed */
    }
}

static void test_redact(void)
{
    /* the userinfo password of every URL in the text, none else */
    CHECK_REDACT("connect postgresql://app:hunter2@db:5432/x failed", NULL,
                 "connect postgresql://app:***@db:5432/x failed");
    CHECK_REDACT("redis://:p@ss@h:6379 and mysql://root:pw@h2/", NULL, "redis://:***@h:6379 and mysql://root:***@h2/");
    CHECK_REDACT("redis://user@h:6379/0", NULL, "redis://user@h:6379/0");  /* no password part */
    CHECK_REDACT("http://h:8080/a:b@c", NULL, "http://h:8080/a:b@c");      /* '@' past the authority */
    CHECK_REDACT("xredis://:pw@h", NULL, "xredis://:***@h");               /* a scheme is letters too */
    /* conninfo password= values, quoted or not, any case */
    CHECK_REDACT("host=db password=hunter2 user=app", NULL, "host=db password=*** user=app");
    CHECK_REDACT("host=db PASSWORD = 'a b\\' c' user=app", NULL, "host=db PASSWORD = *** user=app");
    CHECK_REDACT("password=\"x y\"", NULL, "password=***");
    CHECK_REDACT("a=1&password=p;b=2", NULL, "a=1&password=***;b=2");
    CHECK_REDACT("mypassword=kept", NULL, "mypassword=kept");  /* not a whole word */
    CHECK_REDACT("password is required", NULL, "password is required");
    /* the literal secret anywhere, after the forms */
    CHECK_REDACT("FATAL: password authentication failed: hunter2 != hunter2x", "hunter2",
                 "FATAL: password authentication failed: *** != ***x");
    CHECK_REDACT("nothing to hide", "", "nothing to hide");
    CHECK_REDACT(NULL, "s", "");
}

static void test_secret(void)
{
    check_secret("postgresql://app:hunter2@db/x", "hunter2");
    check_secret("redis://:p@ss@h", "p@ss");
    check_secret("redis://user@h", NULL);
    check_secret("redis://:@h", NULL);
    check_secret("host=db password='a b' x", "a b");
    check_secret("host=db password = pw;x", "pw");
    check_secret("password=", NULL);
    check_secret("no secret here", NULL);
}

static void test_message(void)
{
    char out[64];
    db_url_message(out, sizeof out, "  could not connect to postgresql://a:pw@h/x\nDETAIL: pw\n", "pw");
    CHECK_STR(out, "could not connect to postgresql://a:***@h/x");
    db_url_message(out, 8, "0123456789", NULL);
    CHECK_STR(out, "0123456");
    db_url_message(out, sizeof out, NULL, NULL);
    CHECK_STR(out, "");
}

int main(void)
{
    test_parse();
    test_redact();
    test_secret();
    test_message();
    return testlib_report();
}
