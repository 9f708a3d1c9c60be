/* The A* coding search's candidate scoring on a CUDA GPU (see gpu_search.py).
 *
 * One thread scores one candidate n of one block b: it regenerates the candidate's standard
 * normals from the ChaCha20 candidate stream and evaluates log q(x)/p(x) + G_n, with the very
 * operations of the Rust core (rust/combiner-core: rng.rs, normal.rs, kernels.rs, search.rs):
 *
 *   word w of block b   = little-endian u64 at 32-bit position 2w of ChaCha20(key, counter,
 *                         stream = block id), the key derived from the seed by the Rust core;
 *   candidate n         = words n*d .. n*d + d - 1;
 *   normal z            = AS241 (PPND16) at u = ((w >> 12) + 1/2) 2^-52, in binary64, with the
 *                         FreeBSD/musl log of the pinned `libm` crate, ported op for op;
 *   sample x            = m + s * (float)z, in binary32, each operation rounded;
 *   log ratio           = const + 0.5 * sum_j (a_j^2 - b_j^2), summed left to right, with
 *                         a_j = (x_j - m_j) / s_j and b_j = (x_j - mu_j) / sigma_j as
 *                         multiplications by binary64 reciprocals.
 *
 * Every operation is an IEEE 754 basic operation (+ - * / sqrt, conversions) rounded to nearest,
 * and the module is compiled with --fmad=false so that nothing is contracted into an FMA: the
 * scores are the same bits as the CPU's, hence the same argmax (ties go to the smaller index,
 * which the caller's reduction keeps).
 *
 * The same source compiles as C for the host (COMBINER_HOST_TEST), which is how the tests check
 * it against the Rust core on machines without a GPU.
 */

#ifdef COMBINER_HOST_TEST
#include <math.h>
#include <stdint.h>
#include <string.h>
#define DEVFN static inline
typedef uint32_t u32;
typedef uint64_t u64;
#define SQRT_RN(x) sqrt(x)
DEVFN u64 bits_of(double x) { u64 u; memcpy(&u, &x, 8); return u; }
DEVFN double from_bits(u64 u) { double x; memcpy(&x, &u, 8); return x; }
#else
#define DEVFN __device__ __forceinline__
typedef unsigned int u32;
typedef unsigned long long u64;
#define SQRT_RN(x) __dsqrt_rn(x)
DEVFN u64 bits_of(double x) { return (u64)__double_as_longlong(x); }
DEVFN double from_bits(u64 u) { return __longlong_as_double((long long)u); }
#endif

/* ---- ChaCha20 block function, rand_chacha's state layout ---------------------------------- */

#define ROTL32(v, c) (((v) << (c)) | ((v) >> (32 - (c))))
#define QUARTER(a, b, c, d)                                                       \
    a += b; d ^= a; d = ROTL32(d, 16); c += d; b ^= c; b = ROTL32(b, 12);          \
    a += b; d ^= a; d = ROTL32(d, 8);  c += d; b ^= c; b = ROTL32(b, 7);

/* 16 output words of the block at 64-bit counter `counter` of stream `stream`. */
DEVFN void chacha20_block(const u32 *key, u64 counter, u64 stream, u32 *out) {
    u32 s[16];
    s[0] = 0x61707865u; s[1] = 0x3320646eu; s[2] = 0x79622d32u; s[3] = 0x6b206574u;
    for (int i = 0; i < 8; i++) s[4 + i] = key[i];
    s[12] = (u32)counter; s[13] = (u32)(counter >> 32);
    s[14] = (u32)stream;  s[15] = (u32)(stream >> 32);
    u32 x[16];
    for (int i = 0; i < 16; i++) x[i] = s[i];
    for (int r = 0; r < 10; r++) {
        QUARTER(x[0], x[4], x[8],  x[12]);
        QUARTER(x[1], x[5], x[9],  x[13]);
        QUARTER(x[2], x[6], x[10], x[14]);
        QUARTER(x[3], x[7], x[11], x[15]);
        QUARTER(x[0], x[5], x[10], x[15]);
        QUARTER(x[1], x[6], x[11], x[12]);
        QUARTER(x[2], x[7], x[8],  x[13]);
        QUARTER(x[3], x[4], x[9],  x[14]);
    }
    for (int i = 0; i < 16; i++) out[i] = x[i] + s[i];
}

/* ---- libm::log (FreeBSD e_log.c), main path: x positive, normal, finite -------------------- */

