/* cmd_codec: switchyard encode / decode / schemas (placeholder until the codec lands). */
#include <stdio.h>
#include "cli.h"
int sy_cmd_encode(sy_config_t *conf, int argc, char **argv) { fprintf(stderr, "encode: not yet\n"); return 1; }
int sy_cmd_decode(sy_config_t *conf, int argc, char **argv) { fprintf(stderr, "decode: not yet\n"); return 1; }
int sy_cmd_schemas(sy_config_t *conf, int argc, char **argv) { fprintf(stderr, "schemas: not yet\n"); return 1; }
