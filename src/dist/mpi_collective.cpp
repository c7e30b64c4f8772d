#include "magellano/dist/mpi_collective.hpp"

#include "magellano/io/st_dtype.hpp"
#include "magellano/runtime/error.hpp"

#ifdef MAGELLANO_HAVE_MPI
#include <mpi.h>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#endif

namespace magellano::dist {

#ifdef MAGELLANO_HAVE_MPI

namespace {

void check(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  throw Error(std::string(call) + " failed: " + std::string(text, size_t(len)) +
              ". Another rank may have ended; see its message above.");
}

constexpr size_t kMaxCount = INT_MAX / 2;  // values per MPI call (its count is an int)
constexpr size_t kMaxPiece = size_t(1) << 30;  // bytes per broadcast or gather message
constexpr int kGatherTag = 20;                 // the tag of gather_bytes' messages

// inout[i] <- bf16(f32(in[i]) + f32(inout[i])): the sum of bf16 values (MPI_Op_create's signature).
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = io::f32_to_bf16(io::bf16_to_f32(a[i]) + io::bf16_to_f32(b[i]));
}

}  // namespace

struct MpiCollective::Requests {
  std::vector<MPI_Request> list;
  MPI_Op bf16_sum = MPI_OP_NULL;  // created on first use, freed before MPI_Finalize
  int add(MPI_Request r) {
    for (size_t i = 0; i < list.size(); ++i)
      if (list[i] == MPI_REQUEST_NULL) {
        list[i] = r;
        return int(i);
      }
    list.push_back(r);
    return int(list.size() - 1);
  }
};

MpiCollective::MpiCollective(Launch l) : launch_(l), requests_(std::make_unique<Requests>()) {}

std::unique_ptr<MpiCollective> MpiCollective::start(const Launch& launch, int* argc, char*** argv) {
  int provided = 0;
  check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  // Errors come back as codes (and become Errors above) instead of aborting inside MPI.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  Launch l;
  MPI_Comm_rank(MPI_COMM_WORLD, &l.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &l.size);
  MPI_Comm host;
  check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, l.rank, MPI_INFO_NULL, &host), "MPI_Comm_split_type");
  MPI_Comm_rank(host, &l.local_rank);
  MPI_Comm_size(host, &l.local_size);
  MPI_Comm_free(&host);
  if (l.size != launch.size)
    throw Error("MPI reports " + std::to_string(l.size) + " ranks but the launcher's environment " +
                std::to_string(launch.size) + ": this magellano's MPI is not the one mpirun belongs to.");
  std::unique_ptr<MpiCollective> c(new MpiCollective(l));
  if (const char* t = std::getenv("MAGELLANO_DIST_TIMEOUT")) {
    char* end = nullptr;
    const double s = std::strtod(t, &end);
    if (*t == '\0' || *end != '\0' || !(s > 0) || s > 1e9)
      throw Error("MAGELLANO_DIST_TIMEOUT is '" + excerpt(t) + "'; give the seconds a rank waits for the others (e.g. 600).");
    c->timeout_s_ = s;
  }
  return c;
}

void MpiCollective::finish(void* request, const char* what) {
  auto* r = static_cast<MPI_Request*>(request);
  const auto start = std::chrono::steady_clock::now();
  for (long polls = 0;; ++polls) {
    int done = 0;
    check(MPI_Test(r, &done, MPI_STATUS_IGNORE), "MPI_Test");
    if (done) return;
    if (polls < 1000) continue;  // a quick answer costs no nap
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > timeout_s_) {
      char secs[32];
      std::snprintf(secs, sizeof secs, "%g", timeout_s_);
      throw Error("rank " + std::to_string(launch_.rank) + " of " + std::to_string(launch_.size) +
                  ": no answer from the other ranks within " + secs + " s (" + what +
                  "): a rank hung or died; ending the run. The last complete checkpoint is intact; raise "
                  "MAGELLANO_DIST_TIMEOUT if a checkpoint or evaluation takes longer.");
    }
    const timespec nap{0, 100000};
    ::nanosleep(&nap, nullptr);
  }
}

MpiCollective::~MpiCollective() {
  if (abandoned_) return;
  if (requests_->bf16_sum != MPI_OP_NULL) MPI_Op_free(&requests_->bf16_sum);
  MPI_Finalize();
}

