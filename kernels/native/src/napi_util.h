// N-API plumbing: argument reading with typed errors, and the wrapper that turns a C++
// KernelError into a JS Error whose `name` kernels/errors.ts maps to a typed class.
#pragma once

#include <node_api.h>

#include <cmath>
#include <new>
#include <string>

#include "common.h"

namespace aligner {

inline void napi_check(napi_status status, const char* what) {
  if (status != napi_ok) fail("NativeError", std::string("N-API call failed: ") + what);
}
#define NAPI_OK(call) ::aligner::napi_check((call), #call)

// A JS Error with the given name and message.
inline napi_value make_error(napi_env env, const std::string& name, const std::string& message) {
  napi_value msg, err, name_value;
  napi_create_string_utf8(env, message.c_str(), message.size(), &msg);
  napi_create_error(env, nullptr, msg, &err);
  napi_create_string_utf8(env, name.c_str(), name.size(), &name_value);
  napi_set_named_property(env, err, "name", name_value);
  return err;
}

// Runs body() and converts any C++ exception into a pending JS exception.
template <class F>
napi_value guarded(napi_env env, F&& body) {
  try {
    return body();
  } catch (const KernelError& e) {
    napi_throw(env, make_error(env, e.name, e.what()));
  } catch (const std::bad_alloc&) {
    napi_throw(env, make_error(env, "OutOfMemoryError", "out of host memory in the native backend"));
  } catch (const std::exception& e) {
    napi_throw(env, make_error(env, "NativeError", e.what()));
  }
  return nullptr;
}

class Args {
 public:
  static constexpr size_t kMax = 24;

  Args(napi_env env, napi_callback_info info, const char* fn, size_t expected) : env(env), fn(fn) {
    argc_ = kMax;
    NAPI_OK(napi_get_cb_info(env, info, &argc_, argv_, nullptr, nullptr));
    if (argc_ < expected)
      fail("NativeError",
           std::string(fn) + ": expected " + std::to_string(expected) + " arguments, got " + std::to_string(argc_));
  }

  napi_value operator[](size_t i) const { return argv_[i]; }
  size_t count() const { return argc_; }

  napi_valuetype type(size_t i) const {
    napi_valuetype t;
    NAPI_OK(napi_typeof(env, argv_[i], &t));
    return t;
  }
  bool is_nullish(size_t i) const {
    napi_valuetype t = type(i);
    return t == napi_null || t == napi_undefined;
  }

  double num(size_t i, const char* what) const {
    double v;
    if (napi_get_value_double(env, argv_[i], &v) != napi_ok)
      fail("NativeError", std::string(fn) + ": " + what + " must be a number");
    return v;
  }

  // A non-negative integer size or offset.
  i64 size(size_t i, const char* what) const {
    double v = num(i, what);
    if (!(v >= 0) || v > 9007199254740991.0 || std::floor(v) != v)
      fail("ShapeError", std::string(fn) + ": " + what + " must be a non-negative integer, got " + fmt(v));
    return static_cast<i64>(v);
  }

  bool flag(size_t i) const {
    napi_value b;
    bool v;
    NAPI_OK(napi_coerce_to_bool(env, argv_[i], &b));
    NAPI_OK(napi_get_value_bool(env, b, &v));
    return v;
  }

  int32_t int32(size_t i, const char* what) const {
    int32_t v;
    if (type(i) != napi_number || napi_get_value_int32(env, argv_[i], &v) != napi_ok)
      fail("NativeError", std::string(fn) + ": " + what + " must be a storage handle (int32)");
    return v;
  }

  std::string str(size_t i, const char* what) const;

  // An Int32Array argument's elements.
  const int32_t* int32_array(size_t i, size_t* length) const {
    napi_typedarray_type t;
    void* data = nullptr;
    napi_value ab;
    size_t offset;
    bool is_ta = false;
    NAPI_OK(napi_is_typedarray(env, argv_[i], &is_ta));
    if (!is_ta || napi_get_typedarray_info(env, argv_[i], &t, length, &data, &ab, &offset) != napi_ok ||
        t != napi_int32_array)
      fail("NativeError", std::string(fn) + ": argument " + std::to_string(i) + " must be an Int32Array");
    return static_cast<const int32_t*>(data);
  }

  static std::string fmt(double v) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
  }

  napi_env env;
  const char* fn;

 private:
  size_t argc_;
  napi_value argv_[kMax];
};

// A JS string's UTF-8 text; a NativeError with `error` when the value is not a string.
inline std::string js_text(napi_env env, napi_value v, const std::string& error) {
  napi_valuetype t;
  size_t length = 0;
  NAPI_OK(napi_typeof(env, v, &t));
  if (t != napi_string || napi_get_value_string_utf8(env, v, nullptr, 0, &length) != napi_ok) fail("NativeError", error);
  std::string out(length, '\0');
  NAPI_OK(napi_get_value_string_utf8(env, v, out.data(), length + 1, &length));
  return out;
}

inline std::string Args::str(size_t i, const char* what) const {
  return js_text(env, argv_[i], std::string(fn) + ": " + what + " must be a string");
}

inline napi_value js_undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}
inline napi_value js_number(napi_env env, double v) {
  napi_value n;
  NAPI_OK(napi_create_double(env, v, &n));
  return n;
}
inline napi_value js_string(napi_env env, const std::string& s) {
  napi_value v;
  NAPI_OK(napi_create_string_utf8(env, s.c_str(), s.size(), &v));
  return v;
}

}  // namespace aligner
