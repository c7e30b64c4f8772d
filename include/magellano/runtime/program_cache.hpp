// Builds OpenCL programs from the sources embedded at build time (cl/*.cl) and caches the
// compiled binaries on disk, keyed by device, driver version, build options and source hash.
// A cache entry that is corrupt, truncated or from another key is rebuilt, never trusted; so is
// one built with -cl-kernel-arg-info whose binary lost the argument types (drivers may).
//
// Cache folder: $MAGELLANO_CACHE_DIR, else $XDG_CACHE_HOME/magellano/kernels, else
// ~/.cache/magellano/kernels. $MAGELLANO_CL_DIR makes the sources come from that folder instead
// of the embedded copies (for quick kernel edits without rebuilding).
#pragma once
#include <CL/cl.h>

#include <cstdint>
#include <map>
#include <string>

namespace magellano {

struct DeviceInfo;

class ProgramCache {
 public:
  ProgramCache(cl_context ctx, cl_device_id device, const DeviceInfo& info);
  ~ProgramCache();
  ProgramCache(const ProgramCache&) = delete;
  ProgramCache& operator=(const ProgramCache&) = delete;

  // The built program for cl/<name>.cl with `options`. Throws Error with the build log.
  cl_program get(const std::string& name, const std::string& options);

  // What happened at the last get() that was not served from memory.
  enum class Source { none, disk, compiled };
  Source last_source() const { return last_source_; }
  // The file a (name, options) pair is cached in (whether or not it exists yet).
  std::string entry_path(const std::string& name, const std::string& options) const;
  const std::string& folder() const { return folder_; }

  static std::string source_of(const std::string& name);  // embedded or $MAGELLANO_CL_DIR

 private:
  std::string key(const std::string& name, const std::string& options,
                  const std::string& source) const;
  cl_program build(const std::string& name, const std::string& options);
  cl_program from_disk(const std::string& path, const std::string& key,
                       const std::string& options);
  void to_disk(const std::string& path, const std::string& key, cl_program program);

  cl_context ctx_;
  cl_device_id device_;
  std::string device_key_;
  std::string folder_;
  std::map<std::string, cl_program> programs_;
  Source last_source_ = Source::none;
};

uint64_t fnv1a64(const void* data, size_t n, uint64_t seed = 1469598103934665603ULL);

}  // namespace magellano
