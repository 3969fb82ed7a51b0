// Autograd: requires_grad, .grad, backward, grad with respect to any (also non-leaf) tensor, and
// the global grad mode that JS scopes toggle.
#include "handle.h"

#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/variable.h>

#include <stdexcept>

namespace fngd {

namespace {

// Gradient hooks that call back into JS: a hook gets the gradient of its tensor the moment the
// backward produces it (while it is still in cache, before the rest of the backward runs).
// Why this is safe: libtorch runs a CPU graph on the thread that called backward/grad, which is the
// thread whose JS called us, so the hook can call JS synchronously there. A hook that fires on any
// other thread (CUDA runs its graph on per-device threads) cannot reach JS: it does nothing, and the
// JS side sees that its callback was never called and falls back (curvature/engine.ts).
// The hook captures only an integer id: the JS function lives in a thread-local dispatcher, so no
// JS reference is owned by the autograd graph (which may be destroyed on any thread).
thread_local Napi::FunctionReference* tHookDispatcher = nullptr;
thread_local napi_env tHookEnv = nullptr;

Napi::Value SetHookDispatcher(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) throw Napi::TypeError::New(env, "setHookDispatcher: expected a function");
  if (tHookDispatcher == nullptr) tHookDispatcher = new Napi::FunctionReference();  // lives as long as the thread
  *tHookDispatcher = Napi::Persistent(info[0].As<Napi::Function>());
  tHookEnv = env;
  return env.Undefined();
}

// registerGradHook(t, id): calls the dispatcher with (id, gradient) whenever t's gradient is computed.
Napi::Value RegisterGradHook(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "registerGradHook", [&]() -> Napi::Value {
    at::Tensor t = unwrapTensor(info[0], "registerGradHook");
    if (!info[1].IsNumber()) throw Napi::TypeError::New(env, "registerGradHook: expected a numeric hook id");
    if (!t.requires_grad()) throw Napi::Error::New(env, "registerGradHook: the tensor does not require grad (no gradient will reach it)");
    if (tHookDispatcher == nullptr) throw Napi::Error::New(env, "registerGradHook: no hook dispatcher on this thread");
    const double id = info[1].As<Napi::Number>().DoubleValue();
    t.register_hook([id](const at::Tensor& g) {
      if (tHookDispatcher == nullptr || tHookEnv == nullptr || !g.defined()) return;
      Napi::Env henv(tHookEnv);
      Napi::HandleScope scope(henv);
      try {
        tHookDispatcher->Call({Napi::Number::New(henv, id), wrapTensor(henv, g)});
      } catch (const Napi::Error& e) {
        // Becomes the error of the backward call that ran the hook (grad/backward below).
        throw std::runtime_error("gradient hook failed: " + e.Message());
      }
    });
    return env.Undefined();
  });
}

std::vector<at::Tensor> tensorArray(const Napi::Value& v, const char* what, bool allowNull) {
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), std::string(what) + ": expected an array of tensors");
  auto arr = v.As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value e = arr.Get(i);
    if (allowNull && (e.IsNull() || e.IsUndefined())) out.emplace_back();
    else out.push_back(unwrapTensor(e, what));
  }
  return out;
}

Napi::Value SetRequiresGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "requiresGrad", [&]() -> Napi::Value {
    at::Tensor t = unwrapTensor(info[0], "requiresGrad");
    if (!info[1].IsBoolean()) throw Napi::TypeError::New(env, "requiresGrad: expected a boolean");
    if (!t.is_leaf())
      throw Napi::Error::New(env, "requiresGrad: only leaf tensors can change requiresGrad; this one is computed "
                                  "(a non-leaf); use detach() to cut it from the graph");
    t.set_requires_grad(info[1].As<Napi::Boolean>().Value());
    return env.Undefined();
  });
}

// Getters too go through the error boundary: a C++ exception leaving a Node-API callback aborts.
Napi::Value RequiresGrad(const Napi::CallbackInfo& info) {
  return guard(info.Env(), "requiresGrad", [&]() -> Napi::Value {
    return Napi::Boolean::New(info.Env(), unwrapTensor(info[0], "requiresGrad").requires_grad());
  });
}

Napi::Value IsLeaf(const Napi::CallbackInfo& info) {
  return guard(info.Env(), "isLeaf", [&]() -> Napi::Value {
    return Napi::Boolean::New(info.Env(), unwrapTensor(info[0], "isLeaf").is_leaf());
  });
}

