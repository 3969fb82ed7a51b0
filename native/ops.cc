// The generic operator call: any ATen operator by name and overload, through libtorch's dispatcher,
// boxed. JS arguments are converted by the operator's schema; missing trailing arguments take the
// schema's defaults. Handles and their argument plans are cached, so a call costs one vector lookup.
//
// The policy at this boundary (docs/native-policy.md): no JS value may crash the process, hang it or
// make a tensor point outside its memory; a bad call is a JS Error naming the operator and why.
// libtorch's kernels trust their callers in places: from Python, those callers are PyTorch's own
// checked wrappers; here they would be any JS value. So, when an operator is first resolved
// (`refusal`), these are refused:
//   - other namespaces than aten:: (quantized::, mkldnn::, _caffe2::: backend kernels);
//   - internal operators (a leading underscore: `_local_scalar_dense` read element 0 of an empty
//     tensor, `_sparse_coo_tensor_unsafe` took indices past the size), `native_*` and backend kernels
//     (mkldnn_, fbgemm_, cudnn_, miopen_, mps_, quantized_, slow_conv*, thnn_), SyncBatchNorm's
//     batch_norm_* parts and backward kernels but convolution_backward: families in which a fuzz pass
//     (bench/fuzz.ts) crashed kernels with inputs their public operator checks (native_channel_shuffle,
//     slow_conv3d, quantized_lstm_cell, batch_norm_update_stats, reflection_pad1d_backward).
//     FNGD_ALLOW_INTERNAL_OPS=1 lifts this group;
//   - `unsafe` variants, `set_` with a storage offset (unchecked when the sizes stay the same),
//     `from_file` (maps a file) and `choose_qparams_optimized` (reads its input unchecked);
// and before every call (`preChecksFor`), the checks libtorch leaves to its callers: view bounds
// for explicit (size, stride, storage_offset), int[N] list lengths, enum ranges, the inputs a fuzz
// pass found crashing or hanging kernels with (empty lists, huge factors and windows, Inf into SVD,
// polynomial degrees). A call that throws leaves the tensors it writes as they were (`restore`).
#include "handle.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <sstream>
#include <unordered_map>

namespace fngd {

namespace {

enum class Kind {
  Tensor, Int, Float, Bool, Scalar, String, Device, Dtype, Layout, MemoryFormat, Generator,
  IntList, FloatList, BoolList, TensorList, OptTensorList, Unsupported
};

struct ArgPlan {
  std::string name;
  Kind kind;
  bool optional;
  c10::optional<int32_t> fixedLength;  // `int[2]` accepts a single int, broadcast
  c10::optional<c10::IValue> defaultValue;
  std::string typeStr;
};

struct OpEntry {
  std::string name;  // "aten::add.Tensor"
  c10::OperatorHandle handle;
  std::vector<ArgPlan> args;
  size_t returns;
  std::vector<void (*)(Napi::Env, const OpEntry&, const torch::jit::Stack&)> checks;  // see preChecksFor
  std::vector<size_t> written;  // arguments the operator writes (Tensor(a!)): restored if it fails
};

using PreCheck = void (*)(Napi::Env, const OpEntry&, const torch::jit::Stack&);

std::vector<OpEntry>& registry() {
  static std::vector<OpEntry> r;
  return r;
}

std::unordered_map<std::string, uint32_t>& idsByName() {
  static std::unordered_map<std::string, uint32_t> m;
  return m;
}

Kind kindOf(const c10::TypePtr& t) {
  switch (t->kind()) {
    case c10::TypeKind::TensorType: return Kind::Tensor;
    case c10::TypeKind::IntType: case c10::TypeKind::SymIntType: return Kind::Int;
    case c10::TypeKind::FloatType: return Kind::Float;
    case c10::TypeKind::BoolType: return Kind::Bool;
    case c10::TypeKind::NumberType: return Kind::Scalar;
    case c10::TypeKind::StringType: return Kind::String;
    case c10::TypeKind::DeviceObjType: return Kind::Device;
    case c10::TypeKind::ScalarTypeType: return Kind::Dtype;
    case c10::TypeKind::LayoutType: return Kind::Layout;
    case c10::TypeKind::MemoryFormatType: return Kind::MemoryFormat;
    case c10::TypeKind::GeneratorType: return Kind::Generator;
    case c10::TypeKind::ListType: {
      auto elem = t->castRaw<c10::ListType>()->getElementType();
      switch (elem->kind()) {
        case c10::TypeKind::IntType: case c10::TypeKind::SymIntType: return Kind::IntList;
        case c10::TypeKind::FloatType: return Kind::FloatList;
        case c10::TypeKind::BoolType: return Kind::BoolList;
        case c10::TypeKind::TensorType: return Kind::TensorList;
        case c10::TypeKind::OptionalType:
          if (elem->castRaw<c10::OptionalType>()->getElementType()->kind() == c10::TypeKind::TensorType)
            return Kind::OptTensorList;
          return Kind::Unsupported;
        default: return Kind::Unsupported;
      }
    }
    default: return Kind::Unsupported;
  }
}

std::string describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsNumber()) return "number " + std::to_string(v.As<Napi::Number>().DoubleValue());
  if (v.IsBoolean()) return "boolean";
  if (v.IsString()) return "string '" + v.As<Napi::String>().Utf8Value() + "'";
  if (v.IsBigInt()) return "Tensor";
  if (v.IsExternal()) return "Generator";
  if (v.IsArray()) return "array";
  return "object";
}

