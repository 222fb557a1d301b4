// The field list of every message (see protocol.h): one function per type,
// used by protocol.cpp's Sizer, Writer and Reader alike. Changing one
// changes the protocol: bump kProtocolVersion. Private to protocol.cpp.
#pragma once

#include <concepts>
#include <type_traits>

#include "runtime/core/protocol.h"

namespace mosix::wire {

template <typename M, typename T>
concept Is = std::same_as<std::remove_const_t<M>, T>;

void fields(auto& a, Is<Hello> auto& m) {
  a("protocol_version", m.protocol_version);  // stable prefix: keep first
  a("mosix_version", m.mosix_version);        // stable prefix
  a("node_name", m.node_name);                // stable prefix
  a("rank", m.rank);
  a("speed", m.speed);
  a("cores", m.cores);
  a("memory_bytes", m.memory_bytes);
}

void fields(auto& a, Is<HelloReject> auto& m) { a("reason", m.reason); }

void fields(auto& a, Is<LoadEntry> auto& m) {
  a("node", m.node);
  a("load", m.load);
  a("speed", m.speed);
  a("free_memory", m.free_memory);
  a("age_ms", m.age_ms);
  a("cores", m.cores);
  a("work", m.work);
  a("cpu", m.cpu);
}

void fields(auto& a, Is<LoadReport> auto& m) { a("entries", m.entries); }

void fields(auto& a, Is<SpawnGuest> auto& m) {
  a("rank", m.rank);
  a("argv", m.argv);
  a("env", m.env);
  a("cwd", m.cwd);
  a("flags", m.flags);
  a("memory_bytes", m.memory_bytes);
  a("program", m.program);
}

void fields(auto& a, Is<GuestStarted> auto& m) {
  a("rank", m.rank);
  a("pid", m.pid);
  a("node", m.node);
}

void fields(auto& a, Is<GuestOutput> auto& m) {
  a("rank", m.rank);
  a("stream", m.stream);
  a("bytes", m.bytes);
}

void fields(auto& a, Is<GuestStdin> auto& m) {
  a("rank", m.rank);
  a("bytes", m.bytes);
  a("eof", m.eof);
}

void fields(auto& a, Is<StdinCredit> auto& m) {
  a("rank", m.rank);
  a("bytes", m.bytes);
}

void fields(auto& a, Is<PtyResize> auto& m) {
  a("rank", m.rank);
  a("rows", m.rows);
  a("cols", m.cols);
}

void fields(auto& a, Is<OutputCredit> auto& m) {
  a("rank", m.rank);
  a("bytes", m.bytes);
}

void fields(auto& a, Is<GuestDecision> auto& m) {
  a("rank", m.rank);
  a("verdict", m.verdict);
  a("explanation", m.explanation);
}

void fields(auto& a, Is<OutputFds> auto& m) { a("count", m.count); }

void fields(auto& a, Is<MpiJobMap> auto& m) {
  a("rank_nodes", m.rank_nodes);
  a("node_names", m.node_names);
}

void fields(auto& a, Is<FenceContribution> auto& m) {
  a("fence_id", m.fence_id);
  a("ranks", m.ranks);
  a("data", m.data);
}

void fields(auto& a, Is<FenceRelease> auto& m) {
  a("fence_id", m.fence_id);
  a("ranks", m.ranks);
  a("status", m.status);
  a("data", m.data);
}

void fields(auto& a, Is<ModexRequest> auto& m) {
  a("request_id", m.request_id);
  a("rank", m.rank);
}

void fields(auto& a, Is<PublishedName> auto& m) {
  a("key", m.key);
  a("value", m.value);
  a("rank", m.rank);
  a("bytes", m.bytes);
}

void fields(auto& a, Is<NamePublish> auto& m) {
  a("request_id", m.request_id);
  a("names", m.names);
}

void fields(auto& a, Is<NameLookup> auto& m) {
  a("request_id", m.request_id);
  a("keys", m.keys);
  a("wait", m.wait);
}

void fields(auto& a, Is<NameUnpublish> auto& m) {
  a("request_id", m.request_id);
  a("rank", m.rank);
  a("keys", m.keys);
}

void fields(auto& a, Is<NameReply> auto& m) {
  a("request_id", m.request_id);
  a("status", m.status);
  a("names", m.names);
}

void fields(auto& a, Is<GuestAttach> auto& m) {
  a("rank", m.rank);
  a("link_fd", m.link_fd);
}

void fields(auto& a, Is<GuestSpawn> auto& m) {
  a("request_id", m.request_id);
  a("parent_rank", m.parent_rank);
  a("count", m.count);
  a("argv", m.argv);
  a("env", m.env);
  a("cwd", m.cwd);
  a("where", m.where);
  a("flags", m.flags);
  a("program", m.program);
}

void fields(auto& a, Is<GuestSpawnReply> auto& m) {
  a("request_id", m.request_id);
  a("parent_rank", m.parent_rank);
  a("status", m.status);
  a("reason", m.reason);
  a("ranks", m.ranks);
  a("nodes", m.nodes);
}

void fields(auto& a, Is<GuestMessage> auto& m) {
  a("source_rank", m.source_rank);
  a("dest_rank", m.dest_rank);
  a("kind", m.kind);
  a("tag", m.tag);
  a("bytes", m.bytes);
}

void fields(auto& a, Is<HomeKill> auto& m) {
  a("request_id", m.request_id);
  a("rank", m.rank);
  a("asker_node", m.asker_node);
  a("pid", m.pid);
  a("signo", m.signo);
  a("answered", m.answered);
  a("error", m.error);
  a("tid", m.tid);
  a("queued", m.queued);
  a("code", m.code);
  a("value", m.value);
}

void fields(auto& a, Is<MpiSpawnApp> auto& m) {
  a("count", m.count);
  a("argv", m.argv);
  a("env", m.env);
  a("cwd", m.cwd);
  a("where", m.where);
}

void fields(auto& a, Is<MpiSpawn> auto& m) {
  a("request_id", m.request_id);
  a("parent_rank", m.parent_rank);
  a("apps", m.apps);
  a("kvs", m.kvs);
}

void fields(auto& a, Is<MpiSpawnReply> auto& m) {
  a("request_id", m.request_id);
  a("status", m.status);
  a("reason", m.reason);
  a("nspace", m.nspace);
}

void fields(auto& a, Is<MpiNamespace> auto& m) {
  a("nspace", m.nspace);
  a("first_rank", m.first_rank);
  a("rank_nodes", m.rank_nodes);
  a("app_sizes", m.app_sizes);
  a("parent_rank", m.parent_rank);
  a("flags", m.flags);
  a("kvs", m.kvs);
}

void fields(auto& a, Is<ModexReply> auto& m) {
  a("request_id", m.request_id);
  a("status", m.status);
  a("data", m.data);
}

void fields(auto& a, Is<MigrateProgress> auto& m) {
  a("migration_id", m.migration_id);
  a("rank", m.rank);
  a("phase", m.phase);
  a("bytes", m.bytes);
  a("total", m.total);
}

void fields(auto& a, Is<BalanceReport> auto& m) {
  a("node", m.node);
  a("guests", m.guests);
}

void fields(auto& a, Is<GuestSignal> auto& m) {
  a("rank", m.rank);
  a("signo", m.signo);
  a("not_before_cpu_us", m.not_before_cpu_us);
}

void fields(auto& a, Is<GuestExited> auto& m) {
  a("rank", m.rank);
  a("exit_code", m.exit_code);
  a("term_signal", m.term_signal);
  a("runtime_signaled", m.runtime_signaled);
  a("cpu_us", m.cpu_us);
  a("suspended_image", m.suspended_image);
}

void fields(auto& a, Is<Shutdown> auto& m) { a("reason", m.reason); }

void fields(auto& a, Is<ImageBegin> auto& m) {
  a("migration_id", m.migration_id);
  a("rank", m.rank);
  a("total_bytes", m.total_bytes);
}

void fields(auto& a, Is<ImageChunk> auto& m) {
  a("migration_id", m.migration_id);
  a("offset", m.offset);
  a("bytes", m.bytes);
}

void fields(auto& a, Is<ImageEnd> auto& m) {
  a("migration_id", m.migration_id);
  a("total_bytes", m.total_bytes);
  a("abandoned", m.abandoned);
}

void fields(auto& a, Is<SocketForward> auto& m) {
  a("op", m.op);
  a("rank", m.rank);
  a("id", m.id);
  a("arg", m.arg);
  a("fd", m.fd);
  a("listening", m.listening);
  a("to_holder", m.to_holder);
  a("migration_id", m.migration_id);
  a("bytes", m.bytes);
  a("more", m.more);
}

void fields(auto& a, Is<PrecopyPages> auto& m) {
  a("migration_id", m.migration_id);
  a("address", m.address);
  a("bytes", m.bytes);
  a("zero", m.zero);
  a("hugepage", m.hugepage);
}

void fields(auto& a, Is<PrecopyTaken> auto& m) {
  a("migration_id", m.migration_id);
  a("bytes", m.bytes);
}

void fields(auto& a, Is<RankRestart> auto& m) {
  a("rank", m.rank);
  a("node", m.node);
}

void fields(auto& a, Is<NodeLost> auto& m) {
  a("node", m.node);
  a("restarting", m.restarting);
}

void fields(auto& a, Is<MigrateRequest> auto& m) {
  a("migration_id", m.migration_id);
  a("rank", m.rank);
  a("target_node", m.target_node);
  a("flags", m.flags);
  a("work_done", m.work_done);
}

void fields(auto& a, Is<MigrateResult> auto& m) {
  a("migration_id", m.migration_id);
  a("rank", m.rank);
  a("ok", m.ok);
  a("cantmove", m.cantmove);
  a("reason", m.reason);
  a("source_node", m.source_node);
  a("target_node", m.target_node);
  a("pid", m.pid);
  a("bytes", m.bytes);
  a("stopped_ms", m.stopped_ms);
  a("precopy_bytes", m.precopy_bytes);
  a("rounds", m.rounds);
  a("early_bytes", m.early_bytes);
}

}  // namespace mosix::wire
