// Tensors, data transfer, memory accounting, threads, devices and seeds. The operator call lives in
// ops.cc, autograd in autograd.cc.
#include "handle.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/version.h>
#include <v8.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#ifdef __GLIBC__
#include <dlfcn.h>
#include <malloc.h>
#endif
#include <unordered_map>

namespace fngd {

// A double as JS would show it: NaN, Infinity, and the shortest digits that read back exactly.
static std::string jsNumber(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  char buf[32];
  if (d == std::trunc(d) && std::fabs(d) < 1e21) {
    std::snprintf(buf, sizeof buf, "%.0f", d);
    return buf;
  }
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  return buf;
}

LiveStats& liveStats() {
  static LiveStats s;
  return s;
}

static int64_t handleBytes(const at::Tensor& t) {
  return static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size());
}

static std::unordered_map<int64_t, TensorHandle>& table() {
  static std::unordered_map<int64_t, TensorHandle> t;
  return t;
}
static int64_t nextId = 1;

// What V8 is told about native memory. V8 starts a full GC whenever the external memory it was told
// about grows past a limit (about 64 MB over its value at the last GC). Reporting every allocation
// and free made each training step (hundreds of MB of activations made and freed) run several full
// GCs with nothing to collect: a ResNet-20 step ran 3-5% slower, and 5-8% with the curvature taps,
// which hold a second handle onto every layer input and output. The GC only matters as the safety
// net for tensors nobody disposed, and those make the live bytes grow for good. So V8 hears of each
// new high-water mark of live bytes, never of a fall (freed memory stays counted: V8 then holds off
// GCs until live memory really grows past its peak).
static int64_t reportedBytes = 0;
static void reportExternalMemory(Napi::Env env) {
  int64_t live = liveStats().bytes;
  if (live > reportedBytes) {
    Napi::MemoryManagement::AdjustExternalMemory(env, live - reportedBytes);
    reportedBytes = live;
  }
}

static void releaseEntry(napi_env env, std::unordered_map<int64_t, TensorHandle>::iterator it) {
  if (it->second.owner != nullptr) napi_delete_reference(env, it->second.owner);
  liveStats().tensors -= 1;
  liveStats().bytes -= it->second.bytes;
  table().erase(it);
}

// The GC safety net for tensors nobody disposed. Each JS Tensor is known through a weak reference
// (`arm`); V8 clears it during the GC that collects the Tensor. Node runs Node-API finalizers only
// when the event loop turns, so with finalizers a synchronous loop that forgot dispose() grew until
// out of memory, global.gc() or not. Instead the addon looks for cleared references itself, at the
// next allocation (and in live()), when
//   - a GC has run since the last look (V8's GC epilogue callback says so; polling a weak sentinel
//     object instead kept it alive: reading a weak reference during incremental marking marks it);
//   - the live handles grew past their level after the last look by half (at least 1,024 handles
//     or 64 MB): a look costs one check per live handle, so this keeps it amortized O(1) per
//     allocation, and a training loop that disposes (flat live handles) never looks.
// Forgotten tensors are then freed at the first allocation after the GC that collected their Tensor
// objects: live memory stays within 1.5x (plus 64 MB) of what is reachable, whatever the loop does.
static bool gcRan = true;
static LiveStats afterSweep;

static void onGcEpilogue(v8::Isolate*, v8::GCType, v8::GCCallbackFlags) { gcRan = true; }

static void sweepCollected(napi_env env, bool force) {
  const LiveStats& now = liveStats();
  bool grown = now.tensors > afterSweep.tensors + std::max<int64_t>(1024, afterSweep.tensors / 2) ||
               now.bytes > afterSweep.bytes + std::max<int64_t>(int64_t{64} << 20, afterSweep.bytes / 2);
  if (!(force || grown) || !gcRan) return;
  gcRan = false;
  Napi::HandleScope scope(env);
  std::vector<int64_t> dead;
  for (const auto& [id, h] : table()) {
    if (h.owner == nullptr) continue;
    napi_value v = nullptr;
    if (napi_get_reference_value(env, h.owner, &v) == napi_ok && v == nullptr) dead.push_back(id);
  }
  int64_t before = liveStats().bytes;
  for (int64_t id : dead) releaseEntry(env, table().find(id));
  afterSweep = liveStats();
  // Tell V8 what the sweep freed (never what dispose() frees: see reportExternalMemory). Else its
  // count stayed at the high-water mark, the next GC came only 64 MB above it, and a leaking loop
  // climbed by that much every cycle.
  int64_t freed = before - afterSweep.bytes;
  if (freed > 0) {
    Napi::MemoryManagement::AdjustExternalMemory(Napi::Env(env), -freed);
    reportedBytes -= freed;
  }
}

