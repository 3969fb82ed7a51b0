// Shared between the addon's translation units: how a libtorch tensor lives inside a JS value,
// the live-tensor accounting, and the error boundary every exported function goes through.
#pragma once

#include <napi.h>
#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <string>

namespace fngd {

constexpr uint32_t kGeneratorMagic = 0x6e4e5247;

// JS refers to a tensor by a BigInt id into this table. Ids are never reused, so a stale id is
// reported as use-after-dispose instead of silently aliasing a newer tensor; disposing erases the
// entry at once (no finalizer bookkeeping piles up during long synchronous loops).
struct TensorHandle {
  at::Tensor t;
  int64_t bytes = 0;         // what this handle reported to V8 and to the live counter
  napi_ref owner = nullptr;  // weak reference to the JS Tensor holding this id (`arm`), if any
};

struct LiveStats {
  int64_t tensors = 0;
  int64_t bytes = 0;
};
LiveStats& liveStats();

// Register a (defined) tensor and return its id as a BigInt; undefined tensors become null.
Napi::Value wrapTensor(Napi::Env env, at::Tensor t);
// The tensor behind an id; throws a JS-facing error naming `what` if the value is not a tensor id
// or the tensor was disposed.
const at::Tensor& unwrapTensor(const Napi::Value& v, const char* what);
// Null when `v` is not a live tensor id.
const at::Tensor* findTensor(const Napi::Value& v);
// Frees the tensor behind `v` if it is live; returns whether it was.
bool releaseTensor(Napi::Env env, const Napi::Value& v);

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