[[noreturn]] void badArg(Napi::Env env, const OpEntry& op, const ArgPlan& a, const Napi::Value& v) {
  throw Napi::TypeError::New(env, op.name + ": argument '" + a.name + "' expects " + a.typeStr + ", got " + describe(v));
}

int64_t toInt(Napi::Env env, const OpEntry& op, const ArgPlan& a, const Napi::Value& v) {
  if (!v.IsNumber()) badArg(env, op, a, v);
  double d = v.As<Napi::Number>().DoubleValue();
  // Range first: casting NaN or a double outside int64 is undefined (it gave INT64_MIN).
  if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != std::trunc(d)) badArg(env, op, a, v);
  return static_cast<int64_t>(d);
}

// An enum passed as a number must be one of its values: libtorch indexes tables with it.
int64_t toEnum(Napi::Env env, const OpEntry& op, const ArgPlan& a, const Napi::Value& v, int64_t count) {
  int64_t n = toInt(env, op, a, v);
  if (n < 0 || n >= count)
    throw Napi::RangeError::New(env, op.name + ": argument '" + a.name + "' (" + a.typeStr + ") must be in 0.." +
                                         std::to_string(count - 1) + ", got " + std::to_string(n));
  return n;
}

struct GeneratorHandle {
  uint32_t magic = kGeneratorMagic;
  at::Generator g;
};

