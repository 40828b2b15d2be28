/* libiadsr - Interest Alignment for Denoising Sequential Recommendation.
 * SPDX-License-Identifier: MIT
 */
/**
 * @file iadsr.h
 * @brief The public API of libiadsr: sequential recommenders (SASRec,
 *        GRU4Rec, Caser) and IADSR denoising of their training sequences.
 *
 * This is the only public header of libiadsr. It is the contract: every
 * exported symbol is declared and documented here (shapes, ownership, errors,
 * thread-safety, the version it appeared in).
 *
 * @par Conventions used throughout
 *
 * - Every fallible function returns an int status: IADSR_OK (0) or one of the
 *   negative IADSR_ERR_* codes, whose values never change. The thread-local
 *   iadsr_last_error() then holds a human-readable detail.
 * - Handles are opaque and created by the library. Constructors take the
 *   handle out-parameter first and set it to NULL on failure. Every
 *   iadsr_<x>_free() accepts NULL. Handles keep what they depend on alive
 *   (internal atomic reference counts), so handles may be freed in any order.
 * - Item ids are 1..n_items everywhere (as in the data files); 0 is padding
 *   and never a valid item. Score buffers are indexed by item id and hold
 *   n_items + 1 floats; entry 0 is always -INFINITY.
 * - Inputs are borrowed for the duration of the call unless a function says
 *   otherwise. Outputs go into caller buffers with a stated capacity. The
 *   library never returns memory the caller must free.
 * - Params structs are passed by pointer; their first field struct_size is
 *   set by the matching *_params_init(). A caller built against an older
 *   (smaller) struct gets defaults for the newer fields; a larger struct is
 *   accepted only if the bytes the library does not know are all zero
 *   (otherwise IADSR_ERR_UNSUPPORTED). A NULL params pointer means defaults.
 *   Note that *_params_init() writes the whole struct as this library
 *   version defines it: a program linked against this SONAME always has the
 *   matching size, but a dlopen/FFI caller with an older, smaller struct must
 *   let it write into a buffer of at least the library's size (or fill the
 *   struct itself, with its own struct_size).
 * - Output structs (iadsr_metrics, iadsr_pipeline_result, and params
 *   structs filled by a *_get_params() function) also start with
 *   struct_size, set by the caller to its sizeof. It must be at least the
 *   struct's oldest released size (stated with each struct), otherwise
 *   IADSR_ERR_INVALID_ARG and nothing is written. The library writes the
 *   first min(struct_size, its own sizeof) bytes and keeps the caller's
 *   struct_size: a caller built against an older, smaller struct keeps
 *   working when the struct grows, and the tail of a newer, larger struct is
 *   left untouched. Structs the library hands to a callback
 *   (iadsr_progress_info) carry the library's own size in struct_size
 *   instead.
 * - The library never prints, never calls exit() or abort(), and has no
 *   global mutable state.
 * - Enumerations and flags are preprocessor macros passed as int32_t or
 *   uint32_t, never as enum types; each is declared with the subject it
 *   belongs to.
 *
 * @par Contents, by subject (in the order of this header)
 *
 * - @ref api_visibility
 * - @ref api_version
 * - @ref api_errors
 * - @ref api_handles
 * - @ref api_datasets
 * - @ref api_models
 * - @ref api_checkpoints (models, and models with aligner and gate)
 * - @ref api_training
 * - @ref api_scoring
 * - @ref api_evaluation
 * - @ref api_semantic
 * - @ref api_npy
 * - @ref api_iadsr
 * - @ref api_pipeline
 *
 * @par Thread-safety
 *
 * An iadsr_model and an iadsr_dataset are immutable once created and may be
 * used concurrently from any number of threads. An iadsr_ctx and an
 * iadsr_trainer must be used by one thread at a time, but may move between
 * threads. The last-error message is thread-local. Hosts that call the
 * library from many threads should run OpenBLAS single-threaded
 * (OPENBLAS_NUM_THREADS=1) and parallelise across iadsr_ctx instances; the
 * library never changes the BLAS thread count itself.
 */
#ifndef IADSR_H_INCLUDED_7C1E2B
#define IADSR_H_INCLUDED_7C1E2B

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/** @defgroup api_visibility Visibility
 *  @{ */

/**
 * @def IADSR_API
 * Marks the exported functions of the library: default visibility with GCC
 * and Clang (the library is built with -fvisibility=hidden, so nothing else
 * is exported), __declspec(dllexport) when building a Windows DLL
 * (IADSR_BUILDING_DLL) and __declspec(dllimport) when using one
 * (IADSR_USING_DLL); empty otherwise.
 */
#if defined(_WIN32) && defined(IADSR_BUILDING_DLL)
#define IADSR_API __declspec(dllexport)
#elif defined(_WIN32) && defined(IADSR_USING_DLL)
#define IADSR_API __declspec(dllimport)
#elif defined(__GNUC__) && __GNUC__ >= 4
#define IADSR_API __attribute__((visibility("default")))
#else
#define IADSR_API
#endif

/** @} */

/* ------------------------------------------------------------------------ */
/** @defgroup api_version Version and build information
 *  @{ */

/* The version of this header. While MAJOR is 0 a minor release may change
 * the ABI (docs/ABI.md); iadsr_version_number() gives the version of the
 * library actually loaded. */
/** Major version of this header (0 while the ABI may still change). */
#define IADSR_VERSION_MAJOR 0
/** Minor version of this header; part of the SONAME while MAJOR is 0. */
#define IADSR_VERSION_MINOR 4
/** Patch version of this header; patch releases never change the ABI. */
#define IADSR_VERSION_PATCH 0
/** This header's version as MAJOR*10000 + MINOR*100 + PATCH (400 for 0.4.0),
 *  the form iadsr_version_number() returns. */
#define IADSR_VERSION_NUMBER \
    (IADSR_VERSION_MAJOR * 10000 + IADSR_VERSION_MINOR * 100 + IADSR_VERSION_PATCH)
/** This header's version as "MAJOR.MINOR.PATCH", the form
 *  iadsr_version_string() returns. */
#define IADSR_VERSION_STRING "0.4.0"
/** Non-zero when this header is version ma.mi.pa or newer: compile-time
 *  feature tests, e.g. \#if IADSR_VERSION_AT_LEAST(0, 3, 0). */
#define IADSR_VERSION_AT_LEAST(ma, mi, pa) \
    (IADSR_VERSION_NUMBER >= ((ma) * 10000 + (mi) * 100 + (pa)))

/**
 * Version of the library actually loaded, as MAJOR*10000 + MINOR*100 + PATCH.
 * Compare with IADSR_VERSION_NUMBER to detect a header/library mismatch.
 * Thread-safety: any thread. @since 0.1.0
 */
IADSR_API int iadsr_version_number(void);

/**
 * Version string of the library actually loaded, e.g. "0.1.0". Static storage.
 * Thread-safety: any thread. @since 0.1.0
 */
IADSR_API const char *iadsr_version_string(void);

/**
 * One line describing the build: BLAS backend and its configuration,
 * compiler. Static storage, never NULL.
 * Thread-safety: any thread. @since 0.1.0
 */
IADSR_API const char *iadsr_build_info(void);

/**
 * Newest checkpoint format major.minor this library reads and writes, as
 * major*100 + minor (101 since 0.2.0, 104 since 0.3.0). Models that need
 * no newer feature are still written as 1.0, which every 0.x release reads.
 * Thread-safety: any thread. @since 0.1.0
 */
IADSR_API int iadsr_format_version(void);

/** @} */

/* ------------------------------------------------------------------------ */
/** @defgroup api_errors Status codes and errors
 *  @{ */

/* Status codes. The values are part of the ABI and never change; new codes
 * are only appended. */
#define IADSR_OK 0                      /**< success */
#define IADSR_ERR_GENERIC (-1)          /**< unexpected internal failure */
#define IADSR_ERR_NOMEM (-2)            /**< memory allocation failed */
#define IADSR_ERR_INVALID_ARG (-3)      /**< NULL, foreign handle, bad value */
#define IADSR_ERR_OUT_OF_RANGE (-4)     /**< item id outside 1..n_items, length */
#define IADSR_ERR_BUFFER_TOO_SMALL (-5) /**< caller buffer capacity too small */
#define IADSR_ERR_IO (-6)               /**< open/read/write/fsync/rename failed */
#define IADSR_ERR_FORMAT (-7)           /**< malformed file, text or checkpoint */
#define IADSR_ERR_VERSION (-8)          /**< unsupported format version */
#define IADSR_ERR_CHECKSUM (-9)         /**< checksum mismatch */
#define IADSR_ERR_STATE (-10)           /**< call not valid in this state */
#define IADSR_ERR_UNSUPPORTED (-11)     /**< feature/flag not supported */
#define IADSR_ERR_NUMERIC (-12)         /**< NaN/Inf in input or divergence */
#define IADSR_ERR_ABORTED (-13)         /**< a callback asked to stop */
#define IADSR_ERR_DIM_MISMATCH (-14)    /**< dimensions do not agree */
#define IADSR_ERR_MISMATCH (-15)        /**< parts trained with other parts */

/**
 * Static English description of a status code; never NULL (unknown codes
 * get a generic text). Thread-safety: any thread. @since 0.1.0
 */
IADSR_API const char *iadsr_strerror(int status);

/**
 * Symbolic name of a status code, e.g. "IADSR_ERR_FORMAT"; "IADSR_UNKNOWN"
 * for values that are not codes. Static storage, never NULL.
 * Thread-safety: any thread. @since 0.1.0
 */
IADSR_API const char *iadsr_status_name(int status);

/**
 * Detail of the last error raised by a libiadsr call on the calling thread
 * (e.g. "data.txt:12: token 'x1' is not an item id"). Never NULL; empty when
 * there is none. Valid until the next libiadsr call on the same thread.
 * Successful calls do not clear it. Go bindings: fetch it in the same cgo
 * call or lock the OS thread, since goroutines migrate.
 * Thread-safety: thread-local. @since 0.1.0
 */
IADSR_API const char *iadsr_last_error(void);

/**
 * Clear the calling thread's last-error message.
 * Thread-safety: thread-local. @since 0.1.0
 */
IADSR_API void iadsr_clear_error(void);

/** @} */

/* ------------------------------------------------------------------------ */
/** @defgroup api_handles Handles and ownership of host arrays
 *  @{ */

/** Sequences of item ids, one per user, in CSR form. Immutable. */
typedef struct iadsr_dataset iadsr_dataset;
/** A backbone encoder with its weights. Immutable, shareable. */
typedef struct iadsr_model iadsr_model;
/** Training state (optimiser, RNG, working weights). One thread at a time. */
typedef struct iadsr_trainer iadsr_trainer;
/** Per-thread inference scratch bound to a model. One thread at a time. */
typedef struct iadsr_ctx iadsr_ctx;
/** Projections from the semantic to the collaborative space. Immutable. */
typedef struct iadsr_aligner iadsr_aligner;
/** Denoising gate: decoder and inference rule. Immutable. */
typedef struct iadsr_gate iadsr_gate;

/**
 * An n_items x D matrix of semantic item embeddings: one row per item id,
 * typically an LLM (or word-vector) embedding of the item's text. Immutable
 * once created and shareable by any number of threads, like a model.
 *
 * Rows that are entirely zero mean "no text for this item"; they are
 * allowed, counted (iadsr_semantic_n_zero_rows()) and everywhere treated as
 * having cosine 0 with every vector, so they never produce NaN.
 */
typedef struct iadsr_semantic iadsr_semantic;

/**
 * A denoiser bundles what the gate needs at inference: a backbone model,
 * an aligner, a gate and the items' semantic rows. It holds references to
 * them, is immutable, and may be used by any number of threads at once.
 */
typedef struct iadsr_denoiser iadsr_denoiser;

/* Ownership of long-lived host arrays (the flags of iadsr_dataset_create()
 * and iadsr_semantic_create()). */
#define IADSR_FLAG_COPY 0u   /**< the library copies the arrays (default) */
#define IADSR_FLAG_BORROW 1u /**< zero-copy: the host keeps the arrays alive
                                  and unchanged until the handle is freed */

/** @} */

/* ------------------------------------------------------------------------ */
/** @defgroup api_datasets Datasets and sequence files
 *  @{ */

/* How a dataset's sequences are split (iadsr_train_params.split, and the
 * split argument of iadsr_denoiser_clean_dataset()). */
#define IADSR_SPLIT_DEFAULT 0 /**< the default split, LEAVE_ONE_OUT */
/** Leave-one-out: last item = test, second-to-last = validation, the rest
 *  is training data (every prefix position is a training target). */
#define IADSR_SPLIT_LEAVE_ONE_OUT 1
/** Whole sequences are training data; no validation (train only). */
#define IADSR_SPLIT_NONE 2