Napi::Value wrapTensor(Napi::Env env, at::Tensor t) {
  if (!t.defined()) return env.Null();
  sweepCollected(env, false);
  int64_t bytes = handleBytes(t);
  int64_t id = nextId++;
  table().emplace(id, TensorHandle{std::move(t), bytes, nullptr});
  liveStats().tensors += 1;
  liveStats().bytes += bytes;
  reportExternalMemory(env);
  return Napi::BigInt::New(env, id);
}

static bool idOf(const Napi::Value& v, int64_t* id) {
  if (!v.IsBigInt()) return false;
  bool lossless = false;
  *id = v.As<Napi::BigInt>().Int64Value(&lossless);
  return lossless;
}

const at::Tensor* findTensor(const Napi::Value& v) {
  int64_t id;
  if (!idOf(v, &id)) return nullptr;
  auto it = table().find(id);
  return it == table().end() ? nullptr : &it->second.t;
}

const at::Tensor& unwrapTensor(const Napi::Value& v, const char* what) {
  int64_t id;
  if (!idOf(v, &id)) {
    throw Napi::TypeError::New(v.Env(), std::string(what) + ": expected a Tensor, got " +
                                            (v.IsNumber() ? "a number" : v.IsNull() || v.IsUndefined() ? "nothing" : "another value"));
  }
  auto it = table().find(id);
  if (it == table().end()) throw Napi::Error::New(v.Env(), std::string(what) + ": tensor used after dispose()");
  return it->second.t;
}

bool releaseTensor(Napi::Env env, const Napi::Value& v) {
  int64_t id;
  if (!idOf(v, &id)) return false;
  auto it = table().find(id);
  if (it == table().end()) return false;
  releaseEntry(env, it);
  reportExternalMemory(env);
  return true;
}

static const std::unordered_map<std::string, c10::ScalarType>& dtypeTable() {
  static const std::unordered_map<std::string, c10::ScalarType> m = {
      {"float32", at::kFloat}, {"float64", at::kDouble}, {"float16", at::kHalf}, {"bfloat16", at::kBFloat16},
      {"int64", at::kLong},    {"int32", at::kInt},      {"int16", at::kShort},  {"int8", at::kChar},
      {"uint8", at::kByte},    {"bool", at::kBool}};
  return m;
}

c10::ScalarType parseDtype(Napi::Env env, const Napi::Value& v) {
  if (v.IsString()) {
    auto s = v.As<Napi::String>().Utf8Value();
    auto it = dtypeTable().find(s);
    if (it == dtypeTable().end())
      throw Napi::TypeError::New(env, "unknown dtype '" + s + "' (use float32, float64, float16, bfloat16, int64, int32, int16, int8, uint8, bool)");
    return it->second;
  }
  if (v.IsNumber()) {
    // libtorch's own enum value (what operators such as result_type return); it indexes tables.
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d < static_cast<double>(c10::ScalarType::Undefined)) || d != std::trunc(d))
      throw Napi::RangeError::New(env, "unknown dtype " + jsNumber(d) + " (use a name such as 'float32')");
    return static_cast<c10::ScalarType>(static_cast<int>(d));
  }
  throw Napi::TypeError::New(env, "dtype must be a string such as 'float32'");
}

const char* dtypeName(c10::ScalarType s) {
  switch (s) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kShort: return "int16";
    case at::kChar: return "int8";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    default: return c10::toString(s);
  }
}

c10::Device parseDevice(Napi::Env env, const Napi::Value& v) {
  if (!v.IsString()) throw Napi::TypeError::New(env, "device must be a string such as 'cpu' or 'cuda:0'");
  auto s = v.As<Napi::String>().Utf8Value();
  try {
    return c10::Device(s);
  } catch (const c10::Error&) {
    throw Napi::TypeError::New(env, "unknown device '" + s + "' (use 'cpu', 'cuda' or 'cuda:N')");
  }
}

