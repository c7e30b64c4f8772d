#include "magellano/runtime/error.hpp"

#include <CL/cl.h>

namespace magellano {

std::string excerpt(std::string_view text, size_t max_chars) {
  size_t cut = text.size();
  if (cut > max_chars) {
    cut = max_chars;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // mid-character
  }
  std::string out;
  for (size_t i = 0; i < cut; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7F) {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (cut < text.size()) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

std::string cl_error_name(int code) {
  switch (code) {
#define MG_CASE(x) \
  case x:          \
    return #x;
    MG_CASE(CL_SUCCESS) MG_CASE(CL_DEVICE_NOT_FOUND) MG_CASE(CL_DEVICE_NOT_AVAILABLE)
    MG_CASE(CL_COMPILER_NOT_AVAILABLE) MG_CASE(CL_MEM_OBJECT_ALLOCATION_FAILURE)
    MG_CASE(CL_OUT_OF_RESOURCES) MG_CASE(CL_OUT_OF_HOST_MEMORY)
    MG_CASE(CL_PROFILING_INFO_NOT_AVAILABLE) MG_CASE(CL_MEM_COPY_OVERLAP)
    MG_CASE(CL_IMAGE_FORMAT_MISMATCH) MG_CASE(CL_IMAGE_FORMAT_NOT_SUPPORTED)
    MG_CASE(CL_BUILD_PROGRAM_FAILURE) MG_CASE(CL_MAP_FAILURE)
    MG_CASE(CL_MISALIGNED_SUB_BUFFER_OFFSET) MG_CASE(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
    MG_CASE(CL_COMPILE_PROGRAM_FAILURE) MG_CASE(CL_LINKER_NOT_AVAILABLE)
    MG_CASE(CL_LINK_PROGRAM_FAILURE) MG_CASE(CL_DEVICE_PARTITION_FAILED)
    MG_CASE(CL_KERNEL_ARG_INFO_NOT_AVAILABLE) MG_CASE(CL_INVALID_VALUE)
    MG_CASE(CL_INVALID_DEVICE_TYPE) MG_CASE(CL_INVALID_PLATFORM) MG_CASE(CL_INVALID_DEVICE)
    MG_CASE(CL_INVALID_CONTEXT) MG_CASE(CL_INVALID_QUEUE_PROPERTIES)
    MG_CASE(CL_INVALID_COMMAND_QUEUE) MG_CASE(CL_INVALID_HOST_PTR) MG_CASE(CL_INVALID_MEM_OBJECT)
    MG_CASE(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR) MG_CASE(CL_INVALID_IMAGE_SIZE)
    MG_CASE(CL_INVALID_SAMPLER) MG_CASE(CL_INVALID_BINARY) MG_CASE(CL_INVALID_BUILD_OPTIONS)
    MG_CASE(CL_INVALID_PROGRAM) MG_CASE(CL_INVALID_PROGRAM_EXECUTABLE)
    MG_CASE(CL_INVALID_KERNEL_NAME) MG_CASE(CL_INVALID_KERNEL_DEFINITION)
    MG_CASE(CL_INVALID_KERNEL) MG_CASE(CL_INVALID_ARG_INDEX) MG_CASE(CL_INVALID_ARG_VALUE)
    MG_CASE(CL_INVALID_ARG_SIZE) MG_CASE(CL_INVALID_KERNEL_ARGS)
    MG_CASE(CL_INVALID_WORK_DIMENSION) MG_CASE(CL_INVALID_WORK_GROUP_SIZE)
    MG_CASE(CL_INVALID_WORK_ITEM_SIZE) MG_CASE(CL_INVALID_GLOBAL_OFFSET)
    MG_CASE(CL_INVALID_EVENT_WAIT_LIST) MG_CASE(CL_INVALID_EVENT) MG_CASE(CL_INVALID_OPERATION)
    MG_CASE(CL_INVALID_GL_OBJECT) MG_CASE(CL_INVALID_BUFFER_SIZE) MG_CASE(CL_INVALID_MIP_LEVEL)
    MG_CASE(CL_INVALID_GLOBAL_WORK_SIZE) MG_CASE(CL_INVALID_PROPERTY)
    MG_CASE(CL_INVALID_IMAGE_DESCRIPTOR) MG_CASE(CL_INVALID_COMPILER_OPTIONS)
    MG_CASE(CL_INVALID_LINKER_OPTIONS) MG_CASE(CL_INVALID_DEVICE_PARTITION_COUNT)
#undef MG_CASE
    case -1001:
      return "CL_PLATFORM_NOT_FOUND_KHR";
    default:
      return "CL_UNKNOWN_ERROR(" + std::to_string(code) + ")";
  }
}

std::string clblast_status_name(int code) {
  switch (code) {
    case -1024: return "CLBlastNotImplemented";
    case -1022: return "CLBlastInvalidMatrixA";
    case -1021: return "CLBlastInvalidMatrixB";
    case -1020: return "CLBlastInvalidMatrixC";
    case -1017: return "CLBlastInvalidDimension";
    case -1016: return "CLBlastInvalidLeadDimA";
    case -1015: return "CLBlastInvalidLeadDimB";
    case -1014: return "CLBlastInvalidLeadDimC";
    case -1011: return "CLBlastInsufficientMemoryA";
    case -1010: return "CLBlastInsufficientMemoryB";
    case -1009: return "CLBlastInsufficientMemoryC";
    case -2050: return "CLBlastInsufficientMemoryTemp";
    case -2049: return "CLBlastInvalidBatchCount";
    case -2048: return "CLBlastInvalidOverrideKernel";
    case -2047: return "CLBlastMissingOverrideParameter";
    case -2046: return "CLBlastInvalidLocalMemUsage";
    case -2045: return "CLBlastNoHalfPrecision";
    case -2044: return "CLBlastNoDoublePrecision";
    case -2041: return "CLBlastDatabaseError";
    case -2040: return "CLBlastUnknownError";
    case -2039: return "CLBlastUnexpectedError";
    default: return cl_error_name(code);
  }
}

std::string cl_error_hint(int code) {
  switch (code) {
    case CL_MEM_OBJECT_ALLOCATION_FAILURE:
    case CL_OUT_OF_RESOURCES:
    case CL_INVALID_BUFFER_SIZE:
      return "The device ran out of memory: use a smaller batch or sequence length, enable "
             "gradient checkpointing, or on PoCL raise its limit with POCL_MEMORY_LIMIT=<GB>.";
    case CL_OUT_OF_HOST_MEMORY:
      return "The host ran out of memory: close other programs or use a smaller model.";
    case CL_DEVICE_NOT_FOUND:
    case -1001:  // CL_PLATFORM_NOT_FOUND_KHR
      return "No OpenCL device was found: install an OpenCL driver (e.g. pocl-opencl-icd) "
             "and check `clinfo -l`.";
    case CL_BUILD_PROGRAM_FAILURE:
    case CL_COMPILER_NOT_AVAILABLE:
      return "The device's OpenCL compiler rejected a kernel: see the build log above.";
    case CL_INVALID_WORK_GROUP_SIZE:
    case CL_INVALID_WORK_ITEM_SIZE:
      return "The device does not support this work-group size; please report it with "
             "`magellano info` output.";
    default:
      return "";
  }
}

void check_cl(int code, const char* call, const std::string& context) {
  if (code == CL_SUCCESS) return;
  std::string msg = std::string(call) + " failed: " + cl_error_name(code) + " (" +
                    std::to_string(code) + ")";
  if (!context.empty()) msg += " while " + context;
  msg += ".";
  std::string hint = cl_error_hint(code);
  if (!hint.empty()) msg += " " + hint;
  throw Error(msg);
}

void check_clblast(int status, const char* call, const std::string& context) {
  if (status == 0) return;
  std::string msg = std::string("CLBlast ") + call + " failed: " + clblast_status_name(status) +
                    " (" + std::to_string(status) + ")";
  if (!context.empty()) msg += " while " + context;
  msg += ".";
  std::string hint = cl_error_hint(status);
  if (!hint.empty()) msg += " " + hint;
  throw Error(msg);
}

}  // namespace magellano
