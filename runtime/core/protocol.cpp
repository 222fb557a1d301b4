#include "runtime/core/protocol.h"

#include <bit>
#include <concepts>
#include <type_traits>

#include "runtime/core/crc32c.h"
#include "runtime/core/frame_layout.h"
#include "runtime/core/little_endian.h"
#include "runtime/core/protocol_fields.h"

namespace mosix {
namespace {

using namespace frame_layout;

using wire::fields;

// Wire width of the scalar types; everything else is length-prefixed.
template <typename T>
constexpr std::size_t wire_size() {
  if constexpr (std::is_same_v<T, bool>) return 1;
  else if constexpr (std::is_enum_v<T>) return sizeof(std::underlying_type_t<T>);
  else return sizeof(T);
}

template <typename T>
std::uint64_t to_bits(T v) {
  if constexpr (std::is_same_v<T, double>) return std::bit_cast<std::uint64_t>(v);
  else if constexpr (std::is_same_v<T, bool>) return v ? 1 : 0;
  else if constexpr (std::is_enum_v<T>)
    return static_cast<std::make_unsigned_t<std::underlying_type_t<T>>>(v);
  else return static_cast<std::make_unsigned_t<T>>(v);
}

template <typename T>
struct IsVector : std::false_type {};
template <typename T>
struct IsVector<std::vector<T>> : std::true_type {};

class Sizer {
 public:
  template <typename T>
  void operator()(const char*, const T& v) {
    if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, Bytes>) {
      size_ += 4 + v.size();
    } else if constexpr (IsVector<T>::value) {
      size_ += 4;
      for (const auto& e : v) element(e);
    } else {
      size_ += wire_size<T>();
    }
  }
  std::size_t size() const { return size_; }

 private:
  template <typename E>
  void element(const E& e) {
    if constexpr (std::is_same_v<E, std::string> || std::is_arithmetic_v<E>) (*this)("", e);
    else fields(*this, e);
  }
  std::size_t size_ = 0;
};

class Writer {
 public:
  explicit Writer(Bytes& out) : out_(out) {}

  template <typename T>
  void operator()(const char*, const T& v) {
    if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, Bytes>) {
      length(v.size());
      out_.insert(out_.end(), v.begin(), v.end());
    } else if constexpr (IsVector<T>::value) {
      length(v.size());
      for (const auto& e : v) {
        if constexpr (std::is_same_v<typename T::value_type, std::string> || std::is_arithmetic_v<typename T::value_type>) (*this)("", e);
        else fields(*this, e);
      }
    } else {
      scalar(to_bits(v), wire_size<T>());
    }
  }

 private:
  void length(std::size_t n) { scalar(n, 4); }
  void scalar(std::uint64_t bits, std::size_t width) {
    const std::size_t at = out_.size();
    out_.resize(at + width);
    store_le(out_.data() + at, bits, width);
  }
  Bytes& out_;
};

class Reader {
 public:
  Reader(std::span<const std::uint8_t> in, std::string_view what) : in_(in), what_(what) {}