// Values JS hands over into an integer dtype must arrive exactly: a cast wrapped 300 to 44 in uint8
// and turned NaN and 1e30 into INT64_MIN in int64, silently. One range table for arrays
// (fromTypedArray) and single values (checkIntegerValue: fill_, maskedFill, full).
// An integer dtype's range [lo, hi), hi exclusive (2^63 is not an int64); false for other dtypes.
static bool integerRange(c10::ScalarType dt, double* lo, double* hi) {
  switch (dt) {
    case at::kByte: *lo = 0; *hi = 256; return true;
    case at::kChar: *lo = -128; *hi = 128; return true;
    case at::kShort: *lo = -32768; *hi = 32768; return true;
    case at::kInt: *lo = -2147483648.0; *hi = 2147483648.0; return true;
    case at::kLong: *lo = -9223372036854775808.0; *hi = 9223372036854775808.0; return true;
    default: return false;
  }
}

// "cannot store V in dtype D exactly: it holds the integers lo..top", after the caller's prefix.
static std::string cannotStore(const std::string& value, c10::ScalarType dt, double lo, double hi) {
  return "cannot store " + value + " in dtype " + dtypeName(dt) + " exactly: it holds the integers " + c10::str(static_cast<int64_t>(lo)) + ".." +
         (dt == at::kLong ? std::string("9223372036854775807") : c10::str(static_cast<int64_t>(hi) - 1));
}

// Throws naming the dtype and the first value that does not fit.
static void checkExactIntegers(Napi::Env env, const at::Tensor& src, c10::ScalarType dt) {
  double lo, hi;
  if (!integerRange(dt, &lo, &hi) || src.scalar_type() == dt || src.numel() == 0) return;
  // A widening integer conversion (int32 -> int64: every batch's labels and token ids) always fits.
  if (!at::isFloatingType(src.scalar_type()) && c10::promoteTypes(src.scalar_type(), dt) == dt) return;
  at::Tensor flat = src.reshape({-1});
  at::Tensor bad;
  if (at::isFloatingType(flat.scalar_type())) {
    at::Tensor d = flat.to(at::kDouble);
    bad = (d < lo) | (d >= hi) | (d != d.trunc());  // NaN fails the last test
  } else {
    at::Tensor l = flat.to(at::kLong);  // every integer source fits int64 (and int64 targets returned above)
    bad = (l < static_cast<int64_t>(lo)) | (l >= static_cast<int64_t>(hi));
  }
  if (!bad.any().item<bool>()) return;
  int64_t i = bad.nonzero()[0][0].item<int64_t>();
  std::string value = flat.scalar_type() == at::kLong ? std::to_string(flat[i].item<int64_t>()) : jsNumber(flat[i].item<double>());
  throw Napi::RangeError::New(env, "fromTypedArray: " + cannotStore(value + " (element " + std::to_string(i) + ")", dt, lo, hi));
}

// checkIntegerValue(value, dtype, what): a JS number about to be stored into a tensor of `dtype`
// must fit exactly (libtorch truncates 1.5 to 1 and wraps or saturates the rest, silently).
// Booleans, other value types and non-integer dtypes pass.
static Napi::Value CheckIntegerValue(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double lo, hi;
  if (!info[0].IsNumber() || !integerRange(parseDtype(env, info[1]), &lo, &hi)) return env.Undefined();
  double v = info[0].As<Napi::Number>().DoubleValue();
  if (v >= lo && v < hi && v == std::trunc(v)) return env.Undefined();
  std::string what = info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : std::string("value");
  throw Napi::RangeError::New(env, what + ": " + cannotStore(jsNumber(v), parseDtype(env, info[1]), lo, hi));
}