c10::IValue convert(Napi::Env env, const OpEntry& op, const ArgPlan& a, const Napi::Value& v) {
  if (v.IsNull() || v.IsUndefined()) {
    if (a.optional) return c10::IValue();
    badArg(env, op, a, v);
  }
  switch (a.kind) {
    case Kind::Tensor: {
      if (!v.IsBigInt()) badArg(env, op, a, v);
      const at::Tensor* t = findTensor(v);
      if (t == nullptr) throw Napi::Error::New(env, op.name + ": argument '" + a.name + "' is a tensor used after dispose()");
      return *t;
    }
    case Kind::Int: return toInt(env, op, a, v);
    case Kind::Float:
      if (!v.IsNumber()) badArg(env, op, a, v);
      return v.As<Napi::Number>().DoubleValue();
    case Kind::Bool:
      if (!v.IsBoolean()) badArg(env, op, a, v);
      return v.As<Napi::Boolean>().Value();
    case Kind::Scalar: {
      if (v.IsBoolean()) return c10::Scalar(v.As<Napi::Boolean>().Value());
      if (!v.IsNumber()) badArg(env, op, a, v);
      double d = v.As<Napi::Number>().DoubleValue();
      // A JS number that is an exact integer acts like a Python int (keeps integer dtypes).
      if (std::isfinite(d) && d == static_cast<double>(static_cast<int64_t>(d)) && std::abs(d) < 9.007199254740992e15)
        return c10::Scalar(static_cast<int64_t>(d));
      return c10::Scalar(d);
    }
    case Kind::String:
      if (!v.IsString()) badArg(env, op, a, v);
      return v.As<Napi::String>().Utf8Value();
    case Kind::Device:
      try {
        return parseDevice(env, v);
      } catch (const Napi::Error& e) {
        throw Napi::TypeError::New(env, op.name + ": argument '" + a.name + "': " + e.Message());
      }
    case Kind::Dtype:
      if (v.IsNumber()) return toEnum(env, op, a, v, static_cast<int64_t>(c10::ScalarType::Undefined));
      try {
        return static_cast<int64_t>(parseDtype(env, v));
      } catch (const Napi::Error& e) {
        throw Napi::TypeError::New(env, op.name + ": argument '" + a.name + "': " + e.Message());
      }
    case Kind::Layout:
      if (v.IsString() && v.As<Napi::String>().Utf8Value() == "strided") return static_cast<int64_t>(at::kStrided);
      return toEnum(env, op, a, v, static_cast<int64_t>(c10::Layout::NumOptions));
    case Kind::MemoryFormat:
      if (v.IsString()) {
        auto s = v.As<Napi::String>().Utf8Value();
        if (s == "contiguous") return static_cast<int64_t>(at::MemoryFormat::Contiguous);
        if (s == "channels_last") return static_cast<int64_t>(at::MemoryFormat::ChannelsLast);
        if (s == "preserve") return static_cast<int64_t>(at::MemoryFormat::Preserve);
        badArg(env, op, a, v);
      }
      return toEnum(env, op, a, v, static_cast<int64_t>(c10::MemoryFormat::NumOptions));
    case Kind::Generator: {
      if (!v.IsExternal() || v.As<Napi::External<GeneratorHandle>>().Data()->magic != kGeneratorMagic) badArg(env, op, a, v);
      return v.As<Napi::External<GeneratorHandle>>().Data()->g;
    }
    case Kind::IntList: {
      if (v.IsNumber() && a.fixedLength) return std::vector<int64_t>(*a.fixedLength, toInt(env, op, a, v));
      if (!v.IsArray()) badArg(env, op, a, v);
      auto arr = v.As<Napi::Array>();
      std::vector<int64_t> out(arr.Length());
      for (uint32_t i = 0; i < arr.Length(); ++i) out[i] = toInt(env, op, a, arr.Get(i));
      // int[N] with N >= 2 (a kernel size, a padding) must have N entries: kernels read N of them
      // unchecked (slow_conv3d_forward with kernel_size [] segfaulted). An empty list passes where it
      // is the schema's own default (max_pool2d's stride=[]). int[1] means "an int or a list": any length.
      bool emptyDefault = a.defaultValue && a.defaultValue->isList() && a.defaultValue->toListRef().empty();
      if (a.fixedLength && *a.fixedLength >= 2 && static_cast<int32_t>(out.size()) != *a.fixedLength && !(out.empty() && emptyDefault))
        throw Napi::TypeError::New(env, op.name + ": argument '" + a.name + "' (int[" + std::to_string(*a.fixedLength) + "]) needs " +
                                            std::to_string(*a.fixedLength) + " integers (or one, for all), got " + std::to_string(out.size()));
      return out;
    }
    case Kind::FloatList: {
      if (!v.IsArray()) badArg(env, op, a, v);
      auto arr = v.As<Napi::Array>();
      std::vector<double> out(arr.Length());
      for (uint32_t i = 0; i < arr.Length(); ++i) {
        Napi::Value e = arr.Get(i);
        if (!e.IsNumber()) badArg(env, op, a, e);
        out[i] = e.As<Napi::Number>().DoubleValue();
      }
      return out;
    }
    case Kind::BoolList: {
      if (!v.IsArray()) badArg(env, op, a, v);
      auto arr = v.As<Napi::Array>();
      c10::List<bool> out;
      for (uint32_t i = 0; i < arr.Length(); ++i) {
        Napi::Value e = arr.Get(i);
        if (!e.IsBoolean()) badArg(env, op, a, e);
        out.push_back(e.As<Napi::Boolean>().Value());
      }
      // bool[3] (e.g. convolution_backward's output_mask) is a std::array in the kernel
      if (a.fixedLength && static_cast<int32_t>(out.size()) != *a.fixedLength)
        throw Napi::TypeError::New(env, op.name + ": argument '" + a.name + "' needs exactly " + std::to_string(*a.fixedLength) + " booleans");
      return out;
    }
    case Kind::TensorList: {
      if (!v.IsArray()) badArg(env, op, a, v);
      auto arr = v.As<Napi::Array>();
      c10::List<at::Tensor> out;
      out.reserve(arr.Length());
      for (uint32_t i = 0; i < arr.Length(); ++i) out.push_back(unwrapTensor(arr.Get(i), (op.name + ": " + a.name).c_str()));
      return out;
    }
    case Kind::OptTensorList: {
      if (!v.IsArray()) badArg(env, op, a, v);
      auto arr = v.As<Napi::Array>();
      c10::List<c10::optional<at::Tensor>> out;
      for (uint32_t i = 0; i < arr.Length(); ++i) {
        Napi::Value e = arr.Get(i);
        if (e.IsNull() || e.IsUndefined()) out.push_back(c10::nullopt);
        else out.push_back(unwrapTensor(e, (op.name + ": " + a.name).c_str()));
      }
      return out;
    }
    case Kind::Unsupported: break;
  }
  throw Napi::TypeError::New(env, op.name + ": argument '" + a.name + "' has type " + a.typeStr + ", which fngd cannot pass yet");
}

