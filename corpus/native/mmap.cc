// mapFile(path) -> ArrayBuffer: the whole file mapped read-only (mmap, MAP_PRIVATE), so the
// token shards are paged in by the kernel on demand and never copied into the JS heap.
// The mapping is released when the ArrayBuffer is garbage-collected.
// Never: writes through the mapping (PROT_READ: a stray write faults instead of changing a shard).
#include <napi.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

Napi::Value Fail(Napi::Env env, const std::string& what, const std::string& path) {
  Napi::Error::New(env, what + " " + path + ": " + std::strerror(errno)).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value MapFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "mapFile(path: string)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Fail(env, "cannot open", path);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return Fail(env, "cannot stat", path);
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {  // mmap refuses length 0; an empty file is an empty buffer
    close(fd);
    return Napi::ArrayBuffer::New(env, 0);
  }
  void* data = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);  // the mapping keeps the file alive
  if (data == MAP_FAILED) return Fail(env, "cannot map", path);
  madvise(data, size, MADV_RANDOM);  // batches read documents in permuted order
  return Napi::ArrayBuffer::New(
      env, data, size, [](Napi::Env, void* p, size_t* n) { munmap(p, *n); delete n; }, new size_t(size));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("mapFile", Napi::Function::New(env, MapFile));
  return exports;
}

}  // namespace

NODE_API_MODULE(mmap, Init)