/**
 * Create a dataset from CSR arrays.
 *
 * User u's items, oldest first, are items[offsets[u] .. offsets[u+1]).
 *
 * @param out       receives the dataset; NULL on failure
 * @param items     item ids, length offsets[n_users]; each in 1..n_items
 * @param offsets   n_users + 1 entries, offsets[0] == 0, non-decreasing
 * @param n_users   number of users, >= 1
 * @param n_items   number of items, 1..2147483646 (ids above it are an
 *                  error); 0 means "the largest id present"
 * @param flags     IADSR_FLAG_COPY (arrays copied) or IADSR_FLAG_BORROW (kept
 *                  by pointer: the host keeps them alive and unchanged until
 *                  the dataset and everything created from it are freed)
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG (NULL, @p items or @p offsets not
 *         aligned to its element's size, bad offsets, unknown flag),
 *         IADSR_ERR_OUT_OF_RANGE (an id is 0, negative or > n_items),
 *         IADSR_ERR_NOMEM
 *
 * Thread-safety: any thread. @since 0.1.0
 */
IADSR_API int iadsr_dataset_create(iadsr_dataset **out, const int32_t *items,
                                   const int64_t *offsets, int64_t n_users,
                                   int32_t n_items, uint32_t flags);

/**
 * Parse sequences from text: one user per line, "user_id item_id item_id
 * ...", items in time order, ids from 1. Tokens are decimal digits only
 * (no sign), separated by spaces or tabs; lines end with LF or CRLF. Blank
 * lines and lines starting with '#' are skipped. Users keep their file order; the user id of each line is
 * available through iadsr_dataset_user_id().
 *
 * @param out      receives the dataset; NULL on failure
 * @param text     the bytes (need not be NUL-terminated); borrowed
 * @param len      number of bytes
 * @param n_items  0 = the largest id present; else ids above it are an error
 * @param name     name used in error messages (e.g. the file name); may be NULL
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG, IADSR_ERR_FORMAT (non-numeric
 *         token, a line with a user but no item, no users at all),
 *         IADSR_ERR_OUT_OF_RANGE (id 0 or above n_items, number too large),
 *         IADSR_ERR_NOMEM. The last error names the line: "NAME:LINE: ...".
 *
 * Thread-safety: any thread. @since 0.1.0
 */
IADSR_API int iadsr_dataset_parse_text(iadsr_dataset **out, const char *text,
                                       size_t len, int32_t n_items,
                                       const char *name);

/**
 * Read and parse a sequence file (format of iadsr_dataset_parse_text()).
 * @return as iadsr_dataset_parse_text(), plus IADSR_ERR_IO if the file
 *         cannot be opened or read.
 *
 * Thread-safety: any thread. @since 0.1.0
 */
IADSR_API int iadsr_dataset_load_text(iadsr_dataset **out, const char *path,
                                      int32_t n_items);

/** Release a dataset (NULL is a no-op). @since 0.1.0 */
IADSR_API void iadsr_dataset_free(iadsr_dataset *d);

/** Number of users (0 for NULL). Thread-safety: any thread. @since 0.1.0 */
IADSR_API int64_t iadsr_dataset_n_users(const iadsr_dataset *d);

/** Number of items n_items (0 for NULL). @since 0.1.0 */
IADSR_API int32_t iadsr_dataset_n_items(const iadsr_dataset *d);

/** Total number of interactions (0 for NULL). @since 0.1.0 */
IADSR_API int64_t iadsr_dataset_n_interactions(const iadsr_dataset *d);

/**
 * Borrowed view of user @p u's items (oldest first), valid while the dataset
 * lives. Returns NULL and *n_out = 0 for NULL or u out of range.
 * @since 0.1.0
 */
IADSR_API const int32_t *iadsr_dataset_user_items(const iadsr_dataset *d,
                                                  int64_t u, int32_t *n_out);

/**
 * The user id of row @p u: the first token of its line for parsed text,
 * @p u itself for datasets created from arrays; -1 if out of range.
 * @since 0.1.0
 */
IADSR_API int64_t iadsr_dataset_user_id(const iadsr_dataset *d, int64_t u);

/** @} */

/* ------------------------------------------------------------------------ */
/** @defgroup api_models Models
 *  @{ */

/* Backbones (iadsr_model_params.backbone). 0 = default (SASRec). */
/** The default backbone, SASRec. */
#define IADSR_BACKBONE_DEFAULT 0
/** SASRec: causal self-attention blocks over the item sequence. */
#define IADSR_BACKBONE_SASREC 1
/** GRU4Rec: a stack of GRU layers over the item sequence. @since 0.2.0 */
#define IADSR_BACKBONE_GRU4REC 2
/** Caser: horizontal and vertical convolutions over the last l items.
 *  @since 0.2.0 */
#define IADSR_BACKBONE_CASER 3

/* Activation of the SASRec feed-forward layer. 0 = default (GELU). */
#define IADSR_ACT_DEFAULT 0 /**< the default activation, GELU */
#define IADSR_ACT_GELU 1    /**< GELU, erf form: x Phi(x) */
#define IADSR_ACT_RELU 2    /**< ReLU */

/** Hyper-parameters of a model. Fill with iadsr_model_params_init(). */
typedef struct iadsr_model_params {
    uint32_t struct_size; /**< sizeof(iadsr_model_params); set by _init */
    int32_t backbone;     /**< IADSR_BACKBONE_*; default SASREC */
    int32_t n_items;      /**< number of items, required, 1..(2^31-2) */
    int32_t dim;          /**< hidden width d, 1..4096; default 64 */
    int32_t max_seq_len;  /**< L, last L items are used, 1..4096; default 50 */
    /** SASRec blocks or GRU4Rec layers, 1..16; 0 (the default) = the
     *  backbone's default: 2 for SASRec, 1 for GRU4Rec; Caser: must be 0 */
    int32_t n_layers;
    int32_t n_heads;      /**< SASRec: attention heads, divides dim; default 2 */
    int32_t ffn_dim;      /**< SASRec: FFN inner width; 0 = 4*dim; default 0 */
    int32_t activation;   /**< SASRec: IADSR_ACT_*; default GELU */
    float dropout;        /**< dropout rate in [0,1) used by training; 0.5 */
    uint32_t flags;       /**< IADSR_MODEL_F_* bits; default 0 */
    uint32_t reserved0;   /**< must be 0 */
    uint64_t seed;        /**< seed of the weight initialisation; default 42 */
    /* --- since 0.2.0 (struct_size 72) --- */
    /** Caser: l, the last l items form the l x d image, 1..64; 0 = 5 */
    int32_t caser_window;
    /** Caser: horizontal filters per height 1..l, 1..1024; 0 = 16 */
    int32_t caser_h_filters;
    /** Caser: vertical filters, 1..1024; 0 = 4 */
    int32_t caser_v_filters;
    uint32_t reserved1; /**< must be 0 */
} iadsr_model_params;
/* Fields that do not apply to the chosen backbone (n_heads, ffn_dim,
 * activation and IADSR_MODEL_F_PRE_LN for GRU4Rec and Caser; the caser_*
 * fields for the others) are ignored when left at their defaults and read
 * back as 0 from iadsr_model_get_params(). */

/**
 * iadsr_model_params.flags: SASRec blocks in the pre-norm arrangement of the
 * original SASRec paper, x1 = x + drop(MHA(LN1(x))), x' = x1 +
 * drop(FFN(LN2(x1))), with one more LayerNorm on the output of the last
 * block. Without it, blocks are post-norm (x1 = LN1(x + drop(MHA(x))), ...)
 * as in the PyTorch reference. Checkpoints with this flag need libiadsr
 * 0.2.0 or later. @since 0.2.0
 */
#define IADSR_MODEL_F_PRE_LN 1u

/**
 * Fill @p p with the defaults and set struct_size. NULL is a no-op.
 * @since 0.1.0
 */
IADSR_API void iadsr_model_params_init(iadsr_model_params *p);

/**
 * Create a model with freshly initialised weights, drawn from @p p->seed:
 * normal(0, 0.02) embeddings and linear weights, zero biases, unit
 * LayerNorm gains; GRU4Rec's recurrent and input weights are
 * uniform(-1/sqrt(d), 1/sqrt(d)) as in PyTorch (row 0 of the item table,
 * the padding row, is zero).
 *
 * @param out  receives the model; NULL on failure
 * @param p    hyper-parameters (n_items is required)
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG (field out of bounds),
 *         IADSR_ERR_UNSUPPORTED (backbone not available, unknown flags or
 *         non-zero unknown tail), IADSR_ERR_NOMEM
 *
 * Thread-safety: any thread. @since 0.1.0
 */
IADSR_API int iadsr_model_create(iadsr_model **out,
                                 const iadsr_model_params *p);

/**
 * Create a model like iadsr_model_create() but with the item-embedding table
 * warm-started from the host's matrix (e.g. a previous model's embeddings).
 *
 * @param out     receives the model; NULL on failure
 * @param p       hyper-parameters, as for iadsr_model_create()
 * @param emb     n_rows x dim float32 matrix, row-major, leading dimension
 *                @p ld (>= dim); row i is item i, row 0 (padding) is ignored;
 *                copied
 * @param n_rows  must be p->n_items + 1
 * @param dim     must be p->dim
 * @param ld      floats from one row of @p emb to the next, >= dim
 * @return as iadsr_model_create(), plus IADSR_ERR_DIM_MISMATCH (n_rows or
 *         dim disagree) and IADSR_ERR_NUMERIC (a NaN/Inf; the message names
 *         the row)
 *
 * Thread-safety: any thread. @since 0.1.0
 */
IADSR_API int iadsr_model_create_from_embeddings(iadsr_model **out,
                                                 const iadsr_model_params *p,
                                                 const float *emb,
                                                 int64_t n_rows, int32_t dim,
                                                 int64_t ld);

/** Release a model (NULL is a no-op). Contexts and trainers created from it
 *  keep it alive until they are freed. @since 0.1.0 */
IADSR_API void iadsr_model_free(iadsr_model *m);

/**
 * Copy the hyper-parameters of @p m into @p out (whose struct_size must be
 * set, e.g. by iadsr_model_params_init(); at least 56, the 0.1 size). Only
 * the first min(struct_size, sizeof(iadsr_model_params)) bytes are written,
 * and struct_size keeps the caller's value.
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG. @since 0.1.0
 */
IADSR_API int iadsr_model_get_params(const iadsr_model *m,
                                     iadsr_model_params *out);

/** Backbone (IADSR_BACKBONE_*), 0 for NULL. @since 0.1.0 */
IADSR_API int32_t iadsr_model_backbone(const iadsr_model *m);
/** Number of items, 0 for NULL. @since 0.1.0 */
IADSR_API int32_t iadsr_model_n_items(const iadsr_model *m);
/** Hidden width d, 0 for NULL. @since 0.1.0 */
IADSR_API int32_t iadsr_model_dim(const iadsr_model *m);
/** Maximum sequence length L (longer inputs use their last L items), 0 for
 *  NULL. @since 0.1.0 */
IADSR_API int32_t iadsr_model_max_seq_len(const iadsr_model *m);
/** Number of float parameters, 0 for NULL. @since 0.1.0 */
IADSR_API int64_t iadsr_model_n_params(const iadsr_model *m);
/** Bytes held by the model, 0 for NULL. @since 0.1.0 */
IADSR_API size_t iadsr_model_memory_usage(const iadsr_model *m);

/**
 * Borrowed read-only view of the item-embedding table: (n_items + 1) x dim
 * floats, row-major, row i = item i, row 0 = padding (zeros). Valid while
 * the model lives. NULL for NULL.
 * Thread-safety: any thread. @since 0.1.0
 */
IADSR_API const float *iadsr_model_item_embeddings(const iadsr_model *m);

/**
 * A new model with the weights, hyper-parameters and training record of
 * @p m whose items carry external ids (a catalogue's SKUs, the ids of the
 * vocabulary of `iadsr import`): item i (1..n_items) is @p ids[i - 1].
 * Checkpoints keep the ids (format 1.4, docs/FORMAT.md §4.6), and so do the
 * snapshots of a trainer created from the model. @p m itself never
 * changes (models are immutable); the ids of @p m, if any, are replaced.
 *
 * @param out    receives the new model (free it with iadsr_model_free());
 *               NULL on failure
 * @param m      the model to copy (only read)
 * @param ids    n_ids NUL-terminated strings, copied: each non-empty, at
 *               most 1024 bytes, without TAB, CR or LF bytes (any other
 *               byte, UTF-8 or not, is kept as it is), all distinct; or
 *               NULL with @p n_ids = 0 for a copy without ids
 * @param n_ids  must equal iadsr_model_n_items(m) (0 with @p ids NULL)
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG (a NULL or foreign handle or
 *         @p out, a count other than n_items, a NULL, empty, too long or
 *         duplicate id, or a TAB/CR/LF byte: the message names the index
 *         and, for a duplicate, the earlier index), IADSR_ERR_NOMEM. The
 *         caller's arrays and @p m are unchanged in every case.
 *
 * Thread-safety: any thread (the model is only read). @since 0.3.0
 */
IADSR_API int iadsr_model_with_item_ids(iadsr_model **out,
                                        const iadsr_model *m,
                                        const char *const *ids,
                                        int32_t n_ids);

/**
 * The external id of @p item (see iadsr_model_with_item_ids()).
 * @return a NUL-terminated string borrowed from the model, valid while
 *         @p m lives; NULL when the model has no ids, @p item is outside
 *         1..n_items or @p m is NULL or foreign
 * Thread-safety: any thread. @since 0.3.0
 */