Napi::Value toJs(Napi::Env env, const c10::IValue& v) {
  if (v.isTensor()) return wrapTensor(env, v.toTensor());
  if (v.isNone()) return env.Null();
  if (v.isTensorList()) {
    auto list = v.toTensorList();
    auto arr = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); ++i) arr.Set(static_cast<uint32_t>(i), wrapTensor(env, list.get(i)));
    return arr;
  }
  if (v.isTuple()) {
    const auto& elems = v.toTupleRef().elements();
    auto arr = Napi::Array::New(env, elems.size());
    for (size_t i = 0; i < elems.size(); ++i) arr.Set(static_cast<uint32_t>(i), toJs(env, elems[i]));
    return arr;
  }
  if (v.isInt()) return Napi::Number::New(env, static_cast<double>(v.toInt()));
  if (v.isDouble()) return Napi::Number::New(env, v.toDouble());
  if (v.isBool()) return Napi::Boolean::New(env, v.toBool());
  if (v.isScalar()) {
    auto s = v.toScalar();
    if (s.isBoolean()) return Napi::Boolean::New(env, s.toBool());
    return Napi::Number::New(env, s.toDouble());
  }
  if (v.isString()) return Napi::String::New(env, v.toStringRef());
  if (v.isIntList()) {
    auto list = v.toIntVector();
    auto arr = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); ++i) arr.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(list[i])));
    return arr;
  }
  if (v.isList()) {
    auto list = v.toListRef();
    auto arr = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); ++i) arr.Set(static_cast<uint32_t>(i), toJs(env, list[i]));
    return arr;
  }
  throw Napi::TypeError::New(env, std::string("operator returned a ") + v.tagKind() + ", which fngd cannot convert");
}

