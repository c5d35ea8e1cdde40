// Elementwise bias + activation for stylegan_ops.fused_bias_act, and its first and second
// derivatives (modes 0, 1, 2), so one kernel serves forward, backward and double backward.
// Activation indices follow stylegan_ops/activations.py. Arithmetic is in float for half and
// bfloat16 inputs (at::opmath_type), in double for double.
#include <ATen/core/Tensor.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>

namespace {

enum Activation { kLinear = 0, kRelu, kLrelu, kTanh, kSigmoid, kElu, kSelu, kSoftplus, kSwish };

constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSoftplusThreshold = 20.0;  // above it softplus(s) = s, as torch's F.softplus

__device__ __forceinline__ float exp_of(float v) { return expf(v); }
__device__ __forceinline__ double exp_of(double v) { return exp(v); }
__device__ __forceinline__ float expm1_of(float v) { return expm1f(v); }
__device__ __forceinline__ double expm1_of(double v) { return expm1(v); }
__device__ __forceinline__ float log1p_of(float v) { return log1pf(v); }
__device__ __forceinline__ double log1p_of(double v) { return log1p(v); }
__device__ __forceinline__ float tanh_of(float v) { return tanhf(v); }
__device__ __forceinline__ double tanh_of(double v) { return tanh(v); }

// The `order`-th derivative (0, 1 or 2) of the activation at s.
template <typename T>
__device__ __forceinline__ T activation(int act, int order, T s, T alpha) {
  const T one = T(1), zero = T(0);
  switch (act) {
    case kLinear:
      return order == 0 ? s : (order == 1 ? one : zero);
    case kRelu:
      if (order == 2) return zero;
      return s > zero ? (order == 0 ? s : one) : zero;
    case kLrelu:
      if (order == 2) return zero;
      return s > zero ? (order == 0 ? s : one) : (order == 0 ? s * alpha : alpha);
    case kTanh: {
      const T t = tanh_of(s);
      return order == 0 ? t : (order == 1 ? one - t * t : T(-2) * t * (one - t * t));
    }
    case kSigmoid: {
      const T g = one / (one + exp_of(-s));
      return order == 0 ? g : (order == 1 ? g * (one - g) : g * (one - g) * (one - T(2) * g));
    }
    case kElu:
      if (s > zero) return order == 0 ? s : (order == 1 ? one : zero);
      return order == 0 ? expm1_of(s) : exp_of(s);
    case kSelu: {
      const T scale = T(kSeluScale), a = T(kSeluAlpha);
      if (s > zero) return order == 0 ? scale * s : (order == 1 ? scale : zero);
      return order == 0 ? scale * a * expm1_of(s) : scale * a * exp_of(s);
    }
    case kSoftplus: {
      if (s > T(kSoftplusThreshold)) return order == 0 ? s : (order == 1 ? one : zero);
      const T z = exp_of(s);
      const T g = z / (z + one);
      return order == 0 ? log1p_of(z) : (order == 1 ? g : g * (one - g));
    }
    case kSwish: {
      const T g = one / (one + exp_of(-s));
      if (order == 0) return s * g;
      if (order == 1) return g * (one + s * (one - g));
      return g * (one - g) * (T(2) + s * (one - T(2) * g));
    }
    default:
      return zero;
  }
}

// out[i] = activation^(mode)(x[i] + bias[c]) * gain (* grad[i] when mode > 0); c is the dim-1 index.
template <typename scalar_t>
__global__ void bias_act_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ bias,
                                const scalar_t* __restrict__ grad, scalar_t* __restrict__ out, int64_t numel,
                                int64_t channels, int64_t inner, int act, int mode,
                                at::opmath_type<scalar_t> alpha, at::opmath_type<scalar_t> gain) {
  using T = at::opmath_type<scalar_t>;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < numel; i += stride) {
    T s = static_cast<T>(x[i]);
    if (bias != nullptr) s += static_cast<T>(bias[(i / inner) % channels]);
    T v = activation<T>(act, mode, s, alpha) * gain;
    if (mode > 0) v *= static_cast<T>(grad[i]);
    out[i] = static_cast<scalar_t>(v);
  }
}

}  // namespace

at::Tensor bias_act_cuda(const at::Tensor& x, const at::Tensor& bias, const at::Tensor& grad, int64_t act,
                         double alpha, double gain, int64_t mode) {
  const c10::cuda::OptionalCUDAGuard guard(x.device());
  auto out = at::empty_like(x, at::MemoryFormat::Contiguous);
  const int64_t numel = x.numel();
  if (numel == 0) return out;
  const int64_t channels = x.size(1);
  const int64_t inner = numel / (x.size(0) * channels);
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((numel + threads - 1) / threads, int64_t(1) << 20);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bias_act_cuda", [&] {
    using T = at::opmath_type<scalar_t>;
    bias_act_kernel<scalar_t><<<blocks, threads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        x.const_data_ptr<scalar_t>(), bias.numel() > 0 ? bias.const_data_ptr<scalar_t>() : nullptr,
        mode > 0 ? grad.const_data_ptr<scalar_t>() : nullptr, out.mutable_data_ptr<scalar_t>(), numel, channels,
        inner, static_cast<int>(act), static_cast<int>(mode), static_cast<T>(alpha), static_cast<T>(gain));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}
