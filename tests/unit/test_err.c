/* Unit tests of sy_err: messages are valid UTF-8 whatever was cut short to fit them
 * (sy_utf8_scrub), and prefixes keep them so. */
#include <string.h>

#include "sy_err.h"
#include "sy_test.h"

static const char *scrubbed(const char *in)
{
    static char buf[256];
    snprintf(buf, sizeof(buf), "%s", in);
    sy_utf8_scrub(buf);
    return buf;
}

int main(void)
{
    /* valid text is left alone: ASCII, 2-, 3- and 4-byte characters, the extremes */
    CHECK_STR(scrubbed("plain ascii"), "plain ascii");
    CHECK_STR(scrubbed("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
              "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    CHECK_STR(scrubbed("\xc2\x80\xed\x9f\xbf\xee\x80\x80\xf4\x8f\xbf\xbf"),
              "\xc2\x80\xed\x9f\xbf\xee\x80\x80\xf4\x8f\xbf\xbf");
    /* a character cut short is dropped, mid-string and at the end */
    CHECK_STR(scrubbed("\"a\xc3\" is"), "\"a\" is");
    CHECK_STR(scrubbed("x\xe2\x82"), "x");
    CHECK_STR(scrubbed("x\xf0\x9f\x98y"), "xy");
    /* bytes that are not UTF-8 at all become '?' */
    CHECK_STR(scrubbed("a\x80z"), "a?z");            /* a stray continuation byte */
    CHECK_STR(scrubbed("\xff\xfe"), "??");           /* never in UTF-8 */
    CHECK_STR(scrubbed("\xc0\xaf"), "??");           /* overlong '/' */
    CHECK_STR(scrubbed("\xe0\x80\xaf"), "???");      /* overlong, 3 bytes */
    CHECK_STR(scrubbed("\xed\xa0\x80"), "???");      /* a surrogate */
    CHECK_STR(scrubbed("\xf4\x90\x80\x80"), "????"); /* beyond U+10FFFF */
    /* one character at a time, within the bytes available (what the codec checks text with) */
    CHECK(sy_utf8_char_len("a", 1) == 1 && sy_utf8_char_len("\xc3\xa9", 2) == 2);
    CHECK(sy_utf8_char_len("\xe2\x82\xac", 3) == 3 && sy_utf8_char_len("\xf0\x9f\x98\x80", 4) == 4);
    CHECK(sy_utf8_char_len("\xe2\x82\xac", 2) == 0); /* the rest is not there */
    CHECK(sy_utf8_char_len("a", 0) == 0 && sy_utf8_char_len("\x80", 1) == 0);
    CHECK(sy_utf8_char_len("\xc1\xbf", 2) == 0 && sy_utf8_char_len("\xed\xbf\xbf", 3) == 0 &&
          sy_utf8_char_len("\xf4\x90\x80\x80", 4) == 0 &&
          sy_utf8_char_len("\xf5\x80\x80\x80", 4) == 0);
    char s[8] = "ab";
    CHECK(sy_utf8_scrub(s) == 2);

    /* sy_err_set: "%.Ns" of non-ASCII text, and a message longer than the buffer */
    sy_err_t err = SY_ERR_INIT;
    CHECK(sy_err_set(&err, SY_ERR_INVALID_ARG, false, "name \"%.4s\" is bad",
                     "a\xc3\xa9\xc3\xa9") == SY_ERR_INVALID_ARG);
    CHECK_STR(err.msg, "name \"a\xc3\xa9\" is bad");
    char big[2000] = "";
    for (int i = 0; i < 600; i++)
        strcat(big, "\xc3\xa9");                              /* 1200 bytes */
    sy_err_set(&err, SY_ERR_INVALID_ARG, false, "xy%s", big); /* 511 bytes end inside one */
    CHECK(strlen(err.msg) == 510 && !memcmp(err.msg + 508, "\xc3\xa9", 2));
    /* a prefix that pushes the end of the old message out of the buffer, inside a character */
    sy_err_set(&err, SY_ERR_IO, false, "%.508s", big);
    CHECK(strlen(err.msg) == 508);
    sy_err_prefix(&err, "ab");
    CHECK(strlen(err.msg) == 510 && !strncmp(err.msg, "ab: \xc3\xa9", 6) &&
          !memcmp(err.msg + 508, "\xc3\xa9", 2));
    SY_TEST_DONE();
}