void MpiCollective::check_counts(size_t n, std::span<const int> counts, const char* call) const {
  uint64_t total = 0;
  for (int c : counts) total += c >= 0 ? uint64_t(c) : uint64_t(1) << 62;
  if (counts.size() != size_t(launch_.size) || total != n)
    throw Error(std::string(call) + ": " + std::to_string(counts.size()) + " block sizes adding up to " +
                std::to_string(total) + " for " + std::to_string(launch_.size) + " ranks and " + std::to_string(n) +
                " values.");
  if (n > kMaxCount) throw Error(std::string(call) + ": a bucket of " + std::to_string(n) + " values is too large for one MPI call.");
}

// A sum of b bytes over N ranks: 2 (N - 1) / N b per rank (Collective::bytes_sent).
static uint64_t sum_bytes(uint64_t b, int n) { return 2 * b * uint64_t(n - 1) / uint64_t(n); }

int MpiCollective::start_sum(std::span<float> values) {
  if (values.size() > kMaxCount) throw Error("start_sum: a bucket of " + std::to_string(values.size()) + " values is too large for one MPI call.");
  bytes_sent_ += sum_bytes(values.size_bytes(), launch_.size);
  MPI_Request r;
  check(MPI_Iallreduce(MPI_IN_PLACE, values.data(), int(values.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &r),
        "MPI_Iallreduce");
  return requests_->add(r);
}

int MpiCollective::start_sum_bf16(std::span<uint16_t> values) {
  if (values.size() > kMaxCount) throw Error("start_sum_bf16: a bucket of " + std::to_string(values.size()) + " values is too large for one MPI call.");
  if (requests_->bf16_sum == MPI_OP_NULL) check(MPI_Op_create(&bf16_sum, 1, &requests_->bf16_sum), "MPI_Op_create");
  bytes_sent_ += sum_bytes(values.size_bytes(), launch_.size);
  MPI_Request r;
  check(MPI_Iallreduce(MPI_IN_PLACE, values.data(), int(values.size()), MPI_UINT16_T, requests_->bf16_sum,
                       MPI_COMM_WORLD, &r),
        "MPI_Iallreduce");
  return requests_->add(r);
}

int MpiCollective::start_sum_scatter(std::span<float> values, std::span<const int> counts) {
  check_counts(values.size(), counts, "start_sum_scatter");
  bytes_sent_ += (values.size() - size_t(counts[size_t(launch_.rank)])) * sizeof(float);
  MPI_Request r;
  check(MPI_Ireduce_scatter(MPI_IN_PLACE, values.data(), counts.data(), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &r),
        "MPI_Ireduce_scatter");
  return requests_->add(r);
}

int MpiCollective::start_sum_scatter_bf16(std::span<uint16_t> values, std::span<const int> counts) {
  check_counts(values.size(), counts, "start_sum_scatter_bf16");
  if (requests_->bf16_sum == MPI_OP_NULL) check(MPI_Op_create(&bf16_sum, 1, &requests_->bf16_sum), "MPI_Op_create");
  bytes_sent_ += (values.size() - size_t(counts[size_t(launch_.rank)])) * sizeof(uint16_t);
  MPI_Request r;
  check(MPI_Ireduce_scatter(MPI_IN_PLACE, values.data(), counts.data(), MPI_UINT16_T, requests_->bf16_sum,
                            MPI_COMM_WORLD, &r),
        "MPI_Ireduce_scatter");
  return requests_->add(r);
}

int MpiCollective::start_broadcast(std::span<uint8_t> bytes, int root) {
  if (bytes.size() > kMaxPiece) throw Error("start_broadcast: " + std::to_string(bytes.size()) + " bytes are too many for one call.");
  if (root == launch_.rank) bytes_sent_ += bytes.size() * uint64_t(launch_.size - 1);
  MPI_Request r;
  check(MPI_Ibcast(bytes.data(), int(bytes.size()), MPI_BYTE, root, MPI_COMM_WORLD, &r), "MPI_Ibcast");
  return requests_->add(r);
}

void MpiCollective::wait(int handle) {
  if (handle < 0 || size_t(handle) >= requests_->list.size()) throw Error("wait: no such all-reduce handle.");
  finish(&requests_->list[size_t(handle)], "summing gradients");  // sets it to MPI_REQUEST_NULL
}

double MpiCollective::sum(double value) {
  MPI_Request r;
  check(MPI_Iallreduce(MPI_IN_PLACE, &value, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &r), "MPI_Iallreduce");
  finish(&r, "summing losses");
  return value;
}

bool MpiCollective::all(bool value) {
  int v = value ? 1 : 0;
  MPI_Request r;
  check(MPI_Iallreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD, &r), "MPI_Iallreduce");
  finish(&r, "agreeing on a step");
  return v != 0;
}

