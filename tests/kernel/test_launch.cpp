// ops::Launch's checks against the kernel's signature, and BuildOptions' canonical strings.
// The kernel used throughout: cl/elementwise.cl's
//   scale_acc(__global const float* x, ulong x_off, __global float* out, ulong out_off, long n,
//             float s, int acc)                                   out (+)= s * x, 7 arguments
#include "error_text.hpp"
#include "harness.hpp"
#include "magellano/ops/launch.hpp"

using namespace mgtest;
using magellano::BuildOptions;
using magellano::ops::Launch;

namespace {

// A context like the test device's but without argument-type checking (what users run).
Context& plain_ctx() {
  static std::shared_ptr<Context> ctx = Context::create(test_ctx().device());
  return *ctx;
}

std::vector<float> run_scale(Context& ctx, const std::vector<float>& x, std::vector<float> out,
                             float s, bool acc) {
  const int64_t n = static_cast<int64_t>(x.size());
  Tensor tx = Tensor::from_host(ctx, Shape{n}, x), tout = Tensor::from_host(ctx, Shape{n}, out);
  Launch(ctx, "elementwise", "scale_acc").arg(tx).arg(tout).arg(n).arg(s).arg(acc).run(n);
  return tout.to_host();
}

}  // namespace

TEST(Launch, CorrectArgumentsRunWithAndWithoutTypeChecks) {
  for (Context* ctx : {&test_ctx(), &plain_ctx()}) {
    EXPECT_EQ(run_scale(*ctx, {1, 2, 3}, {10, 20, 30}, 2.0f, false), (std::vector<float>{2, 4, 6}));
    // A flag passed as bool reaches the kernel's int as 1.
    EXPECT_EQ(run_scale(*ctx, {1, 2, 3}, {10, 20, 30}, 2.0f, true), (std::vector<float>{12, 24, 36}));
  }
  EXPECT_TRUE(test_ctx().check_kernel_args());
  EXPECT_FALSE(plain_ctx().check_kernel_args());
}

// The argument values of the previous launch stay set on the cached kernel object, so OpenCL
// itself would run a launch that forgets one: the count check must catch it in every mode.
TEST(Launch, TooFewArgumentsFailNamingTheKernel) {
  for (Context* ctx : {&test_ctx(), &plain_ctx()}) {
    run_scale(*ctx, {1, 2}, {0, 0}, 1.0f, false);  // every argument set once
    Tensor x = Tensor::from_host(*ctx, Shape{2}, {1, 2}), out = Tensor::from_host(*ctx, Shape{2}, {0, 0});
    const std::string msg = error_of([&] {
      Launch(*ctx, "elementwise", "scale_acc").arg(x).arg(out).arg(int64_t{2}).arg(3.0f).run(2);
    });
    EXPECT_TRUE(has(msg, "kernel scale_acc (cl/elementwise.cl)")) << msg;
    EXPECT_TRUE(has(msg, "takes 7 arguments, but the launcher set 6")) << msg;
    EXPECT_EQ(out.to_host(), (std::vector<float>{0, 0})) << "the launch must not have run";
    // run2d and run3d check as well.
    EXPECT_TRUE(has(error_of([&] { Launch(*ctx, "elementwise", "scale_acc").arg(x).run2d(2, 1); }),
                    "but the launcher set 2"));
    const size_t one[3] = {1, 1, 1};
    EXPECT_TRUE(has(error_of([&] { Launch(*ctx, "elementwise", "scale_acc").run3d(one, one); }),
                    "but the launcher set 0"));
  }
}

TEST(Launch, TooManyArgumentsFailAtTheExtraOne) {
  for (Context* ctx : {&test_ctx(), &plain_ctx()}) {
    Tensor x = Tensor::from_host(*ctx, Shape{2}, {1, 2}), out = Tensor::empty(*ctx, Shape{2});
    const std::string msg = error_of([&] {
      Launch(*ctx, "elementwise", "scale_acc").arg(x).arg(out).arg(int64_t{2}).arg(1.0f).arg(false)
          .arg(1.0f).run(2);
    });
    EXPECT_TRUE(has(msg, "kernel scale_acc (cl/elementwise.cl) takes 7 arguments, but the launcher "
                         "sets argument 7")) << msg;
  }
}