IADSR_API const char *iadsr_model_item_id(const iadsr_model *m, int32_t item);

/**
 * The item (1..n_items) whose external id is @p ext_id (compared byte for
 * byte), found in O(1) on average through a hash table built when the ids
 * were attached or loaded.
 * @param m       the model
 * @param ext_id  NUL-terminated id; borrowed for the call
 * @return the item, or 0 when no item has that id, the model has no ids,
 *         or @p m or @p ext_id is NULL
 * Thread-safety: any thread. @since 0.3.0
 */
IADSR_API int32_t iadsr_model_item_index(const iadsr_model *m,
                                         const char *ext_id);

/**
 * Whether some training sequence the model was trained on held an item
 * more than once within its training part (with IADSR_SPLIT_LEAVE_ONE_OUT
 * all but the last two items, else the whole sequence): 1 (some did), 0
 * (none did), -1 (unknown: a model made by iadsr_model_create(), or loaded
 * from a checkpoint without the record, format < 1.4).
 *
 * iadsr_trainer_snapshot() sets it from the sequences the trainer trained
 * on (1 also when the initial model's record was 1; a trainer that ran no
 * epoch keeps the initial model's record); checkpoints keep it.
 * `iadsr recommend` reads it to choose its default: when the record is 0
 * (the data never repeats an item, e.g. purchases of distinct products)
 * it excludes each user's history from the top-K
 * (IADSR_TOPK_EXCLUDE_HISTORY), and otherwise (1: repeats such as re-plays
 * or re-orders are part of the data; -1: unknown) it keeps the history
 * rankable. Hosts may follow the same rule.
 *
 * @return 1, 0 or -1 (-1 for NULL)
 * Thread-safety: any thread. @since 0.3.0
 */
IADSR_API int32_t iadsr_model_history_repeats(const iadsr_model *m);

/** @} */

/* ------------------------------------------------------------------------ */
/** @defgroup api_checkpoints Checkpoints (format: docs/FORMAT.md)
 *  @{ */

/* Checkpoint save flags (also accepted by the .npy writers). */
/** Skip the fsync calls (tests, tmpfs); the save is still an atomic rename,
 *  but may not survive a power loss. */
#define IADSR_SAVE_NO_FSYNC 1u

/**
 * Save a model atomically: written to a temporary file in the same
 * directory, fsync'ed, renamed over @p path, and the directory fsync'ed. On
 * failure an existing file at @p path is left untouched.
 * (If only the final fsync of the directory fails, IADSR_ERR_IO is returned
 * although the new file is already in place.)
 * @param m     the model (only read)
 * @param path  the file to create or replace
 * @param flags 0 or IADSR_SAVE_NO_FSYNC
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG, IADSR_ERR_IO, IADSR_ERR_NOMEM,
 *         IADSR_ERR_NUMERIC (a weight is NaN/Inf: never written),
 *         IADSR_ERR_UNSUPPORTED (unknown flag bits)
 *
 * Thread-safety: any thread (the model is read only). @since 0.1.0
 */
IADSR_API int iadsr_model_save(const iadsr_model *m, const char *path,
                               uint32_t flags);

/**
 * Serialise a model into a caller buffer. With buf == NULL and cap == 0 it
 * only reports the size. The bytes are deterministic: the same model always
 * gives the same bytes, those iadsr_model_save() writes.
 * @param m       the model (only read)
 * @param buf     receives the checkpoint bytes; NULL to ask for the size
 * @param cap     bytes available at @p buf
 * @param needed  NULL or receives the exact size in bytes
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG, IADSR_ERR_BUFFER_TOO_SMALL,
 *         IADSR_ERR_NUMERIC (non-finite weight), IADSR_ERR_NOMEM
 *
 * Thread-safety: any thread. @since 0.1.0
 */
IADSR_API int iadsr_model_save_to_buffer(const iadsr_model *m, void *buf,
                                         size_t cap, size_t *needed);

/**
 * Load a model from a checkpoint file. The file is untrusted: it is fully
 * validated (sizes, shapes against hyper-parameters, checksums, finite
 * weights) before the model is allocated.
 * @param out   receives the model; NULL on failure
 * @param path  the checkpoint file (formats 1.0 to 1.4; the aligner and
 *              gate of a 1.2 to 1.4 file are ignored, see
 *              iadsr_checkpoint_load())
 * @param flags reserved, must be 0
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG, IADSR_ERR_IO, IADSR_ERR_FORMAT,
 *         IADSR_ERR_VERSION (unknown major format), IADSR_ERR_CHECKSUM,
 *         IADSR_ERR_UNSUPPORTED (unknown flag bits, a required feature flag
 *         this library does not know, a backbone not available in this
 *         version, a file over 16 GiB), IADSR_ERR_NUMERIC (non-finite
 *         weight), IADSR_ERR_NOMEM
 *
 * Thread-safety: any thread. @since 0.1.0
 */
IADSR_API int iadsr_model_load(iadsr_model **out, const char *path,
                               uint32_t flags);

/**
 * Load a model from @p len bytes at @p buf (borrowed for the call).
 * Errors as iadsr_model_load() (without IADSR_ERR_IO).
 * Thread-safety: any thread. @since 0.1.0
 */
IADSR_API int iadsr_model_load_from_buffer(iadsr_model **out, const void *buf,
                                           size_t len, uint32_t flags);

/**
 * Save a backbone with its aligner and gate in one checkpoint (format 1.2;
 * 1.3 when a part carries its training record, see
 * iadsr_denoiser_create(); 1.4 when the model carries item ids or a
 * history-repeat record, see iadsr_model_with_item_ids(); either part may
 * be NULL, and with both NULL this is iadsr_model_save()). Atomic like iadsr_model_save(). iadsr_model_load()
 * reads such a file and ignores the aligner and gate. Each part's record is
 * written as it is: the save does not compare it with @p m (the denoiser
 * built from the loaded parts does).
 * @return as iadsr_model_save(), plus IADSR_ERR_DIM_MISMATCH (widths differ)
 * @since 0.3.0
 */
IADSR_API int iadsr_checkpoint_save(const iadsr_model *m,
                                    const iadsr_aligner *a,
                                    const iadsr_gate *g, const char *path,
                                    uint32_t flags);
/**
 * Load a checkpoint written by iadsr_checkpoint_save() or
 * iadsr_model_save(). @p aligner and @p gate may be NULL (not wanted);
 * otherwise they receive the stored component (with its training record,
 * format 1.3) or NULL when the file has none. Nothing is returned on
 * failure.
 * @return as iadsr_model_load()
 * @since 0.3.0
 */
IADSR_API int iadsr_checkpoint_load(iadsr_model **m, iadsr_aligner **aligner,
                                    iadsr_gate **gate, const char *path,
                                    uint32_t flags);
/** iadsr_checkpoint_load() from memory (the bytes are borrowed for the
 *  call). @since 0.3.0 */
IADSR_API int iadsr_checkpoint_load_from_buffer(iadsr_model **m,
                                                iadsr_aligner **aligner,
                                                iadsr_gate **gate,
                                                const void *buf, size_t len,
                                                uint32_t flags);

/** @} */

/* ------------------------------------------------------------------------ */
/** @defgroup api_training Training: settings, progress, plain and IADSR joint trainers
 *  @{ */

/* Element types of an iadsr_allreduce_fn buffer. */
#define IADSR_TYPE_F32 1 /**< float (IEEE binary32) */
#define IADSR_TYPE_F64 2 /**< double (IEEE binary64) */

/**
 * A host-supplied collective for data-parallel training across processes
 * (iadsr_train_params.allreduce; docs/DISTRIBUTED.md): sum @p buf, @p count
 * elements of @p type (IADSR_TYPE_F32 or IADSR_TYPE_F64), over every rank,
 * in place. Every rank calls it with the same count and type, in the same
 * order; on return every rank must hold the SAME sums, bit for bit (the
 * ranks then take identical optimizer steps): MPI_Reduce to one rank then
 * MPI_Bcast guarantees that; an all-reduce whose rounding may differ
 * between ranks does not. The library calls it from the thread that called
 * iadsr_trainer_fit() or iadsr_trainer_run_epoch(), never concurrently.
 *
 * @return 0 on success; any other value makes the training call fail with
 *         IADSR_ERR_ABORTED (the host's collective is then broken: the
 *         library cannot tell the other ranks, so a host should abort the
 *         job, as MPI's default error handler does)
 * @since 0.4.0
 */
typedef int (*iadsr_allreduce_fn)(void *buf, size_t count, int32_t type,
                                  void *user_data);

/** Training settings. Fill with iadsr_train_params_init(). */
typedef struct iadsr_train_params {
    uint32_t struct_size; /**< sizeof(iadsr_train_params); set by _init */
    int32_t split;        /**< IADSR_SPLIT_*; default LEAVE_ONE_OUT */
    int32_t max_epochs;   /**< 1..100000; default 200 */
    int32_t batch_size;   /**< users per mini-batch, 1..65536; default 256 */
    int32_t patience;     /**< stop after this many validations without a
                               better valid NDCG@10; 0 = never; default 10 */
    int32_t eval_every;   /**< epochs between validations, >= 1; default 1 */
    int32_t n_threads;    /**< library worker threads, 1..256; default 1.
                               Mini-batches are split across them (data
                               parallel). Training is bitwise reproducible
                               for a given seed AND n_threads (on the same
                               build and CPU); another thread count gives
                               other dropout draws. BLAS threads are set by
                               the BLAS (environment). */
    float learning_rate;  /**< Adam step size, > 0; default 1e-3 */
    float adam_beta1;     /**< [0,1); default 0.9 */
    float adam_beta2;     /**< [0,1); default 0.999 */
    float adam_eps;       /**< > 0; default 1e-8 */
    float weight_decay;   /**< L2 added to gradients, >= 0; default 0 */
    uint32_t flags;       /**< reserved, must be 0 */
    uint32_t reserved0;   /**< must be 0 */
    uint64_t seed;        /**< shuffling and dropout; default 1 */
    /* --- since 0.3.0 (struct_size 72) --- */
    /** Label smoothing of the next-item cross-entropy, in [0, 1): the
     *  target distribution puts 1 - eps on the true next item and
     *  eps / n_items on every item. Default 0 (plain cross-entropy). */
    float label_smoothing;
    /** Weight of the history penalty, >= 0; default 0 (off). At every
     *  training position t the loss gains history_penalty *
     *  sum_c -log(1 - p_c) over the distinct items c of the input window
     *  up to and including t, except the true next item (an unlikelihood
     *  term: it lowers the scores of items the user already has). With
     *  tied item embeddings the model otherwise tends to rank the last
     *  input item itself first; use it on data without repeat
     *  interactions. Applies to every backbone and to joint training. */
    float history_penalty;
    /* --- since 0.4.0 (struct_size 96 with 8-byte pointers) --- */
    /** Data-parallel training over n_ranks processes (docs/DISTRIBUTED.md);
     *  NULL (the default) trains in this process alone. Every rank creates
     *  its trainer from the same model, data, params and seed, differing
     *  only in rank; each step every rank builds the same global
     *  mini-batch of batch_size users, computes the gradients of its
     *  n_threads shares of it (shares rank*n_threads ..
     *  (rank+1)*n_threads - 1 of n_ranks*n_threads), and the summed
     *  gradient (one call per step: the gradient and three loss sums in
     *  one float buffer) drives the same Adam step on every rank. With the
     *  same seed, n_ranks ranks of n_threads threads make the shares,
     *  dropout draws and steps of one process of n_ranks*n_threads
     *  threads; the results differ only by the order in which the ranks'
     *  partial sums are added (none for 2 ranks of 1 thread). Validation,
     *  early stopping and the learning-rate back-off are decided on rank 0
     *  and sent to the others (one small call per epoch), so every rank
     *  stops after the same epoch; a progress callback that asks to stop
     *  on any rank stops all of them after that epoch (one more small
     *  call). iadsr_trainer_fit() checks that every rank starts and ends
     *  with the same weights and optimizer state (IADSR_ERR_MISMATCH if
     *  not). Not with IADSR_DENOISE_F_CARRY_MASKS, nor in iadsr_pipeline()
     *  (IADSR_ERR_UNSUPPORTED).
     *  Every rank must call the same training functions in the same
     *  order. */
    iadsr_allreduce_fn allreduce;
    void *allreduce_user;  /**< passed to allreduce as user_data */
    int32_t rank;          /**< this process, 0..n_ranks-1; default 0 */
    int32_t n_ranks;       /**< processes, 1..65536; default 1; above 1
                                requires allreduce */
} iadsr_train_params;

/** Fill @p p with defaults and set struct_size. NULL is a no-op.
 *  @since 0.1.0 */
IADSR_API void iadsr_train_params_init(iadsr_train_params *p);

/* Flags of iadsr_denoise_params.flags. */
/** Gate ablation: the noise score uses the collaborative views only,
 *  score_t = 3 cos(hbar, h_t) (scaled to the [-3, 3] range of the full
 *  score so the Gumbel temperature means the same); the aligner still
 *  trains as lambda_align says. */
#define IADSR_DENOISE_F_COLLAB_ONLY 1u
/** From the second epoch on, multiply each training position's input
 *  embedding by the gate's mask for it from the previous epoch. */