// fromTypedArray(array, shape, dtype?, device?): copies JS memory into a new tensor. The source
// dtype follows the typed array; `dtype` converts after the copy (into an integer dtype only when
// every value fits exactly).
static Napi::Value FromTypedArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "fromTypedArray", [&]() -> Napi::Value {
    if (!info[0].IsTypedArray()) throw Napi::TypeError::New(env, "fromTypedArray: data must be a typed array");
    auto arr = info[0].As<Napi::TypedArray>();
    c10::ScalarType src;
    switch (arr.TypedArrayType()) {
      case napi_float32_array: src = at::kFloat; break;
      case napi_float64_array: src = at::kDouble; break;
      case napi_int32_array: src = at::kInt; break;
      case napi_int16_array: src = at::kShort; break;
      case napi_int8_array: src = at::kChar; break;
      case napi_uint8_array: case napi_uint8_clamped_array: src = at::kByte; break;
      case napi_bigint64_array: src = at::kLong; break;
      default: throw Napi::TypeError::New(env, "fromTypedArray: unsupported typed array type");
    }
    if (!info[1].IsArray()) throw Napi::TypeError::New(env, "fromTypedArray: shape must be an array of integers");
    auto shapeArr = info[1].As<Napi::Array>();
    std::vector<int64_t> shape(shapeArr.Length());
    int64_t numel = 1;
    for (uint32_t i = 0; i < shapeArr.Length(); ++i) {
      Napi::Value d = shapeArr[i];
      if (!d.IsNumber()) throw Napi::TypeError::New(env, "fromTypedArray: shape entries must be integers");
      double dv = d.As<Napi::Number>().DoubleValue();
      if (!(dv >= 0 && dv < 9223372036854775808.0) || dv != std::trunc(dv))
        throw Napi::TypeError::New(env, "fromTypedArray: shape entries must be non-negative integers");
      shape[i] = static_cast<int64_t>(dv);
      if (__builtin_mul_overflow(numel, shape[i], &numel))
        throw Napi::RangeError::New(env, "fromTypedArray: the shape has more than 2^63 elements");
    }
    if (numel != static_cast<int64_t>(arr.ElementLength()))
      throw Napi::RangeError::New(env, "fromTypedArray: shape [" + c10::Join(",", shape) + "] holds " + std::to_string(numel) +
                                           " elements but the data has " + std::to_string(arr.ElementLength()));
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(src));
    const uint8_t* data = static_cast<const uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
    std::memcpy(t.data_ptr(), data, arr.ByteLength());
    if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) {
      auto dt = parseDtype(env, info[2]);
      checkExactIntegers(env, t, dt);
      if (dt != src) t = t.to(dt);
    }
    if (info.Length() > 3 && !info[3].IsUndefined() && !info[3].IsNull()) {
      auto dev = parseDevice(env, info[3]);
      if (dev != t.device()) t = t.to(dev);
    }
    return wrapTensor(env, std::move(t));
  });
}

// toTypedArray(t): a copy of the data, on the CPU, contiguous. float16/bfloat16 come back as float32.
static Napi::Value ToTypedArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "toTypedArray", [&]() -> Napi::Value {
    at::Tensor t = unwrapTensor(info[0], "toTypedArray").detach();
    if (t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16) t = t.to(at::kFloat);
    t = t.to(at::kCPU).contiguous();
    size_t bytes = t.numel() * t.element_size();
    auto buf = Napi::ArrayBuffer::New(env, bytes);
    if (bytes) std::memcpy(buf.Data(), t.data_ptr(), bytes);
    size_t n = t.numel();
    switch (t.scalar_type()) {
      case at::kFloat: return Napi::Float32Array::New(env, n, buf, 0);
      case at::kDouble: return Napi::Float64Array::New(env, n, buf, 0);
      case at::kLong: return Napi::TypedArrayOf<int64_t>::New(env, n, buf, 0, napi_bigint64_array);
      case at::kInt: return Napi::Int32Array::New(env, n, buf, 0);
      case at::kShort: return Napi::Int16Array::New(env, n, buf, 0);
      case at::kChar: return Napi::Int8Array::New(env, n, buf, 0);
      case at::kByte: case at::kBool: return Napi::Uint8Array::New(env, n, buf, 0);
      default: throw Napi::TypeError::New(env, std::string("toTypedArray: unsupported dtype ") + dtypeName(t.scalar_type()));
    }
  });
}

static Napi::Value Item(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "item", [&]() -> Napi::Value {
    const at::Tensor& t = unwrapTensor(info[0], "item");
    if (t.numel() != 1)
      throw Napi::RangeError::New(env, "item: tensor has " + std::to_string(t.numel()) + " elements, expected exactly 1");
    c10::Scalar s = t.item();
    if (s.isBoolean()) return Napi::Boolean::New(env, s.toBool());
    if (s.isIntegral(false)) return Napi::Number::New(env, static_cast<double>(s.toLong()));
    return Napi::Number::New(env, s.toDouble());
  });
}

// The metadata getters go through the error boundary too: some layouts throw from plain accessors
// (a sparse tensor's is_contiguous(), an mkldnn tensor's storage()), and a C++ exception that leaves
// a Node-API callback aborts the process.
static Napi::Value Shape(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "shape", [&]() -> Napi::Value {
    auto sizes = unwrapTensor(info[0], "shape").sizes();
    auto arr = Napi::Array::New(env, sizes.size());
    for (size_t i = 0; i < sizes.size(); ++i) arr.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(sizes[i])));
    return arr;
  });
}

static Napi::Value Dim(const Napi::CallbackInfo& info) {
  return guard(info.Env(), "dim", [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), static_cast<double>(unwrapTensor(info[0], "dim").dim()));
  });
}