  template <typename T>
  void operator()(const char* name, T& v) {
    if (failed()) return;
    if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, Bytes>) {
      std::uint32_t n = 0;
      if (!length(name, n) || !need(name, n)) return;
      v.assign(in_.begin() + pos_, in_.begin() + pos_ + n);
      pos_ += n;
    } else if constexpr (IsVector<T>::value) {
      std::uint32_t n = 0;
      if (!length(name, n)) return;
      // Every element takes at least one byte: refuse absurd counts before allocating.
      if (n > in_.size() - pos_) {
        fail(std::string(name) + " claims " + std::to_string(n) + " elements but only " +
             std::to_string(in_.size() - pos_) + " bytes are left");
        return;
      }
      v.clear();
      v.reserve(n);
      for (std::uint32_t i = 0; i < n && !failed(); ++i) {
        v.emplace_back();
        if constexpr (std::is_same_v<typename T::value_type, std::string> || std::is_arithmetic_v<typename T::value_type>) (*this)(name, v.back());
        else fields(*this, v.back());
      }
    } else {
      constexpr std::size_t width = wire_size<T>();
      if (!need(name, width)) return;
      const std::uint64_t bits = load_le(in_.data() + pos_, width);
      pos_ += width;
      if constexpr (std::is_same_v<T, double>) {
        v = std::bit_cast<double>(bits);
      } else if constexpr (std::is_same_v<T, bool>) {
        if (bits > 1) return fail(std::string(name) + " is " + std::to_string(bits) + ", not 0 or 1");
        v = bits == 1;
      } else if constexpr (std::is_same_v<T, OutputStream>) {
        if (bits != 1 && bits != 2)
          return fail(std::string(name) + " is " + std::to_string(bits) + ", not 1 (stdout) or 2 (stderr)");
        v = static_cast<OutputStream>(bits);
      } else if constexpr (std::is_same_v<T, MigratePhase>) {
        if (bits < 1 || bits > 3)
          return fail(std::string(name) + " is " + std::to_string(bits) + ", not 1, 2 or 3");
        v = static_cast<MigratePhase>(bits);
      } else {
        v = static_cast<T>(static_cast<std::make_unsigned_t<T>>(bits));
      }
    }
  }

  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  std::size_t left() const { return in_.size() - pos_; }

 private:
  bool length(const char* name, std::uint32_t& n) {
    if (!need(name, 4)) return false;
    n = static_cast<std::uint32_t>(load_le(in_.data() + pos_, 4));
    pos_ += 4;
    return true;
  }
  bool need(const char* name, std::size_t n) {
    if (n <= in_.size() - pos_) return true;
    fail("truncated " + std::string(what_) + " payload: field '" + name + "' needs " +
         std::to_string(n) + " bytes, " + std::to_string(in_.size() - pos_) + " left");
    return false;
  }
  void fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
  }

  std::span<const std::uint8_t> in_;
  std::string_view what_;
  std::size_t pos_ = 0;
  std::string error_;
};

template <typename M>
Expected<Message> decode_payload(std::span<const std::uint8_t> payload) {
  const std::string_view name = message_type_name(M::kType);
  M message;
  Reader reader(payload, name);
  fields(reader, message);
  if (reader.failed()) return make_error(reader.error());
  if (reader.left() != 0) {
    return make_error(std::to_string(reader.left()) + " unexpected bytes after the end of a " +
                      std::string(name) + " payload");
  }
  return Message{std::move(message)};
}

}  // namespace

std::uint32_t crc32c(std::span<const std::uint8_t> bytes, std::uint32_t crc) {
  return crc32c(crc, bytes.data(), bytes.size());
}

MessageType message_type(const Message& message) {
  return std::visit([](const auto& m) { return std::decay_t<decltype(m)>::kType; }, message);
}

std::string_view message_type_name(MessageType type) {
  switch (type) {
    case MessageType::kHello: return "Hello";
    case MessageType::kHelloReject: return "HelloReject";
    case MessageType::kLoadReport: return "LoadReport";
    case MessageType::kSpawnGuest: return "SpawnGuest";
    case MessageType::kGuestStarted: return "GuestStarted";
    case MessageType::kGuestOutput: return "GuestOutput";
    case MessageType::kGuestStdin: return "GuestStdin";
    case MessageType::kGuestSignal: return "GuestSignal";
    case MessageType::kGuestExited: return "GuestExited";
    case MessageType::kShutdown: return "Shutdown";
    case MessageType::kImageBegin: return "ImageBegin";
    case MessageType::kImageChunk: return "ImageChunk";
    case MessageType::kImageEnd: return "ImageEnd";
    case MessageType::kNodeLost: return "NodeLost";
    case MessageType::kMigrateRequest: return "MigrateRequest";
    case MessageType::kMigrateResult: return "MigrateResult";
    case MessageType::kOutputCredit: return "OutputCredit";
    case MessageType::kStdinCredit: return "StdinCredit";
    case MessageType::kPtyResize: return "PtyResize";
    case MessageType::kPrecopyPages: return "PrecopyPages";
    case MessageType::kSocketForward: return "SocketForward";
    case MessageType::kPrecopyTaken: return "PrecopyTaken";
    case MessageType::kHomeKill: return "HomeKill";
    case MessageType::kBalanceReport: return "BalanceReport";
    case MessageType::kMigrateProgress: return "MigrateProgress";
    case MessageType::kOutputFds: return "OutputFds";
    case MessageType::kMpiJobMap: return "MpiJobMap";
    case MessageType::kFenceContribution: return "FenceContribution";
    case MessageType::kFenceRelease: return "FenceRelease";
    case MessageType::kModexRequest: return "ModexRequest";
    case MessageType::kModexReply: return "ModexReply";
    case MessageType::kNamePublish: return "NamePublish";
    case MessageType::kNameLookup: return "NameLookup";
    case MessageType::kNameUnpublish: return "NameUnpublish";
    case MessageType::kNameReply: return "NameReply";
    case MessageType::kGuestAttach: return "GuestAttach";
    case MessageType::kGuestSpawn: return "GuestSpawn";
    case MessageType::kGuestSpawnReply: return "GuestSpawnReply";
    case MessageType::kGuestMessage: return "GuestMessage";
    case MessageType::kMpiSpawn: return "MpiSpawn";
    case MessageType::kMpiSpawnReply: return "MpiSpawnReply";
    case MessageType::kMpiNamespace: return "MpiNamespace";
  }
  return "unknown";
}

