/* sy_seen: an open-addressing hash set of job ids (FNV-1a, linear probing, grows at 50%). */
#include "sy_seen.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct sy_seen {
    char **slots;
    size_t cap; /* power of two */
    size_t count;
};

static uint64_t hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

sy_seen_t *sy_seen_new(void)
{
    sy_seen_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cap = 1024;
    s->slots = calloc(s->cap, sizeof(char *));
    if (!s->slots) {
        free(s);
        return NULL;
    }
    return s;
}

void sy_seen_destroy(sy_seen_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->cap; i++)
        free(s->slots[i]);
    free(s->slots);
    free(s);
}

static size_t find(char **slots, size_t cap, const char *id, size_t len)
{
    size_t i = (size_t)hash(id, len) & (cap - 1);
    while (slots[i] && !(strlen(slots[i]) == len && !memcmp(slots[i], id, len)))
        i = (i + 1) & (cap - 1);
    return i;
}

static bool grow(sy_seen_t *s)
{
    size_t cap = s->cap * 2;
    char **slots = calloc(cap, sizeof(char *));
    if (!slots)
        return false;
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i])
            slots[find(slots, cap, s->slots[i], strlen(s->slots[i]))] = s->slots[i];
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return true;
}

bool sy_seen_add(sy_seen_t *s, const char *id, size_t len)
{
    if ((s->count + 1) * 2 > s->cap && !grow(s))
        return false;
    size_t i = find(s->slots, s->cap, id, len);
    if (s->slots[i])
        return false;
    if (!(s->slots[i] = strndup(id, len)))
        return false;
    s->count++;
    return true;
}

bool sy_seen_contains(const sy_seen_t *s, const char *id, size_t len)
{
    return s->slots[find(s->slots, s->cap, id, len)] != NULL;
}

size_t sy_seen_count(const sy_seen_t *s)
{
    return s->count;
}