#define IADSR_DENOISE_F_CARRY_MASKS 2u
/** Train with the losses exactly as the paper states them (docs/METHOD.md,
 *  "Stage 2"): the reconstruction loss reaches the backbone's hidden
 *  states and, through the gate, the scores; every other row of a block is
 *  an InfoNCE negative, even one of the same item. Without it the
 *  reconstruction trains only the decoder and same-item rows are no
 *  negatives (stable on data of any shape: docs/RESULTS.md). */
#define IADSR_DENOISE_F_PAPER 4u
/** The gate is a trained noise detector instead of the paper's
 *  cosine-sum rule: during joint training items are inserted into the
 *  training sequences on the fly (uniformly and in proportion to
 *  popularity; labelled, never next-item targets) and a logistic detector
 *  on centred, leave-one-out cosine features of both views learns to find
 *  them; the gate's score is the detector's logit (keep iff > theta).
 *  Cannot be combined with IADSR_DENOISE_F_PAPER or
 *  IADSR_DENOISE_F_CARRY_MASKS. */
#define IADSR_DENOISE_F_DETECT 8u
/** With IADSR_DENOISE_F_DETECT only: the joint trainer keeps about one
 *  user in 16 out of training, chosen by a hash of the user's item
 *  sequence (the same sequence is chosen wherever it sits in a file;
 *  nothing is held out of a data set with fewer than 64 trainable users).
 *  iadsr_denoiser_propose_theta() then estimates the noise rate on those
 *  users, whose scores the backbone never fitted: a backbone fits the
 *  noise of its training data as next-item targets, so the noise there
 *  scores like clean items and a rate read off it comes out too low
 *  (docs/METHOD.md, "Theta without labels"). The gate keeps the flag;
 *  iadsr_gate_with_params() cannot change it. @since 0.3.0 */
#define IADSR_DENOISE_F_HOLDOUT 16u
/** With IADSR_DENOISE_F_DETECT only: each training step scores its rows
 *  for the detector with a second forward pass of the backbone without
 *  dropout, so that the detector learns on the same function of the
 *  weights that inference computes (without it the features come from
 *  the step's own hidden states, dropout included). Costs one more forward
 *  pass and one full-catalogue product per row each step. The gate keeps
 *  the flag. @since 0.3.0 */
#define IADSR_DENOISE_F_CLEAN_SCORES 32u
/** With IADSR_DENOISE_F_DETECT only; implies
 *  IADSR_DENOISE_F_CLEAN_SCORES. The gate acts during training as at
 *  inference: each training row's input item embedding is multiplied by
 *  the detector's decision on it (1 = keep iff its logit from the
 *  dropout-free pass is > 0, else 0), so that what the gate drops changes
 *  the next-item loss; that loss reaches the detector by the
 *  straight-through gradient (dL/dlogit = dL/dmask sigmoid'(logit)), and
 *  a prior holds the mean keep probability of a step's rows at the share
 *  of its rows that are real (docs/METHOD.md). The gate keeps the flag.
 *  @since 0.3.0 */
#define IADSR_DENOISE_F_INPUT_MASK 64u
/** Joint training only (iadsr_trainer_fit): the trainer backs the
 *  auxiliary losses' weight on the backbone off when validation stalls.
 *  Once ceil(patience / 2) validations in a row bring no better
 *  validation NDCG@10 (patience 0: never), the gradient the alignment and
 *  reconstruction losses send into the backbone's hidden states (that is,
 *  lambda_align and lambda_recon as the backbone sees them) is multiplied
 *  by 0.1 and the count starts again; after a second stall by 0.01 in all;
 *  from then on patience ends the training as usual. The aligner, decoder
 *  and detector keep training at the full weights, so the gate's features
 *  follow the backbone. The best-validation weights are kept throughout,
 *  so the back-off can only add candidates: a data set on which the given
 *  weights hold the backbone back gets a run that is, by its end, trained
 *  mostly on the next-item loss, without the host choosing the weights.
 *  Costs at most patience more epochs. iadsr_progress_info.aux_scale
 *  reports the factor of each epoch. Not stored in the gate (it describes
 *  the training, not the gate). @since 0.3.0 */
#define IADSR_DENOISE_F_BACKOFF 128u
/** With IADSR_DENOISE_F_DETECT only, not with
 *  IADSR_DENOISE_F_COLLAB_ONLY: the detector's logit gets a ninth term,
 *  the text consistency of each item: the cosine of its semantic row with
 *  the mean of the other rows of its sequence (each row normalised first;
 *  the host's user vector instead, when given), in the semantic space
 *  itself, centred on its sequence like the other features
 *  (docs/METHOD.md). Training is the same as without the flag; its weight
 *  is not learned but set when iadsr_trainer_snapshot_denoiser() makes the
 *  gate: the standard deviation of the detector's logits over the
 *  training data's scored positions divided by that of the feature (both
 *  then count alike), which costs that call two scoring passes of the
 *  training data. The learned weights come from inserted items the
 *  backbone never fitted; noise it fitted as next-item targets looks real
 *  to its likelihood features but not to the text. Costs a few D-wide sums
 *  a row at inference. The gate keeps the flag; readers before 0.4.0
 *  refuse a checkpoint with it. @since 0.4.0 */
#define IADSR_DENOISE_F_TEXT 256u

/**
 * Settings of IADSR (Stage 2 of docs/METHOD.md): the joint-training loss
 * weights and temperatures, and the gate's inference rule. Initialise with
 * iadsr_denoise_params_init(), then change fields.
 */
typedef struct iadsr_denoise_params {
    uint32_t struct_size; /**< sizeof(iadsr_denoise_params); set by _init */
    uint32_t flags;       /**< IADSR_DENOISE_F_* bits; default 0 */
    float lambda_align;   /**< weight of the InfoNCE alignment loss, in
                               [0, 1e6]; default 1 */
    float lambda_recon;   /**< weight of the reconstruction loss, in
                               [0, 1e6]; default 1 */
    float tau_align;      /**< InfoNCE temperature, in (0, 1e6]; default
                               0.1 */
    float tau_gumbel;     /**< Gumbel-sigmoid temperature, in (0, 1e6];
                               default 1 */
    float theta;          /**< inference: keep t iff score_t > theta, in
                               [-3, 3]; default 0 */
    float max_drop;       /**< inference: never drop more than
                               floor(max_drop * n) of a sequence of n
                               items (lowest scores first), [0, 1], read
                               to 6 decimals; default 0.3 */
    int32_t protect_last; /**< inference: 1 = never drop the most recent
                               item (default), 0 = it may be dropped */
    uint32_t reserved0;   /**< must be 0 */
    uint64_t seed;        /**< initialisation of W1, W2 and the decoder;
                               default 7 */
} iadsr_denoise_params;

/** Fill @p p with the defaults (struct_size included). @since 0.3.0 */
IADSR_API void iadsr_denoise_params_init(iadsr_denoise_params *p);

/** What the trainer reports after each epoch (see iadsr_progress_fn). */
typedef struct iadsr_progress_info {
    uint32_t struct_size;  /**< sizeof(iadsr_progress_info) in the library
                                that calls the callback (at least 64, the
                                0.1 size). The struct only grows at the
                                end: a callback built against a newer
                                header must read a newer field only when
                                struct_size covers it */
    int32_t epoch;         /**< 1-based epoch just finished */
    int32_t max_epochs;    /**< as configured */
    int32_t best_epoch;    /**< epoch of the best validation so far, 0 if none */
    double loss;           /**< mean training loss per position of the
                                epoch: the cross-entropy (smoothed when
                                label_smoothing > 0) plus the history
                                penalty; the IADSR total in joint training */
    double valid_hr10;     /**< validation HR@10, NaN when not evaluated */
    double valid_ndcg10;   /**< validation NDCG@10, NaN when not evaluated */
    double best_ndcg10;    /**< best validation NDCG@10 so far, NaN if none */
    double epoch_seconds;  /**< wall time of the epoch (training part) */
    double elapsed_seconds;/**< wall time since iadsr_trainer_fit() began */
    /* since 0.3.0 (struct_size >= 96): loss by term, per position */
    double loss_next;      /**< the next-item part (cross-entropy and history
                                penalty) */
    double loss_aux;       /**< lambda_align L_align + lambda_recon L_recon;
                                NaN outside joint training */
    double loss_detect;    /**< the detector gate's loss; NaN without one */
    double learning_rate;  /**< Adam's learning rate of the epoch */
    /** since 0.3.0 (struct_size >= 104): the factor the epoch applied to
     *  the auxiliary losses' gradient into the backbone (1, 0.1 or 0.01:
     *  see IADSR_DENOISE_F_BACKOFF); NaN outside joint training */
    double aux_scale;
} iadsr_progress_info;

/**
 * Progress callback, called on the thread that called iadsr_trainer_fit()
 * after every epoch. Return 0 to continue, non-zero to stop (the fit then
 * returns IADSR_ERR_ABORTED; the best model so far is still available).
 */
typedef int (*iadsr_progress_fn)(const iadsr_progress_info *info,
                                 void *user_data);

/**
 * Create a trainer that trains a private copy of @p init on @p train.
 *
 * @param out    receives the trainer; NULL on failure
 * @param init   starting model (e.g. from iadsr_model_create or a loaded
 *               checkpoint); borrowed for the call, not changed
 * @param train  the sequences; kept alive by the trainer
 * @param p      settings; NULL = defaults
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG, IADSR_ERR_UNSUPPORTED,
 *         IADSR_ERR_DIM_MISMATCH (dataset has more items than the model),
 *         IADSR_ERR_NOMEM
 *
 * Thread-safety: any thread. @since 0.1.0
 */
IADSR_API int iadsr_trainer_create(iadsr_trainer **out,
                                   const iadsr_model *init,
                                   const iadsr_dataset *train,
                                   const iadsr_train_params *p);

/**
 * Create a trainer for IADSR joint training: the backbone @p init, a fresh
 * aligner and gate (from @p dp), trained together on
 * L = L_next + lambda_align L_align + lambda_recon L_recon.
 *
 * @param out       receives the trainer; NULL on failure
 * @param init      starting backbone; borrowed for the call, not changed
 * @param train     the sequences (n_items <= the model's); kept alive by
 *                  the trainer
 * @param sem       semantic rows of the items (n_items >= the model's);
 *                  kept alive by the trainer
 * @param user_sem  NULL (the long-term semantic interest is the mean of the
 *                  sequence's item rows) or one row per user of @p train
 *                  (row u = dataset row u, same D as @p sem); kept alive
 * @param tp, dp    settings; NULL = defaults
 *
 * In-batch negatives of the alignment loss are the rows of each worker
 * thread's share of a mini-batch (the whole mini-batch with n_threads 1),
 * rows of the same item excepted. Unless dp->flags has
 * IADSR_DENOISE_F_PAPER, the auxiliary losses are made safe on data of
 * any shape: every term is a per-position mean (the user's long-term pair
 * weighs as one position), the reconstruction trains only the decoder,
 * and the auxiliary gradient on the backbone's hidden states is capped at
 * 3 times the norm of the next-item gradient (per worker share), so large
 * loss weights cannot drown the next-item task. Everything else is as iadsr_trainer_create(); iadsr_trainer_fit(),
 * iadsr_trainer_run_epoch() and iadsr_trainer_snapshot() work as before and
 * the progress loss is the total L per training position.
 * @return as iadsr_trainer_create(), plus IADSR_ERR_DIM_MISMATCH (the
 *         matrices do not cover the items or users, or their D differ)
 *
 * Thread-safety: any thread. @since 0.3.0
 */
IADSR_API int iadsr_trainer_create_joint(iadsr_trainer **out,
                                         const iadsr_model *init,
                                         const iadsr_dataset *train,
                                         const iadsr_semantic *sem,
                                         const iadsr_semantic *user_sem,
                                         const iadsr_train_params *tp,
                                         const iadsr_denoise_params *dp);

/** Release a trainer (NULL is a no-op). @since 0.1.0 */
IADSR_API void iadsr_trainer_free(iadsr_trainer *t);

/**
 * Run one epoch over the training part (shuffled mini-batches, full-softmax
 * cross-entropy at every real position, Adam).
 * @param t         the trainer
 * @param loss_out  receives the mean loss per training position; may be NULL
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG, IADSR_ERR_NUMERIC (non-finite
 *         loss or gradient; the working weights are left as before the
 *         failing step), IADSR_ERR_STATE (no training positions),
 *         IADSR_ERR_NOMEM
 *
 * Thread-safety: one thread per trainer. @since 0.1.0
 */
IADSR_API int iadsr_trainer_run_epoch(iadsr_trainer *t, double *loss_out);

/**
 * Train until max_epochs or early stopping on validation NDCG@10 (split
 * LEAVE_ONE_OUT), keeping the best model. @p cb may be NULL.
 * @return IADSR_OK, IADSR_ERR_ABORTED (callback), errors of
 *         iadsr_trainer_run_epoch()
 *
 * Thread-safety: one thread per trainer. @since 0.1.0
 */
IADSR_API int iadsr_trainer_fit(iadsr_trainer *t, iadsr_progress_fn cb,
                                void *user_data);