Bytes encode_payload(const Message& message) {
  Bytes out;
  std::visit(
      [&](const auto& m) {
        Sizer sizer;
        fields(sizer, m);
        out.reserve(sizer.size());
        Writer writer(out);
        fields(writer, m);
      },
      message);
  return out;
}

template <typename M>
  requires(!std::is_same_v<M, Message> && std::is_constructible_v<Message, const M&>)
Frame encode_frame(const M& message) {
  Sizer sizer;
  fields(sizer, message);
  Frame frame;
  frame.reserve(kFrameHeaderSize + sizer.size());
  frame.resize(kFrameHeaderSize);
  Writer writer(frame);
  fields(writer, message);
  write_header(frame.data(), kProtocolVersion, M::kType,
               static_cast<std::uint32_t>(frame.size() - kFrameHeaderSize));
  seal(frame);
  return frame;
}

template Frame encode_frame(const Hello&);
template Frame encode_frame(const HelloReject&);
template Frame encode_frame(const LoadReport&);
template Frame encode_frame(const SpawnGuest&);
template Frame encode_frame(const GuestStarted&);
template Frame encode_frame(const GuestOutput&);
template Frame encode_frame(const GuestStdin&);
template Frame encode_frame(const GuestSignal&);
template Frame encode_frame(const GuestExited&);
template Frame encode_frame(const Shutdown&);
template Frame encode_frame(const ImageBegin&);
template Frame encode_frame(const ImageChunk&);
template Frame encode_frame(const ImageEnd&);
template Frame encode_frame(const NodeLost&);
template Frame encode_frame(const MigrateRequest&);
template Frame encode_frame(const MigrateResult&);
template Frame encode_frame(const OutputCredit&);
template Frame encode_frame(const StdinCredit&);
template Frame encode_frame(const PtyResize&);
template Frame encode_frame(const PrecopyPages&);
template Frame encode_frame(const SocketForward&);
template Frame encode_frame(const PrecopyTaken&);
template Frame encode_frame(const HomeKill&);
template Frame encode_frame(const BalanceReport&);
template Frame encode_frame(const MigrateProgress&);
template Frame encode_frame(const OutputFds&);
template Frame encode_frame(const MpiJobMap&);
template Frame encode_frame(const FenceContribution&);
template Frame encode_frame(const FenceRelease&);
template Frame encode_frame(const ModexRequest&);
template Frame encode_frame(const ModexReply&);
template Frame encode_frame(const NamePublish&);
template Frame encode_frame(const NameLookup&);
template Frame encode_frame(const NameUnpublish&);
template Frame encode_frame(const NameReply&);
template Frame encode_frame(const GuestAttach&);
template Frame encode_frame(const GuestSpawn&);
template Frame encode_frame(const GuestSpawnReply&);
template Frame encode_frame(const GuestMessage&);
template Frame encode_frame(const MpiSpawn&);
template Frame encode_frame(const MpiSpawnReply&);
template Frame encode_frame(const MpiNamespace&);

Frame encode_frame(const Message& message) {
  return std::visit([](const auto& m) { return encode_frame(m); }, message);
}

