// The fused parts of Muon's step on its 2-D variables (cc/kernels/muon.h),
// around the Newton-Schulz matrix products, which stay TensorFlow's
// (Batch)MatMul: kerasopt/optimizers/muon_step.py runs
//
//   x = KerasoptMuonMomentum(momentums, grads)          momentum, direction,
//                                                        orientation, x / (||x||_F + 1e-7)
//   ns_steps times:  A = x x^T;  AA = A A;  B = KerasoptMuonCombine(A, AA, b, c)
//                    if not the last:  x = KerasoptMuonCombine(x, B x, a, 1)
//   KerasoptMuonUpdateWeights(vars, x, B x, a)           decay, a x + B x, scaled step
//
// Each op takes a list of N variables whose matrices have one shape in the
// orientation the iterations use (rows <= cols; `transposed[i]` says that
// variable i is stored the other way round), so the products run batched
// over [N, rows, cols]: a 12-layer transformer's 72 Muon matrices make two
// or three batches instead of 72 chains of small ops.
//
// Numbers: each element follows Keras's float32 operation order (MuonRule);
// ||x||_F is summed in double over the oriented matrix in fixed blocks of
// cpu::kBlock (apply_with_norms.h's tree, then the blocks in order), the order
// kerasopt/fallback/muon.py uses, so the result is the same bits for any
// thread count. 16-bit variables are computed in float32 (the batches are
// float32) and rounded once when stored.
#define EIGEN_USE_THREADS

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "cc/cpu/apply_with_norms.h"
#include "cc/kernels/muon.h"
#include "cc/tf/dense_apply_op.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace kerasopt {
namespace tf {

namespace {

using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

// [N, rows, cols] of the oriented matrices, from the first gradient or variable.
absl::Status BatchShape(InferenceContext* c, int first_matrix_input, bool from_resource) {
  int n;
  TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
  std::vector<bool> transposed;
  TF_RETURN_IF_ERROR(c->GetAttr("transposed", &transposed));
  if (from_resource) {
    c->set_output(0, c->UnknownShapeOfRank(3));
    return absl::OkStatus();
  }
  ShapeHandle matrix;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(first_matrix_input), 2, &matrix));
  const bool swap = !transposed.empty() && transposed[0];
  c->set_output(0, c->MakeShape({c->MakeDim(n), c->Dim(matrix, swap ? 1 : 0),
                                 c->Dim(matrix, swap ? 0 : 1)}));
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("KerasoptMuonMomentum")
    .Input("momentums: N * resource")
    .Input("grads: N * T")
    .Input("momentum: double")
    .Output("directions: C")
    .Attr("N: int >= 1")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("C: {float, double}")
    .Attr("nesterov: bool")
    .Attr("transposed: list(bool)")
    .SetShapeFn([](InferenceContext* c) { return BatchShape(c, c->num_inputs() / 2, false); })
    .Doc(R"doc(Muon's momentum step on N 2-D variables, and the normalized
directions the Newton-Schulz iterations start from, batched: m += g + m * (momentum - 1);
d = g + momentum * m (nesterov) or m; directions[i] = d / (||d||_F + 1e-7), transposed
where transposed[i] (the orientation with no more rows than columns). C: float32 for
16-bit and float32 variables, float64 for float64 ones.)doc");

REGISTER_OP("KerasoptMuonCombine")
    .Input("x: C")
    .Input("y: C")
    .Input("alpha: double")
    .Input("beta: double")
    .Output("z: C")
    .Attr("C: {float, double}")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle shape;
      TF_RETURN_IF_ERROR(c->Merge(c->input(0), c->input(1), &shape));
      c->set_output(0, shape);
      return absl::OkStatus();
    })
    .Doc("z = alpha * x + beta * y, one pass (the Newton-Schulz iteration's sums).");

REGISTER_OP("KerasoptMuonUpdateWeights")
    .Input("vars: N * resource")
    .Input("x: C")
    .Input("product: C")
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

constexpr int64_t kRowTile = 16;  // source rows per work item (whole cache lines when transposed)