bool internalOpsAllowed() {
  const char* v = std::getenv("FNGD_ALLOW_INTERNAL_OPS");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

// Why JS may not call this operator (see the file header), or "" when it may.
std::string refusal(const c10::FunctionSchema& schema) {
  const std::string& qualified = schema.name();  // "aten::set_"
  size_t sep = qualified.find("::");
  std::string ns = qualified.substr(0, sep);
  std::string base = qualified.substr(sep + 2);
  if (ns != "aten")
    return "only aten:: operators can be called; the " + ns + ":: namespace holds backend kernels that trust their callers";
  if (base.find("unsafe") != std::string::npos || schema.overload_name().find("unsafe") != std::string::npos)
    return "an unsafe variant skips the checks of its safe twin (call that one instead)";
  if (base[0] == '_' && !internalOpsAllowed())
    return "internal operators (a leading underscore) trust their callers to have checked the inputs, and "
           "can read or write outside a tensor's memory; call the public operator (FNGD_ALLOW_INTERNAL_OPS=1 lifts this)";
  if (!internalOpsAllowed()) {
    if (base.rfind("native_", 0) == 0)
      return "native_ operators are the kernels behind a public operator and skip its checks (native_channel_shuffle "
             "divided by zero on an empty input); call " + base.substr(7) + " (FNGD_ALLOW_INTERNAL_OPS=1 lifts this)";
    for (const char* backend : {"mkldnn_", "fbgemm_", "cudnn_", "miopen_", "mps_", "quantized_", "slow_conv", "thnn_"})
      if (base.rfind(backend, 0) == 0)
        return std::string("kernels of one backend (") + backend + "...) trust their callers to have prepared the inputs; call the "
               "public operator (FNGD_ALLOW_INTERNAL_OPS=1 lifts this)";
    // Backward kernels assume the shapes and values their forward produced: reflection_pad1d_backward read
    // past an empty padding list, matrix_exp_backward past a 0-d input. convolution_backward is checked
    // (F.conv2dBackward uses it).
    // SyncBatchNorm's building blocks (batch_norm_stats, _elemt, _gather_stats, _update_stats) trust their
    // caller too: batch_norm_update_stats divided by zero on an empty input.
    if (base.rfind("batch_norm_", 0) == 0)
      return "the building blocks of SyncBatchNorm trust their caller (batch_norm_update_stats divided by zero on an "
             "empty input); call batch_norm (FNGD_ALLOW_INTERNAL_OPS=1 lifts this)";
    if (base.find("backward") != std::string::npos && base != "convolution_backward")
      return "backward kernels assume the inputs their forward produced and read past others; differentiate with "
             "backward() or grad() (FNGD_ALLOW_INTERNAL_OPS=1 lifts this)";
  }
  for (const auto& arg : schema.arguments()) {
    if (base == "set_" && (arg.name() == "storage_offset" || arg.real_type()->kind() == c10::TypeKind::StorageType))
      return "set_ with a storage offset can point the tensor outside its memory (libtorch skips the bounds check "
             "when the sizes do not change); use as_strided, which fngd checks";
  }
  if (base == "from_file") return "from_file maps a file into memory (writes through the tensor write the file); read files in JS";
  if (base == "choose_qparams_optimized") return "choose_qparams_optimized reads its input without checking its size (an empty input segfaulted)";
  return "";
}

// A view given as (size, stride, storage_offset) over `base`'s storage must lie inside that storage.
// libtorch checks this (setStrided) but in int64 arithmetic that overflows: an offset of 2^62 passed.
void checkViewInBounds(Napi::Env env, const OpEntry& op, const at::Tensor& base, c10::IntArrayRef size,
                       c10::IntArrayRef stride, int64_t offset) {
  auto fail = [&](const std::string& why) {
    throw Napi::RangeError::New(env, op.name + ": a view with sizes [" + c10::Join(", ", size) + "], strides [" +
                                         c10::Join(", ", stride) + "] and storage offset " + std::to_string(offset) + " " + why);
  };
  if (offset < 0) fail("has a negative offset");
  if (!base.has_storage()) return;  // libtorch refuses views of storage-less tensors itself
  int64_t item = static_cast<int64_t>(base.element_size());
  int64_t capacity = static_cast<int64_t>(base.storage().nbytes()) / item;  // elements the storage holds
  if (size.size() != stride.size()) return;  // libtorch reports the length mismatch
  int64_t last = offset;  // the highest element index the view touches
  for (size_t i = 0; i < size.size(); ++i) {
    if (size[i] < 0 || stride[i] < 0) return;  // libtorch reports these
    if (size[i] == 0) return;                   // an empty view touches nothing
    int64_t reach;
    if (__builtin_mul_overflow(size[i] - 1, stride[i], &reach) || __builtin_add_overflow(last, reach, &last))
      fail("reaches past any storage (int64 overflow)");
  }
  if (last >= capacity) fail("reaches element " + std::to_string(last) + " of a storage of " + std::to_string(capacity) + " elements");
}

const c10::IValue* argByName(const OpEntry& op, const torch::jit::Stack& stack, const char* name) {
  for (size_t i = 0; i < op.args.size(); ++i)
    if (op.args[i].name == name) return &stack[i];
  return nullptr;
}

[[noreturn]] void refuseCall(Napi::Env env, const OpEntry& op, const std::string& why) {
  throw Napi::RangeError::New(env, op.name + ": " + why);
}

void checkView(Napi::Env env, const OpEntry& op, const torch::jit::Stack& stack) {
  const c10::IValue* self = argByName(op, stack, "self");
  const c10::IValue* size = argByName(op, stack, "size");
  const c10::IValue* stride = argByName(op, stack, "stride");
  const c10::IValue* offset = argByName(op, stack, "storage_offset");
  if (self && self->isTensor() && size && size->isIntList() && stride && stride->isIntList()) {
    const at::Tensor& base = self->toTensor();
    int64_t off = offset && offset->isInt() ? offset->toInt() : base.storage_offset();
    checkViewInBounds(env, op, base, size->toIntVector(), stride->toIntVector(), off);
  }
}

// The orthogonal-polynomial kernels (special_chebyshev_polynomial_t, ..._hermite_..., ...) loop n
// times per element for |x| >= 1: n = 2^53 hung the process.
constexpr double kMaxPolynomialDegree = 100000;
void checkPolynomialDegree(Napi::Env env, const OpEntry& op, const torch::jit::Stack& stack) {
  const c10::IValue* n = argByName(op, stack, "n");
  if (n == nullptr) return;
  double worst = 0;
  if (n->isTensor()) {
    const at::Tensor& t = n->toTensor();
    if (t.numel() == 0 || t.layout() != at::kStrided) return;  // libtorch reports other layouts
    worst = t.detach().to(at::kDouble).abs().max().item<double>();
  } else if (n->isScalar() || n->isDouble() || n->isInt()) {
    worst = std::abs(n->toScalar().toDouble());
  }
  if (!(worst <= kMaxPolynomialDegree))
    refuseCall(env, op, "degree n must be finite and at most " + std::to_string(static_cast<int64_t>(kMaxPolynomialDegree)) +
                            " (the kernel loops n times per element), got " + c10::str(worst));
}

// histogramdd reads one bin count (or edge tensor) per coordinate, self's last dimension, without
// checking how many it got: an empty list segfaulted.
void checkHistogramBins(Napi::Env env, const OpEntry& op, const torch::jit::Stack& stack) {
  const c10::IValue* self = argByName(op, stack, "self");
  const c10::IValue* bins = argByName(op, stack, "bins");
  if (self == nullptr || !self->isTensor() || bins == nullptr) return;
  const at::Tensor& x = self->toTensor();
  if (x.dim() < 1) refuseCall(env, op, "self must have at least one dimension (its last holds the coordinates)");
  size_t given = bins->isIntList() ? bins->toIntVector().size() : bins->isTensorList() ? bins->toTensorList().size() : 0;
  if ((bins->isIntList() || bins->isTensorList()) && static_cast<int64_t>(given) != x.size(-1))
    refuseCall(env, op, "needs one bin count or edge tensor per coordinate: self's last dimension is " + std::to_string(x.size(-1)) +
                            ", got " + std::to_string(given) + " bins");
}

// max_pool1d's kernel loops over the whole window even when the output is empty: a kernel_size of
// 2^40 hung. The window must fit in the padded input.
void checkPool1dWindow(Napi::Env env, const OpEntry& op, const torch::jit::Stack& stack) {
  const c10::IValue* self = argByName(op, stack, "self");
  const c10::IValue* kernel = argByName(op, stack, "kernel_size");
  const c10::IValue* padding = argByName(op, stack, "padding");
  const c10::IValue* dilation = argByName(op, stack, "dilation");
  if (!self || !self->isTensor() || self->toTensor().dim() < 1 || !kernel || !kernel->isIntList()) return;
  auto k = kernel->toIntVector();
  int64_t pad = padding && padding->isIntList() && !padding->toIntVector().empty() ? padding->toIntVector()[0] : 0;
  int64_t dil = dilation && dilation->isIntList() && !dilation->toIntVector().empty() ? dilation->toIntVector()[0] : 1;
  if (k.empty() || k[0] < 1 || pad < 0 || dil < 1) return;  // libtorch reports these
  int64_t width = self->toTensor().size(-1), span, room;
  if (__builtin_mul_overflow(dil, k[0] - 1, &span) || __builtin_mul_overflow(pad, int64_t{2}, &room) ||
      __builtin_add_overflow(room, width, &room) || span >= room)
    refuseCall(env, op, "the window (kernel_size " + std::to_string(k[0]) + ", dilation " + std::to_string(dil) +
                            ") is wider than the padded input (" + std::to_string(width) + " + 2 x " + std::to_string(pad) + ")");
}

// pixel_shuffle divides the channels by r * r, which overflowed to 0 for r = 2^40 (SIGFPE).
void checkShuffleFactor(Napi::Env env, const OpEntry& op, const torch::jit::Stack& stack) {
  for (const char* name : {"upscale_factor", "downscale_factor"}) {
    const c10::IValue* r = argByName(op, stack, name);
    int64_t square;
    if (r && r->isInt() && __builtin_mul_overflow(r->toInt(), r->toInt(), &square))
      refuseCall(env, op, std::string(name) + " squared overflows int64, got " + std::to_string(r->toInt()));
  }
}

// LAPACK's SVD (gesdd computing U and V) never returned on a matrix holding Inf: linalg_svd, pinverse,
// and under autograd svdvals, nuclear_norm, cond and the 2-norms hung. (libtorch already refuses NaN
// there: "the input matrix contained non-finite values".)
void checkFiniteForSvd(Napi::Env env, const OpEntry& op, const torch::jit::Stack& stack) {
  const c10::IValue* ord = argByName(op, stack, "ord");
  if (ord != nullptr && !ord->isNone()) {
    bool svdOrd = ord->isString() ? ord->toStringRef() == "nuc"
                                  : (ord->isScalar() || ord->isDouble() || ord->isInt()) && std::abs(ord->toScalar().toDouble()) == 2;
    if (!svdOrd) return;
  } else if (op.name.rfind("aten::linalg_norm", 0) == 0 || op.name.rfind("aten::linalg_matrix_norm", 0) == 0) {
    return;  // the default orders are Frobenius and vector norms: no SVD
  }
  for (size_t i = 0; i < op.args.size(); ++i) {
    if (op.args[i].kind != Kind::Tensor || !stack[i].isTensor()) continue;
    const at::Tensor& t = stack[i].toTensor();
    if (t.dim() >= 2 && t.numel() > 0 && t.layout() == at::kStrided && (at::isFloatingType(t.scalar_type()) || at::isComplexType(t.scalar_type())) &&
        !at::isfinite(t.detach()).all().item<bool>())
      refuseCall(env, op, "argument '" + op.args[i].name + "' holds Inf or NaN, on which LAPACK's SVD does not return");
    return;  // the matrix is the first tensor argument
  }
}

// Integer division of the lowest int32/int64 by -1 overflows, and x86 traps it (SIGFPE): remainder,
// fmod, floor_divide and div with a rounding mode on tensor([-2^63]) and -1 killed the process.
void checkIntegerDivision(Napi::Env env, const OpEntry& op, const torch::jit::Stack& stack) {
  const c10::IValue* a = argByName(op, stack, "self");
  const c10::IValue* b = argByName(op, stack, "other");
  const c10::IValue* mode = argByName(op, stack, "rounding_mode");
  if (!a || !b || !(a->isTensor() || a->isScalar()) || !(b->isTensor() || b->isScalar())) return;
  if ((op.name.rfind("aten::div", 0) == 0) && !(mode && mode->isString())) return;  // true division is in floating point
  if ((a->isTensor() && !a->toTensor().defined()) || (b->isTensor() && !b->toTensor().defined())) return;
  c10::ScalarType type = a->isTensor() ? (b->isTensor() ? at::result_type(a->toTensor(), b->toTensor()) : at::result_type(a->toTensor(), b->toScalar()))
                                       : (b->isTensor() ? at::result_type(a->toScalar(), b->toTensor()) : at::kDouble);
  if (type != at::kInt && type != at::kLong) return;
  int64_t lowest = type == at::kLong ? std::numeric_limits<int64_t>::min() : std::numeric_limits<int32_t>::min();
  auto holds = [&](const c10::IValue* v, int64_t x) {
    if (v->isScalar()) return v->toScalar().isIntegral(false) && v->toScalar().toLong() == x;
    const at::Tensor& t = v->toTensor();
    return t.numel() > 0 && t.layout() == at::kStrided && !at::isFloatingType(t.scalar_type()) &&
           (t.detach() == x).any().item<bool>();
  };
  if (holds(b, -1) && holds(a, lowest))
    refuseCall(env, op, "integer division of " + std::to_string(lowest) + " by -1 overflows " + dtypeName(type) +
                            " (the processor traps it)");
}

// Operators that index the first tensor of a list without checking that there is one.
void checkNonEmptyTensorList(Napi::Env env, const OpEntry& op, const torch::jit::Stack& stack) {
  for (size_t i = 0; i < op.args.size(); ++i)
    if (op.args[i].kind == Kind::TensorList && stack[i].isTensorList() && stack[i].toTensorList().size() == 0)
      refuseCall(env, op, "argument '" + op.args[i].name + "' needs at least one tensor");
}

// The checks libtorch leaves to its callers, picked once per operator from its schema and name and
// run on the converted arguments before the kernel.
std::vector<PreCheck> preChecksFor(const c10::FunctionSchema& schema, const std::vector<ArgPlan>& args) {
  std::string base = schema.name().substr(schema.name().find("::") + 2);
  auto has = [&](const char* n) { return std::any_of(args.begin(), args.end(), [&](const ArgPlan& p) { return p.name == n; }); };
  std::vector<PreCheck> checks;
  // views from explicit sizes, strides and an offset (as_strided and its in-place, scatter and copy
  // forms): every schema with all three arguments, not a list of names
  if (has("size") && has("stride") && has("storage_offset")) checks.push_back(checkView);
  if (base.rfind("special_", 0) == 0 && base.find("_polynomial_") != std::string::npos) checks.push_back(checkPolynomialDegree);
  if (base == "histogramdd") checks.push_back(checkHistogramBins);
  if (base == "align_tensors") checks.push_back(checkNonEmptyTensorList);
  if (base == "max_pool1d") checks.push_back(checkPool1dWindow);
  if (base == "pixel_shuffle" || base == "pixel_unshuffle") checks.push_back(checkShuffleFactor);
  for (const char* division : {"remainder", "fmod", "floor_divide", "div", "divide"}) {
    // div/divide divide integers only with a rounding mode; their true-division overloads (AdamW's
    // div.Scalar, every parameter every step) skip the check entirely.
    bool trueDivision = base.rfind("div", 0) == 0 && !has("rounding_mode");
    if ((base == division || base == std::string(division) + "_") && !trueDivision) checks.push_back(checkIntegerDivision);
  }
  for (const char* svd : {"linalg_svd", "svd", "linalg_svdvals", "pinverse", "linalg_pinv", "nuclear_norm", "linalg_cond",
                          "linalg_matrix_rank", "matrix_rank", "linalg_matrix_norm", "linalg_norm"})
    if (base == svd) checks.push_back(checkFiniteForSvd);
  return checks;
}

// What a failed call must not leave behind. libtorch's resize (of an out= tensor, resize_) sets the
// new sizes before it allocates: when the allocation failed or its size overflowed, the tensor kept
// the new sizes over its old, smaller storage, and the next read segfaulted. So the tensors an
// operator writes are snapshot before the call and put back as they were if it throws.
struct TensorState {
  at::Tensor t;
  c10::Storage storage;
  at::DimVector sizes, strides;  // inline storage: no heap allocation per written argument per call
  int64_t offset;
};

void snapshot(const c10::IValue& v, std::vector<TensorState>& out) {
  auto add = [&](const at::Tensor& t) {
    if (t.defined() && t.layout() == at::kStrided && t.has_storage())
      out.push_back({t, t.storage(), at::DimVector(t.sizes()), at::DimVector(t.strides()), t.storage_offset()});
  };
  if (v.isTensor()) add(v.toTensor());
  else if (v.isTensorList())
    for (const at::Tensor& t : v.toTensorList().vec()) add(t);
}

void restore(std::vector<TensorState>& saved) {
  for (auto& s : saved) {
    try {
      auto* impl = s.t.unsafeGetTensorImpl();
      if (!impl->storage().is_alias_of(s.storage)) impl->set_storage_keep_dtype(s.storage);
      impl->set_sizes_and_strides(s.sizes, s.strides, s.offset);
    } catch (const std::exception&) {
      // a tensor whose metadata may not change could not have been resized either
    }
  }
}

// opHandle(name, overload) -> id. name may be given with or without the "aten::" namespace.
Napi::Value OpHandle(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "opHandle: operator name must be a string");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  std::string overload = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
  if (name.find("::") == std::string::npos) name = "aten::" + name;
  std::string full = overload.empty() ? name : name + "." + overload;
  auto known = idsByName().find(full);
  if (known != idsByName().end()) return Napi::Number::New(env, known->second);
  auto handle = c10::Dispatcher::singleton().findSchema({name, overload});
  if (!handle) {
    throw Napi::Error::New(env, "unknown operator '" + full + "'");
  }
  std::string refused = refusal(handle->schema());
  if (!refused.empty()) throw Napi::Error::New(env, full + ": refused: " + refused);
  OpEntry e{full, *handle, {}, handle->schema().returns().size(), {}, {}};
  for (const auto& arg : handle->schema().arguments()) {
    ArgPlan p;
    p.name = arg.name();
    const c10::TypePtr& t = arg.real_type();
    p.optional = t->kind() == c10::TypeKind::OptionalType;
    const c10::TypePtr inner = p.optional ? t->castRaw<c10::OptionalType>()->getElementType() : t;
    p.kind = kindOf(inner);
    p.fixedLength = arg.N();
    p.defaultValue = arg.default_value();
    p.typeStr = t->str();
    e.args.push_back(std::move(p));
  }
  e.checks = preChecksFor(handle->schema(), e.args);
  const auto& schemaArgs = handle->schema().arguments();
  for (size_t i = 0; i < schemaArgs.size(); ++i)
    if (schemaArgs[i].alias_info() != nullptr && schemaArgs[i].alias_info()->isWrite()) e.written.push_back(i);
  registry().push_back(std::move(e));
  idsByName().emplace(full, static_cast<uint32_t>(registry().size() - 1));
  return Napi::Number::New(env, static_cast<double>(registry().size() - 1));
}

