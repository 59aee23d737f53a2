// The fused parts of Muon's step on its 2-D variables (cc/kernels/muon.h),
// around the Newton-Schulz matrix products, which stay TensorFlow's
// MatMul: kerasopt/optimizers/muon_step.py runs
//
//   x = KerasoptMuonMomentum(momentums, grads)          momentum, direction,
//                                                        orientation, x / (||x||_F + 1e-7)
//   ns_steps times:  A = x x^T;  AA = A A;  B = KerasoptMuonCombine(A, AA, b, c)
//                    if not the last:  x = KerasoptMuonCombine(x, B x, a, 1)
//   KerasoptMuonUpdateWeights(vars, x, B x, a)           decay, a x + B x, scaled step
//
// Each op takes the list of all N Muon variables of a step (of one dtype), so
// a 12-layer transformer's 72 matrices take one op per stage instead of 72
// chains of small element-wise ops. The matrices come out in the orientation
// the iterations use (rows <= cols; `transposed[i]` says that variable i is
// stored the other way round), so the products are TensorFlow's MatMul on
// each matrix, as Keras runs them (a batched product was slower on some of
// a transformer's shapes).
//
// Numbers: each element follows Keras's float32 operation order (MuonRule);
// ||x||_F is summed in double over the oriented matrix in fixed blocks of
// cpu::kBlock (apply_with_norms.h's tree, then the blocks in order), the order
// kerasopt/fallback/muon.py uses, so the result is the same bits for any
// thread count. 16-bit variables are computed in float32 (the directions are
// float32) and rounded once when stored.
#define EIGEN_USE_THREADS

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "cc/cpu/apply_with_norms.h"
#include "cc/cpu/isa.h"
#include "cc/kernels/muon.h"
#include "cc/tf/dense_apply_op.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace kerasopt {
namespace tf {

namespace {

using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

// Output i: gradient i's shape, transposed where transposed[i].
absl::Status OrientedShapes(InferenceContext* c) {
  int n;
  TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
  std::vector<bool> transposed;
  TF_RETURN_IF_ERROR(c->GetAttr("transposed", &transposed));
  for (int i = 0; i < n; ++i) {
    ShapeHandle matrix;
    TF_RETURN_IF_ERROR(c->WithRank(c->input(n + i), 2, &matrix));
    const bool swap = i < static_cast<int>(transposed.size()) && transposed[i];
    c->set_output(i, c->MakeShape({c->Dim(matrix, swap ? 1 : 0), c->Dim(matrix, swap ? 0 : 1)}));
  }
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("KerasoptMuonMomentum")
    .Input("momentums: N * resource")
    .Input("grads: N * T")
    .Input("momentum: double")
    .Output("directions: N * C")
    .Attr("N: int >= 1")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("C: {float, double}")
    .Attr("nesterov: bool")
    .Attr("transposed: list(bool)")
    .SetShapeFn(OrientedShapes)
    .Doc(R"doc(Muon's momentum step on N 2-D variables, and the normalized
directions the Newton-Schulz iterations start from: m += g + m * (momentum - 1);
d = g + momentum * m (nesterov) or m; directions[i] = d / (||d||_F + 1e-7), transposed
where transposed[i] (the orientation with no more rows than columns). C: float32 for
16-bit and float32 variables, float64 for float64 ones.)doc");

REGISTER_OP("KerasoptMuonCombine")
    .Input("x: N * C")
    .Input("y: N * C")
    .Input("alpha: double")
    .Input("beta: double")
    .Output("z: N * C")
    .Attr("N: int >= 1")
    .Attr("C: {float, double}")
    .SetShapeFn([](InferenceContext* c) {
      int n;
      TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
      for (int i = 0; i < n; ++i) {
        ShapeHandle shape;
        TF_RETURN_IF_ERROR(c->Merge(c->input(i), c->input(n + i), &shape));
        c->set_output(i, shape);
      }
      return absl::OkStatus();
    })
    .Doc("z[i] = alpha * x[i] + beta * y[i], one pass over the list (the Newton-Schulz "
         "iteration's sums).");

REGISTER_OP("KerasoptMuonUpdateWeights")
    .Input("vars: N * resource")
    .Input("x: N * C")
    .Input("product: N * C")
    .Input("muon_a: double")
    .Input("learning_rate: double")
    .Input("weight_decay: double")
    .Input("rms_rate: double")
    .Attr("N: int >= 1")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("C: {float, double}")
    .Attr("transposed: list(bool)")
    .Attr("decayed: list(bool)")
    .Attr("scaled: bool")
    .Attr("combined: bool")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc(R"doc(Muon's weight write on N 2-D variables: o = muon_a * x + product
(the last Newton-Schulz iteration; o = x when not combined), read back in the
variable's orientation; w -= w * (weight_decay * lr) where decayed[i]; then
w -= o * (lr * (sqrt(max(rows, cols)) * rms_rate)) (scaled) or o * lr.)doc");

namespace {

constexpr int64_t kRowTile = 64;  // source rows per work item (runs of 4 cache lines when transposed)


// Work items over a list of tensors: item k of tensor i covers `unit`
// consecutive rows (RowTiles) or elements (Blocks) of it.
struct Items {
  std::vector<int64_t> first;  // first item of each tensor, then the total
  Items(const std::vector<int64_t>& lengths, int64_t unit) : first(lengths.size() + 1, 0) {
    for (size_t i = 0; i < lengths.size(); ++i)
      first[i + 1] = first[i] + (lengths[i] + unit - 1) / unit;
  }
  int64_t total() const { return first.back(); }
  // (tensor, index of the item within it).
  std::pair<int, int64_t> At(int64_t item) const {
    const int i = static_cast<int>(std::upper_bound(first.begin(), first.end(), item) -
                                   first.begin()) - 1;
    return {i, item - first[i]};
  }
};

template <typename F>
void ParallelItems(OpKernelContext* ctx, int64_t items, int64_t cost, F&& fn) {
  auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  pool->ParallelFor(items, cost, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) fn(item);
  });
}

absl::Status ReadTransposed(OpKernelConstruction* ctx, int n, std::vector<bool>* transposed) {
  TF_RETURN_IF_ERROR(ctx->GetAttr("transposed", transposed));
  if (static_cast<int>(transposed->size()) != n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kerasopt: `transposed` has ", transposed->size(), " entries for ", n, " variables"));
  }
  return absl::OkStatus();
}

// Reads the N resources at inputs 0..N-1 (locked by the caller): dtype T,
// 2-D; `rows`/`cols` get their stored shapes.
template <typename T>
absl::Status ReadMatrices(OpKernelContext* ctx, int n, const char* what,
                          std::vector<Tensor>* tensors, std::vector<int64_t>* rows,
                          std::vector<int64_t>* cols) {
  tensors->resize(n);
  rows->resize(n);
  cols->resize(n);
  for (int i = 0; i < n; ++i) {
    ::tensorflow::core::RefCountPtr<::tensorflow::Var> var;
    TF_RETURN_IF_ERROR(::tensorflow::LookupResource(ctx, ::tensorflow::HandleFromInput(ctx, i),
                                                    &var));
    if (!var->tensor()->IsInitialized()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "kerasopt: ", what, " '", VariableName(ctx, i), "' is not initialized"));
    }
    if (var->tensor()->dtype() != ::tensorflow::DataTypeToEnum<T>::value) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kerasopt: ", what, " '", VariableName(ctx, i), "' has dtype ",
          ::tensorflow::DataTypeString(var->tensor()->dtype()), " but the update was given ",
          ::tensorflow::DataTypeString(::tensorflow::DataTypeToEnum<T>::value)));
    }
    TF_RETURN_IF_ERROR(::tensorflow::GetInputTensorFromVariable<CPUDevice, T>(
        ctx, i, /*lock_held=*/true, /*sparse=*/false, &(*tensors)[i]));
    const Tensor& t = (*tensors)[i];
    if (t.dims() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kerasopt: Muon's step takes 2-D variables, but ", what, " '", VariableName(ctx, i),
          "' has shape ", t.shape().DebugString()));
    }
    (*rows)[i] = t.dim_size(0);
    (*cols)[i] = t.dim_size(1);
  }
  return absl::OkStatus();
}