/**
 * Publish an immutable model: the best validated weights if the trainer
 * validated (LEAVE_ONE_OUT split), else the current weights. The trainer may
 * continue afterwards; the published model is independent of it. It keeps
 * the external item ids of the model the trainer was created from
 * (iadsr_model_with_item_ids()) and records whether the training
 * sequences repeated an item (iadsr_model_history_repeats()).
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG, IADSR_ERR_NOMEM
 *
 * Thread-safety: one thread per trainer. @since 0.1.0
 */
IADSR_API int iadsr_trainer_snapshot(iadsr_trainer *t, iadsr_model **out);

/**
 * Publish the aligner and gate of a joint trainer, taken from the same
 * epoch as iadsr_trainer_snapshot() takes the backbone. Either output may
 * be NULL. With IADSR_DENOISE_F_TEXT the gate's text weight is computed
 * here: two scoring passes of the training data on the trainer's threads
 * (with the gate output NULL, nothing is computed).
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG, IADSR_ERR_STATE (the trainer was
 *         made by iadsr_trainer_create()), IADSR_ERR_NOMEM
 *
 * Thread-safety: one thread per trainer. @since 0.3.0
 */
IADSR_API int iadsr_trainer_snapshot_denoiser(iadsr_trainer *t,
                                              iadsr_aligner **aligner,
                                              iadsr_gate **gate);

/** Epochs run so far (0 for NULL). @since 0.1.0 */
IADSR_API int32_t iadsr_trainer_epochs_done(const iadsr_trainer *t);

/**
 * A 64-bit checksum of the trainer's state: its weights, both Adam moments
 * and the step count. Equal on every rank of a data-parallel training
 * (iadsr_train_params.allreduce) that is in step; equal for two trainers
 * that took the same steps on the same build. Costs one pass over about
 * 3 x the model's size.
 *
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG (NULL)
 *
 * Thread-safety: one thread per trainer. @since 0.4.0
 */
IADSR_API int iadsr_trainer_checksum(const iadsr_trainer *t, uint64_t *out);

/** @} */

/* ------------------------------------------------------------------------ */
/** @defgroup api_scoring Inference contexts and scoring
 *  @{ */

/* Top-K flags (iadsr_ctx_topk(), iadsr_ctx_topk_batch(), and
 * iadsr_eval_params.flags). */
/** Never return (or, in evaluation, rank) the items of the input sequence. */
#define IADSR_TOPK_EXCLUDE_HISTORY 1u

/**
 * Context flag: iadsr_ctx_topk() scans a half-precision (fp16) copy of the
 * item table and re-scores in fp32 every item whose fp32 score could reach
 * the top k (an error bound proven in docs/PERFORMANCE.md), so its ids and
 * scores are identical, bit for bit, to the fp32 path while the scan reads
 * half the bytes. The copy costs the context 2 x dim x n_items bytes. The
 * batched calls are compute-bound and keep the fp32 scan. Needs the packed
 * kernels (x86-64 with AVX-512, dim a multiple of 16 up to 64):
 * iadsr_ctx_create() fails with IADSR_ERR_UNSUPPORTED elsewhere, and when a
 * table value is beyond the fp16 range (|x| > 65504). @since 0.3.0
 */
#define IADSR_CTX_F_FP16_SCAN 1u
/**
 * Context flag: as IADSR_CTX_F_FP16_SCAN with an int8 copy of the item
 * table, one scale per item (dim x n_items bytes plus 4 per item: a
 * quarter of the fp32 table, so it stays in a 2 MiB L2 cache where the
 * fp16 copy may not). Its bound is wider, so a few more items are
 * re-scored; the answer is still the fp32 answer, bit for bit. Needs the
 * packed kernels (else IADSR_ERR_UNSUPPORTED); not together with
 * IADSR_CTX_F_FP16_SCAN (IADSR_ERR_INVALID_ARG). @since 0.3.0
 */
#define IADSR_CTX_F_INT8_SCAN 2u

/** Context settings. Fill with iadsr_ctx_params_init(). */
typedef struct iadsr_ctx_params {
    uint32_t struct_size; /**< sizeof(iadsr_ctx_params); set by _init */
    int32_t max_batch;    /**< users scored per internal chunk, 1..65536;
                               default 64 (larger batches are chunked) */
    uint32_t flags;       /**< 0, IADSR_CTX_F_FP16_SCAN or
                               IADSR_CTX_F_INT8_SCAN */
    uint32_t reserved0;   /**< must be 0 */
} iadsr_ctx_params;

/** Fill @p p with defaults and set struct_size. NULL is a no-op.
 *  @since 0.1.0 */
IADSR_API void iadsr_ctx_params_init(iadsr_ctx_params *p);

/**
 * Create an inference context bound to @p m (kept alive by the context).
 * All scratch memory is allocated here: scoring calls never allocate.
 * @param out  receives the context; NULL on failure
 * @param m    the model to score with; kept alive by the context
 * @param p    NULL = defaults
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG, IADSR_ERR_UNSUPPORTED,
 *         IADSR_ERR_NOMEM
 *
 * Thread-safety: any thread; the model may be shared by many contexts.
 * @since 0.1.0
 */
IADSR_API int iadsr_ctx_create(iadsr_ctx **out, const iadsr_model *m,
                               const iadsr_ctx_params *p);

/** Release a context (NULL is a no-op). @since 0.1.0 */
IADSR_API void iadsr_ctx_free(iadsr_ctx *c);

/** The model a context is bound to (borrowed), NULL for NULL.
 *  @since 0.1.0 */
IADSR_API const iadsr_model *iadsr_ctx_model(const iadsr_ctx *c);

/**
 * Next-item scores of every item after the sequence @p seq.
 *
 * @param c           the context (its scratch is reused)
 * @param seq         item ids, oldest first, each in 1..n_items; borrowed.
 *                    Only the last max_seq_len items are used.
 * @param n_seq       >= 1
 * @param scores_out  receives n_items + 1 floats indexed by item id;
 *                    scores_out[0] = -INFINITY
 * @param scores_cap  capacity of scores_out in floats, >= n_items + 1
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG, IADSR_ERR_OUT_OF_RANGE (an id),
 *         IADSR_ERR_BUFFER_TOO_SMALL
 *
 * Thread-safety: one thread per ctx; the model may be shared. @since 0.1.0
 */
IADSR_API int iadsr_ctx_score(iadsr_ctx *c, const int32_t *seq, int32_t n_seq,
                              float *scores_out, int64_t scores_cap);

/**
 * Scores for a batch of sequences in CSR form (see iadsr_dataset_create()).
 * Row u of @p scores_out (n_items + 1 floats) holds user u's scores.
 * @param c           the context
 * @param items       the item ids of all sequences, each in 1..n_items;
 *                    user u's are items[offsets[u] .. offsets[u+1])
 * @param offsets     n_users + 1 entries, offsets[0] == 0, non-decreasing
 * @param n_users     number of sequences, >= 1 (scored max_batch at a
 *                    time)
 * @param scores_out  receives n_users rows of n_items + 1 floats; entry 0
 *                    of each row is -INFINITY
 * @param scores_cap  capacity in floats, >= n_users * (n_items + 1)
 * @return as iadsr_ctx_score(); every sequence must be non-empty
 *
 * Thread-safety: one thread per ctx. @since 0.1.0
 */
IADSR_API int iadsr_ctx_score_batch(iadsr_ctx *c, const int32_t *items,
                                    const int64_t *offsets, int64_t n_users,
                                    float *scores_out, int64_t scores_cap);

/**
 * The @p k best next items after @p seq, best first.
 * @param c           the context
 * @param seq         item ids, oldest first, each in 1..n_items (only the
 *                    last max_seq_len are used)
 * @param n_seq       >= 1
 * @param k           1..n_items
 * @param flags       0 or IADSR_TOPK_EXCLUDE_HISTORY
 * @param ids_out     k item ids; padded with -1 when fewer candidates exist
 * @param scores_out  k scores (may be NULL); padded with -INFINITY
 * @return as iadsr_ctx_score()
 *
 * Thread-safety: one thread per ctx. @since 0.1.0
 */
IADSR_API int iadsr_ctx_topk(iadsr_ctx *c, const int32_t *seq, int32_t n_seq,
                             int32_t k, uint32_t flags, int32_t *ids_out,
                             float *scores_out);

/**
 * Top-K for a batch in CSR form: row u of @p ids_out / @p scores_out (k
 * entries each) belongs to user u. Buffers hold n_users * k entries.
 * Thread-safety: one thread per ctx. @since 0.1.0
 */
IADSR_API int iadsr_ctx_topk_batch(iadsr_ctx *c, const int32_t *items,
                                   const int64_t *offsets, int64_t n_users,
                                   int32_t k, uint32_t flags, int32_t *ids_out,
                                   float *scores_out);

/**
 * The user representation h after the sequence @p seq: the final hidden
 * state the backbone (SASRec, pre-LN SASRec, GRU4Rec, Caser alike) computes
 * for the last position, from which iadsr_ctx_score() derives every score
 * as a plain dot product with the item table, with no bias and no
 * normalisation:
 *
 *     score[i] = sum_{k < d} out[k] * E[i * d + k],   i = 1..n_items
 *
 * where E = iadsr_model_item_embeddings() and d = iadsr_model_dim(). (The
 * padding row 0 of E is zeros; iadsr_ctx_score() reports -INFINITY for it
 * because id 0 is never a candidate.) The two agree up to float rounding
 * (the library may sum in another order), so @p out can be served by a
 * maximum-inner-product index over the rows of E, e.g. those written by
 * `iadsr export`.
 *
 * @param c      the context (its scratch is reused)
 * @param seq    item ids, oldest first, each in 1..n_items; borrowed. Only
 *               the last max_seq_len items are used, as by
 *               iadsr_ctx_score().
 * @param n_seq  >= 1
 * @param out    receives d = iadsr_model_dim() floats; written only on
 *               success
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG (a NULL or foreign context,
 *         NULL @p seq or @p out, @p n_seq < 1), IADSR_ERR_OUT_OF_RANGE
 *         (an id)
 *
 * Thread-safety: one thread per ctx; the model may be shared. @since 0.3.0
 */
IADSR_API int iadsr_ctx_user_vector(iadsr_ctx *c, const int32_t *seq,
                                    int32_t n_seq, float *out);

/**
 * User representations for a batch of sequences in CSR form, as
 * iadsr_ctx_score_batch() reads them (encoded max_batch at a time): row u
 * of @p out is iadsr_ctx_user_vector() of user u's sequence, and
 * iadsr_ctx_score_batch() row u equals its dot products with the rows of
 * the item table (see iadsr_ctx_user_vector() for the exact formula).
 * @param c        the context
 * @param items    the item ids of all sequences, each in 1..n_items;
 *                 user u's are items[offsets[u] .. offsets[u+1])
 * @param offsets  n_users + 1 entries, offsets[0] == 0, non-decreasing;
 *                 every sequence non-empty
 * @param n_users  number of sequences, >= 1
 * @param out      receives n_users x d floats, row-major (d =
 *                 iadsr_model_dim()); written only on success
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG (a NULL or foreign context, a
 *         NULL array, @p n_users < 1, offsets[0] != 0, an empty sequence or
 *         decreasing offsets), IADSR_ERR_OUT_OF_RANGE (an id), as
 *         iadsr_ctx_score_batch()
 *
 * Thread-safety: one thread per ctx. @since 0.3.0
 */
IADSR_API int iadsr_ctx_user_vector_batch(iadsr_ctx *c, const int32_t *items,
                                          const int64_t *offsets,
                                          int64_t n_users, float *out);

/** iadsr_topk_params.flags bit (iadsr_ctx_topk_v2() and
 *  iadsr_ctx_topk_batch_v2() only): skip history ids outside 1..n_items
 *  (0, negative, too large, e.g. items added to the catalogue after the
 *  model was trained) instead of failing with IADSR_ERR_OUT_OF_RANGE. The
 *  number skipped is reported per user; the result equals that of the
 *  history without them. iadsr_ctx_topk(), iadsr_ctx_topk_batch() and
 *  iadsr_eval_params.flags do not accept it (IADSR_ERR_UNSUPPORTED).
 *  @since 0.3.0 */
#define IADSR_TOPK_SKIP_UNKNOWN 2u