// The oriented position of element (row, col) of a rows x cols matrix.
KERASOPT_ALWAYS_INLINE int64_t Oriented(bool transposed, int64_t rows, int64_t cols, int64_t row,
                                        int64_t col) {
  return transposed ? col * rows + row : row * cols + col;
}

// Work items (variable, tile of kRowTile source rows) for a ParallelFor.
struct RowTiles {
  std::vector<int64_t> first;  // first item of each variable, then the total
  explicit RowTiles(const std::vector<int64_t>& rows) : first(rows.size() + 1, 0) {
    for (size_t i = 0; i < rows.size(); ++i)
      first[i + 1] = first[i] + (rows[i] + kRowTile - 1) / kRowTile;
  }
  int64_t total() const { return first.back(); }
  // (variable, first row) of item `item`.
  std::pair<int, int64_t> At(int64_t item) const {
    const int i = static_cast<int>(std::upper_bound(first.begin(), first.end(), item) -
                                   first.begin()) - 1;
    return {i, (item - first[i]) * kRowTile};
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

// Locks the N resources at inputs 0..N-1 and reads them (dtype T, 2-D, one
// oriented shape); `rows`/`cols` get their stored shapes.
template <typename T>
absl::Status ReadMatrices(OpKernelContext* ctx, int n, const std::vector<bool>& transposed,
                          const char* what, std::vector<Tensor>* tensors,
                          std::vector<int64_t>* rows, std::vector<int64_t>* cols,
                          int64_t* oriented_rows, int64_t* oriented_cols) {
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
    const int64_t r = transposed[i] ? t.dim_size(1) : t.dim_size(0);
    const int64_t c = transposed[i] ? t.dim_size(0) : t.dim_size(1);
    if (i == 0) {
      *oriented_rows = r;
      *oriented_cols = c;
    } else if (r != *oriented_rows || c != *oriented_cols) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kerasopt: one Muon batch needs matrices of one shape; ", what, " '",
          VariableName(ctx, i), "' has shape ", t.shape().DebugString(),
          transposed[i] ? " (transposed)" : "", " but the first is ", *oriented_rows, " x ",
          *oriented_cols));
    }
  }
  return absl::OkStatus();
}