::tensorflow::TensorShape OrientedShape(bool transposed, int64_t rows, int64_t cols) {
  return transposed ? ::tensorflow::TensorShape({cols, rows})
                    : ::tensorflow::TensorShape({rows, cols});
}

std::vector<int> FirstInputs(int n) {
  std::vector<int> inputs(n);
  std::iota(inputs.begin(), inputs.end(), 0);
  return inputs;
}

// One source row of the momentum step: m updated in place, d written to
// `direction` (contiguous). Plain loops the compiler vectorizes.
template <typename Rule, typename T, typename C>
KERASOPT_ALWAYS_INLINE void MomentumRow(const Rule& rule, T* __restrict m, const T* __restrict g,
                                        C* __restrict direction, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    C m_k = static_cast<C>(m[k]);
    direction[k] = rule.Momentum(m_k, static_cast<C>(g[k]));
    m[k] = static_cast<T>(m_k);
  }
}

// One source row of the weight write from its orthogonalized row o.
template <typename Rule, typename T, typename C>
KERASOPT_ALWAYS_INLINE void WeightRow(const Rule& rule, T* __restrict w, const C* __restrict o,
                                      int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    C w_k = static_cast<C>(w[k]);
    rule.Apply(w_k, o[k]);
    w[k] = static_cast<T>(w_k);
  }
}

