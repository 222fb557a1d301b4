#include "runtime/job/job_view.h"

namespace mosix {

nlohmann::json to_json(const GuestView& g) {
  return {{"rank", g.rank},
          {"pid", g.pid},
          {"home", g.home},
          {"node", g.node},
          {"state", g.state},
          {"cpu_seconds", g.cpu_seconds},
          {"exit_status", g.exit_status},
          {"cantmove", g.cantmove},
          {"last_migration", g.last_migration},
          {"migrations", g.migrations},
          {"balancer_migrations", g.balancer_migrations},
          {"migration_progress", g.migration_progress},
          {"decision", {{"verdict", g.verdict}, {"explanation", g.explanation}}},
          {"parent", g.parent},
          {"command", g.command}};
}

nlohmann::json to_json(const NodeView& n) {
  return {{"node", n.node},       {"name", n.name},
          {"speed", n.speed},     {"cores", n.cores},
          {"load", n.load},       {"cpu", n.cpu},
          {"free_memory", n.free_memory},
          {"memory", n.memory},   {"guests", n.guests}};
}

nlohmann::json ps_reply(const JobView& view) {
  nlohmann::json guests = nlohmann::json::array();
  for (const GuestView& g : view.guests) guests.push_back(to_json(g));
  return {{"ok", true}, {"job", view.job}, {"guests", guests}};
}

nlohmann::json nodes_reply(const JobView& view) {
  nlohmann::json nodes = nlohmann::json::array();
  for (const NodeView& n : view.nodes) nodes.push_back(to_json(n));
  return {{"ok", true}, {"job", view.job}, {"nodes", nodes}};
}

Expected<GuestView> guest_view_from_json(const nlohmann::json& j) {
  if (!j.is_object()) return make_error("a guest is not a JSON object");
  try {
    GuestView g;
    g.rank = j.value("rank", g.rank);
    g.pid = j.value("pid", g.pid);
    g.home = j.value("home", g.home);
    g.node = j.value("node", g.node);
    g.state = j.value("state", g.state);
    g.cpu_seconds = j.value("cpu_seconds", g.cpu_seconds);
    g.exit_status = j.value("exit_status", g.exit_status);
    g.cantmove = j.value("cantmove", g.cantmove);
    g.last_migration = j.value("last_migration", g.last_migration);
    g.migrations = j.value("migrations", g.migrations);
    g.balancer_migrations = j.value("balancer_migrations", g.balancer_migrations);
    g.migration_progress = j.value("migration_progress", g.migration_progress);
    g.parent = j.value("parent", g.parent);
    g.command = j.value("command", g.command);
    if (j.contains("decision") && j["decision"].is_object()) {
      g.verdict = j["decision"].value("verdict", g.verdict);
      g.explanation = j["decision"].value("explanation", g.explanation);
    }
    return g;
  } catch (const nlohmann::json::exception& e) {
    return make_error(std::string("a guest of the job: ") + e.what());
  }
}

Expected<NodeView> node_view_from_json(const nlohmann::json& j) {
  if (!j.is_object()) return make_error("a node is not a JSON object");
  try {
    NodeView n;
    n.node = j.value("node", n.node);
    n.name = j.value("name", n.name);
    n.speed = j.value("speed", n.speed);
    n.cores = j.value("cores", n.cores);
    n.load = j.value("load", n.load);
    n.cpu = j.value("cpu", n.cpu);
    n.free_memory = j.value("free_memory", n.free_memory);
    n.memory = j.value("memory", n.memory);
    n.guests = j.value("guests", n.guests);
    return n;
  } catch (const nlohmann::json::exception& e) {
    return make_error(std::string("a node of the job: ") + e.what());
  }
}

}  // namespace mosix