/**
 * A top-K request for iadsr_ctx_topk_v2() and iadsr_ctx_topk_batch_v2():
 * what the history's items become when some are unknown, what a user with
 * no history gets, and which items may be returned. Fill with
 * iadsr_topk_params_init() (no flag, no fallback, no filter: the results
 * of iadsr_ctx_topk()), then set what you need. NULL means those defaults.
 *
 * The arrays are borrowed for the duration of the call only. In a batch
 * the same request (fallback and filters) applies to every user.
 *
 * Cold users: a user whose history is empty (n_seq == 0, an empty row of
 * the batch, or every id skipped by IADSR_TOPK_SKIP_UNKNOWN) is scored
 * from the fallback the request gives, at most one of:
 * - cold_item_scores: the host's own scores, typically popularity (item
 *   counts as floats); the returned scores are these values, exactly;
 * - cold_user_vector: a user representation h of d = iadsr_model_dim()
 *   floats (e.g. the mean of iadsr_ctx_user_vector() over recent users);
 *   the scores are its dot products with the item table, computed as
 *   iadsr_ctx_score() computes them from a history's h.
 * Without a fallback an empty history fails with IADSR_ERR_INVALID_ARG, as
 * in iadsr_ctx_topk(). The model itself carries no popularity.
 *
 * Candidate filters: allow_ids (only these items may be returned) and
 * deny_ids (these never are), each an array of item ids in 1..n_items in
 * any order; duplicates are harmless. They combine with each other and
 * with IADSR_TOPK_EXCLUDE_HISTORY: an item is a candidate when it is in
 * the allow-list (if there is one), not in the deny-list, not (with the
 * flag) in the history, and its score is neither -INFINITY nor NaN.
 * allow_ids == NULL means no allow-list (every item allowed); a non-NULL
 * allow_ids with n_allow == 0 is an empty allow-list, so nothing is
 * returned.
 *
 * The layout is frozen (fields are only appended): 72 bytes on 64-bit
 * platforms, the oldest size the library accepts.
 */
typedef struct iadsr_topk_params {
    uint32_t struct_size;  /**< sizeof(iadsr_topk_params); set by _init */
    uint32_t flags;        /**< IADSR_TOPK_EXCLUDE_HISTORY,
                                IADSR_TOPK_SKIP_UNKNOWN; default 0 */
    const float *cold_item_scores; /**< NULL (default) or the scores of a
                                cold user, n_items + 1 floats indexed by item
                                id like iadsr_ctx_score()'s output (entry 0
                                is ignored; -INFINITY or NaN entries are
                                never returned) */
    int64_t n_cold_item_scores; /**< length of cold_item_scores: n_items + 1,
                                or 0 when it is NULL */
    const float *cold_user_vector; /**< NULL (default) or a cold user's
                                representation, d finite floats */
    int64_t cold_user_vector_dim; /**< length of cold_user_vector: d =
                                iadsr_model_dim(), or 0 when it is NULL */
    const int32_t *allow_ids; /**< NULL (default): no allow-list; else the
                                only items that may be returned */
    int64_t n_allow;       /**< entries of allow_ids, >= 0; 0 when NULL */
    const int32_t *deny_ids; /**< NULL (default) or items never returned */
    int64_t n_deny;        /**< entries of deny_ids, >= 0; 0 when NULL */
} iadsr_topk_params;

/** Fill @p p with the defaults (struct_size included): no flag, no
 *  cold-user fallback, no filter. NULL is a no-op. @since 0.3.0 */
IADSR_API void iadsr_topk_params_init(iadsr_topk_params *p);

/**
 * The @p k best next items after @p seq under the request @p p, best first:
 * iadsr_ctx_topk() with unknown-id skipping, cold-user fallbacks and
 * candidate filters (see iadsr_topk_params). With @p p NULL (or fresh from
 * iadsr_topk_params_init()) and n_seq >= 1 the result is that of
 * iadsr_ctx_topk(c, seq, n_seq, k, 0, ...), bitwise; a warm user's scores
 * are those of iadsr_ctx_score() for the history (unknown ids removed).
 *
 * Order and padding: by decreasing score; equal scores by increasing item
 * id (deterministic). When fewer than @p k items are candidates (filters,
 * the excluded history, k > n_items), the first *n_found_out entries are
 * the results and the rest are padding, -1 in @p ids_out and -INFINITY in
 * @p scores_out.
 *
 * @param c             the context
 * @param seq           the history, oldest first; borrowed; only the last
 *                      max_seq_len valid ids are encoded. May be NULL when
 *                      @p n_seq is 0.
 * @param n_seq         >= 0; 0 is a cold user
 * @param k             >= 1; may exceed the number of candidates (and
 *                      n_items)
 * @param p             the request; NULL = defaults
 * @param ids_out       receives k item ids
 * @param scores_out    NULL or receives k scores
 * @param n_found_out   NULL or receives the number of results (0..k)
 * @param n_skipped_out NULL or receives the number of history ids skipped
 *                      by IADSR_TOPK_SKIP_UNKNOWN (0 without the flag)
 * @return IADSR_OK;
 *         IADSR_ERR_INVALID_ARG (a NULL or foreign context, NULL @p ids_out,
 *         NULL @p seq with n_seq > 0, n_seq < 0, k < 1, struct_size below
 *         72 or implausibly large, a negative count, a NULL array with a
 *         non-zero count, both cold fallbacks set, an empty history without
 *         a fallback);
 *         IADSR_ERR_OUT_OF_RANGE (a history id outside 1..n_items without
 *         IADSR_TOPK_SKIP_UNKNOWN, or an allow/deny id outside 1..n_items);
 *         IADSR_ERR_DIM_MISMATCH (n_cold_item_scores != n_items + 1 or
 *         cold_user_vector_dim != d with the array set);
 *         IADSR_ERR_NUMERIC (cold_user_vector has a NaN or Inf);
 *         IADSR_ERR_UNSUPPORTED (unknown flag bits, or a larger struct with
 *         non-zero bytes this library does not know).
 *         The request is validated in full before anything is scored, even
 *         parts the call does not use (a fallback for a warm user); the
 *         outputs are written only on success. Never allocates.
 *
 * Thread-safety: one thread per ctx; the request's arrays may be shared
 * read-only by many threads. @since 0.3.0
 */
IADSR_API int iadsr_ctx_topk_v2(iadsr_ctx *c, const int32_t *seq,
                                int32_t n_seq, int32_t k,
                                const iadsr_topk_params *p, int32_t *ids_out,
                                float *scores_out, int32_t *n_found_out,
                                int32_t *n_skipped_out);

/**
 * iadsr_ctx_topk_v2() for a batch of histories in CSR form: user u's are
 * items[offsets[u] .. offsets[u+1]), and an empty row is a cold user. Row u
 * of @p ids_out / @p scores_out (k entries each, row-major) is user u's
 * answer, as iadsr_ctx_topk_v2() gives it for that history and request up
 * to float rounding of the scores (warm users are encoded and scored
 * max_batch at a time, as by iadsr_ctx_topk_batch()). Every cold user of
 * the batch gets the same row.
 *
 * @param c             the context
 * @param items         the ids of all histories; may be NULL when every
 *                      history is empty (offsets[n_users] == 0)
 * @param offsets       n_users + 1 entries, offsets[0] == 0, non-decreasing
 * @param n_users       >= 1
 * @param k             >= 1, results per user
 * @param p             the request, applied to every user; NULL = defaults
 * @param ids_out       receives n_users * k ids
 * @param scores_out    NULL or receives n_users * k scores
 * @param out_cap       capacity of @p ids_out (and of @p scores_out when
 *                      not NULL) in entries, >= n_users * k
 * @param n_found_out   NULL or n_users entries: results per user (0..k)
 * @param n_skipped_out NULL or n_users entries: ids skipped per user
 *                      (int64_t, as a history's length in @p offsets)
 * @return as iadsr_ctx_topk_v2(), IADSR_ERR_INVALID_ARG for NULL
 *         @p offsets, NULL @p items with ids present, n_users < 1,
 *         offsets[0] != 0, decreasing offsets or n_users * k beyond
 *         int64, and IADSR_ERR_BUFFER_TOO_SMALL for out_cap < n_users * k
 *         (as iadsr_ctx_score_batch(); the message gives the capacity
 *         needed); nothing is written
 *         unless the whole batch succeeds. Never allocates.
 *
 * Thread-safety: one thread per ctx. @since 0.3.0
 */
IADSR_API int iadsr_ctx_topk_batch_v2(iadsr_ctx *c, const int32_t *items,
                                      const int64_t *offsets, int64_t n_users,
                                      int32_t k, const iadsr_topk_params *p,
                                      int32_t *ids_out, float *scores_out,
                                      int64_t out_cap, int32_t *n_found_out,
                                      int64_t *n_skipped_out);

/** @} */

/* ------------------------------------------------------------------------ */
/** @defgroup api_evaluation Evaluation
 *  @{ */

/* Evaluation targets (iadsr_eval_params.target). */
#define IADSR_EVAL_TEST 1  /**< history = seq[:-1], target = seq[-1] */
#define IADSR_EVAL_VALID 2 /**< history = seq[:-2], target = seq[-2] */

/** Evaluation settings. Fill with iadsr_eval_params_init(). */
typedef struct iadsr_eval_params {
    uint32_t struct_size; /**< sizeof(iadsr_eval_params); set by _init */
    int32_t target;       /**< IADSR_EVAL_TEST (default) or IADSR_EVAL_VALID */
    int32_t n_threads;    /**< worker threads, 1..256; default 1 */
    uint32_t flags;       /**< 0 or IADSR_TOPK_EXCLUDE_HISTORY */
} iadsr_eval_params;

/** Fill @p p with defaults and set struct_size. NULL is a no-op.
 *  @since 0.1.0 */
IADSR_API void iadsr_eval_params_init(iadsr_eval_params *p);

/**
 * Ranking metrics over all items (full ranking); written by
 * iadsr_evaluate() and iadsr_semantic_evaluate(), and embedded in
 * iadsr_pipeline_result.
 *
 * The caller sets struct_size to sizeof(iadsr_metrics), at least 64 (the
 * 0.1 size); the library writes up to the smaller of it and its own size
 * and keeps the caller's struct_size. Because iadsr_pipeline_result embeds
 * it by value, this 64-byte layout is frozen there: a metric added later
 * never moves a field of iadsr_pipeline_result (docs/ABI.md).
 */
typedef struct iadsr_metrics {
    uint32_t struct_size; /**< set by the caller to sizeof(iadsr_metrics),
                               >= 64; kept by the library */
    uint32_t reserved0;   /**< written as 0 */
    int64_t n_users;      /**< users evaluated (those with a target) */
    double hr5;           /**< hit ratio at 5 */
    double hr10;          /**< hit ratio at 10 */
    double hr20;          /**< hit ratio at 20 */
    double ndcg5;         /**< NDCG at 5 */
    double ndcg10;        /**< NDCG at 10 */
    double ndcg20;        /**< NDCG at 20 */
} iadsr_metrics;

/**
 * Leave-one-out evaluation with full ranking: for each user with a target,
 * rank = number of items (other than the target, and other than history
 * items when IADSR_TOPK_EXCLUDE_HISTORY is set) scoring at least as high as
 * the target (ties count against it, since 0.3.0: a scorer that gives many
 * items one score gains nothing from it); HR\@K = [rank < K], NDCG\@K = [rank < K] / log2(rank + 2),
 * averaged over users. Users without a target (too short) are skipped.
 * @param m    the model (only read)
 * @param d    the users' sequences; a user needs 2 items for the test
 *             target, 3 for the validation target
 * @param p    NULL = defaults (the test target, 1 thread, flags 0)
 * @param out  receives the metrics; its struct_size must be set by the
 *             caller (>= 64), and only the first min(struct_size,
 *             sizeof(iadsr_metrics)) bytes are written, on success only
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG (also struct_size < 64),
 *         IADSR_ERR_DIM_MISMATCH (dataset
 *         items exceed the model), IADSR_ERR_STATE (no user has a target),
 *         IADSR_ERR_NOMEM
 *
 * Thread-safety: any thread; the model and dataset may be shared.
 * @since 0.1.0
 */
IADSR_API int iadsr_evaluate(const iadsr_model *m, const iadsr_dataset *d,
                             const iadsr_eval_params *p, iadsr_metrics *out);

/**
 * The per-user ranks behind iadsr_evaluate(): the same protocol and the
 * same users (leave-one-out, full ranking, history items ranked unless
 * IADSR_TOPK_EXCLUDE_HISTORY, ties counted against the target), for a
 * host that wants metrics iadsr_metrics does not hold (another K, MRR,
 * per-user analyses or significance tests). Entry i is the user of
 * dataset row @p users[i] and the 0-based rank of its target
 * (@p ranks[i], 0 = top), in increasing row order; users without a target
 * are skipped. HR\@K and NDCG\@K computed from these ranks equal those of
 * iadsr_evaluate(). The ranks do not depend on the thread count.
 * With @p users and @p ranks NULL and @p capacity 0 it only reports the
 * number of evaluated users in *@p n_out (no scoring is done).
 * @param m         the model (only read)
 * @param d         the users' sequences (as for iadsr_evaluate())
 * @param p         NULL = defaults (the test target, 1 thread, flags 0)
 * @param users     receives the dataset row of each evaluated user; NULL
 *                  only with capacity 0
 * @param ranks     receives the 0-based rank of each user's target; NULL
 *                  only with capacity 0
 * @param capacity  entries available in each of @p users and @p ranks
 * @param n_out     receives the number of evaluated users (also on
 *                  IADSR_ERR_BUFFER_TOO_SMALL); must not be NULL
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG (NULL or foreign handle, NULL
 *         n_out, capacity < 0, a NULL buffer with capacity > 0, bad
 *         params), IADSR_ERR_BUFFER_TOO_SMALL (capacity below the number
 *         of evaluated users: *n_out is set, the buffers are untouched),
 *         IADSR_ERR_DIM_MISMATCH (dataset items exceed the model),
 *         IADSR_ERR_STATE (no user has a target), IADSR_ERR_NOMEM
 *
 * Thread-safety: any thread; the model and dataset may be shared.
 * @since 0.3.0
 */
