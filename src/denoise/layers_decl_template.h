/* Declarations of the Stage 2 layers for one real type, declared for both
 * by layers.h through math/real_declare.h. Template macros needed: REAL,
 * SFX. No include guard on purpose.
 * SPDX-License-Identifier: MIT
 */

/* Row-wise cosine c[i] = <a_i, b_i> / (|a_i| |b_i|) of two n x d matrices;
 * c[i] = 0 when either norm is 0. */
void SFX(iadsr__cos_rows_fwd)(const REAL *a, const REAL *b, int n, int d,
                              REAL *c);
/* Adds dc[i] * dc_i/da_i to da and dc[i] * dc_i/db_i to db (either may be
 * NULL). Rows whose cosine was defined as 0 (a zero norm) get nothing. */
void SFX(iadsr__cos_rows_bwd)(const REAL *a, const REAL *b, int n, int d,
                              const REAL *dc, REAL *da, REAL *db);

/* Several row-wise cosines over the same rows at once: pair k is
 * c[k][i] = cos(v[pa[k]]_i, v[pb[k]]_i), with v nv matrices n x d (nv <=
 * IADSR__COS_MAX_V, np <= IADSR__COS_MAX_P). Each value is bit for bit
 * that of iadsr__cos_rows_fwd on the pair: the squared norms and products
 * are the same double chains, taken in one loop (one norm per matrix and
 * row instead of one per pair, and independent chains side by side). */
void SFX(iadsr__cos_pairs_fwd)(const REAL *const *v, int nv, const int *pa,
                               const int *pb, int np, int n, int d,
                               REAL *const *c);
/* The backward passes of those cosines, for each row in pair order: pair k
 * adds dc[k][i] times the gradient to dv[pa[k]] and dv[pb[k]] (an entry
 * may be NULL), as iadsr__cos_rows_bwd called pair after pair would (the
 * same values added in the same order to each element). */
void SFX(iadsr__cos_pairs_bwd)(const REAL *const *v, int nv, const int *pa,
                               const int *pb, int np, int n, int d,
                               const REAL *const *dc, REAL *const *dv);

/* InfoNCE with in-batch negatives: z_ij = cos(a_i, b_j) / tau over n
 * queries a and n keys b (n x d each), loss = mean_i [logsumexp_j z_ij -
 * z_ii]. Zero rows have cosine 0. @p p (n x n scratch) receives the softmax
 * probabilities of each row, which the backward pass needs. Returns the
 * loss (0 for n = 0). tau > 0. @p keys: NULL, or n ids; a key j != i with
 * keys[j] == keys[i] is the same item as row i's positive, not a negative,
 * and is left out of row i's softmax (probability 0). */
REAL SFX(iadsr__infonce_fwd)(const REAL *a, const REAL *b, int n, int d,
                             REAL tau, const int32_t *keys, REAL *p);
/* Adds dloss * dLoss/da and dloss * dLoss/db to da and db (either may be
 * NULL). @p p is the scratch filled by the forward call on the same a, b. */
void SFX(iadsr__infonce_bwd)(const REAL *a, const REAL *b, int n, int d,
                             REAL tau, const REAL *p, REAL dloss, REAL *da,
                             REAL *db);

/* Elementwise max over the rows of each packed sequence: sequence s owns
 * rows row_off[s]..row_off[s+1]-1 of h (n_rows x d). out is n_seq x d and
 * arg (n_seq x d) records the row index of each maximum (the first one on
 * ties). An empty sequence gives zeros and arg -1. */
void SFX(iadsr__maxpool_fwd)(const REAL *h, int d, const int32_t *row_off,
                             int n_seq, REAL *out, int32_t *arg);
/* Adds dout[s, c] to dh[arg[s, c], c] (entries with arg -1 are skipped). */
void SFX(iadsr__maxpool_bwd)(const REAL *dout, int d, const int32_t *arg,
                             int n_seq, REAL *dh);

/* out[s] = mean of the rows S[items[r]] (D wide, row stride ld >= D) over
 * the rows r of sequence s (row_off as in iadsr__maxpool_fwd). An empty
 * sequence gives zeros. Forward only: S is not a parameter. */
void SFX(iadsr__gather_mean)(const REAL *S, int ld, int D,
                             const int32_t *items, const int32_t *row_off,
                             int n_seq, REAL *out);

/* Broadcast one row per sequence to every row of the sequence:
 * dst[r] = src[s] for r in sequence s (dst: n_rows x d). */
void SFX(iadsr__seq_expand)(const REAL *src, int d, const int32_t *row_off,
                            int n_seq, REAL *dst);
/* Backward of iadsr__seq_expand: dsrc[s] += sum of ddst[r] over its rows. */
void SFX(iadsr__seq_expand_bwd)(const REAL *ddst, int d,
                                const int32_t *row_off, int n_seq,
                                REAL *dsrc);

/* Hard Gumbel-sigmoid gate on n scores s with caller-drawn uniforms u
 * (clamped to [IADSR__GUMBEL_EPS, 1 - IADSR__GUMBEL_EPS]): g = -log(-log u),
 * y = sigmoid((s + g) / tau_g), m = 1[s + g > 0] (i.e. y > 0.5, decided
 * without rounding). Writes y (kept for the backward pass) and m (0 or 1).
 * tau_g > 0. */
void SFX(iadsr__gumbel_gate_fwd)(const REAL *s, const REAL *u, int n,
                                 REAL tau_g, REAL *y, REAL *m);
/* Straight-through backward: ds[t] += dm[t] * y[t] (1 - y[t]) / tau_g. */
void SFX(iadsr__gumbel_gate_bwd)(const REAL *dm, const REAL *y, int n,
                                 REAL tau_g, REAL *ds);

/* Reconstruction loss over packed sequences (row_off as above, n_rows =
 * row_off[n_seq]): r_t = (m_t h_t) Wd + bd with Wd d x d in the x W
 * orientation of iadsr__linear_fwd, and
 * L = (1/n_seq) sum_s mean_{t in s} ||r_t - E[items[t]]||^2
 * (empty sequences add 0 but count in n_seq). E has rows of width d.
 * Scratch: mh (n_rows x d) receives m_t h_t and res (n_rows x d) the
 * residuals r_t - E[x_t]; both are needed by the backward pass. Returns L
 * (0 for n_seq = 0). */
REAL SFX(iadsr__recon_fwd)(const REAL *h, const REAL *m, int d,
                           const REAL *wd, const REAL *bd, const REAL *emb,
                           const int32_t *items, const int32_t *row_off,
                           int n_seq, REAL *mh, REAL *res);
/* Adds dloss times the gradients of L: dh (zero where m_t = 0), dm
 * (dm_t = <dL/d(m_t h_t), h_t>, the straight-through path), dwd (required),
 * dbd, demb (rows items[t]); dh, dm, dbd, demb may be NULL. @p res is
 * clobbered; @p tmp is n_rows x d scratch. */
void SFX(iadsr__recon_bwd)(const REAL *h, const REAL *m, int d,
                           const REAL *wd, const int32_t *items,
                           const int32_t *row_off, int n_seq, REAL dloss,
                           const REAL *mh, REAL *res, REAL *tmp, REAL *dh,
                           REAL *dm, REAL *dwd, REAL *dbd, REAL *demb);