template <typename T>
class MuonMomentumOp : public OpKernel {
 public:
  using C = ComputeType<T>;

  explicit MuonMomentumOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("N", &n_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("nesterov", &nesterov_));
    OP_REQUIRES_OK(ctx, ReadTransposed(ctx, n_, &transposed_));
  }

  void Compute(OpKernelContext* ctx) override {
    auto locks = ::tensorflow::MaybeLockVariableInputMutexesInOrder<CPUDevice, T>(
        ctx, /*do_lock=*/true, /*sparse=*/false, FirstInputs(n_));
    std::vector<Tensor> momentums;
    std::vector<int64_t> rows, cols;
    OP_REQUIRES_OK(ctx, ReadMatrices<T>(ctx, n_, "momentum slot", &momentums, &rows, &cols));
    std::vector<int64_t> sizes(n_);
    std::vector<C*> directions(n_);
    for (int i = 0; i < n_; ++i) {
      const Tensor& grad = ctx->input(n_ + i);
      OP_REQUIRES(ctx, grad.shape() == momentums[i].shape(),
                  absl::InvalidArgumentError(absl::StrCat(
                      "kerasopt: momentum slot '", VariableName(ctx, i), "' has shape ",
                      momentums[i].shape().DebugString(), " but its gradient has shape ",
                      grad.shape().DebugString())));
    }
    double momentum;
    OP_REQUIRES_OK(ctx, ReadScalar(ctx, "momentum", &momentum));
    for (int i = 0; i < n_; ++i) {
      Tensor* out;
      OP_REQUIRES_OK(ctx, ctx->allocate_output(i, OrientedShape(transposed_[i], rows[i], cols[i]),
                                               &out));
      directions[i] = out->flat<C>().data();
      sizes[i] = rows[i] * cols[i];
    }
    const auto rule = MuonRule<C>::Make(0.0, 0.0, momentum, nesterov_, 0.0, 0.0, 0.0, false, 0.0,
                                        1, 1);

    // Pass 1: the momentum and the direction, written in the oriented layout:
    // row by row in place, or for a transposed matrix through a buffer of
    // kRowTile rows written out as kRowTile-element runs of its columns.
    const Items tiles(rows, kRowTile);
    ParallelItems(ctx, tiles.total(), kRowTile * cpu::kBlock, [&](int64_t item) {
      const auto [i, tile] = tiles.At(item);
      T* m = momentums[i].flat<T>().data();
      const T* g = ctx->input(n_ + i).flat<T>().data();
      C* d = directions[i];
      const int64_t r = rows[i], c = cols[i];
      const int64_t first_row = tile * kRowTile, last_row = std::min(first_row + kRowTile, r);
      if (!transposed_[i]) {
        cpu::WithBestIsa([&]() KERASOPT_INLINE_LAMBDA {
          for (int64_t row = first_row; row < last_row; ++row)
            MomentumRow(rule, m + row * c, g + row * c, d + row * c, c);
        });
        return;
      }
      std::vector<C> buffer(kRowTile * c);
      cpu::WithBestIsa([&]() KERASOPT_INLINE_LAMBDA {
        for (int64_t row = first_row; row < last_row; ++row)
          MomentumRow(rule, m + row * c, g + row * c, buffer.data() + (row - first_row) * c, c);
      });
      const int64_t height = last_row - first_row;
      for (int64_t col = 0; col < c; ++col) {
        C* out = d + col * r + first_row;
        for (int64_t j = 0; j < height; ++j) out[j] = buffer[j * c + col];
      }
    });

    // Pass 2: ||d||_F per matrix, by blocks in a fixed order; pass 3: divide.
    const Items blocks(sizes, cpu::kBlock);
    std::vector<double> partials(blocks.total());
    ParallelItems(ctx, blocks.total(), cpu::kBlock * 4, [&](int64_t item) {
      const auto [i, block] = blocks.At(item);
      const int64_t start = block * cpu::kBlock;
      partials[item] = cpu::internal::BlockSumOfSquares(directions[i] + start,
                                                        std::min(cpu::kBlock, sizes[i] - start));
    });
    std::vector<C> denominators(n_);
    for (int i = 0; i < n_; ++i) {
      const double sum = cpu::internal::SumInBlockOrder<1>(
          &partials[blocks.first[i]], blocks.first[i + 1] - blocks.first[i])[0];
      denominators[i] = MuonRule<C>::NormDenominator(sum);
    }
    ParallelItems(ctx, blocks.total(), cpu::kBlock * 2, [&](int64_t item) {
      const auto [i, block] = blocks.At(item);
      const int64_t start = block * cpu::kBlock;
      C* x = directions[i] + start;
      const C denominator = denominators[i];
      const int64_t len = std::min(cpu::kBlock, sizes[i] - start);
      for (int64_t j = 0; j < len; ++j) x[j] = x[j] / denominator;
    });
  }

 private:
  int n_ = 0;
  bool nesterov_ = true;
  std::vector<bool> transposed_;
};

