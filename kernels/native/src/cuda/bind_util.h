// N-API helpers shared by the CUDA entry points (bind_cuda.cc, bind_cuda_kernels.cc).
#pragma once

#include <string>
#include <vector>

#include "cuda/device.h"
#include "napi_util.h"

namespace aligner {
namespace cuda {

enum class HostType { f32 = 0, bf16 = 1, i32 = 2 };  // numbering shared with CUDA_HOST_TYPES in kernels/cuda-probe.ts

inline const DriverFns& cu() { return libraries().cu; }

inline HostType host_type(const Args& a, size_t i) {
  i64 code = a.size(i, "dtype");
  if (code > 2) fail("DTypeError", std::string(a.fn) + ": unsupported dtype code " + std::to_string(code));
  return static_cast<HostType>(code);
}

inline CUdeviceptr ptr_arg(const Args& a, size_t i, const char* what) {
  i64 p = a.size(i, what);
  if (p == 0) fail("NativeError", std::string(a.fn) + ": " + what + " is a null (freed?) device pointer");
  return static_cast<CUdeviceptr>(p);
}

inline napi_value make_object(napi_env env) {
  napi_value o;
  NAPI_OK(napi_create_object(env, &o));
  return o;
}
inline void set(napi_env env, napi_value o, const char* key, napi_value v) { NAPI_OK(napi_set_named_property(env, o, key, v)); }
inline napi_value js_bool(napi_env env, bool b) {
  napi_value v;
  NAPI_OK(napi_get_boolean(env, b, &v));
  return v;
}
inline napi_value js_null(napi_env env) {
  napi_value v;
  NAPI_OK(napi_get_null(env, &v));
  return v;
}
inline napi_value js_string_or_null(napi_env env, const std::string& s) { return s.empty() ? js_null(env) : js_string(env, s); }

inline std::string string_arg(const Args& a, size_t i, const char* what) {
  size_t len = 0;
  if (napi_get_value_string_utf8(a.env, a[i], nullptr, 0, &len) != napi_ok)
    fail("NativeError", std::string(a.fn) + ": " + what + " must be a string");
  std::string s(len, '\0');
  NAPI_OK(napi_get_value_string_utf8(a.env, a[i], s.data(), len + 1, &len));
  return s;
}

inline std::vector<std::string> string_array_arg(const Args& a, size_t i, const char* what) {
  std::vector<std::string> out;
  bool is_array = false;
  NAPI_OK(napi_is_array(a.env, a[i], &is_array));
  if (!is_array) fail("NativeError", std::string(a.fn) + ": " + what + " must be an array of strings");
  uint32_t n = 0;
  NAPI_OK(napi_get_array_length(a.env, a[i], &n));
  for (uint32_t k = 0; k < n; k++) {
    napi_value el;
    NAPI_OK(napi_get_element(a.env, a[i], k, &el));
    size_t len = 0;
    if (napi_get_value_string_utf8(a.env, el, nullptr, 0, &len) != napi_ok)
      fail("NativeError", std::string(a.fn) + ": " + what + " must be an array of strings");
    std::string s(len, '\0');
    NAPI_OK(napi_get_value_string_utf8(a.env, el, s.data(), len + 1, &len));
    out.push_back(s);
  }
  return out;
}

// A typed array's bytes and element type.
inline void* typed_arg(const Args& a, size_t i, napi_typedarray_type* type, size_t* length) {
  bool is_ta = false;
  NAPI_OK(napi_is_typedarray(a.env, a[i], &is_ta));
  if (!is_ta) fail("NativeError", std::string(a.fn) + ": argument " + std::to_string(i) + " must be a typed array");
  void* data = nullptr;
  napi_value ab;
  size_t offset;
  NAPI_OK(napi_get_typedarray_info(a.env, a[i], type, length, &data, &ab, &offset));
  return data;
}

// Registration of each file's entry points.
void register_cuda_memory(napi_env env, napi_value exports);
void register_cuda_kernels(napi_env env, napi_value exports);
void register_cuda_nccl(napi_env env, napi_value exports);

}  // namespace cuda
}  // namespace aligner
