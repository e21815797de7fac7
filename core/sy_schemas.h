/* sy_schemas: the .avsc files of schemas/, embedded at build time (see schemas/embed.cmake). */
#ifndef SY_SCHEMAS_H
#define SY_SCHEMAS_H

typedef struct sy_schema_file {
    const char *file_name; /* "JobRequest.v1.avsc" */
    const char *type_name; /* "JobRequest" */
    int version;           /* 1 */
    const char *json;      /* the file's text, unchanged */
} sy_schema_file_t;

extern const sy_schema_file_t sy_schema_files[];
extern const int sy_schema_file_count;

#endif