TEST(Launch, WrongTypesFailInCheckingMode) {
  Context& ctx = test_ctx();
  Tensor x = Tensor::from_host(ctx, Shape{2}, {1, 2}), out = Tensor::empty(ctx, Shape{2});
  // An int32 size where the kernel takes long.
  std::string msg = error_of([&] {
    Launch(ctx, "elementwise", "scale_acc").arg(x).arg(out).arg(int32_t{2}).arg(1.0f).arg(false).run(2);
  });
  EXPECT_TRUE(has(msg, "kernel scale_acc (cl/elementwise.cl), argument 4 'n': the kernel declares "
                       "long, the launcher passes int.")) << msg;
  // The same size as the kernel's type (4 bytes) but another type: OpenCL cannot tell.
  msg = error_of([&] {
    Launch(ctx, "elementwise", "scale_acc").arg(x).arg(out).arg(int64_t{2}).arg(int32_t{1}).arg(false);
  });
  EXPECT_TRUE(has(msg, "argument 5 's': the kernel declares float, the launcher passes int.")) << msg;
  // A flag where the kernel takes a float, a long where it takes the int flag.
  EXPECT_TRUE(has(error_of([&] {
    Launch(ctx, "elementwise", "scale_acc").arg(x).arg(out).arg(int64_t{2}).arg(true);
  }), "argument 5 's': the kernel declares float, the launcher passes int.")) << "flag";
  EXPECT_TRUE(has(error_of([&] {
    Launch(ctx, "elementwise", "scale_acc").arg(x).arg(out).arg(int64_t{2}).arg(1.0f).arg(int64_t{0});
  }), "argument 6 'acc': the kernel declares int, the launcher passes long.")) << "long for a flag";
  // A tensor of the wrong dtype, and a scalar where the kernel wants a buffer.
  Tensor ids = Tensor::from_host_i32(ctx, Shape{2}, {1, 2});
  EXPECT_TRUE(has(error_of([&] { Launch(ctx, "elementwise", "scale_acc").arg(ids); }),
                  "argument 0 'x': the kernel declares __global float*, the launcher passes __global int*."));
  EXPECT_TRUE(has(error_of([&] { Launch(ctx, "elementwise", "scale_acc").arg(x).arg(1.0f); }),
                  "argument 2 'out': the kernel declares __global float*, the launcher passes float."));
  // __local scratch where the kernel wants a global buffer.
  EXPECT_TRUE(has(error_of([&] { Launch(ctx, "elementwise", "scale_acc").local_floats(4); }),
                  "the kernel declares __global float*, the launcher passes __local float*."));
}

TEST(Launch, CheckingModeCachesTheKernelsArgumentsUnderItsOwnBuild) {
  const magellano::CachedKernel& typed = test_ctx().kernel("elementwise", "scale_acc");
  ASSERT_TRUE(typed.typed);
  ASSERT_EQ(typed.num_args, 7u);
  ASSERT_EQ(typed.args.size(), 7u);
  const std::vector<std::string> types = {"float*", "ulong", "float*", "ulong", "long", "float", "int"};
  const std::vector<std::string> names = {"x", "x_off", "out", "out_off", "n", "s", "acc"};
  for (size_t i = 0; i < 7; ++i) {
    EXPECT_EQ(typed.args[i].type, types[i]) << "argument " << i;  // `const` is dropped
    EXPECT_EQ(typed.args[i].name, names[i]) << "argument " << i;
  }
  using Address = cl_kernel_arg_address_qualifier;
  EXPECT_EQ(typed.args[0].address, static_cast<Address>(CL_KERNEL_ARG_ADDRESS_GLOBAL));
  EXPECT_EQ(typed.args[4].address, static_cast<Address>(CL_KERNEL_ARG_ADDRESS_PRIVATE));
  const magellano::CachedKernel& plain = plain_ctx().kernel("elementwise", "scale_acc");
  EXPECT_FALSE(plain.typed);
  EXPECT_TRUE(plain.args.empty());
  EXPECT_EQ(plain.num_args, 7u);
  // -cl-kernel-arg-info is a build option: a separate program (and disk-cache entry).
  EXPECT_NE(test_ctx().programs().entry_path("elementwise", "-cl-kernel-arg-info"),
            test_ctx().programs().entry_path("elementwise", ""));
}

TEST(BuildOptions, TheSameKnobsGiveTheSameString) {
  EXPECT_EQ(BuildOptions().str(), "");
  const BuildOptions a = BuildOptions().define("VEC", 8).define("DSTATE", 16).flag("-w").define("ALIGNED");
  const BuildOptions b = BuildOptions().flag("-w").define("ALIGNED").define("DSTATE", 16).define("VEC", 8);
  EXPECT_EQ(a.str(), "-DALIGNED -DDSTATE=16 -DVEC=8 -w");
  EXPECT_EQ(a.str(), b.str());
  EXPECT_EQ(a, b);
  EXPECT_EQ(BuildOptions().define("TA", true).define("TB", false).define("N", -3).str(),
            "-DN=-3 -DTA=1 -DTB=0");
  EXPECT_EQ(BuildOptions().flag("-w").flag("-cl-fp32-correctly-rounded-divide-sqrt").flag("-w").str(),
            "-cl-fp32-correctly-rounded-divide-sqrt -w");
  EXPECT_NE(BuildOptions().define("MR", 6).str(), BuildOptions().define("MR", 4).str());
}

TEST(BuildOptions, BadKnobsAreRejected) {
  EXPECT_TRUE(has(error_of([] { BuildOptions().define("VEC", 8).define("VEC", 4); }),
                  "the knob VEC is defined twice"));
  EXPECT_TRUE(has(error_of([] { BuildOptions().define("MR=6"); }), "'MR=6' is not a valid knob name"));
  EXPECT_TRUE(has(error_of([] { BuildOptions().define("1X", 1); }), "not a valid knob name"));
  EXPECT_TRUE(has(error_of([] { BuildOptions().define(""); }), "not a valid knob name"));
  EXPECT_TRUE(has(error_of([] { BuildOptions().flag("-DVEC=8"); }), "use define() for -D"));
  EXPECT_TRUE(has(error_of([] { BuildOptions().flag("-w -Werror"); }), "not a single compiler flag"));
  EXPECT_TRUE(has(error_of([] { BuildOptions().flag("w"); }), "not a single compiler flag"));
}