static Napi::Value Numel(const Napi::CallbackInfo& info) {
  return guard(info.Env(), "numel", [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), static_cast<double>(unwrapTensor(info[0], "numel").numel()));
  });
}

// Which storage a tensor views, and whether it is contiguous: enough for a caller to know when
// writing into a tensor in place can touch another tensor's memory (two views of one storage).
static Napi::Value MemoryLayout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "memoryLayout", [&]() -> Napi::Value {
    const at::Tensor& t = unwrapTensor(info[0], "memoryLayout");
    auto out = Napi::Object::New(env);
    const void* base = t.has_storage() ? t.storage().data() : nullptr;
    out.Set("storage", Napi::BigInt::New(env, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(base))));
    out.Set("contiguous", Napi::Boolean::New(env, t.layout() == at::kStrided && t.is_contiguous()));
    return out;
  });
}

static Napi::Value Dtype(const Napi::CallbackInfo& info) {
  return guard(info.Env(), "dtype", [&]() -> Napi::Value {
    return Napi::String::New(info.Env(), dtypeName(unwrapTensor(info[0], "dtype").scalar_type()));
  });
}

static Napi::Value DeviceOf(const Napi::CallbackInfo& info) {
  return guard(info.Env(), "device", [&]() -> Napi::Value {
    return Napi::String::New(info.Env(), unwrapTensor(info[0], "device").device().str());
  });
}

static Napi::Value IsDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), findTensor(info[0]) == nullptr);
}

static Napi::Value Dispose(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), releaseTensor(info.Env(), info[0]));
}

// Another handle onto the same tensor object (not a copy): lets JS keep a tensor past a scope
// that will dispose the original handle.
static Napi::Value Share(const Napi::CallbackInfo& info) {
  return guard(info.Env(), "share", [&]() -> Napi::Value { return wrapTensor(info.Env(), unwrapTensor(info[0], "share")); });
}

// arm(obj, id): the GC safety net (see sweepCollected). When `obj` (the JS Tensor) is collected
// without dispose(), its tensor is freed at a later allocation. Disposing frees the tensor and the
// weak reference at once, so disposed tensors leave nothing behind.
static Napi::Value Arm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t id;
  if (!info[0].IsObject() || !idOf(info[1], &id)) throw Napi::TypeError::New(env, "arm: expected (object, tensor id)");
  auto it = table().find(id);
  if (it == table().end() || it->second.owner != nullptr) return env.Undefined();  // disposed, or armed already
  napi_ref ref = nullptr;
  if (napi_create_reference(env, info[0], 0, &ref) != napi_ok) throw Napi::Error::New(env, "arm: napi_create_reference failed");
  it->second.owner = ref;
  return env.Undefined();
}

// disposeArmed(obj, id): frees the tensor now, with its safety net (the same as dispose(id)).
static Napi::Value DisposeArmed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), releaseTensor(info.Env(), info[1]));
}

// Counts after freeing what the GC has already collected, so that a count taken after global.gc()
// is what is reachable.
static Napi::Value Live(const Napi::CallbackInfo& info) {
  sweepCollected(info.Env(), true);
  auto o = Napi::Object::New(info.Env());
  o.Set("tensors", Napi::Number::New(info.Env(), static_cast<double>(liveStats().tensors)));
  o.Set("bytes", Napi::Number::New(info.Env(), static_cast<double>(liveStats().bytes)));
  return o;
}

// The hard ceiling, even when forced: asking libgomp for a million threads hung the process. The
// JS side bounds the count by the cores unless forced (src/tensor/index.ts).
constexpr int kMaxThreads = 1024;

static Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double n = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0;
  if (!(n >= 1 && n <= kMaxThreads) || n != std::trunc(n))
    throw Napi::RangeError::New(env, "setNumThreads: expected an integer from 1 to " + std::to_string(kMaxThreads) + ", got " +
                                         (info[0].IsNumber() ? jsNumber(n) : std::string("a non-number")));
  return guard(env, "setNumThreads", [&]() -> Napi::Value {
    at::set_num_threads(static_cast<int>(n));
    // libtorch sets its OpenMP pool only; OpenBLAS (Debian's pthread build) keeps a pool of its own,
    // one thread per core, so "1 thread" ran matrix products on 2 cores and two such runs busy-waited
    // on each other's. Set it too, where the loaded BLAS is OpenBLAS (looked up, not linked).
    using SetThreads = void (*)(int);
    if (auto f = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(static_cast<int>(n));
    return env.Undefined();
  });
}