std::vector<uint64_t> MpiCollective::gather_all(uint64_t value) {
  std::vector<uint64_t> all(size_t(launch_.size));
  MPI_Request r;
  check(MPI_Iallgather(&value, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD, &r), "MPI_Iallgather");
  finish(&r, "comparing weights");
  return all;
}

std::vector<uint8_t> MpiCollective::gather_bytes(std::span<const uint8_t> bytes, int root) {
  const std::vector<uint64_t> sizes = gather_all(bytes.size());
  std::vector<uint8_t> all;
  std::vector<MPI_Request> pending;
  if (launch_.rank == root) {
    uint64_t total = 0;
    for (uint64_t n : sizes) total += n;
    all.resize(total);
    uint64_t at = 0;
    for (int r = 0; r < launch_.size; ++r) {
      if (r == root) std::copy(bytes.begin(), bytes.end(), all.begin() + std::ptrdiff_t(at));
      else
        for (uint64_t s = 0; s < sizes[size_t(r)]; s += kMaxPiece) {
          MPI_Request q;
          check(MPI_Irecv(all.data() + at + s, int(std::min<uint64_t>(kMaxPiece, sizes[size_t(r)] - s)), MPI_BYTE, r,
                          kGatherTag, MPI_COMM_WORLD, &q),
                "MPI_Irecv");
          pending.push_back(q);
        }
      at += sizes[size_t(r)];
    }
  } else {
    for (uint64_t s = 0; s < bytes.size(); s += kMaxPiece) {
      MPI_Request q;
      // (MPI_Isend takes a non-const buffer in MPI 2; it only reads it)
      check(MPI_Isend(const_cast<uint8_t*>(bytes.data()) + s, int(std::min<uint64_t>(kMaxPiece, bytes.size() - s)),
                      MPI_BYTE, root, kGatherTag, MPI_COMM_WORLD, &q),
            "MPI_Isend");
      pending.push_back(q);
    }
  }
  for (MPI_Request& q : pending) finish(&q, "gathering optimizer state");
  return all;
}

#else  // a build without MPI: the type exists, starting it explains what is missing

struct MpiCollective::Requests {};
MpiCollective::MpiCollective(Launch l) : launch_(l) {}

std::unique_ptr<MpiCollective> MpiCollective::start(const Launch& launch, int*, char***) {
  throw Error("this magellano was built without MPI, but it was launched as rank " + std::to_string(launch.rank) +
              " of " + std::to_string(launch.size) +
              ": install Open MPI (scripts/setup.sh: openmpi-bin, libopenmpi-dev) and rebuild, or run one process.");
}
MpiCollective::~MpiCollective() = default;
void MpiCollective::finish(void*, const char*) {}
int MpiCollective::start_sum(std::span<float>) { return 0; }
int MpiCollective::start_sum_bf16(std::span<uint16_t>) { return 0; }
int MpiCollective::start_sum_scatter(std::span<float>, std::span<const int>) { return 0; }
int MpiCollective::start_sum_scatter_bf16(std::span<uint16_t>, std::span<const int>) { return 0; }
void MpiCollective::check_counts(size_t, std::span<const int>, const char*) const {}
void MpiCollective::wait(int) {}
double MpiCollective::sum(double value) { return value; }
bool MpiCollective::all(bool value) { return value; }
std::vector<uint64_t> MpiCollective::gather_all(uint64_t value) { return {value}; }
int MpiCollective::start_broadcast(std::span<uint8_t>, int) { return 0; }
std::vector<uint8_t> MpiCollective::gather_bytes(std::span<const uint8_t> bytes, int) {
  return {bytes.begin(), bytes.end()};
}

#endif

}  // namespace magellano::dist
