// The generic operator call: any ATen operator by name and overload, through libtorch's dispatcher,
// boxed. JS arguments are converted by the operator's schema; missing trailing arguments take the
// schema's defaults. Handles and their argument plans are cached, so a call costs one vector lookup.
#include "handle.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <ATen/CPUGeneratorImpl.h>

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
};

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
  if (d != static_cast<double>(static_cast<int64_t>(d))) badArg(env, op, a, v);
  return static_cast<int64_t>(d);
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
    case Kind::Device: return parseDevice(env, v);
    case Kind::Dtype: return static_cast<int64_t>(parseDtype(env, v));
    case Kind::Layout:
      if (v.IsString() && v.As<Napi::String>().Utf8Value() == "strided") return static_cast<int64_t>(at::kStrided);
      return toInt(env, op, a, v);
    case Kind::MemoryFormat:
      if (v.IsString()) {
        auto s = v.As<Napi::String>().Utf8Value();
        if (s == "contiguous") return static_cast<int64_t>(at::MemoryFormat::Contiguous);
        if (s == "channels_last") return static_cast<int64_t>(at::MemoryFormat::ChannelsLast);
        if (s == "preserve") return static_cast<int64_t>(at::MemoryFormat::Preserve);
        badArg(env, op, a, v);
      }
      return toInt(env, op, a, v);
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
  OpEntry e{full, *handle, {}, handle->schema().returns().size()};
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
    op.handle.callBoxed(&stack);
    if (stack.size() == 1) return toJs(env, stack[0]);
    auto arr = Napi::Array::New(env, stack.size());
    for (size_t i = 0; i < stack.size(); ++i) arr.Set(static_cast<uint32_t>(i), toJs(env, stack[i]));
    return arr;
  });
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
}

}  // namespace fngd
