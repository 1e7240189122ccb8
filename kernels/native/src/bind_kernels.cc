// Kernel entry points. Each one validates its arguments on the JS thread (live handles, dtypes,
// that every storage is large enough for the sizes given), resolves handles to pointers, and
// submits a closure that captures everything by value. Validation here is what keeps a wrong
// size from the op layer a ShapeError instead of a crash on the executor thread.
#include <functional>
#include <string>
#include <vector>

#include "engine.h"
#include "dispatch.h"
#include "napi_util.h"

namespace aligner {

namespace {

class Call {
 public:
  Call(napi_env env, napi_callback_info info, const char* fn, size_t nargs)
      : a(env, info, fn, nargs), e(engine(env)), fn_(fn) {}

  const Buffer& buf(size_t i, const char* what, i64 need) const {
    const Buffer& b = e.buffers.get(a.int32(i, what));
    if (b.numel < need)
      fail("ShapeError", std::string(fn_) + ": " + what + " has " + std::to_string(b.numel) + " elements, needs " +
                             std::to_string(need));
    return b;
  }
  float* f32(size_t i, const char* what, i64 need) const {
    return static_cast<float*>(typed(i, what, need, DType::f32));
  }
  int32_t* i32(size_t i, const char* what, i64 need) const {
    return static_cast<int32_t*>(typed(i, what, need, DType::i32));
  }
  i64 size(size_t i, const char* what) const { return a.size(i, what); }
  double num(size_t i, const char* what) const { return a.num(i, what); }
  bool flag(size_t i) const { return a.flag(i); }

  // a·b with overflow → ShapeError.
  i64 mul(i64 x, i64 y) const {
    i64 r;
    if (__builtin_mul_overflow(x, y, &r)) fail("ShapeError", std::string(fn_) + ": sizes overflow");
    return r;
  }
  i64 mul(i64 x, i64 y, i64 z) const { return mul(mul(x, y), z); }
  i64 mul(i64 x, i64 y, i64 z, i64 w) const { return mul(mul(x, y, z), w); }

  napi_value submit(i64 work, std::function<void()> fn) const {
    e.stream->submit(work, std::move(fn));
    return js_undefined(a.env);
  }

  [[noreturn]] void shape_error(const std::string& msg) const { fail("ShapeError", std::string(fn_) + ": " + msg); }

  Args a;
  Engine& e;

