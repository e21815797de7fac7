/* seeds_main: a plain driver for a fuzz target outside the fuzz build — feeds
 * LLVMFuzzerTestOneInput every file named on the command line (directories: every regular file
 * in them, in name order), once each, so the committed seeds are regression tests in every
 * build. A crash, sanitizer report or failed invariant in the target ends the process as it
 * would under libFuzzer. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    struct stat st;
    uint8_t *buf = NULL;
    size_t len = 0;
    /* exactly the file's size, so that ASan sees a read past the input's end as under libFuzzer */
    if (fstat(fileno(f), &st) == 0 && (buf = malloc(st.st_size ? (size_t)st.st_size : 1)))
        len = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    if (!buf || len != (size_t)st.st_size) {
        fprintf(stderr, "%s: cannot read\n", path);
        free(buf);
        return -1;
    }
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    int files = 0, failed = 0;
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            failed++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            failed += run_file(argv[i]) != 0;
            files++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        char **names = NULL;
        size_t n = 0;
        for (struct dirent *e; d && (e = readdir(d));) {
            char *path = NULL;
            if (e->d_name[0] == '.' || asprintf(&path, "%s/%s", argv[i], e->d_name) < 0)
                continue;
            if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
                free(path);
                continue;
            }
            char **v = realloc(names, (n + 1) * sizeof(*v));
            if (!v) {
                free(path);
                break;
            }
            names = v;
            names[n++] = path;
        }
        if (d)
            closedir(d);
        qsort(names, n, sizeof(*names), cmp);
        for (size_t k = 0; k < n; k++) {
            failed += run_file(names[k]) != 0;
            files++;
            free(names[k]);
        }
        free(names);
    }
    fprintf(stderr, "%s: %d seed files run, %d unreadable\n", argv[0], files, failed);
    return failed || !files ? 1 : 0;
}