IADSR_API int iadsr_evaluate_ranks(const iadsr_model *m,
                                   const iadsr_dataset *d,
                                   const iadsr_eval_params *p, int64_t *users,
                                   int32_t *ranks, int64_t capacity,
                                   int64_t *n_out);

/** @} */

/* ------------------------------------------------------------------------ */
/** @defgroup api_semantic Semantic item matrices
 *  @{ */

/** Layout flag for semantic matrices and .npy files (combinable with
 * IADSR_FLAG_BORROW and, for saves, IADSR_SAVE_NO_FSYNC). Without it row r
 * (0-based) holds item id r + 1, so n_rows == n_items. With it row r holds
 * item id r and row 0 is the padding row (ignored on input, written as zeros
 * on output), so n_rows == n_items + 1: the layout `iadsr embed-text` writes
 * and most Python code uses (embedding[item_id]). @since 0.2.0 */
#define IADSR_SEMANTIC_ROW0_PADDING 2u

/**
 * Create a semantic matrix from host memory (float32, row-major).
 *
 * @param out     receives the matrix; NULL on failure
 * @param data    n_rows rows of @p dim floats; row r starts at data + r * ld
 * @param n_rows  number of rows (n_items, or n_items + 1 with
 *                IADSR_SEMANTIC_ROW0_PADDING); n_items must be 1..2147483646
 * @param dim     D >= 1 (at most 1048576)
 * @param ld      leading dimension in floats, >= dim
 * @param flags   IADSR_FLAG_COPY (default: the data is copied, packed with
 *                ld = dim) or IADSR_FLAG_BORROW (zero-copy: the host keeps
 *                @p data alive and unchanged until the matrix and everything
 *                created from it are freed), optionally or-ed with
 *                IADSR_SEMANTIC_ROW0_PADDING
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG (NULL, @p data not aligned to 4
 *         bytes, dim < 1, ld < dim, too few rows, unknown flag),
 *         IADSR_ERR_NUMERIC (a NaN or Inf: nothing is
 *         created and the message names the first bad item id and column),
 *         IADSR_ERR_NOMEM
 *
 * Thread-safety: any thread. @since 0.2.0
 */
IADSR_API int iadsr_semantic_create(iadsr_semantic **out, const float *data,
                                    int64_t n_rows, int32_t dim, int64_t ld,
                                    uint32_t flags);

/** Release a semantic matrix (NULL is a no-op). @since 0.2.0 */
IADSR_API void iadsr_semantic_free(iadsr_semantic *s);

/** Number of items (0 for NULL). @since 0.2.0 */
IADSR_API int32_t iadsr_semantic_n_items(const iadsr_semantic *s);

/** Embedding dimension D (0 for NULL). @since 0.2.0 */
IADSR_API int32_t iadsr_semantic_dim(const iadsr_semantic *s);

/** Number of all-zero rows, i.e. items without text (0 for NULL).
 *  @since 0.2.0 */
IADSR_API int32_t iadsr_semantic_n_zero_rows(const iadsr_semantic *s);

/**
 * Borrowed pointer to item @p item's row (D floats), valid while the matrix
 * lives; NULL for NULL or an id outside 1..n_items.
 * @since 0.2.0
 */
IADSR_API const float *iadsr_semantic_row(const iadsr_semantic *s,
                                          int32_t item);

/**
 * Check that the matrix fits a model or dataset.
 * @param s        the matrix
 * @param n_items  expected number of items (> 0)
 * @param dim      expected D, or 0 for any
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG, IADSR_ERR_DIM_MISMATCH (the
 *         message states both values)
 *
 * Thread-safety: any thread. @since 0.2.0
 */
IADSR_API int iadsr_semantic_check(const iadsr_semantic *s, int32_t n_items,
                                   int32_t dim);

/**
 * Text-only next-item scores: the cosine between each item's row and the
 * mean of the rows of the items in @p seq (zero rows included in the mean as
 * zeros; a zero mean or a zero item row gives cosine 0). A baseline that
 * shows how much signal the text carries.
 *
 * @param s         the matrix
 * @param seq       item ids, oldest first, each in 1..n_items
 * @param n         length, >= 1
 * @param scores    receives n_items + 1 floats; scores[0] = -INFINITY
 * @param capacity  number of floats in @p scores, >= n_items + 1
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG, IADSR_ERR_OUT_OF_RANGE,
 *         IADSR_ERR_BUFFER_TOO_SMALL
 *
 * Thread-safety: any thread; does not allocate. @since 0.2.0
 */
IADSR_API int iadsr_semantic_scores(const iadsr_semantic *s,
                                    const int32_t *seq, int32_t n,
                                    float *scores, int64_t capacity);

/**
 * Evaluate the text-only recommender of iadsr_semantic_scores() with the
 * protocol of iadsr_evaluate() (leave-one-out, full ranking).
 * @return as iadsr_evaluate(), plus IADSR_ERR_DIM_MISMATCH (the matrix
 *         has fewer items than the dataset)
 *
 * Thread-safety: any thread. @since 0.2.0
 */
IADSR_API int iadsr_semantic_evaluate(const iadsr_semantic *s,
                                      const iadsr_dataset *d,
                                      const iadsr_eval_params *p,
                                      iadsr_metrics *out);

/** @} */

/* ------------------------------------------------------------------------ */
/** @defgroup api_npy Semantic matrices and .npy files
 *  @{ */

/**
 * Create a semantic matrix from the bytes of a .npy file (see
 * iadsr_npy_decode() for what is accepted). The bytes are borrowed for the
 * call only; the matrix owns a float32 copy.
 *
 * @param out    receives the matrix; NULL on failure
 * @param buf    the bytes of the .npy file
 * @param len    number of bytes at @p buf
 * @param flags  0 or IADSR_SEMANTIC_ROW0_PADDING (how rows map to item ids)
 * @return as iadsr_npy_decode() and iadsr_semantic_create(); a valid .npy
 *         whose shape gives no matrix (no item, D > 1048576) is
 *         IADSR_ERR_FORMAT
 *
 * Thread-safety: any thread. @since 0.2.0
 */
IADSR_API int iadsr_semantic_parse_npy(iadsr_semantic **out, const void *buf,
                                       size_t len, uint32_t flags);

/**
 * Read a .npy file into a semantic matrix.
 * @return as iadsr_semantic_parse_npy(), plus IADSR_ERR_IO (cannot open or
 *         read; the message names the path)
 *
 * Thread-safety: any thread. @since 0.2.0
 */
IADSR_API int iadsr_semantic_load_npy(iadsr_semantic **out, const char *path,
                                      uint32_t flags);

/**
 * Write a semantic matrix as a .npy file (version 1.0, '<f4', C order,
 * 2-D), atomically: a temporary file in the same directory, fsync, rename.
 * On failure the previous file at @p path is untouched.
 *
 * @param s      the matrix
 * @param path   the file to create or replace
 * @param flags  IADSR_SEMANTIC_ROW0_PADDING (write n_items + 1 rows with a
 *               zero row 0) and/or IADSR_SAVE_NO_FSYNC
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG, IADSR_ERR_UNSUPPORTED (unknown
 *         flag), IADSR_ERR_IO, IADSR_ERR_NOMEM
 *
 * Thread-safety: any thread. @since 0.2.0
 */
IADSR_API int iadsr_semantic_save_npy(const iadsr_semantic *s,
                                      const char *path, uint32_t flags);

/**
 * Decode the bytes of a .npy file holding a 2-D float array.
 *
 * Accepted: format versions 1.0, 2.0 and 3.0; dtype '<f4' or '<f2' (half
 * precision is widened to float32; '=' is read as little-endian, '>' and
 * '|' are refused), fortran_order False, a 2-D shape. The header is untrusted:
 * its dictionary is parsed strictly, and the data size implied by the shape
 * must equal the bytes that follow the header exactly.
 *
 * *n_rows and *n_cols are set whenever the header is valid. With @p out
 * NULL the call only validates and reports the shape (IADSR_OK); with a
 * capacity below n_rows * n_cols it returns IADSR_ERR_BUFFER_TOO_SMALL.
 * Values are returned as stored (NaN/Inf included: validation belongs to
 * the consumer, e.g. iadsr_semantic_create()).
 *
 * @param buf       the bytes of the file; borrowed for the call
 * @param len       number of bytes at @p buf
 * @param out       receives n_rows * n_cols floats, row-major; may be NULL
 * @param capacity  floats available at @p out
 * @param n_rows    receives the number of rows (0 when the header is
 *                  invalid); must not be NULL
 * @param n_cols    receives the number of columns, likewise
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG, IADSR_ERR_FORMAT (bad magic,
 *         header, shape or size; the message says which),
 *         IADSR_ERR_VERSION (unknown format version), IADSR_ERR_UNSUPPORTED
 *         (another dtype, big-endian, fortran_order True, not 2-D),
 *         IADSR_ERR_BUFFER_TOO_SMALL
 *
 * Thread-safety: any thread. @since 0.2.0
 */
IADSR_API int iadsr_npy_decode(const void *buf, size_t len, float *out,
                               int64_t capacity, int64_t *n_rows,
                               int64_t *n_cols);

/**
 * Write a float32 matrix as a .npy file (version 1.0, '<f4', C order),
 * atomically (temporary file, fsync, rename; the old file survives any
 * failure).
 * @param path    the file to create or replace
 * @param data    n_rows x n_cols floats, row r at data + r * ld
 * @param n_rows  number of rows, >= 1
 * @param n_cols  number of columns, >= 1
 * @param ld      floats from one row to the next, >= n_cols
 * @param flags   0 or IADSR_SAVE_NO_FSYNC
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG, IADSR_ERR_UNSUPPORTED, IADSR_ERR_IO,
 *         IADSR_ERR_NOMEM (the file is built in memory first)
 *
 * Thread-safety: any thread. @since 0.2.0
 */
IADSR_API int iadsr_npy_save(const char *path, const float *data,
                             int64_t n_rows, int64_t n_cols, int64_t ld,
                             uint32_t flags);

/** @} */

/* ------------------------------------------------------------------------ */
/** @defgroup api_iadsr IADSR: aligner, denoising gate, denoiser (since 0.3.0)
 *  @{ */

/**
 * Create an aligner with fresh weights: the projections W1 (short-term) and
 * W2 (long-term) from the D-dimensional semantic space into the backbone's
 * d-dimensional space, Xavier-uniform initialised from p->seed. Immutable
 * and shareable once created; trained aligners come from
 * iadsr_trainer_snapshot_denoiser() or a checkpoint.
 * @param out      receives the aligner; NULL on failure
 * @param dim      backbone width d, 1..4096
 * @param sem_dim  semantic width D, 1..1048576
 * @param p        NULL = defaults (tau_align is stored in the aligner)
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG, IADSR_ERR_NOMEM
 *
 * Thread-safety: any thread. @since 0.3.0
 */
IADSR_API int iadsr_aligner_create(iadsr_aligner **out, int32_t dim,
                                   int32_t sem_dim,
                                   const iadsr_denoise_params *p);
/** Release an aligner (NULL is a no-op). @since 0.3.0 */
IADSR_API void iadsr_aligner_free(iadsr_aligner *a);
/** Backbone width d (0 for NULL). @since 0.3.0 */
IADSR_API int32_t iadsr_aligner_dim(const iadsr_aligner *a);
/** Semantic width D (0 for NULL). @since 0.3.0 */
IADSR_API int32_t iadsr_aligner_semantic_dim(const iadsr_aligner *a);
/**
 * Project one semantic vector: out = W1 x (@p which = 1) or W2 x (2).
 * @param a      the aligner
 * @param which  1 (W1, the short-term projection) or 2 (W2, the long-term
 *               one)
 * @param x      D floats
 * @param out    receives d floats
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG
 *
 * Thread-safety: any thread. @since 0.3.0
 */
IADSR_API int iadsr_aligner_project(const iadsr_aligner *a, int32_t which,
                                    const float *x, float *out);

/**
 * Create a gate with a fresh decoder (Wd: d x d, bd: d) and the inference
 * rule of @p p (theta, max_drop, protect_last, tau_gumbel, flags).
 * Immutable and shareable once created.
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG, IADSR_ERR_NOMEM
 *
 * Thread-safety: any thread. @since 0.3.0
 */
IADSR_API int iadsr_gate_create(iadsr_gate **out, int32_t dim,
                                const iadsr_denoise_params *p);
/**
 * A new gate with the decoder (and detector) of @p g and the inference
 * rule of @p p (use it to try another theta or max_drop without
 * retraining). The loss weights of @p p are ignored, and so are the flags
 * that describe the training (IADSR_DENOISE_F_CARRY_MASKS,
 * IADSR_DENOISE_F_PAPER, IADSR_DENOISE_F_DETECT, IADSR_DENOISE_F_HOLDOUT,
 * IADSR_DENOISE_F_CLEAN_SCORES, IADSR_DENOISE_F_INPUT_MASK,
 * IADSR_DENOISE_F_TEXT: those of @p g stay). A
 * detector gate keeps its IADSR_DENOISE_F_COLLAB_ONLY too: asking a full
 * detector for collaborative-only scores is IADSR_ERR_INVALID_ARG (train
 * a collaborative-only detector instead).
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG, IADSR_ERR_NOMEM
 *
 * Thread-safety: any thread. @since 0.3.0
 */
