// Prepended to every program. Conventions:
// - A tensor argument is a pair (__global T* x, ulong x_off); kernels start with x += x_off.
// - `acc` flags: when acc != 0 a kernel adds to its output, else it overwrites it and never
//   reads it (outputs may hold NaN poison).
// - Half precision is storage only: vload_half / vstore_half, arithmetic in fp32.
#define ACC_STORE(out, i, v, acc) ((out)[i] = (acc) ? (out)[i] + (v) : (v))