Expected<Message> decode_frame(std::span<const std::uint8_t> frame) {
  auto header = parse_frame_header(frame);
  if (!header) return header.error();
  if (auto body = check_frame_body(frame, *header); !body) return body.error();
  const auto payload = frame.subspan(kFrameHeaderSize);
  switch (header->type) {
    case MessageType::kHello: return decode_payload<Hello>(payload);
    case MessageType::kHelloReject: return decode_payload<HelloReject>(payload);
    case MessageType::kLoadReport: return decode_payload<LoadReport>(payload);
    case MessageType::kSpawnGuest: return decode_payload<SpawnGuest>(payload);
    case MessageType::kGuestStarted: return decode_payload<GuestStarted>(payload);
    case MessageType::kGuestOutput: return decode_payload<GuestOutput>(payload);
    case MessageType::kGuestStdin: return decode_payload<GuestStdin>(payload);
    case MessageType::kGuestSignal: return decode_payload<GuestSignal>(payload);
    case MessageType::kGuestExited: return decode_payload<GuestExited>(payload);
    case MessageType::kShutdown: return decode_payload<Shutdown>(payload);
    case MessageType::kImageBegin: return decode_payload<ImageBegin>(payload);
    case MessageType::kImageChunk: return decode_payload<ImageChunk>(payload);
    case MessageType::kImageEnd: return decode_payload<ImageEnd>(payload);
    case MessageType::kNodeLost: return decode_payload<NodeLost>(payload);
    case MessageType::kMigrateRequest: return decode_payload<MigrateRequest>(payload);
    case MessageType::kMigrateResult: return decode_payload<MigrateResult>(payload);
    case MessageType::kOutputCredit: return decode_payload<OutputCredit>(payload);
    case MessageType::kStdinCredit: return decode_payload<StdinCredit>(payload);
    case MessageType::kPtyResize: return decode_payload<PtyResize>(payload);
    case MessageType::kPrecopyPages: return decode_payload<PrecopyPages>(payload);
    case MessageType::kSocketForward: return decode_payload<SocketForward>(payload);
    case MessageType::kPrecopyTaken: return decode_payload<PrecopyTaken>(payload);
    case MessageType::kHomeKill: return decode_payload<HomeKill>(payload);
    case MessageType::kBalanceReport: return decode_payload<BalanceReport>(payload);
    case MessageType::kMigrateProgress: return decode_payload<MigrateProgress>(payload);
    case MessageType::kOutputFds: return decode_payload<OutputFds>(payload);
    case MessageType::kMpiJobMap: return decode_payload<MpiJobMap>(payload);
    case MessageType::kFenceContribution: return decode_payload<FenceContribution>(payload);
    case MessageType::kFenceRelease: return decode_payload<FenceRelease>(payload);
    case MessageType::kModexRequest: return decode_payload<ModexRequest>(payload);
    case MessageType::kModexReply: return decode_payload<ModexReply>(payload);
    case MessageType::kNamePublish: return decode_payload<NamePublish>(payload);
    case MessageType::kNameLookup: return decode_payload<NameLookup>(payload);
    case MessageType::kNameUnpublish: return decode_payload<NameUnpublish>(payload);
    case MessageType::kNameReply: return decode_payload<NameReply>(payload);
    case MessageType::kGuestAttach: return decode_payload<GuestAttach>(payload);
    case MessageType::kGuestSpawn: return decode_payload<GuestSpawn>(payload);
    case MessageType::kGuestSpawnReply: return decode_payload<GuestSpawnReply>(payload);
    case MessageType::kGuestMessage: return decode_payload<GuestMessage>(payload);
    case MessageType::kMpiSpawn: return decode_payload<MpiSpawn>(payload);
    case MessageType::kMpiSpawnReply: return decode_payload<MpiSpawnReply>(payload);
    case MessageType::kMpiNamespace: return decode_payload<MpiNamespace>(payload);
  }
  return make_error("unknown message type " +
                    std::to_string(static_cast<std::uint16_t>(header->type)) +
                    " in a frame of protocol version " + std::to_string(kProtocolVersion));
}

Status check_hello(const Hello& peer, std::string_view our_mosix_version) {
  if (peer.protocol_version == kProtocolVersion) return Status::Ok();
  return make_error("node '" + peer.node_name + "' (rank " + std::to_string(peer.rank) +
                    ", mosix " + peer.mosix_version + ") speaks protocol version " +
                    std::to_string(peer.protocol_version) + ", this node (mosix " +
                    std::string(our_mosix_version) + ") speaks version " +
                    std::to_string(kProtocolVersion) +
                    ": install the same mosixrun release on every node");
}

}  // namespace mosix
