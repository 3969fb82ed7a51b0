// Shared between the addon's translation units: how a libtorch tensor lives inside a JS value,
// the live-tensor accounting, and the error boundary every exported function goes through.
#pragma once

#include <napi.h>
#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <string>

namespace fngd {

// One JS-visible reference to a libtorch tensor. JS owns it through a Napi::External; `dispose()`
// resets the tensor early, the External's finalizer is only the safety net.
constexpr uint32_t kTensorMagic = 0x7e45042a;
constexpr uint32_t kGeneratorMagic = 0x6e4e5247;

struct TensorHandle {
  uint32_t magic = kTensorMagic;  // the first field of every External this addon makes
  at::Tensor t;
  int64_t bytes = 0;  // what this handle reported to V8 and to the live counter
};

struct LiveStats {
  int64_t tensors = 0;
  int64_t bytes = 0;
};
LiveStats& liveStats();

// Wrap a (defined) tensor for JS; undefined tensors become null.
Napi::Value wrapTensor(Napi::Env env, at::Tensor t);
// The tensor behind a handle; throws a JS-facing error if the value is not a handle or was disposed.
const at::Tensor& unwrapTensor(const Napi::Value& v, const char* what);
void releaseHandle(Napi::Env env, TensorHandle* h);

// Runs `body`, turning libtorch and C++ exceptions into JS exceptions with `context` in front.
template <typename F>
Napi::Value guard(Napi::Env env, const std::string& context, F&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw Napi::Error::New(env, context + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, context + ": " + e.what());
  }
}

c10::ScalarType parseDtype(Napi::Env env, const Napi::Value& v);
const char* dtypeName(c10::ScalarType s);
c10::Device parseDevice(Napi::Env env, const Napi::Value& v);

void initAutograd(Napi::Env env, Napi::Object exports);
void initOps(Napi::Env env, Napi::Object exports);

}  // namespace fngd