Napi::Value OpSchema(const Napi::CallbackInfo& info) {
  auto& r = registry();
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  if (id >= r.size()) throw Napi::RangeError::New(info.Env(), "opSchema: bad operator id");
  std::ostringstream s;
  s << r[id].handle.schema();
  return Napi::String::New(info.Env(), s.str());
}

// callOp(id, ...args): runs the operator. One result comes back as is, several as an array.
Napi::Value CallOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto& r = registry();
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  if (id >= r.size()) throw Napi::RangeError::New(env, "callOp: bad operator id");
  const OpEntry& op = r[id];
  size_t given = info.Length() - 1;
  if (given > op.args.size())
    throw Napi::TypeError::New(env, op.name + ": takes " + std::to_string(op.args.size()) + " arguments, got " + std::to_string(given));
  return guard(env, op.name, [&]() -> Napi::Value {
    torch::jit::Stack stack;
    stack.reserve(op.args.size());
    for (size_t i = 0; i < op.args.size(); ++i) {
      const ArgPlan& a = op.args[i];
      Napi::Value v = i < given ? info[i + 1] : env.Undefined();
      if (v.IsUndefined() && a.defaultValue) {
        stack.push_back(*a.defaultValue);
      } else if (v.IsUndefined() && !a.optional) {
        throw Napi::TypeError::New(env, op.name + ": missing argument '" + a.name + "' (" + a.typeStr + ")");
      } else {
        stack.push_back(convert(env, op, a, v));
      }
    }
    for (auto check : op.checks) check(env, op, stack);
    std::vector<TensorState> saved;
    saved.reserve(op.written.size());
    for (size_t i : op.written) snapshot(stack[i], saved);
    try {
      op.handle.callBoxed(&stack);
    } catch (...) {
      restore(saved);
      throw;
    }
    if (stack.size() == 1) return toJs(env, stack[0]);
    auto arr = Napi::Array::New(env, stack.size());
    for (size_t i = 0; i < stack.size(); ++i) arr.Set(static_cast<uint32_t>(i), toJs(env, stack[i]));
    return arr;
  });
}