template <typename C>
class MuonCombineOp : public OpKernel {
 public:
  explicit MuonCombineOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("N", &n_));
  }

  void Compute(OpKernelContext* ctx) override {
    double alpha, beta;
    OP_REQUIRES_OK(ctx, ReadScalar(ctx, "alpha", &alpha));
    OP_REQUIRES_OK(ctx, ReadScalar(ctx, "beta", &beta));
    std::vector<int64_t> sizes(n_);
    std::vector<const C*> xs(n_), ys(n_);
    std::vector<C*> zs(n_);
    for (int i = 0; i < n_; ++i) {
      const Tensor& x = ctx->input(i);
      const Tensor& y = ctx->input(n_ + i);
      OP_REQUIRES(ctx, x.shape() == y.shape(),
                  absl::InvalidArgumentError(absl::StrCat(
                      "kerasopt: KerasoptMuonCombine: x[", i, "] has shape ",
                      x.shape().DebugString(), " but y[", i, "] has shape ",
                      y.shape().DebugString())));
      Tensor* z;
      OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({n_ + i}, i, y.shape(), &z));
      sizes[i] = x.NumElements();
      xs[i] = x.flat<C>().data();
      ys[i] = y.flat<C>().data();
      zs[i] = z->flat<C>().data();
    }
    const C a = static_cast<C>(alpha), b = static_cast<C>(beta);
    const Items blocks(sizes, cpu::kBlock);
    ParallelItems(ctx, blocks.total(), cpu::kBlock * 3, [&](int64_t item) {
      const auto [i, block] = blocks.At(item);
      const int64_t start = block * cpu::kBlock, end = std::min(sizes[i], start + cpu::kBlock);
      const C* x = xs[i];
      const C* y = ys[i];
      C* z = zs[i];
      for (int64_t k = start; k < end; ++k) z[k] = a * x[k] + b * y[k];
    });
  }

 private:
  int n_ = 0;
};

template <typename T>
class MuonUpdateWeightsOp : public OpKernel {
 public:
  using C = ComputeType<T>;