DEVFN double log_main_path(double x) {
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    const double lg1 = 6.666666666666735130e-01, lg2 = 3.999999999940941908e-01,
                 lg3 = 2.857142874366239149e-01, lg4 = 2.222219843214978396e-01,
                 lg5 = 1.818357216161805012e-01, lg6 = 1.531383769920937332e-01,
                 lg7 = 1.479819860511658591e-01;
    u64 ui = bits_of(x);
    u64 hx = (ui >> 32) + (0x3ff00000u - 0x3fe6a09eu);
    double dk = (double)((long long)(hx >> 20) - 1023);
    hx = (hx & 0x000fffffu) + 0x3fe6a09eu;
    x = from_bits((hx << 32) | (ui & 0xffffffffu));
    double f = x - 1.0;
    double hfsq = 0.5 * f * f;
    double s = f / (2.0 + f);
    double z = s * s;
    double w = z * z;
    double t1 = w * (lg2 + w * (lg4 + w * lg6));
    double t2 = z * (lg1 + w * (lg3 + w * (lg5 + w * lg7)));
    double r = t2 + t1;
    return s * (hfsq + r) + dk * ln2_lo - hfsq + f + dk * ln2_hi;
}

/* ---- AS241 inverse normal CDF ------------------------------------------------------------- */