// The schema of every operator libtorch registered, refused ones included (the list the fuzz test
// draws from), e.g. "aten::add.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor".
Napi::Value OpSchemas(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto& dispatcher = c10::Dispatcher::singleton();
  auto arr = Napi::Array::New(env);
  uint32_t n = 0;
  for (const auto& name : dispatcher.getAllOpNames()) {
    auto handle = dispatcher.findSchema(name);
    if (!handle) continue;  // an implementation registered without a schema
    std::ostringstream s;
    s << handle->schema();
    arr.Set(n++, Napi::String::New(env, s.str()));
  }
  return arr;
}

Napi::Value NewGenerator(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "generator: expected an integer seed");
  uint64_t seed = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
  auto* g = new GeneratorHandle{kGeneratorMagic, at::detail::createCPUGenerator(seed)};
  return Napi::External<GeneratorHandle>::New(env, g, [](Napi::Env, GeneratorHandle* p) { delete p; });
}

}  // namespace

void initOps(Napi::Env env, Napi::Object exports) {
  exports.Set("opHandle", Napi::Function::New(env, OpHandle));
  exports.Set("opSchema", Napi::Function::New(env, OpSchema));
  exports.Set("callOp", Napi::Function::New(env, CallOp));
  exports.Set("newGenerator", Napi::Function::New(env, NewGenerator));
  exports.Set("opSchemas", Napi::Function::New(env, OpSchemas));
}

}  // namespace fngd