Napi::Value GetGrad(const Napi::CallbackInfo& info) {
  return guard(info.Env(), "grad", [&]() -> Napi::Value { return wrapTensor(info.Env(), unwrapTensor(info[0], "grad").grad()); });
}

// setGrad(t, g | null): null clears the gradient (PyTorch's set_to_none).
Napi::Value SetGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "setGrad", [&]() -> Napi::Value {
    at::Tensor t = unwrapTensor(info[0], "setGrad");
    if (info[1].IsNull() || info[1].IsUndefined()) {
      t.mutable_grad().reset();
    } else {
      const at::Tensor& g = unwrapTensor(info[1], "setGrad");
      if (g.sizes() != t.sizes())
        throw Napi::RangeError::New(env, "setGrad: gradient shape [" + c10::Join(",", g.sizes()) + "] does not match tensor shape [" +
                                             c10::Join(",", t.sizes()) + "]");
      t.mutable_grad() = g;
    }
    return env.Undefined();
  });
}

// backward(t, gradient | null, retainGraph, createGraph)
Napi::Value Backward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "backward", [&]() -> Napi::Value {
    at::Tensor t = unwrapTensor(info[0], "backward");
    std::vector<at::Tensor> grads;
    if (!info[1].IsNull() && !info[1].IsUndefined()) grads.push_back(unwrapTensor(info[1], "backward"));
    else if (t.numel() != 1)
      throw Napi::Error::New(env, "backward: a gradient is needed for a non-scalar output of shape [" + c10::Join(",", t.sizes()) + "]");
    if (!t.requires_grad()) throw Napi::Error::New(env, "backward: tensor does not require grad and has no grad_fn");
    bool retain = info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
    bool create = info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
    torch::autograd::backward({t}, grads, retain, create);
    return env.Undefined();
  });
}

// grad(outputs[], inputs[], gradOutputs[] | null, retainGraph, createGraph, allowUnused)
Napi::Value Grad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "grad", [&]() -> Napi::Value {
    auto outputs = tensorArray(info[0], "grad outputs", false);
    auto inputs = tensorArray(info[1], "grad inputs", false);
    std::vector<at::Tensor> gradOutputs;
    if (!info[2].IsNull() && !info[2].IsUndefined()) {
      gradOutputs = tensorArray(info[2], "grad gradOutputs", true);
      if (gradOutputs.size() != outputs.size())
        throw Napi::RangeError::New(env, "grad: " + std::to_string(outputs.size()) + " outputs but " +
                                             std::to_string(gradOutputs.size()) + " gradOutputs");
    }
    for (const auto& o : outputs)
      if (!o.requires_grad()) throw Napi::Error::New(env, "grad: an output does not require grad");
    bool retain = info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
    bool create = info[4].IsBoolean() && info[4].As<Napi::Boolean>().Value();
    bool allowUnused = info[5].IsBoolean() && info[5].As<Napi::Boolean>().Value();
    auto res = torch::autograd::grad(outputs, inputs, gradOutputs, retain, create, allowUnused);
    auto arr = Napi::Array::New(env, res.size());
    for (size_t i = 0; i < res.size(); ++i) arr.Set(static_cast<uint32_t>(i), wrapTensor(env, res[i]));
    return arr;
  });
}

Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  if (!info[0].IsBoolean()) throw Napi::TypeError::New(info.Env(), "setGradEnabled: expected a boolean");
  bool prev = at::GradMode::is_enabled();
  at::GradMode::set_enabled(info[0].As<Napi::Boolean>().Value());
  return Napi::Boolean::New(info.Env(), prev);
}

Napi::Value IsGradEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), at::GradMode::is_enabled());
}

}  // namespace

void initAutograd(Napi::Env env, Napi::Object exports) {
  exports.Set("setRequiresGrad", Napi::Function::New(env, SetRequiresGrad));
  exports.Set("requiresGrad", Napi::Function::New(env, RequiresGrad));
  exports.Set("isLeaf", Napi::Function::New(env, IsLeaf));
  exports.Set("getGrad", Napi::Function::New(env, GetGrad));
  exports.Set("setGrad", Napi::Function::New(env, SetGrad));
  exports.Set("backward", Napi::Function::New(env, Backward));
  exports.Set("grad", Napi::Function::New(env, Grad));
  exports.Set("setGradEnabled", Napi::Function::New(env, SetGradEnabled));
  exports.Set("isGradEnabled", Napi::Function::New(env, IsGradEnabled));
  exports.Set("setHookDispatcher", Napi::Function::New(env, SetHookDispatcher));
  exports.Set("registerGradHook", Napi::Function::New(env, RegisterGradHook));
}

}  // namespace fngd
