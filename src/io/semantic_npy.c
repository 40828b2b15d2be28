/* libiadsr - semantic matrices in .npy files: parse, load and save (the
 * .npy codec is npy.c, the matrix handle data/semantic.c).
 * SPDX-License-Identifier: MIT
 */
#include "data/semantic.h"
#include "io/npy.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/fileio.h"

#include <stddef.h>
#include <stdint.h>

int iadsr_semantic_parse_npy(iadsr_semantic **out, const void *buf,
                             size_t len, uint32_t flags)
{
    static const char w[] = "semantic_parse_npy";

    IADSR__OUT_CLEAR(out, w);
    if (!buf)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: buf is NULL", w);
    if (flags & ~(uint32_t)IADSR_SEMANTIC_ROW0_PADDING)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: flags = 0x%x has unknown bits (expected 0 or "
                          "IADSR_SEMANTIC_ROW0_PADDING)",
                          w, (unsigned)flags);

    /* the header first: the shape decides the one allocation */
    int64_t rows = 0, cols = 0;
    int rc = iadsr_npy_decode(buf, len, NULL, 0, &rows, &cols);
    if (rc != IADSR_OK)
        return rc;
    const int pad = (flags & IADSR_SEMANTIC_ROW0_PADDING) ? 1 : 0;
    rc = iadsr__semantic_check_shape(w, rows, cols, pad, IADSR_ERR_FORMAT);
    if (rc != IADSR_OK)
        return rc;
    if ((uint64_t)rows > (uint64_t)PTRDIFF_MAX / sizeof(float) /
                             (uint64_t)cols)
        return iadsr__err(IADSR_ERR_NOMEM,
                          "%s: %lld x %lld floats do not fit in memory", w,
                          (long long)rows, (long long)cols);
    const size_t n = (size_t)rows * (size_t)cols;
    float *data = iadsr__aligned_alloc(n, sizeof(float));
    if (!data)
        return iadsr__err(IADSR_ERR_NOMEM,
                          "%s: out of memory for %lld x %lld floats", w,
                          (long long)rows, (long long)cols);
    rc = iadsr_npy_decode(buf, len, data, (int64_t)n, &rows, &cols);
    if (rc != IADSR_OK) {
        iadsr__aligned_free(data); /* not reached: validated above */
        return rc;
    }
    return iadsr__semantic_build(out, data, rows, (int32_t)cols, cols,
                          flags & IADSR_SEMANTIC_ROW0_PADDING, data, w);
}

int iadsr_semantic_load_npy(iadsr_semantic **out, const char *path,
                            uint32_t flags)
{
    static const char w[] = "semantic_load_npy";

    IADSR__OUT_CLEAR(out, w);
    if (!path || !path[0])
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: path is %s", w,
                          path ? "empty" : "NULL");
    if (flags & ~(uint32_t)IADSR_SEMANTIC_ROW0_PADDING)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: flags = 0x%x has unknown bits (expected 0 or "
                          "IADSR_SEMANTIC_ROW0_PADDING)",
                          w, (unsigned)flags);
    void *b = NULL;
    size_t len = 0;
    TRY(iadsr__read_file(path, w, &b, &len));
    int rc = iadsr_semantic_parse_npy(out, b, len, flags);
    iadsr__free(b);
    if (rc != IADSR_OK)
        return iadsr__err_prefix(rc, "%s", path);
    return IADSR_OK;
}

int iadsr_semantic_save_npy(const iadsr_semantic *s, const char *path,
                            uint32_t flags)
{
    static const char w[] = "semantic_save_npy";
    const uint32_t known = IADSR_SEMANTIC_ROW0_PADDING | IADSR_SAVE_NO_FSYNC;

    if (!iadsr__semantic_ok(s))
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: %s", w,
                          s ? "not a semantic matrix handle"
                            : "the matrix is NULL");
    if (!path || !path[0])
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: path is %s", w,
                          path ? "empty" : "NULL");
    if (flags & ~known)
        return iadsr__err(IADSR_ERR_UNSUPPORTED, "%s: unknown flag bits 0x%x",
                          w, (unsigned)(flags & ~known));
    const int64_t lead = (flags & IADSR_SEMANTIC_ROW0_PADDING) ? 1 : 0;
    return iadsr__npy_write(path, s->rows, s->n_items, s->dim, s->ld, lead,
                            flags & IADSR_SAVE_NO_FSYNC, w);
}
