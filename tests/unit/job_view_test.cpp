#include "runtime/job/job_view.h"

#include <gtest/gtest.h>

namespace mosix {
namespace {

JobView sample() {
  JobView v;
  v.job = "4242";
  GuestView g;
  g.rank = 1;
  g.pid = 777;
  g.home = "h";
  g.node = "vnode1";
  g.state = "running";
  g.cpu_seconds = 1.5;
  g.cantmove = "pinned (--pin)";
  g.migrations = 2;
  g.balancer_migrations = 1;
  g.verdict = "stay";
  g.explanation = "best node vnode0 (load 1.00)";
  v.guests.push_back(g);
  NodeView n;
  n.node = 1;
  n.name = "vnode1";
  n.speed = 0.5;
  n.cores = 2;
  n.load = 0.25;
  n.cpu = 0.75;
  n.free_memory = 1u << 30;
  n.memory = 2u << 30;
  n.guests = 1;
  v.nodes.push_back(n);
  return v;
}

TEST(JobView, PsReplyHasTheFieldsMosixctlReads) {
  nlohmann::json r = ps_reply(sample());
  EXPECT_TRUE(r["ok"].get<bool>());
  EXPECT_EQ(r["job"], "4242");
  const nlohmann::json& g = r["guests"][0];
  for (const char* key : {"rank", "pid", "home", "node", "state", "cpu_seconds", "exit_status", "cantmove",
                          "last_migration", "migrations", "balancer_migrations", "migration_progress"}) {
    EXPECT_TRUE(g.contains(key)) << key;
  }
  EXPECT_EQ(g["decision"]["verdict"], "stay");
  EXPECT_EQ(g["exit_status"], -1);
}

TEST(JobView, NodesReplyHasTheFieldsMosixctlReads) {
  nlohmann::json r = nodes_reply(sample());
  const nlohmann::json& n = r["nodes"][0];
  for (const char* key : {"node", "name", "speed", "cores", "load", "cpu", "free_memory", "memory", "guests"}) {
    EXPECT_TRUE(n.contains(key)) << key;
  }
  EXPECT_EQ(n["free_memory"], 1u << 30);
}

TEST(JobView, GuestAndNodeReadBackAsWritten) {
  JobView v = sample();
  auto g = guest_view_from_json(to_json(v.guests[0]));
  ASSERT_TRUE(g);
  EXPECT_EQ(g->pid, 777);
  EXPECT_EQ(g->node, "vnode1");
  EXPECT_EQ(g->cantmove, "pinned (--pin)");
  EXPECT_EQ(g->balancer_migrations, 1);
  EXPECT_EQ(g->explanation, "best node vnode0 (load 1.00)");
  auto n = node_view_from_json(to_json(v.nodes[0]));
  ASSERT_TRUE(n);
  EXPECT_EQ(n->cores, 2);
  EXPECT_DOUBLE_EQ(n->speed, 0.5);
  EXPECT_DOUBLE_EQ(n->cpu, 0.75);
  EXPECT_EQ(n->memory, 2ull << 30);
}

TEST(JobView, AWrongTypeIsAnErrorNotAThrow) {
  EXPECT_FALSE(guest_view_from_json(nlohmann::json{{"rank", "one"}}));
  EXPECT_FALSE(node_view_from_json(nlohmann::json::array()));
  auto partial = guest_view_from_json(nlohmann::json{{"rank", 3}});
  ASSERT_TRUE(partial);
  EXPECT_EQ(partial->rank, 3);
  EXPECT_EQ(partial->exit_status, -1);
}

}  // namespace
}  // namespace mosix
