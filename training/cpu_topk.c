/* Row-wise top-k of a float32 [rows, width] matrix, for the SAE encoder on CPU (loaded by cpu_topk.py).

   Per row: a lower bound on the k-th largest value (the k-th largest of 2k strided group maxima: k distinct elements
   reach it), then one scan that keeps every element at or above the bound, then an exact selection among those
   (~1.3k on typical rows). If the candidates overflow the buffer, it is cut to its k largest and the bound raised.
   NaN never passes; a row with fewer than k non-NaN values is padded with -inf entries. Ties break arbitrarily.
   Selection is by counting (for each candidate, how many beat it): branch-free, vectorised, fast for n <= 4k. */
#include <math.h>
#include <stdint.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

/* k-th largest of v[0..n), n >= k >= 1, no NaN: the smallest value that fewer than k others beat. */
static float kth_largest(const float *v, int64_t n, int64_t k) {
    float best = INFINITY;
    for (int64_t a = 0; a < n; a++) {
        int32_t beaten_by = 0;
        for (int64_t b = 0; b < n; b++) beaten_by += v[b] > v[a];
        if (beaten_by < k && v[a] < best) best = v[a];
    }
    return best;
}

/* Keeps the k largest of (v, ix)[0..n) in the first k slots; returns the k-th largest. */
static float cut_to_k(float *v, int32_t *ix, int64_t n, int64_t k) {
    float kth = kth_largest(v, n, k);
    int64_t ties = k, m = 0;
    for (int64_t t = 0; t < n; t++) ties -= v[t] > kth;
    for (int64_t t = 0; t < n; t++)
        if (v[t] > kth || (v[t] == kth && ties-- > 0)) { v[m] = v[t]; ix[m] = ix[t]; m++; }
    return kth;
}

static void row_topk(const float *p, int64_t width, int64_t k, float *bv, int32_t *bi, int64_t cap, float *vals,
                     int64_t *idx) {
    int64_t groups = 2 * k < width ? 2 * k : width, n = 0, j = 0, finite = 0;
    for (int64_t t = 0; t < groups; t++) bv[t] = -INFINITY;
    for (int64_t base = 0; base < width; base += groups) {
        int64_t len = width - base < groups ? width - base : groups;
        for (int64_t t = 0; t < len; t++) bv[t] = p[base + t] > bv[t] ? p[base + t] : bv[t];
    }
    float thr = kth_largest(bv, groups, k);
#ifdef __AVX2__
    __m256 vthr = _mm256_set1_ps(thr);
    for (; j + 8 <= width; j += 8) {
        int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(p + j), vthr, _CMP_GE_OQ));
        while (mask) {
            int t = __builtin_ctz(mask);
            mask &= mask - 1;
            if (!(p[j + t] >= thr)) continue;  /* the bound rose since the compare */
            bv[n] = p[j + t]; bi[n] = (int32_t)(j + t); n++;
            if (n == cap) { thr = cut_to_k(bv, bi, n, k); n = k; vthr = _mm256_set1_ps(thr); }
        }
    }
#endif
    for (; j < width; j++) {
        if (!(p[j] >= thr)) continue;
        bv[n] = p[j]; bi[n] = (int32_t)j; n++;
        if (n == cap) { thr = cut_to_k(bv, bi, n, k); n = k; }
    }
    if (n > k) cut_to_k(bv, bi, n, k);
    finite = n < k ? n : k;
    for (j = 0; n < k && j < width; j++) {  /* NaNs left fewer than k candidates: pad with unused columns */
        int used = 0;
        for (int64_t t = 0; t < finite && !used; t++) used = bi[t] == j;
        if (!used) { bv[n] = -INFINITY; bi[n] = (int32_t)j; n++; }
    }
    for (int64_t t = 0; t < k; t++) { vals[t] = bv[t]; idx[t] = bi[t]; }
}

/* Rows [row_start, row_end) of pre. 1 <= k <= width < 2^31; scratch holds 4k floats then 4k int32. */
void topk_rows(const float *pre, int64_t row_start, int64_t row_end, int64_t width, int64_t k, float *vals,
               int64_t *idx, void *scratch) {
    float *bv = (float *)scratch;
    int32_t *bi = (int32_t *)(bv + 4 * k);
    for (int64_t r = row_start; r < row_end; r++)
        row_topk(pre + r * width, width, k, bv, bi, 4 * k, vals + r * k, idx + r * k);
}
