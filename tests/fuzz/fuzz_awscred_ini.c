/* fuzz_awscred_ini: the shared credentials/config file parser (~/.aws/credentials,
 * ~/.aws/config: sy_awscred_ini_get, sy_awscred_ini_has_profile), as the "profile" provider
 * reads them. The input is "<profile name>\n<file text>"; the profile is looked up in the text
 * both as a credentials file ("[name]") and as a config file ("[profile name]", "[default]").
 * Invariants: a key found means the profile's section exists; values hold no line break and
 * no leading or trailing blank; the lookup is case-insensitive in the key. */
#include <ctype.h>

#include "fuzz.h"
#include "sy_awscred.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *profile;
    const uint8_t *rest;
    size_t rest_len;
    fuzz_split(data, size, "\n", 1, &profile, &rest, &rest_len);
    char *text = fuzz_cstr(rest, rest_len);
    static const char *const keys[] = {"aws_access_key_id", "aws_secret_access_key",
                                       "aws_session_token", "region",
                                       "AWS_ACCESS_KEY_ID", "s3"};
    for (int config_file = 0; config_file < 2; config_file++) {
        bool has = sy_awscred_ini_has_profile(text, profile, config_file);
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            char *v = sy_awscred_ini_get(text, profile, config_file, keys[i]);
            if (!v)
                continue;
            FUZZ_ASSERT(has, "key %s found in a profile that does not exist", keys[i]);
            FUZZ_ASSERT(!strpbrk(v, "\r\n"), "value with a line break");
            size_t n = strlen(v);
            FUZZ_ASSERT(!n || (!isspace((unsigned char)v[0]) && !isspace((unsigned char)v[n - 1])),
                        "value \"%s\" not trimmed", v);
            free(v);
        }
        char *lower = sy_awscred_ini_get(text, profile, config_file, "aws_access_key_id");
        char *upper = sy_awscred_ini_get(text, profile, config_file, "AWS_ACCESS_KEY_ID");
        FUZZ_ASSERT((!lower && !upper) || (lower && upper && !strcmp(lower, upper)),
                    "key lookup depends on case");
        free(lower);
        free(upper);
    }
    free(text);
    free(profile);
    return 0;
}