IADSR_API int iadsr_gate_with_params(iadsr_gate **out, const iadsr_gate *g,
                                     const iadsr_denoise_params *p);
/** Release a gate (NULL is a no-op). @since 0.3.0 */
IADSR_API void iadsr_gate_free(iadsr_gate *g);
/** Width d (0 for NULL). @since 0.3.0 */
IADSR_API int32_t iadsr_gate_dim(const iadsr_gate *g);
/**
 * The gate's settings (its inference rule and the loss weights it was
 * trained with). @p out's struct_size must be set by the caller, at least
 * 48 (the 0.3 size); the first min(struct_size,
 * sizeof(iadsr_denoise_params)) bytes are written and struct_size keeps the
 * caller's value.
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG
 * @since 0.3.0
 */
IADSR_API int iadsr_gate_get_params(const iadsr_gate *g,
                                    iadsr_denoise_params *out);

/**
 * Create a denoiser from a trained backbone, aligner and gate (e.g. from
 * iadsr_trainer_snapshot() and iadsr_trainer_snapshot_denoiser(), or
 * iadsr_checkpoint_load()) and the items' semantic rows.
 * @param out  receives the denoiser; NULL on failure
 * @param m    the backbone; kept alive by the denoiser
 * @param a    the aligner (widths d of @p m and D of @p sem); kept alive
 * @param g    the gate, whose inference rule the denoiser applies; kept
 *             alive
 * @param sem  the items' semantic rows (at least the model's n_items);
 *             kept alive
 *
 * Trained parts remember what they were trained with: an aligner or gate
 * from iadsr_trainer_snapshot_denoiser() (or a checkpoint that carries
 * the record, format 1.3) holds the backbone kind and item count of the
 * model it was trained beside and a fingerprint of the semantic rows of
 * those items. A part whose record disagrees with @p m (another backbone
 * or item count) or with @p sem (any value of items 1..n_items differs;
 * rows past the model's items are not compared) is refused with
 * IADSR_ERR_MISMATCH: such a combination runs but scores noise. Parts made
 * with iadsr_aligner_create() / iadsr_gate_create() or read from older
 * files have no record and are not checked. iadsr_denoiser_create_v2()
 * with IADSR_DENOISER_ALLOW_MISMATCH skips the check.
 *
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG, IADSR_ERR_DIM_MISMATCH (widths
 *         disagree, or @p sem covers fewer items than the model),
 *         IADSR_ERR_MISMATCH (a part was trained with another backbone,
 *         item count or semantic matrix; the message says which),
 *         IADSR_ERR_NOMEM
 *
 * Thread-safety: any thread. @since 0.3.0
 */
IADSR_API int iadsr_denoiser_create(iadsr_denoiser **out,
                                    const iadsr_model *m,
                                    const iadsr_aligner *a,
                                    const iadsr_gate *g,
                                    const iadsr_semantic *sem);

/** iadsr_denoiser_create_v2() flag: combine parts whose training records
 *  disagree (for a host that knows why, e.g. a semantic matrix whose rows
 *  were re-embedded with the same model after a text fix). @since 0.3.0 */
#define IADSR_DENOISER_ALLOW_MISMATCH 1u

/**
 * iadsr_denoiser_create() with @p flags: 0 (the same checks) or
 * IADSR_DENOISER_ALLOW_MISMATCH.
 * @return as iadsr_denoiser_create(), plus IADSR_ERR_UNSUPPORTED (unknown
 *         flag bits)
 *
 * Thread-safety: any thread. @since 0.3.0
 */
IADSR_API int iadsr_denoiser_create_v2(iadsr_denoiser **out,
                                       const iadsr_model *m,
                                       const iadsr_aligner *a,
                                       const iadsr_gate *g,
                                       const iadsr_semantic *sem,
                                       uint32_t flags);
/** Release a denoiser (NULL is a no-op). @since 0.3.0 */
IADSR_API void iadsr_denoiser_free(iadsr_denoiser *dn);

/**
 * Clean one sequence (oldest item first). The gate scores every position
 * with score_t = cos(l, h_t) + cos(hbar, s_t) + cos(h_t, s_t) and keeps t
 * iff score_t > theta, then applies the guards: at most
 * floor(max_drop * n) items are dropped (the lowest scores; ties drop the
 * older item) and the most recent item is kept when protect_last is set.
 * Sequences longer than the model's L are encoded in overlapping windows
 * so every position sees at least L/2 items of context (or all before it).
 *
 * @param dn        the denoiser
 * @param seq       n item ids in 1..n_items, oldest first
 * @param n         length of @p seq, >= 1
 * @param user_vec  NULL, or the user's D-vector for the long-term semantic
 *                  interest (instead of the mean of the item rows)
 * @param keep      NULL or n bytes: 1 = kept, 0 = dropped
 * @param scores    NULL or n floats: score_t
 * @param cleaned   NULL or room for n ids: the kept items, order preserved
 * @param n_kept    NULL or receives the number of kept items
 *
 * Outputs are written only on success.
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG, IADSR_ERR_OUT_OF_RANGE (an id
 *         outside 1..n_items, n < 1), IADSR_ERR_NUMERIC (user_vec has a
 *         NaN or Inf), IADSR_ERR_NOMEM (scratch is allocated per call)
 *
 * Thread-safety: any thread, concurrently on one denoiser. @since 0.3.0
 */
IADSR_API int iadsr_denoiser_clean(const iadsr_denoiser *dn,
                                   const int32_t *seq, int32_t n,
                                   const float *user_vec, uint8_t *keep,
                                   float *scores, int32_t *cleaned,
                                   int32_t *n_kept);

/**
 * Clean a dataset with n_threads worker threads.
 * @param dn     the denoiser
 * @param d      the dataset to clean (item ids within the model's)
 * @param split  IADSR_SPLIT_LEAVE_ONE_OUT (default): only each user's
 *               training part (all but the last two items) is cleaned and
 *               the last two are kept as they are, so the result can be
 *               retrained and evaluated with the same protocol;
 *               IADSR_SPLIT_NONE: whole sequences are cleaned
 * @param user_sem  NULL or one row per user (as iadsr_trainer_create_joint)
 * @param n_threads  worker threads, 1..256 (the result does not depend on it)
 * @param out    receives the cleaned dataset (same users, same ids)
 * @param keep   NULL or n_interactions bytes (dataset order): 1 = kept
 * @param scores NULL or n_interactions floats: the score of each position
 *               (NaN for positions that were not scored)
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG, IADSR_ERR_DIM_MISMATCH,
 *         IADSR_ERR_NOMEM
 *
 * Thread-safety: any thread. @since 0.3.0
 */
IADSR_API int iadsr_denoiser_clean_dataset(const iadsr_denoiser *dn,
                                           const iadsr_dataset *d,
                                           int32_t split,
                                           const iadsr_semantic *user_sem,
                                           int32_t n_threads,
                                           iadsr_dataset **out,
                                           uint8_t *keep, float *scores);

/**
 * Propose the threshold of a detector gate (IADSR_DENOISE_F_DETECT) for a
 * dataset, without labels. The detector's scores on @p d are a mixture of
 * those of clean items and of noise; items inserted into a copy of @p d
 * as the detector's training inserts them (a fixed seed) show the scores
 * of noise, so the noise rate is at most F_d(t) / F_ins(t) at every
 * threshold t (F: share of scores <= t); the estimate is the smallest such
 * ratio where F_ins(t) >= 0.1 (and at least 200 inserted scores lie at or
 * below t), kept within [1e-4, max_drop]. It is an upper bound, loose when
 * the detector separates clean items from noise poorly. The proposed
 * theta maximises the F1 expected at that rate, 2 rate F_ins(t) / (rate +
 * F_d(t)), clipped to [-3, 3]. Use it with
 * iadsr_gate_with_params(). The dataset is scored as
 * iadsr_denoiser_clean_dataset() would (same arguments).
 *
 * With a gate trained with IADSR_DENOISE_F_HOLDOUT, the rate and the
 * F1-best threshold come from the users of @p d that the trainer held out
 * (items are inserted into them in up to 16 passes with fresh draws until
 * at least 400 inserted scores are collected, so that a small hold-out of
 * short sequences still serves; only when even that falls short, from
 * every user, as above), and theta is the score of the other users at the
 * same quantile:
 * the held-out users show the detector's scores on data it never fitted,
 * the others are cleaned at the drop share those imply. On data the model
 * never trained on, the held-out users are a random sample of it and the
 * result is the same estimate from fewer users.
 * @param dn          the denoiser (its gate must be a detector)
 * @param d           the data to be cleaned (no labels needed)
 * @param split       as iadsr_denoiser_clean_dataset()
 * @param user_sem    as iadsr_denoiser_clean_dataset()
 * @param n_threads   worker threads, 1..256
 * @param theta       receives the proposal
 * @param noise_rate  NULL or receives the estimated noise rate
 * @return IADSR_OK, IADSR_ERR_INVALID_ARG, IADSR_ERR_DIM_MISMATCH,
 *         IADSR_ERR_NOMEM, IADSR_ERR_UNSUPPORTED (the gate is not a
 *         detector), IADSR_ERR_STATE (no position of @p d is scored)
 *
 * Thread-safety: any thread. @since 0.3.0
 */
IADSR_API int iadsr_denoiser_propose_theta(const iadsr_denoiser *dn,
                                           const iadsr_dataset *d,
                                           int32_t split,
                                           const iadsr_semantic *user_sem,
                                           int32_t n_threads, float *theta,
                                           double *noise_rate);

/** @} */

/* ------------------------------------------------------------------------ */
/** @defgroup api_pipeline Pipeline: train IADSR, clean, retrain, evaluate (since 0.3.0)
 *  @{ */

/**
 * What iadsr_pipeline() measured. The caller sets struct_size to
 * sizeof(iadsr_pipeline_result), at least 120 (the 0.3 size); the library
 * writes up to the smaller of it and its own size and keeps the caller's
 * struct_size.
 *
 * The member test embeds iadsr_metrics by value with its 64-byte 0.1
 * layout, and keeps that layout for good: test.struct_size always reads
 * 64, and a metric added to iadsr_metrics later is never added to test.
 * New results, metrics included, go into new fields after test.
 */
typedef struct iadsr_pipeline_result {
    uint32_t struct_size;      /**< set by the caller, >= 120; kept */
    int32_t iadsr_epochs;      /**< epoch of the IADSR model kept */
    int32_t retrain_epochs;    /**< epoch of the retrained backbone kept */
    uint32_t reserved0;        /**< written as 0 */
    int64_t n_items_in;        /**< training-part items before cleaning */
    int64_t n_items_dropped;   /**< of those, dropped by the gate */
    int64_t n_users_touched;   /**< users with at least one item dropped */
    double iadsr_seconds;      /**< wall time of IADSR training */
    double retrain_seconds;    /**< wall time of retraining */
    iadsr_metrics test;        /**< retrained backbone on the cleaned data
                                    (the frozen 64-byte layout; its
                                    struct_size reads 64) */
} iadsr_pipeline_result;

/**
 * The paper's pipeline in one call: train IADSR (backbone + aligner + gate)
 * on @p d (leave-one-out split), clean every training part, retrain a fresh
 * backbone (same params and seeds) on the cleaned data, and evaluate it on
 * the test items with the cleaned histories.
 * @param d         the users' sequences (leave-one-out: the last item is
 *                  the test target, the one before it validates)
 * @param sem       the items' semantic rows (as iadsr_trainer_create_joint())
 * @param mp        backbone hyper-parameters (n_items is required); the
 *                  IADSR backbone and the retrained one both start from
 *                  them
 * @param tp        training settings of both trainings; NULL = defaults;
 *                  the split must be LEAVE_ONE_OUT
 * @param dp        IADSR settings (loss weights, the gate's inference rule);
 *                  NULL = defaults. With IADSR_DENOISE_F_DETECT the
 *                  cleaning uses the theta the detector proposes for @p d
 *                  (iadsr_denoiser_propose_theta), not dp->theta
 * @param cb        progress of both trainings (may be NULL)
 * @param user_data passed to @p cb unchanged
 * @param res       receives the result; its struct_size must be set by the
 *                  caller (>= 120; checked before any training), and only
 *                  the first min(struct_size,
 *                  sizeof(iadsr_pipeline_result)) bytes are written, on
 *                  success only
 * @param model_out NULL or receives the retrained backbone
 * @param clean_out NULL or receives the cleaned dataset
 * @return errors of the steps it runs
 *
 * Thread-safety: any thread. @since 0.3.0
 */
IADSR_API int iadsr_pipeline(const iadsr_dataset *d,
                             const iadsr_semantic *sem,
                             const iadsr_model_params *mp,
                             const iadsr_train_params *tp,
                             const iadsr_denoise_params *dp,
                             iadsr_progress_fn cb, void *user_data,
                             iadsr_pipeline_result *res,
                             iadsr_model **model_out,
                             iadsr_dataset **clean_out);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* IADSR_H_INCLUDED_7C1E2B */