// blasInfo(): what the loaded OpenBLAS says of itself ({ threads, core, config }), or null when the
// BLAS in the process is another one. The core is the kernel set it dispatched to ("Haswell",
// "Zen", "SkylakeX"): two machines of one CPU family can differ there (issue 13).
static Napi::Value BlasInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  using GetInt = int (*)();
  using GetStr = char* (*)();
  auto threads = reinterpret_cast<GetInt>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (threads == nullptr) return env.Null();
  auto core = reinterpret_cast<GetStr>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  auto config = reinterpret_cast<GetStr>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
  Napi::Object o = Napi::Object::New(env);
  o.Set("library", "openblas");
  o.Set("threads", threads());
  o.Set("core", core ? Napi::Value(Napi::String::New(env, core())) : env.Null());
  o.Set("config", config ? Napi::Value(Napi::String::New(env, config())) : env.Null());
  return o;
}

static Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

static Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "manualSeed: expected an integer seed");
  at::manual_seed(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
  return env.Undefined();
}

static Napi::Value CudaAvailable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), at::hasCUDA());
}

static Napi::Value CudaDeviceCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::hasCUDA() ? at::detail::getCUDAHooks().getNumGPUs() : 0);
}

static Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "synchronize", [&]() -> Napi::Value {
    if (at::hasCUDA()) at::detail::getCUDAHooks().deviceSynchronize(at::detail::getCUDAHooks().current_device());
    return env.Undefined();
  });
}

static Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto o = Napi::Object::New(env);
  o.Set("torchVersion", Napi::String::New(env, TORCH_VERSION));
  o.Set("config", Napi::String::New(env, at::show_config()));
  o.Set("parallel", Napi::String::New(env, at::get_parallel_info()));
  return o;
}

// glibc returns freed memory to the OS eagerly (big blocks are mmap'd and unmapped, the heap top is
// trimmed), so every training step page-faults its activations in again: on these VMs that made a
// ResNet-20 step 1.8x slower than the same step in python3-torch. Keep big blocks in the heap and
// never trim: resident memory stays flat at the high-water mark instead of sawing up and down.
// FNGD_MALLOC_TUNING=0 keeps glibc's defaults.
static void tuneMalloc() {
#ifdef __GLIBC__
  const char* opt = std::getenv("FNGD_MALLOC_TUNING");
  if (opt != nullptr && std::strcmp(opt, "0") == 0) return;
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);  // glibc's maximum on 64-bit
  mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
#endif
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  tuneMalloc();
  v8::Isolate::GetCurrent()->AddGCEpilogueCallback(onGcEpilogue);
  exports.Set("fromTypedArray", Napi::Function::New(env, FromTypedArray));
  exports.Set("toTypedArray", Napi::Function::New(env, ToTypedArray));
  exports.Set("item", Napi::Function::New(env, Item));
  exports.Set("shape", Napi::Function::New(env, Shape));
  exports.Set("dim", Napi::Function::New(env, Dim));
  exports.Set("numel", Napi::Function::New(env, Numel));
  exports.Set("memoryLayout", Napi::Function::New(env, MemoryLayout));
  exports.Set("dtype", Napi::Function::New(env, Dtype));
  exports.Set("device", Napi::Function::New(env, DeviceOf));
  exports.Set("isDisposed", Napi::Function::New(env, IsDisposed));
  exports.Set("dispose", Napi::Function::New(env, Dispose));
  exports.Set("share", Napi::Function::New(env, Share));
  exports.Set("arm", Napi::Function::New(env, Arm));
  exports.Set("disposeArmed", Napi::Function::New(env, DisposeArmed));
  exports.Set("live", Napi::Function::New(env, Live));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads));
  exports.Set("blasInfo", Napi::Function::New(env, BlasInfo));
  exports.Set("checkIntegerValue", Napi::Function::New(env, CheckIntegerValue));
  exports.Set("manualSeed", Napi::Function::New(env, ManualSeed));
  exports.Set("cudaAvailable", Napi::Function::New(env, CudaAvailable));
  exports.Set("cudaDeviceCount", Napi::Function::New(env, CudaDeviceCount));
  exports.Set("synchronize", Napi::Function::New(env, Synchronize));
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo));
  initOps(env, exports);
  initAutograd(env, exports);
  return exports;
}

}  // namespace fngd

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return fngd::Init(env, exports); }
NODE_API_MODULE(fngd, InitModule)