  explicit MuonUpdateWeightsOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("N", &n_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("scaled", &scaled_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("combined", &combined_));
    OP_REQUIRES_OK(ctx, ReadTransposed(ctx, n_, &transposed_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("decayed", &decayed_));
    OP_REQUIRES(ctx, static_cast<int>(decayed_.size()) == n_,
                absl::InvalidArgumentError(absl::StrCat(
                    "kerasopt: `decayed` has ", decayed_.size(), " entries for ", n_,
                    " variables")));
  }

  void Compute(OpKernelContext* ctx) override {
    auto locks = ::tensorflow::MaybeLockVariableInputMutexesInOrder<CPUDevice, T>(
        ctx, /*do_lock=*/true, /*sparse=*/false, FirstInputs(n_));
    std::vector<Tensor> weights;
    std::vector<int64_t> rows, cols;
    OP_REQUIRES_OK(ctx, ReadMatrices<T>(ctx, n_, "variable", &weights, &rows, &cols));
    std::vector<const C*> xs(n_), products(n_);
    for (int i = 0; i < n_; ++i) {
      const Tensor& x = ctx->input(n_ + i);
      const Tensor& product = ctx->input(2 * n_ + i);
      const auto oriented = OrientedShape(transposed_[i], rows[i], cols[i]);
      OP_REQUIRES(ctx, x.shape() == oriented && product.shape() == oriented,
                  absl::InvalidArgumentError(absl::StrCat(
                      "kerasopt: KerasoptMuonUpdateWeights: variable '", VariableName(ctx, i),
                      "' has shape ", weights[i].shape().DebugString(),
                      transposed_[i] ? " (transposed: " : " (", oriented.DebugString(),
                      "), but x and product have shapes ", x.shape().DebugString(), " and ",
                      product.shape().DebugString())));
      xs[i] = x.flat<C>().data();
      products[i] = product.flat<C>().data();
    }
    double a, lr, weight_decay, rms_rate;
    OP_REQUIRES_OK(ctx, ReadScalar(ctx, "muon_a", &a));
    OP_REQUIRES_OK(ctx, ReadScalar(ctx, "learning_rate", &lr));
    OP_REQUIRES_OK(ctx, ReadScalar(ctx, "weight_decay", &weight_decay));
    OP_REQUIRES_OK(ctx, ReadScalar(ctx, "rms_rate", &rms_rate));
    std::vector<MuonRule<C>> rules;
    rules.reserve(n_);
    for (int i = 0; i < n_; ++i) {
      rules.push_back(MuonRule<C>::Make(lr, decayed_[i] ? weight_decay : 0.0, 0.0, false, a, 0.0,
                                        0.0, scaled_, rms_rate, rows[i], cols[i]));
    }
    // Per kRowTile source rows: the orthogonalized rows (a x + B x, read
    // from the oriented layout in kRowTile-element runs when transposed)
    // into a buffer, then the weight rows from it.
    const Items tiles(rows, kRowTile);
    ParallelItems(ctx, tiles.total(), kRowTile * cpu::kBlock, [&](int64_t item) {
      const auto [i, tile] = tiles.At(item);
      const MuonRule<C>& rule = rules[i];
      T* w = weights[i].flat<T>().data();
      const C* x_i = xs[i];
      const C* p_i = products[i];
      const int64_t r = rows[i], c = cols[i];
      const int64_t first_row = tile * kRowTile, last_row = std::min(first_row + kRowTile, r);
      const int64_t height = last_row - first_row;
      std::vector<C> buffer(height * c);
      if (!transposed_[i]) {
        const C* x = x_i + first_row * c;
        const C* p = p_i + first_row * c;
        C* o = buffer.data();
        const int64_t n = height * c;
        cpu::WithBestIsa([&]() KERASOPT_INLINE_LAMBDA {
          if (combined_) {
            for (int64_t k = 0; k < n; ++k) o[k] = rule.Next(x[k], p[k]);
          } else {
            for (int64_t k = 0; k < n; ++k) o[k] = x[k];
          }
        });
      } else {
        for (int64_t col = 0; col < c; ++col) {
          const C* x = x_i + col * r + first_row;
          const C* p = p_i + col * r + first_row;
          for (int64_t j = 0; j < height; ++j)
            buffer[j * c + col] = combined_ ? rule.Next(x[j], p[j]) : x[j];
        }
      }
      cpu::WithBestIsa([&]() KERASOPT_INLINE_LAMBDA {
        for (int64_t row = first_row; row < last_row; ++row)
          WeightRow(rule, w + row * c, buffer.data() + (row - first_row) * c, c);
      });
    });
  }

 private:
  int n_ = 0;
  bool scaled_ = true;
  bool combined_ = true;
  std::vector<bool> transposed_;
  std::vector<bool> decayed_;
};

}  // namespace

#define KERASOPT_REGISTER_MUON(T)                                                          \
  REGISTER_KERNEL_BUILDER(Name("KerasoptMuonMomentum")                                     \
                              .Device(::tensorflow::DEVICE_CPU)                            \
                              .TypeConstraint<T>("T")                                      \
                              .TypeConstraint<ComputeType<T>>("C"),                        \
                          MuonMomentumOp<T>);                                              \
  REGISTER_KERNEL_BUILDER(Name("KerasoptMuonUpdateWeights")                                \
                              .Device(::tensorflow::DEVICE_CPU)                            \
                              .TypeConstraint<T>("T")                                      \
                              .TypeConstraint<ComputeType<T>>("C"),                        \
                          MuonUpdateWeightsOp<T>);

KERASOPT_REGISTER_MUON(Eigen::half)
KERASOPT_REGISTER_MUON(Eigen::bfloat16)
KERASOPT_REGISTER_MUON(float)
KERASOPT_REGISTER_MUON(double)
#undef KERASOPT_REGISTER_MUON

REGISTER_KERNEL_BUILDER(
    Name("KerasoptMuonCombine").Device(::tensorflow::DEVICE_CPU).TypeConstraint<float>("C"),
    MuonCombineOp<float>);
REGISTER_KERNEL_BUILDER(
    Name("KerasoptMuonCombine").Device(::tensorflow::DEVICE_CPU).TypeConstraint<double>("C"),
    MuonCombineOp<double>);

}  // namespace tf
}  // namespace kerasopt
