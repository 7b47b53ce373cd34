#include "codec/codec.hpp"

#include <capnp/any.h>
#include <kj/exception.h>

#include <chrono>
#include <cstring>
#include <new>

namespace troupe {

namespace {

capnp::ReaderOptions reader_options() {
  capnp::ReaderOptions opts;
  opts.traversalLimitInWords = decode_traversal_limit_words;
  opts.nestingLimit = decode_nesting_limit;
  return opts;
}

} // namespace

void envelope_decoder::reset() {
  if (live_) {
    reinterpret_cast<capnp::FlatArrayMessageReader*>(storage_)->~FlatArrayMessageReader();
    live_ = false;
  }
  root_ = {};
}

caf::error envelope_decoder::decode(std::string_view bytes) {
  reset();
  if (bytes.size() > max_record_bytes)
    return make_error(errc::decode_failed,
                      "record of " + std::to_string(bytes.size()) + " bytes exceeds the limit");
  if (bytes.size() < sizeof(capnp::word) || bytes.size() % sizeof(capnp::word) != 0)
    return make_error(errc::decode_failed,
                      "record of " + std::to_string(bytes.size()) +
                        " bytes is not a whole number of 8-byte words");
  kj::ArrayPtr<const capnp::word> words;
  auto nwords = bytes.size() / sizeof(capnp::word);
  if (reinterpret_cast<uintptr_t>(bytes.data()) % alignof(capnp::word) == 0) {
    words = {reinterpret_cast<const capnp::word*>(bytes.data()), nwords};
  } else {
    if (copy_.size() < nwords)
      copy_ = kj::heapArray<capnp::word>(std::max(nwords, copy_.size() * 2));
    std::memcpy(copy_.begin(), bytes.data(), bytes.size());
    words = copy_.slice(0, nwords);
  }
  try {
    auto* reader = new (storage_) capnp::FlatArrayMessageReader(words, reader_options());
    live_ = true;
    root_ = reader->getRoot<schema::Envelope>();
    return {};
  } catch (const kj::Exception& e) {
    reset();
    return make_error(errc::decode_failed, std::string{"malformed record: "} +
                                             e.getDescription().cStr());
  }
}

caf::error check_framing(std::string_view bytes) {
  if (bytes.size() > max_record_bytes)
    return make_error(errc::decode_failed,
                      "record of " + std::to_string(bytes.size()) + " bytes exceeds the limit");
  if (bytes.size() < sizeof(capnp::word) || bytes.size() % sizeof(capnp::word) != 0)
    return make_error(errc::decode_failed, "record of " + std::to_string(bytes.size()) +
                                             " bytes is not a whole number of 8-byte words");
  auto u32 = [&](size_t i) {
    uint32_t v;
    std::memcpy(&v, bytes.data() + 4 * i, 4);
    return v;
  };
  uint64_t words = bytes.size() / sizeof(capnp::word);
  uint64_t segments = uint64_t{u32(0)} + 1;
  uint64_t table_words = (segments + 2) / 2;
  if (segments > 512 || table_words > words)
    return make_error(errc::decode_failed, "malformed record: a segment table of " +
                                             std::to_string(segments) + " segments");
  uint64_t total = table_words;
  for (uint64_t i = 0; i < segments; ++i)
    total += u32(1 + i);
  if (total != words)
    return make_error(errc::decode_failed,
                      "malformed record: its segments hold " + std::to_string(total) +
                        " words, the record " + std::to_string(words));
  return {};
}

void append_flat(capnp::MessageBuilder& message, std::string& out) {
  auto segments = message.getSegmentsForOutput();
  auto size = capnp::computeSerializedSizeInWords(segments) * sizeof(capnp::word);
  auto start = out.size();
  out.resize(start + size);
  kj::ArrayPtr<capnp::word> dst{reinterpret_cast<capnp::word*>(&out[start]),
                                size / sizeof(capnp::word)};
  // messageToFlatArray(segments) allocates; write the segment table and segments directly.
  auto table_words = (segments.size() + 2) / 2;
  auto* table = reinterpret_cast<uint32_t*>(dst.begin());
  table[0] = static_cast<uint32_t>(segments.size() - 1);
  for (size_t i = 0; i < segments.size(); ++i)
    table[i + 1] = static_cast<uint32_t>(segments[i].size());
  if (segments.size() % 2 == 0)
    table[segments.size() + 1] = 0;
  auto* pos = dst.begin() + table_words;
  for (auto seg : segments) {
    std::memcpy(pos, seg.begin(), seg.size() * sizeof(capnp::word));
    pos += seg.size();
  }
}

caf::error validate_envelope(std::string_view bytes) {
  envelope_decoder dec;
  if (auto err = dec.decode(bytes))
    return err;
  try {
    // Walking every pointer checks bounds of the whole message within the traversal limit.
    capnp::AnyStruct::Reader any = dec.root();
    (void)any.totalSize();
    auto env = dec.root();
    (void)env.getId().getOrigin();
    (void)env.getKey();
    for (auto h : env.getHeaders()) {
      (void)h.getName();
      (void)h.getValue();
    }
    return {};
  } catch (const kj::Exception& e) {
    return make_error(errc::decode_failed, std::string{"malformed record: "} +
                                             e.getDescription().cStr());
  }
}

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

} // namespace troupe
