// The number type of matrix products (train.compute_dtype, like autocast): fp32, or tf32 / bf16
// operands with fp32 accumulation where the device has a matrix engine (ops::matrix_engine). Norms,
// softmax, the scans, losses and the optimizer stay fp32 whatever it is. Devices without a matrix
// engine run every product in fp32 (bf16 / tf32 change nothing there).
#pragma once

namespace magellano {

enum class ComputeDType { fp32, tf32, bf16 };

}  // namespace magellano