 private:
  void* typed(size_t i, const char* what, i64 need, DType want) const {
    const Buffer& b = buf(i, what, need);
    if (b.dtype != want)
      fail("DTypeError",
           std::string(fn_) + ": " + what + " must be " + dtype_name(want) + ", got " + dtype_name(b.dtype));
    return b.data;
  }
  const char* fn_;
};

// KERNEL(name, nargs) { body } defines the JS entry k_name: it reads nargs arguments into a Call
// and runs the body under guarded(), so every C++ exception reaches JS as a named Error.
#define KERNEL(name, nargs)                                                                          \
  napi_value body_##name(const Call& c);                                                             \
  napi_value k_##name(napi_env env, napi_callback_info info) {                                       \
    return guarded(env, [&]() -> napi_value { return body_##name(Call(env, info, #name, nargs)); }); \
  }                                                                                                  \
  napi_value body_##name(const Call& c)

// ---- storage-level ----

KERNEL(fill, 3) {
  i64 n = c.size(1, "n");
  const Buffer& o = c.buf(0, "out", n);
  double value = c.num(2, "value");
  void* p = o.data;
  DType dt = o.dtype;
  return c.submit(n, [=] { fill(p, dt, n, value); });
}

KERNEL(copy, 3) {
  i64 n = c.size(2, "n");
  const Buffer& s = c.buf(0, "src", n);
  const Buffer& d = c.buf(1, "dst", n);
  if (s.dtype != d.dtype)
    fail("DTypeError", std::string("copy: src is ") + dtype_name(s.dtype) + ", dst is " + dtype_name(d.dtype));
  const void* sp = s.data;
  void* dp = d.data;
  i64 bytes = n * static_cast<i64>(dtype_size(s.dtype));
  return c.submit(n, [=] { copy_bytes(sp, dp, bytes); });
}

KERNEL(cast, 3) {
  i64 n = c.size(2, "n");
  const Buffer& s = c.buf(0, "src", n);
  const Buffer& d = c.buf(1, "dst", n);
  const void* sp = s.data;
  void* dp = d.data;
  DType sd = s.dtype, dd = d.dtype;
  return c.submit(n, [=] { cast(sp, sd, dp, dd, n); });
}

// ---- pointwise ----

Unary unary_kind(const Call& c, size_t i) {
  i64 k = c.size(i, "kind");
  if (k > static_cast<i64>(Unary::square)) c.shape_error("unknown unary kind " + std::to_string(k));
  return static_cast<Unary>(k);
}

KERNEL(unary, 4) {
  Unary kind = unary_kind(c, 0);
  i64 n = c.size(3, "n");
  const float* x = c.f32(1, "x", n);
  float* out = c.f32(2, "out", n);
  return c.submit(n, [=] { unary(kind, x, out, n); });
}

KERNEL(unaryBackward, 6) {
  Unary kind = unary_kind(c, 0);
  i64 n = c.size(5, "n");
  const float* x = c.f32(1, "x", n);
  const float* y = c.f32(2, "y", n);
  const float* g = c.f32(3, "g", n);
  float* gx = c.f32(4, "gx", n);
  return c.submit(n, [=] { unary_backward(kind, x, y, g, gx, n); });
}

KERNEL(affine, 5) {
  i64 n = c.size(2, "n");
  const float* x = c.f32(0, "x", n);
  float* out = c.f32(1, "out", n);
  double scale = c.num(3, "scale");
  double shift = c.num(4, "shift");
  return c.submit(n, [=] { affine(x, out, n, scale, shift); });
}

KERNEL(powScalar, 4) {
  i64 n = c.size(2, "n");
  const float* x = c.f32(0, "x", n);
  float* out = c.f32(1, "out", n);
  double p = c.num(3, "exponent");
  return c.submit(n, [=] { pow_scalar(x, out, n, p); });
}

// binary(kind, a, b, out, dims) with dims = Int32Array [rank, shape…, aStrides…, bStrides…] (may be longer)
KERNEL(binary, 5) {
  i64 k = c.size(0, "kind");
  if (k > static_cast<i64>(Binary::minimum)) c.shape_error("unknown binary kind " + std::to_string(k));
  size_t len;
  const int32_t* dims = c.a.int32_array(4, &len);
  if (len < 1 || dims[0] < 0 || dims[0] > 8 || len < 1 + 3 * static_cast<size_t>(dims[0]))
    c.shape_error("bad shape/stride array");
  const int rank = dims[0];
  struct Dims {
    i64 shape[8], as[8], bs[8];
  } d{};
  i64 total = 1, a_need = 1, b_need = 1;
  for (int i = 0; i < rank; i++) {
    d.shape[i] = dims[1 + i];
    d.as[i] = dims[1 + rank + i];
    d.bs[i] = dims[1 + 2 * rank + i];
    if (d.shape[i] < 0 || d.as[i] < 0 || d.bs[i] < 0) c.shape_error("negative size or stride");
    total = c.mul(total, d.shape[i]);
  }
  if (total > 0)
    for (int i = 0; i < rank; i++) {
      a_need += (d.shape[i] - 1) * d.as[i];
      b_need += (d.shape[i] - 1) * d.bs[i];
    }
  else
    a_need = b_need = 0;
  const float* a = c.f32(1, "a", a_need);
  const float* b = c.f32(2, "b", b_need);
  float* out = c.f32(3, "out", total);
  Binary kind = static_cast<Binary>(k);
  return c.submit(total, [=] { binary(kind, a, b, out, rank, d.shape, d.as, d.bs); });
}

// ---- reductions ----

KERNEL(reduceSum, 5) {
  i64 outer = c.size(2, "outer"), n = c.size(3, "n"), inner = c.size(4, "inner");
  const float* x = c.f32(0, "x", c.mul(outer, n, inner));
  float* out = c.f32(1, "out", c.mul(outer, inner));
  return c.submit(outer * n * inner, [=] { reduce_sum(x, out, outer, n, inner); });
}

KERNEL(reduceMax, 5) {
  i64 outer = c.size(2, "outer"), n = c.size(3, "n"), inner = c.size(4, "inner");
  const float* x = c.f32(0, "x", c.mul(outer, n, inner));
  float* out = c.f32(1, "out", c.mul(outer, inner));
  return c.submit(outer * n * inner, [=] { reduce_max(x, out, outer, n, inner); });
}

KERNEL(reduceMaxBackward, 7) {
  i64 outer = c.size(4, "outer"), n = c.size(5, "n"), inner = c.size(6, "inner");
  i64 big = c.mul(outer, n, inner), small = c.mul(outer, inner);
  const float* x = c.f32(0, "x", big);
  const float* y = c.f32(1, "y", small);
  const float* g = c.f32(2, "g", small);
  float* gx = c.f32(3, "gx", big);
  return c.submit(big, [=] { reduce_max_backward(x, y, g, gx, outer, n, inner); });
}

// ---- matmul ----

KERNEL(matmul, 11) {
  i64 batch = c.size(3, "batch"), M = c.size(4, "M"), N = c.size(5, "N"), K = c.size(6, "K");
  bool ta = c.flag(7), tb = c.flag(8);
  i64 sA = c.size(9, "strideA"), sB = c.size(10, "strideB");
  i64 a_need = batch == 0 ? 0 : c.mul(batch - 1, sA) + c.mul(M, K);
  i64 b_need = batch == 0 ? 0 : c.mul(batch - 1, sB) + c.mul(K, N);
  const float* a = c.f32(0, "a", a_need);
  const float* b = c.f32(1, "b", b_need);
  float* out = c.f32(2, "out", c.mul(batch, M, N));
  // Work counts multiply-adds, floored at the output size (K may be 0).
  i64 work = std::max(c.mul(batch, M, N, std::max<i64>(K, 1)), i64{0});
  return c.submit(work, [=] { matmul(a, b, out, batch, M, N, K, ta, tb, sA, sB); });
}

// ---- layout ----

// permute(x, out, dims) with dims = Int32Array [rank, shape…, perm…] (may be longer)
KERNEL(permute, 3) {
  size_t len;
  const int32_t* dims = c.a.int32_array(2, &len);
  if (len < 1 || dims[0] < 0 || dims[0] > 8 || len < 1 + 2 * static_cast<size_t>(dims[0]))
    c.shape_error("bad shape/perm array");
  const int rank = dims[0];
  struct Dims {
    i64 shape[8];
    int perm[8];
  } d{};
  bool seen[8] = {};
  i64 total = 1;
  for (int i = 0; i < rank; i++) {
    d.shape[i] = dims[1 + i];
    d.perm[i] = dims[1 + rank + i];
    if (d.shape[i] < 0) c.shape_error("negative size");
    if (d.perm[i] < 0 || d.perm[i] >= rank || seen[d.perm[i]]) c.shape_error("perm is not a permutation");
    seen[d.perm[i]] = true;
    total = c.mul(total, d.shape[i]);
  }
  const Buffer& x = c.buf(0, "x", total);
  const Buffer& o = c.buf(1, "out", total);
  if (x.dtype != o.dtype) fail("DTypeError", "permute: x and out dtypes differ");
  const void* xp = x.data;
  void* op = o.data;
  size_t es = dtype_size(x.dtype);
  return c.submit(total, [=] { permute(xp, op, es, rank, d.shape, d.perm); });
}

KERNEL(copyBlock, 9) {
  i64 outer = c.size(2, "outer"), len = c.size(3, "len"), inner = c.size(4, "inner"), src_axis = c.size(5, "srcAxis"),
      src_off = c.size(6, "srcOffset"), dst_axis = c.size(7, "dstAxis"), dst_off = c.size(8, "dstOffset");
  if (src_off + len > src_axis || dst_off + len > dst_axis)
    c.shape_error("block [" + std::to_string(src_off) + ", +" + std::to_string(len) + ") of axis " +
                  std::to_string(src_axis) + " → [" + std::to_string(dst_off) + ", +" + std::to_string(len) +
                  ") of axis " + std::to_string(dst_axis) + " is out of bounds");
  bool empty = outer == 0 || len == 0 || inner == 0;
  const Buffer& s = c.buf(0, "src", empty ? 0 : c.mul(outer, src_axis, inner));
  const Buffer& d = c.buf(1, "dst", empty ? 0 : c.mul(outer, dst_axis, inner));
  if (s.dtype != d.dtype) fail("DTypeError", "copyBlock: src and dst dtypes differ");
  const void* sp = s.data;
  void* dp = d.data;
  size_t es = dtype_size(s.dtype);
  return c.submit(c.mul(outer, len, inner),
                  [=] { copy_block(sp, dp, es, outer, len, inner, src_axis, src_off, dst_axis, dst_off); });
}

KERNEL(embedding, 6) {
  i64 n = c.size(3, "n"), C = c.size(4, "C"), V = c.size(5, "V");
  const float* w = c.f32(0, "weight", c.mul(V, C));
  const int32_t* ids = c.i32(1, "ids", n);
  float* out = c.f32(2, "out", c.mul(n, C));
  return c.submit(c.mul(n, C), [=] { embedding(w, ids, out, n, C, V); });
}

KERNEL(embeddingBackward, 6) {
  i64 n = c.size(3, "n"), C = c.size(4, "C"), V = c.size(5, "V");
  const float* g = c.f32(0, "g", c.mul(n, C));
  const int32_t* ids = c.i32(1, "ids", n);
  float* gw = c.f32(2, "gw", c.mul(V, C));
  return c.submit(c.mul(n, C) + c.mul(V, C), [=] { embedding_backward(g, ids, gw, n, C, V); });
}

// ---- softmax family ----

#define ROWWISE(name, fn, a0, a1, a2)                         \
  KERNEL(name, 5) {                                           \
    i64 rows = c.size(3, "rows"), n = c.size(4, "n");         \
    i64 total = c.mul(rows, n);                               \
    const float* p0 = c.f32(0, a0, total);                    \
    const float* p1 = c.f32(1, a1, total);                    \
    float* p2 = c.f32(2, a2, total);                          \
    return c.submit(total, [=] { fn(p0, p1, p2, rows, n); }); \
  }
#define ROWWISE2(name, fn, a0, a1)                        \
  KERNEL(name, 4) {                                       \
    i64 rows = c.size(2, "rows"), n = c.size(3, "n");     \
    i64 total = c.mul(rows, n);                           \
    const float* p0 = c.f32(0, a0, total);                \
    float* p1 = c.f32(1, a1, total);                      \
    return c.submit(total, [=] { fn(p0, p1, rows, n); }); \
  }
ROWWISE2(softmax, softmax, "x", "out")
ROWWISE2(logSoftmax, log_softmax, "x", "out")
ROWWISE(softmaxBackward, softmax_backward, "y", "g", "gx")
ROWWISE(logSoftmaxBackward, log_softmax_backward, "y", "g", "gx")

KERNEL(tokenLogprobs, 7) {
  i64 rows = c.size(4, "rows"), V = c.size(5, "V");
  double ignore = c.num(6, "ignoreIndex");
  const float* logits = c.f32(0, "logits", c.mul(rows, V));
  const int32_t* t = c.i32(1, "targets", rows);
  float* out = c.f32(2, "out", rows);
  float* lse = c.f32(3, "lse", rows);
  return c.submit(c.mul(rows, V), [=] { token_logprobs(logits, t, out, lse, rows, V, ignore); });
}

KERNEL(tokenLogprobsBackward, 8) {
  i64 rows = c.size(5, "rows"), V = c.size(6, "V");
  double ignore = c.num(7, "ignoreIndex");
  const float* logits = c.f32(0, "logits", c.mul(rows, V));
  const int32_t* t = c.i32(1, "targets", rows);
  const float* lse = c.f32(2, "lse", rows);
  const float* g = c.f32(3, "g", rows);
  float* gx = c.f32(4, "gx", c.mul(rows, V));
  return c.submit(c.mul(rows, V), [=] { token_logprobs_backward(logits, t, lse, g, gx, rows, V, ignore); });
}

// ---- norms ----

KERNEL(rmsNorm, 7) {
  i64 rows = c.size(4, "rows"), n = c.size(5, "n");
  double eps = c.num(6, "eps");
  i64 total = c.mul(rows, n);
  const float* x = c.f32(0, "x", total);
  const float* w = c.f32(1, "w", n);
  float* out = c.f32(2, "out", total);
  float* rstd = c.f32(3, "rstd", rows);
  return c.submit(total, [=] { rms_norm(x, w, out, rstd, rows, n, eps); });
}

KERNEL(rmsNormBackward, 8) {
  i64 rows = c.size(6, "rows"), n = c.size(7, "n");
  i64 total = c.mul(rows, n);
  const float* x = c.f32(0, "x", total);
  const float* w = c.f32(1, "w", n);
  const float* rstd = c.f32(2, "rstd", rows);
  const float* g = c.f32(3, "g", total);
  float* gx = c.f32(4, "gx", total);
  float* gw = c.f32(5, "gw", n);
  return c.submit(total, [=] { rms_norm_backward(x, w, rstd, g, gx, gw, rows, n); });
}

KERNEL(layerNorm, 9) {
  i64 rows = c.size(6, "rows"), n = c.size(7, "n");
  double eps = c.num(8, "eps");
  i64 total = c.mul(rows, n);
  const float* x = c.f32(0, "x", total);
  const float* w = c.f32(1, "w", n);
  const float* b = c.f32(2, "b", n);
  float* out = c.f32(3, "out", total);
  float* mean = c.f32(4, "mean", rows);
  float* rstd = c.f32(5, "rstd", rows);
  return c.submit(total, [=] { layer_norm(x, w, b, out, mean, rstd, rows, n, eps); });
}

KERNEL(layerNormBackward, 10) {
  i64 rows = c.size(8, "rows"), n = c.size(9, "n");
  i64 total = c.mul(rows, n);
  const float* x = c.f32(0, "x", total);
  const float* w = c.f32(1, "w", n);
  const float* mean = c.f32(2, "mean", rows);
  const float* rstd = c.f32(3, "rstd", rows);
  const float* g = c.f32(4, "g", total);
  float* gx = c.f32(5, "gx", total);
  float* gw = c.f32(6, "gw", n);
  float* gb = c.f32(7, "gb", n);
  return c.submit(total, [=] { layer_norm_backward(x, w, mean, rstd, g, gx, gw, gb, rows, n); });
}

// ---- rope, swiglu ----

KERNEL(rope, 10) {
  i64 B = c.size(4, "B"), H = c.size(5, "H"), T = c.size(6, "T"), D = c.size(7, "D");
  bool per_batch = c.flag(8), inverse = c.flag(9);
  if (D % 2 != 0) c.shape_error("head size D must be even, got " + std::to_string(D));
  i64 total = c.mul(B, H, T, D);
  i64 table = c.mul(per_batch ? B : 1, T, D / 2);
  const float* x = c.f32(0, "x", total);
  const float* cs = c.f32(1, "cos", table);
  const float* sn = c.f32(2, "sin", table);
  float* out = c.f32(3, "out", total);
  return c.submit(total, [=] { rope(x, cs, sn, out, B, H, T, D, per_batch, inverse); });
}

KERNEL(swiglu, 4) {
  i64 n = c.size(3, "n");
  const float* gate = c.f32(0, "gate", n);
  const float* up = c.f32(1, "up", n);
  float* out = c.f32(2, "out", n);
  return c.submit(n, [=] { swiglu(gate, up, out, n); });
}

KERNEL(swigluBackward, 6) {
  i64 n = c.size(5, "n");
  const float* gate = c.f32(0, "gate", n);
  const float* up = c.f32(1, "up", n);
  const float* g = c.f32(2, "g", n);
  float* gg = c.f32(3, "ggate", n);
  float* gu = c.f32(4, "gup", n);
  return c.submit(n, [=] { swiglu_backward(gate, up, g, gg, gu, n); });
}

// ---- attention ----

AttnDims attn_dims(const Call& c, size_t first) {
  AttnDims d;
  d.B = c.size(first, "B");
  d.Hq = c.size(first + 1, "Hq");
  d.Hkv = c.size(first + 2, "Hkv");
  d.T = c.size(first + 3, "T");
  d.S = c.size(first + 4, "S");
  d.D = c.size(first + 5, "D");
  d.scale = static_cast<float>(c.num(first + 6, "scale"));
  d.causal = c.flag(first + 7);
  d.window = c.size(first + 8, "window");
  if (d.Hkv == 0 || d.Hq % d.Hkv != 0)
    c.shape_error("Hq (" + std::to_string(d.Hq) + ") must be a multiple of Hkv (" + std::to_string(d.Hkv) + ")");
  return d;
}

// Keys a query reads at most (at least 1), for the work estimate.
i64 attn_keys(const AttnDims& d) {
  return std::max<i64>(d.window > 0 ? std::min(d.S, d.window) : d.S, 1);
}

const float* mask_arg(const Call& c, size_t i, const AttnDims& d) {
  return c.a.is_nullish(i) ? nullptr : c.f32(i, "mask", c.mul(d.B, d.S));
}

KERNEL(attention, 15) {
  AttnDims d = attn_dims(c, 6);
  i64 qn = c.mul(d.B, d.Hq, d.T, d.D);
  i64 kn = c.mul(d.B, d.Hkv, d.S, d.D);
  const float* q = c.f32(0, "q", qn);
  const float* k = c.f32(1, "k", kn);
  const float* v = c.f32(2, "v", kn);
  const float* mask = mask_arg(c, 3, d);
  float* out = c.f32(4, "out", qn);
  float* lse = c.f32(5, "lse", c.mul(d.B, d.Hq, d.T));
  return c.submit(c.mul(qn, attn_keys(d)), [=] { attention(q, k, v, mask, out, lse, d); });
}

KERNEL(attentionBackward, 19) {
  AttnDims d = attn_dims(c, 10);
  i64 qn = c.mul(d.B, d.Hq, d.T, d.D);
  i64 kn = c.mul(d.B, d.Hkv, d.S, d.D);
  const float* q = c.f32(0, "q", qn);
  const float* k = c.f32(1, "k", kn);
  const float* v = c.f32(2, "v", kn);
  const float* mask = mask_arg(c, 3, d);
  const float* out = c.f32(4, "out", qn);
  const float* lse = c.f32(5, "lse", c.mul(d.B, d.Hq, d.T));
  const float* g = c.f32(6, "g", qn);
  float* gq = c.f32(7, "gq", qn);
  float* gk = c.f32(8, "gk", kn);
  float* gv = c.f32(9, "gv", kn);
  return c.submit(c.mul(qn, attn_keys(d)) + kn,
                  [=] { attention_backward(q, k, v, mask, out, lse, g, gq, gk, gv, d); });
}

// ---- optimizer ----

KERNEL(adamw, 11) {
  i64 n = c.size(4, "n");
  float* p = c.f32(0, "param", n);
  const float* g = c.f32(1, "grad", n);
  float* m = c.f32(2, "m", n);
  float* v = c.f32(3, "v", n);
  double lr = c.num(5, "lr"), b1 = c.num(6, "beta1"), b2 = c.num(7, "beta2"), eps = c.num(8, "eps"),
         wd = c.num(9, "weightDecay"), step = c.num(10, "step");
  return c.submit(n, [=] { adamw(p, g, m, v, n, lr, b1, b2, eps, wd, step); });
}

// clipGradNorm(list, maxNorm, out) with list = Int32Array [handle0, size0, handle1, size1, …]
KERNEL(clipGradNorm, 3) {
  size_t len;
  const int32_t* list = c.a.int32_array(0, &len);
  if (len % 2 != 0) c.shape_error("handle/size list has odd length");
  std::vector<float*> grads;
  std::vector<i64> sizes;
  i64 total = 0;
  for (size_t i = 0; i < len; i += 2) {
    const Buffer& b = c.e.buffers.get(list[i]);
    i64 n = list[i + 1];
    if (n < 0 || b.numel < n)
      c.shape_error("gradient " + std::to_string(i / 2) + " has " + std::to_string(b.numel) + " elements, needs " +
                    std::to_string(n));
    if (b.dtype != DType::f32) fail("DTypeError", "clipGradNorm: gradients must be f32");
    grads.push_back(static_cast<float*>(b.data));
    sizes.push_back(n);
    total += n;
  }
  double max_norm = c.num(1, "maxNorm");
  float* out = c.f32(2, "out", 1);
  return c.submit(total, [grads = std::move(grads), sizes = std::move(sizes), max_norm, out] {
    clip_grad_norm(grads, sizes, max_norm, out);
  });
}

#undef KERNEL

}  // namespace

void register_kernels(napi_env env, napi_value exports) {
#define K(name) {#name, nullptr, k_##name, nullptr, nullptr, nullptr, napi_default, nullptr}
  napi_property_descriptor props[] = {
      K(fill),
      K(copy),
      K(cast),
      K(unary),
      K(unaryBackward),
      K(affine),
      K(powScalar),
      K(binary),
      K(reduceSum),
      K(reduceMax),
      K(reduceMaxBackward),
      K(matmul),
      K(permute),
      K(copyBlock),
      K(embedding),
      K(embeddingBackward),
      K(softmax),
      K(softmaxBackward),
      K(logSoftmax),
      K(logSoftmaxBackward),
      K(tokenLogprobs),
      K(tokenLogprobsBackward),
      K(rmsNorm),
      K(rmsNormBackward),
      K(layerNorm),
      K(layerNormBackward),
      K(rope),
      K(swiglu),
      K(swigluBackward),
      K(attention),
      K(attentionBackward),
      K(adamw),
      K(clipGradNorm),
  };
#undef K
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}

}  // namespace aligner
