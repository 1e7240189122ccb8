// Broadcasting binary ops. Axes are first simplified (size-1 axes dropped, axes that are
// contiguous for out, a and b merged), so the common cases become one long inner loop with
// unit or zero strides that the compiler vectorises; the flat output range is then split across
// threads, each chunk walking its own odometer.
#include <cmath>

#include "kernels.h"
#include "pool.h"

namespace aligner::ALIGNER_ISA_NS {

namespace {

constexpr i64 kGrain = 16 * 1024;
constexpr int kMaxRank = 8;

template <Binary K>
inline float op(float a, float b) {
  if constexpr (K == Binary::add) return a + b;
  if constexpr (K == Binary::sub) return a - b;
  if constexpr (K == Binary::mul) return a * b;
  if constexpr (K == Binary::div) return a / b;
  // maximum/minimum: NaN if either input is NaN (the reference's rule), else the larger/smaller.
  if constexpr (K == Binary::maximum) return (a != a || b != b) ? NAN : (a > b ? a : b);
  if constexpr (K == Binary::minimum) return (a != a || b != b) ? NAN : (a < b ? a : b);
  return 0.0f;
}

// out[i] = op(a[i·sa], b[i·sb]) for i < n; the stride cases are split so each loop vectorises.
template <Binary K>
void inner(const float* a, const float* b, float* out, i64 n, i64 sa, i64 sb) {
  if (sa == 1 && sb == 1) {
    for (i64 i = 0; i < n; i++) out[i] = op<K>(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    const float bv = *b;
    for (i64 i = 0; i < n; i++) out[i] = op<K>(a[i], bv);
  } else if (sa == 0 && sb == 1) {
    const float av = *a;
    for (i64 i = 0; i < n; i++) out[i] = op<K>(av, b[i]);
  } else {
    for (i64 i = 0; i < n; i++) out[i] = op<K>(a[i * sa], b[i * sb]);
  }
}

struct Layout {
  int rank = 0;
  i64 shape[kMaxRank], as[kMaxRank], bs[kMaxRank];
};

Layout simplify(int rank, const i64* shape, const i64* as, const i64* bs) {
  Layout l;
  for (int d = 0; d < rank; d++) {
    if (shape[d] == 1) continue;
    if (l.rank > 0) {
      int p = l.rank - 1;
      // Axis p followed by d behave as one axis when stepping p equals stepping d shape[d] times.
      if (l.as[p] == as[d] * shape[d] && l.bs[p] == bs[d] * shape[d]) {
        l.shape[p] *= shape[d];
        l.as[p] = as[d];
        l.bs[p] = bs[d];
        continue;
      }
    }
    l.shape[l.rank] = shape[d];
    l.as[l.rank] = as[d];
    l.bs[l.rank] = bs[d];
    l.rank++;
  }
  if (l.rank == 0) {  // a scalar
    l.rank = 1;
    l.shape[0] = 1;
    l.as[0] = l.bs[0] = 0;
  }
  return l;
}

template <Binary K>
void run(const float* a, const float* b, float* out, const Layout& l) {
  i64 total = 1;
  for (int d = 0; d < l.rank; d++) total *= l.shape[d];
  const int last = l.rank - 1;
  const i64 n_in = l.shape[last];
  parallel_for(total, kGrain, [&](i64 begin, i64 end) {
    // Multi-index of `begin`, and the input offsets it maps to.
    i64 idx[kMaxRank];
    i64 rest = begin, oa = 0, ob = 0;
    for (int d = last; d >= 0; d--) {
      idx[d] = rest % l.shape[d];
      rest /= l.shape[d];
      oa += idx[d] * l.as[d];
      ob += idx[d] * l.bs[d];
    }
    i64 pos = begin;
    while (pos < end) {
      i64 len = std::min(n_in - idx[last], end - pos);
      inner<K>(a + oa, b + ob, out + pos, len, l.as[last], l.bs[last]);
      pos += len;
      idx[last] += len;
      oa += len * l.as[last];
      ob += len * l.bs[last];
      // Carry into the outer axes.
      for (int d = last; d > 0 && idx[d] == l.shape[d]; d--) {
        oa -= l.shape[d] * l.as[d];
        ob -= l.shape[d] * l.bs[d];
        idx[d] = 0;
        idx[d - 1]++;
        oa += l.as[d - 1];
        ob += l.bs[d - 1];
      }
    }
  });
}

}  // namespace

// a, b (strided views broadcast to shape) → out [∏ shape]
void binary(Binary kind, const float* a, const float* b, float* out, int rank, const i64* shape, const i64* as,
            const i64* bs) {
  for (int d = 0; d < rank; d++)
    if (shape[d] == 0) return;
  Layout l = simplify(rank, shape, as, bs);
  switch (kind) {
    case Binary::add:
      run<Binary::add>(a, b, out, l);
      break;
    case Binary::sub:
      run<Binary::sub>(a, b, out, l);
      break;
    case Binary::mul:
      run<Binary::mul>(a, b, out, l);
      break;
    case Binary::div:
      run<Binary::div>(a, b, out, l);
      break;
    case Binary::maximum:
      run<Binary::maximum>(a, b, out, l);
      break;
    case Binary::minimum:
      run<Binary::minimum>(a, b, out, l);
      break;
  }
}

}  // namespace aligner::ALIGNER_ISA_NS
