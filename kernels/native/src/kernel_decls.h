// The kernels' declarations, included once per ISA namespace: by kernels.h inside a kernel
// build (namespace aligner::<isa>), and once for each ISA by dispatch.h / dispatch.cc to build
// the tables. Deliberately no include guard. KERNEL_DECL_NS names the namespace.
namespace aligner::KERNEL_DECL_NS {

// ---- elementwise.cc ----

// out [n] = value, converted to out's dtype
void fill(void* out, DType dtype, i64 n, double value);
// src [bytes] → dst [bytes]
void copy_bytes(const void* src, void* dst, i64 bytes);
// src [n] (sdt) → dst [n] (ddt)
void cast(const void* src, DType sdt, void* dst, DType ddt, i64 n);
// x [n] → out [n]
void unary(Unary kind, const float* x, float* out, i64 n);
// x, y = f(x), g [n] → gx [n]
void unary_backward(Unary kind, const float* x, const float* y, const float* g, float* gx, i64 n);
// x [n] → out [n] = x·scale + shift
void affine(const float* x, float* out, i64 n, double scale, double shift);
// x [n] → out [n] = x^p
void pow_scalar(const float* x, float* out, i64 n, double p);

// ---- binary.cc ----
// a, b (element strides as/bs aligned to shape, 0 on broadcast axes) → out [∏ shape]; rank ≤ 8
void binary(Binary kind, const float* a, const float* b, float* out, int rank, const i64* shape, const i64* as,
            const i64* bs);

// ---- reduce.cc ----
// x [outer, n, inner] → out [outer, inner]
void reduce_sum(const float* x, float* out, i64 outer, i64 n, i64 inner);
void reduce_max(const float* x, float* out, i64 outer, i64 n, i64 inner);
// x [outer, n, inner], y, g [outer, inner] → gx [outer, n, inner]
void reduce_max_backward(const float* x, const float* y, const float* g, float* gx, i64 outer, i64 n, i64 inner);

// ---- matmul.cc ----
// A[b] [M, K] ([K, M] if ta) at b·sA, B[b] [K, N] ([N, K] if tb) at b·sB → C [batch, M, N]
void matmul(const float* A, const float* B, float* C, i64 batch, i64 M, i64 N, i64 K, bool ta, bool tb, i64 sA, i64 sB);
// gemm_skinny.cc: C = A·Bᵀ for at most kSkinnyRows rows of A (decoding), threaded over B's rows.
void gemm_skinny_nt(i64 M, i64 N, i64 K, const float* A, i64 lda, const float* B, i64 ldb, float* C, i64 ldc);

// ---- layout.cc ----
// x [shape] → out [shape[perm[0]], …]; elements of esize bytes (2 or 4); rank ≤ 8
void permute(const void* x, void* out, size_t esize, int rank, const i64* shape, const int* perm);
// src [outer, srcAxis, inner] rows srcOff.. → dst [outer, dstAxis, inner] rows dstOff.., len rows each
void copy_block(const void* src, void* dst, size_t esize, i64 outer, i64 len, i64 inner, i64 src_axis, i64 src_off,
                i64 dst_axis, i64 dst_off);
// weight [V, C], ids [n] → out [n, C]
void embedding(const float* weight, const int32_t* ids, float* out, i64 n, i64 C, i64 V);
// g [n, C], ids [n] → gw [V, C]
void embedding_backward(const float* g, const int32_t* ids, float* gw, i64 n, i64 C, i64 V);

// ---- softmax.cc ----
// x [rows, n] → out [rows, n]
void softmax(const float* x, float* out, i64 rows, i64 n);
void log_softmax(const float* x, float* out, i64 rows, i64 n);
// y, g [rows, n] → gx [rows, n]
void softmax_backward(const float* y, const float* g, float* gx, i64 rows, i64 n);
void log_softmax_backward(const float* y, const float* g, float* gx, i64 rows, i64 n);
// logits [rows, V], targets [rows] → out [rows], lse [rows]
void token_logprobs(const float* logits, const int32_t* targets, float* out, float* lse, i64 rows, i64 V,
                    double ignore_index);
// logits [rows, V], targets, lse, g [rows] → gx [rows, V]
void token_logprobs_backward(const float* logits, const int32_t* targets, const float* lse, const float* g, float* gx,
                             i64 rows, i64 V, double ignore_index);

// ---- norm.cc ----
// x [rows, n], w [n] → out [rows, n], rstd [rows]
void rms_norm(const float* x, const float* w, float* out, float* rstd, i64 rows, i64 n, double eps);
// x, g [rows, n], w [n], rstd [rows] → gx [rows, n], gw [n]
void rms_norm_backward(const float* x, const float* w, const float* rstd, const float* g, float* gx, float* gw,
                       i64 rows, i64 n);
// x [rows, n], w, b [n] → out [rows, n], mean, rstd [rows]
void layer_norm(const float* x, const float* w, const float* b, float* out, float* mean, float* rstd, i64 rows, i64 n,
                double eps);
// x, g [rows, n], w [n], mean, rstd [rows] → gx [rows, n], gw, gb [n]
void layer_norm_backward(const float* x, const float* w, const float* mean, const float* rstd, const float* g,
                         float* gx, float* gw, float* gb, i64 rows, i64 n);

// ---- rope_swiglu.cc ----
// x [B, H, T, D], cos/sin [T, D/2] (or [B, T, D/2] if per_batch) → out [B, H, T, D]
void rope(const float* x, const float* cos, const float* sin, float* out, i64 B, i64 H, i64 T, i64 D, bool per_batch,
          bool inverse);
// gate, up [n] → out [n]
void swiglu(const float* gate, const float* up, float* out, i64 n);
// gate, up, g [n] → ggate, gup [n]
void swiglu_backward(const float* gate, const float* up, const float* g, float* ggate, float* gup, i64 n);

// ---- attention.cc ----
// q [B, Hq, T, D], k, v [B, Hkv, S, D], mask [B, S] or null → out [B, Hq, T, D], lse [B, Hq, T]
void attention(const float* q, const float* k, const float* v, const float* mask, float* out, float* lse,
               const AttnDims& d);
// … plus out, lse, g [B, Hq, T, D] → gq [B, Hq, T, D], gk, gv [B, Hkv, S, D]
void attention_backward(const float* q, const float* k, const float* v, const float* mask, const float* out,
                        const float* lse, const float* g, float* gq, float* gk, float* gv, const AttnDims& d);

// ---- optim.cc ----
// param, grad, m, v [n], updated in place
void adamw(float* p, const float* g, float* m, float* v, i64 n, double lr, double beta1, double beta2, double eps,
           double wd, double step);
// grads[t] [sizes[t]] scaled in place → out [1] = the norm before clipping
void clip_grad_norm(const std::vector<float*>& grads, const std::vector<i64>& sizes, double max_norm, float* out);

// ---- fma_peak.cc ----
// ~seconds of independent FMA chains on the calling thread → the flops done (probe.cc)
double fma_flops(double seconds);

// ---- gemm_fallback.cc ----
// Our cache-blocked GEMM, for when no BLAS loaded or a shape exceeds its 32-bit interface:
// C[m, n] = op(A) · op(B), the contract of blas::GemmFn.
void gemm_fallback(bool ta, bool tb, i64 m, i64 n, i64 k, const float* A, i64 lda, const float* B, i64 ldb, float* C,
                   i64 ldc);

}  // namespace aligner::KERNEL_DECL_NS
