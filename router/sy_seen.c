/* sy_seen: an open-addressing hash set of job ids (FNV-1a, linear probing, grows at 50%). A slot
 * keeps its id's hash and length, so probing compares bytes only on a likely match and growing
 * does not hash again; the ids themselves are copied into chunks freed with the set. */
#include "sy_seen.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    const char *id; /* NULL: empty */
    uint64_t hash;
    size_t len;
} slot_t;

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    char data[];
} chunk_t;
#define CHUNK_SIZE 65536

struct sy_seen {
    slot_t *slots;
    size_t cap; /* power of two */
    size_t count;
    chunk_t *chunks; /* the first one is being filled */
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
    s->slots = calloc(s->cap, sizeof(*s->slots));
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
    while (s->chunks) {
        chunk_t *c = s->chunks;
        s->chunks = c->next;
        free(c);
    }
    free(s->slots);
    free(s);
}

static size_t find(const slot_t *slots, size_t cap, uint64_t h, const char *id, size_t len)
{
    size_t i = (size_t)h & (cap - 1);
    while (slots[i].id &&
           !(slots[i].hash == h && slots[i].len == len && !memcmp(slots[i].id, id, len)))
        i = (i + 1) & (cap - 1);
    return i;
}

static bool grow(sy_seen_t *s)
{
    size_t cap = s->cap * 2;
    slot_t *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return false;
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i].id) {
            size_t j = (size_t)s->slots[i].hash & (cap - 1);
            while (slots[j].id)
                j = (j + 1) & (cap - 1);
            slots[j] = s->slots[i];
        }
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return true;
}

/* A copy of id (len bytes, NUL-terminated) in the set's chunks. */
static const char *copy_id(sy_seen_t *s, const char *id, size_t len)
{
    chunk_t *c = s->chunks;
    if (!c || c->cap - c->used < len + 1) {
        size_t cap = len + 1 > CHUNK_SIZE ? len + 1 : CHUNK_SIZE;
        if (!(c = malloc(sizeof(*c) + cap)))
            return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = s->chunks;
        s->chunks = c;
    }
    char *d = c->data + c->used;
    memcpy(d, id, len);
    d[len] = 0;
    c->used += len + 1;
    return d;
}

bool sy_seen_add(sy_seen_t *s, const char *id, size_t len)
{
    if ((s->count + 1) * 2 > s->cap && !grow(s))
        return false;
    uint64_t h = hash(id, len);
    size_t i = find(s->slots, s->cap, h, id, len);
    if (s->slots[i].id)
        return false;
    const char *copy = copy_id(s, id, len);
    if (!copy)
        return false;
    s->slots[i] = (slot_t){.id = copy, .hash = h, .len = len};
    s->count++;
    return true;
}

bool sy_seen_contains(const sy_seen_t *s, const char *id, size_t len)
{
    return s->slots[find(s->slots, s->cap, hash(id, len), id, len)].id != NULL;
}

size_t sy_seen_count(const sy_seen_t *s)
{
    return s->count;
}