#define HORNER8(c, x) \
    (((((((c##7 * (x) + c##6) * (x) + c##5) * (x) + c##4) * (x) + c##3) * (x) + c##2) * (x) + c##1) * (x) + c##0)

DEVFN double as241(double p) {
    const double a0 = 3.387132872796366608, a1 = 1.3314166789178437745e2,
                 a2 = 1.9715909503065514427e3, a3 = 1.3731693765509461125e4,
                 a4 = 4.5921953931549871457e4, a5 = 6.7265770927008700853e4,
                 a6 = 3.3430575583588128105e4, a7 = 2.5090809287301226727e3;
    const double b0 = 1.0, b1 = 4.2313330701600911252e1, b2 = 6.871870074920579083e2,
                 b3 = 5.3941960214247511077e3, b4 = 2.1213794301586595867e4,
                 b5 = 3.930789580009271061e4, b6 = 2.8729085735721942674e4,
                 b7 = 5.226495278852854561e3;
    const double c0 = 1.42343711074968357734, c1 = 4.6303378461565452959,
                 c2 = 5.7694972214606914055, c3 = 3.64784832476320460504,
                 c4 = 1.27045825245236838258, c5 = 2.4178072517745061177e-1,
                 c6 = 2.27238449892691845833e-2, c7 = 7.7454501427834140764e-4;
    const double d0 = 1.0, d1 = 2.05319162663775882187, d2 = 1.6763848301838038494,
                 d3 = 6.8976733498510000455e-1, d4 = 1.4810397642748007459e-1,
                 d5 = 1.51986665636164571966e-2, d6 = 5.475938084995344946e-4,
                 d7 = 1.05075007164441684324e-9;
    const double e0 = 6.6579046435011037772, e1 = 5.4637849111641143699,
                 e2 = 1.7848265399172913358, e3 = 2.9656057182850489123e-1,
                 e4 = 2.6532189526576123093e-2, e5 = 1.2426609473880784386e-3,
                 e6 = 2.71155556874348757815e-5, e7 = 2.01033439929228813265e-7;
    const double f0 = 1.0, f1 = 5.9983220655588793769e-1, f2 = 1.3692988092273580531e-1,
                 f3 = 1.48753612908506148525e-2, f4 = 7.868691311456132591e-4,
                 f5 = 1.8463183175100546818e-5, f6 = 1.4215117583164458887e-7,
                 f7 = 2.04426310338993978564e-15;
    double q = p - 0.5;
    if (fabs(q) <= 0.425) {
        double r = 0.180625 - q * q;
        return q * HORNER8(a, r) / HORNER8(b, r);
    }
    double tail = q < 0.0 ? p : 1.0 - p;
    double r = SQRT_RN(-log_main_path(tail)); /* tail >= 2^-53: the main path applies */
    double m;
    if (r <= 5.0) {
        r = r - 1.6;
        m = HORNER8(c, r) / HORNER8(d, r);
    } else {
        r = r - 5.0;
        m = HORNER8(e, r) / HORNER8(f, r);
    }
    return q < 0.0 ? -m : m;
}

/* The standard normal of one stream word. */
DEVFN double word_to_normal(u64 word) {
    const double scale = 1.0 / 4503599627370496.0; /* 2^-52 */
    return as241(((double)(word >> 12) + 0.5) * scale);
}

/* ---- one candidate's log ratio ------------------------------------------------------------ */

/* Per-dimension parameters of one block, as the Rust LogRatio holds them. */
typedef struct {
    const float *mean_p, *std_p;       /* prior, binary32 */
    const double *m, *inv_s, *mu, *inv_sig; /* (double)mean_p, 1/s, (double)mu_q, 1/sigma_q */
} Terms;

/* 0.5 * sum_j (a_j^2 - b_j^2) + constant for candidate `n` of a block of dimension `d`. */
DEVFN double candidate_log_ratio(const u32 *key, u64 stream, u64 n, int d, Terms t,
                                 double constant) {
    u32 buf[16];
    u64 word = n * (u64)d;
    u64 counter = word >> 3;
    int slot = (int)(word & 7);
    chacha20_block(key, counter, stream, buf);
    double acc = 0.0;
    for (int j = 0; j < d; j++) {
        if (slot == 8) {
            counter += 1;
            chacha20_block(key, counter, stream, buf);
            slot = 0;
        }
        u64 w = (u64)buf[2 * slot] | ((u64)buf[2 * slot + 1] << 32);
        slot += 1;
        float z32 = (float)word_to_normal(w);
        float scaled = t.std_p[j] * z32;
        double x = (double)(t.mean_p[j] + scaled);
        double a = (x - t.m[j]) * t.inv_s[j];
        double b = (x - t.mu[j]) * t.inv_sig[j];
        double term = a * a - b * b;
        acc = acc + term;
    }
    return constant + 0.5 * acc;
}

/* sum_j log(s_j / sigma_j) over j = first .. end - 1, left to right, as the Rust LogRatio. */
DEVFN double block_constant(const float *std_p, const float *sigma_q, long long first,
                            long long end) {
    double c = 0.0;
    for (long long i = first; i < end; i++)
        c += log_main_path((double)std_p[i] / (double)sigma_q[i]);
    return c;
}

#ifdef COMBINER_HOST_TEST
/* Host entry for the tests: the log ratios of candidates first .. first + count - 1. */
void host_log_ratios(const u32 *key, u64 stream, u64 first, u64 count, int d,
                     const float *mean_p, const float *std_p, const double *m,
                     const double *inv_s, const double *mu, const double *inv_sig,
                     double constant, double *out) {
    Terms t = {mean_p, std_p, m, inv_s, mu, inv_sig};
    for (u64 i = 0; i < count; i++)
        out[i] = candidate_log_ratio(key, stream, first + i, d, t, constant);
}

double host_log(double x) { return log_main_path(x); }

double host_normal(u64 word) { return word_to_normal(word); }

double host_block_constant(const float *std_p, const float *sigma_q, int d) {
    return block_constant(std_p, sigma_q, 0, d);
}
#else
/* scores[b * n_cand + n] = log ratio of candidate n of block b + gumbels[b * n_cand + n].
 * Block b's dimensions are offsets[b] .. offsets[b + 1] of the per-dimension arrays. */
extern "C" __global__ void score_candidates(
    const u32 *key, const u64 *streams, const long long *offsets, long long n_blocks,
    long long n_cand, const float *mean_p, const float *std_p, const double *m,
    const double *inv_s, const double *mu, const double *inv_sig, const double *constants,
    const double *gumbels, double *scores) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n_blocks * n_cand) return;
    long long b = t / n_cand, n = t % n_cand;
    long long o = offsets[b];
    int d = (int)(offsets[b + 1] - o);
    Terms terms = {mean_p + o, std_p + o, m + o, inv_s + o, mu + o, inv_sig + o};
    double r = candidate_log_ratio(key, streams[b], (u64)n, d, terms, constants[b]);
    scores[t] = r + gumbels[t];
}

/* constants[b] = sum_j log(s_j / sigma_j), left to right (the pinned libm's log). */
extern "C" __global__ void block_constants(const long long *offsets, long long n_blocks,
                                           const float *std_p, const float *sigma_q,
                                           double *constants) {
    long long b = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= n_blocks) return;
    constants[b] = block_constant(std_p, sigma_q, offsets[b], offsets[b + 1]);
}
#endif