std::vector<int> FirstInputs(int n) {
  std::vector<int> inputs(n);
  std::iota(inputs.begin(), inputs.end(), 0);
  return inputs;
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
    int64_t batch_rows = 0, batch_cols = 0;
    OP_REQUIRES_OK(ctx, ReadMatrices<T>(ctx, n_, transposed_, "momentum slot", &momentums, &rows,
                                        &cols, &batch_rows, &batch_cols));
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
    const auto rule = MuonRule<C>::Make(0.0, 0.0, momentum, nesterov_, 0.0, 0.0, 0.0, false, 0.0,
                                        1, 1);
    Tensor* out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, {n_, batch_rows, batch_cols}, &out));
    const int64_t size = batch_rows * batch_cols;
    C* directions = out->flat<C>().data();

    // Pass 1: the momentum and the direction, written in the oriented layout.
    const RowTiles tiles(rows);
    ParallelItems(ctx, tiles.total(), kRowTile * cpu::kBlock, [&](int64_t item) {
      const auto [i, first_row] = tiles.At(item);
      T* m = momentums[i].flat<T>().data();
      const T* g = ctx->input(n_ + i).flat<T>().data();
      C* d = directions + i * size;
      const int64_t r = rows[i], c = cols[i];
      const bool swap = transposed_[i];
      const int64_t last_row = std::min(first_row + kRowTile, r);
      for (int64_t row = first_row; row < last_row; ++row) {
        for (int64_t col = 0; col < c; ++col) {
          const int64_t k = row * c + col;
          C m_k = static_cast<C>(m[k]);
          const C direction = rule.Momentum(m_k, static_cast<C>(g[k]));
          m[k] = static_cast<T>(m_k);
          d[Oriented(swap, r, c, row, col)] = direction;
        }
      }
    });

    // Pass 2: ||d||_F per matrix, by blocks in a fixed order; pass 3: divide.
    const int64_t num_blocks = (size + cpu::kBlock - 1) / cpu::kBlock;
    std::vector<double> partials(n_ * num_blocks);
    ParallelItems(ctx, n_ * num_blocks, cpu::kBlock * 4, [&](int64_t item) {
      const int64_t start = (item % num_blocks) * cpu::kBlock;
      partials[item] = cpu::internal::BlockSumOfSquares(
          directions + (item / num_blocks) * size + start, std::min(cpu::kBlock, size - start));
    });
    std::vector<C> denominators(n_);
    for (int i = 0; i < n_; ++i) {
      const double sum = cpu::internal::SumInBlockOrder<1>(&partials[i * num_blocks],
                                                           num_blocks)[0];
      denominators[i] = MuonRule<C>::NormDenominator(sum);
    }
    ParallelItems(ctx, n_ * num_blocks, cpu::kBlock * 2, [&](int64_t item) {
      const int64_t start = (item % num_blocks) * cpu::kBlock;
      C* x = directions + (item / num_blocks) * size + start;
      const C denominator = denominators[item / num_blocks];
      const int64_t len = std::min(cpu::kBlock, size - start);
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
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& y = ctx->input(1);
    OP_REQUIRES(ctx, x.shape() == y.shape(),
                absl::InvalidArgumentError(absl::StrCat(
                    "kerasopt: KerasoptMuonCombine: x has shape ", x.shape().DebugString(),
                    " but y has shape ", y.shape().DebugString())));
    double alpha, beta;
    OP_REQUIRES_OK(ctx, ReadScalar(ctx, "alpha", &alpha));
    OP_REQUIRES_OK(ctx, ReadScalar(ctx, "beta", &beta));
    Tensor* z;
    OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({1}, 0, y.shape(), &z));
    const C a = static_cast<C>(alpha), b = static_cast<C>(beta);
    const C* xs = x.flat<C>().data();
    const C* ys = y.flat<C>().data();
    C* zs = z->flat<C>().data();
    const int64_t n = x.NumElements();
    ParallelItems(ctx, (n + cpu::kBlock - 1) / cpu::kBlock, cpu::kBlock * 3, [&](int64_t item) {
      const int64_t start = item * cpu::kBlock, end = std::min(n, start + cpu::kBlock);
      for (int64_t k = start; k < end; ++k) zs[k] = a * xs[k] + b * ys[k];
    });
  }
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
    int64_t batch_rows = 0, batch_cols = 0;
    OP_REQUIRES_OK(ctx, ReadMatrices<T>(ctx, n_, transposed_, "variable", &weights, &rows, &cols,
                                        &batch_rows, &batch_cols));
    const Tensor& x = ctx->input(n_);
    const Tensor& product = ctx->input(n_ + 1);
    const ::tensorflow::TensorShape batch({n_, batch_rows, batch_cols});
    OP_REQUIRES(ctx, x.shape() == batch && product.shape() == batch,
                absl::InvalidArgumentError(absl::StrCat(
                    "kerasopt: KerasoptMuonUpdateWeights: x and product must have shape ",
                    batch.DebugString(), ", got ", x.shape().DebugString(), " and ",
                    product.shape().DebugString())));
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
    const int64_t size = batch_rows * batch_cols;
    const C* xs = x.flat<C>().data();
    const C* products = product.flat<C>().data();
    const RowTiles tiles(rows);
    ParallelItems(ctx, tiles.total(), kRowTile * cpu::kBlock, [&](int64_t item) {
      const auto [i, first_row] = tiles.At(item);
      const MuonRule<C>& rule = rules[i];
      T* w = weights[i].flat<T>().data();
      const C* x_i = xs + i * size;
      const C* p_i = products + i * size;
      const int64_t r = rows[i], c = cols[i];
      const bool swap = transposed_[i];
      const int64_t last_row = std::min(first_row + kRowTile, r);
      for (int64_t row = first_row; row < last_row; ++row) {
        for (int64_t col = 0; col < c; ++col) {
          const int64_t o = Oriented(swap, r, c, row, col);
          const C orthogonalized = combined_ ? rule.Next(x_i[o], p_i[o]) : x_i[o];
          C w_k = static_cast<C>(w[row * c + col]);
          rule.Apply(w_k, orthogonalized);
          w[row * c + col] = static_cast<T>(w_k);
        }
      }
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
