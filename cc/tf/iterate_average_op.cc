// KerasoptUpdateIterateAverage: adds a variable's current value to its running
// mean (Polyak-Ruppert averaging, SWA), in one pass. The math lives in
// cc/kernels/iterate_average.h.
#include "cc/kernels/iterate_average.h"
#include "cc/tf/pair_update_op.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace kerasopt {
namespace tf {

REGISTER_OP("KerasoptUpdateIterateAverage")
    .Input("average: resource")
    .Input("var: resource")  // read only
    .Input("count: int64")   // iterates already in the average
    .Attr("T: {half, bfloat16, float, double}")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("average += (var - average) / (count + 1) (average = var at count 0). "
         "See cc/kernels/iterate_average.h.");

struct IterateAverageAlgo {
  template <typename C>
  using Rule = IterateAverageRule<C>;

  template <typename C>
  absl::Status MakeRule(OpKernelContext* ctx, Rule<C>* rule) const {
    int64_t count;
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "count", &count));
    if (count < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "KerasoptUpdateIterateAverage: count must be >= 0, got ", count));
    }
    *rule = Rule<C>::Make(count);
    return absl::OkStatus();
  }
};

KERASOPT_REGISTER_PAIR_CPU("KerasoptUpdateIterateAverage", IterateAverageAlgo)

}  // namespace tf
}  // namespace kerasopt
