#include "runtime/job/daemon_command.h"

#include <algorithm>

#include <gtest/gtest.h>

#include "runtime/core/environment.h"

namespace mosix {
namespace {

PlanInputs inputs() {
  PlanInputs in;
  in.cores = 4;
  in.this_node = "home";
  in.environment = {"PATH=/usr/bin", "MOSIX_LOG=debug"};
  in.wdir = "/work";
  return in;
}

RunOptions options(int np) {
  RunOptions o;
  o.np = np;
  o.program = {"prog"};
  return o;
}

TEST(DaemonCommand, OneNodeRunsEveryCopyInItsOwnDaemon) {
  auto plan = plan_job(options(3), inputs());
  ASSERT_TRUE(plan);
  NodeDaemonOptions d = node_daemon_options(options(3), *plan, "77", "", 10);
  EXPECT_EQ(d.copies, 3);
  EXPECT_EQ(d.slots, (std::vector<int>{3}));
  EXPECT_TRUE(d.oversubscribe);
  EXPECT_FALSE(d.no_agent);  // the plan put the agent in the copies' environment
  EXPECT_EQ(d.job_id, "77");
  EXPECT_FALSE(d.topology);
}

TEST(DaemonCommand, OnlyTheDaemonInMosixrunTakesMosixrunsTopology) {
  Topology here;
  here.cores = 4;
  auto one = plan_job(options(3), inputs());
  ASSERT_TRUE(one);
  EXPECT_EQ(node_daemon_options(options(3), *one, "77", "", 10, here).topology, here);
  PlanInputs in = inputs();
  in.hosts = {HostSlots{"a", 2, true}, HostSlots{"b", 1, false}};
  auto many = plan_job(options(3), in);
  ASSERT_TRUE(many);
  ASSERT_TRUE(many->multi_node);
  EXPECT_FALSE(node_daemon_options(options(3), *many, "77", "", 10, here).topology);
}

TEST(DaemonCommand, RealHostsGoThroughMpirunOneDaemonPerHost) {
  RunOptions o = options(3);
  o.migrate = "off";
  o.ckpt_interval = 2.5;
  PlanInputs in = inputs();
  in.hosts = {HostSlots{"a", 2, true}, HostSlots{"b", 1, false}};
  auto plan = plan_job(o, in);
  ASSERT_TRUE(plan);
  NodeDaemonOptions d = node_daemon_options(o, *plan, "77", "/ck", 4);
  DaemonsContext c;
  c.mosixd = "/opt/bin/mosixd";
  c.mpirun = "/usr/bin/mpirun";
  c.as_root = true;
  c.environment = in.environment;
  DaemonsCommand cmd = daemons_command(o, *plan, d, c);
  EXPECT_EQ(cmd.path, "/usr/bin/mpirun");
  EXPECT_EQ(cmd.argv, (std::vector<std::string>{
                          "mpirun", "--oversubscribe", "--bind-to", "none", "-np", "3", "--host", "home:1,a:1,b:1",
                          "-x", "MOSIX_LOG", "--enable-recovery", "/opt/bin/mosixd", "--copies", "3", "--job", "77",
                          "--map-by", "slot", "--slots", "0,2,1", "--no-oversubscribe", "--no-migrate",
                          "--spread", "load", "--ckpt-interval", "2.5", "--ckpt-dir", "/ck", "--node-timeout", "4"}));
  EXPECT_EQ(get_env(cmd.env, "OMPI_ALLOW_RUN_AS_ROOT"), "1");
  EXPECT_EQ(get_env(cmd.env, "OMPI_MCA_plm_rsh_args"), "-o BatchMode=yes -o ConnectTimeout=10");
  EXPECT_FALSE(get_env(cmd.env, "MOSIX_RANK"));
}

TEST(DaemonCommand, AVirtualClusterIsLaunchedByMosixdWithItsShares) {
  RunOptions o = options(8);
  o.vcluster = 3;
  o.vcluster_cpu = {0.5, 1, 2};
  o.ckpt_interval = 1;
  PlanInputs in = inputs();
  in.agent = "/opt/lib/libmosix.so";
  auto plan = plan_job(o, in);
  ASSERT_TRUE(plan);
  NodeDaemonOptions d = node_daemon_options(o, *plan, "9", "/ck", 10);
  DaemonsContext c;
  c.mosixd = "/opt/bin/mosixd";
  c.launch_here = true;
  c.environment = in.environment;
  DaemonsCommand cmd = daemons_command(o, *plan, d, c);
  EXPECT_EQ(cmd.path, "/opt/bin/mosixd");
  EXPECT_EQ(cmd.argv, (std::vector<std::string>{"mosixd", "--launch", "3", "--copies", "8", "--job", "9", "--map-by",
                                                "load", "--spread", "load", "--ckpt-interval", "1", "--ckpt-dir", "/ck",
                                                "--node-timeout", "10", "--vcluster-cpu", "0.5,1,2"}));
  // The agent is the guests', not the daemons'.
  EXPECT_FALSE(get_env(cmd.env, "LD_PRELOAD"));
  EXPECT_EQ(get_env(plan->guests[0].env, "LD_PRELOAD"), "/opt/lib/libmosix.so");
  EXPECT_EQ(get_env(cmd.env, "OMPI_MCA_btl"), "self,vader");
}

TEST(DaemonCommand, NoAgentReachesEveryDaemon) {
  RunOptions o = options(2);
  o.no_agent = true;
  PlanInputs in = inputs();
  in.agent = "/opt/lib/libmosix.so";
  auto one = plan_job(o, in);
  ASSERT_TRUE(one);
  EXPECT_TRUE(node_daemon_options(o, *one, "9", "", 10).no_agent);
  EXPECT_FALSE(get_env(one->guests[0].env, "LD_PRELOAD"));
  o.vcluster = 2;
  auto many = plan_job(o, in);
  ASSERT_TRUE(many);
  NodeDaemonOptions d = node_daemon_options(o, *many, "9", "", 10);
  EXPECT_TRUE(d.no_agent);
  std::vector<std::string> args = mosixd_arguments(d);
  EXPECT_NE(std::find(args.begin(), args.end(), "--no-agent"), args.end());
  // Without the agent no child can be placed at exec (it is the agent that asks).
  EXPECT_TRUE(d.spread.empty());
  EXPECT_EQ(std::find(args.begin(), args.end(), "--spread"), args.end());
}

TEST(DaemonCommand, SpreadReachesEveryDaemonOfAJobOverSeveralNodes) {
  RunOptions o = options(2);
  PlanInputs in = inputs();
  in.agent = "/opt/lib/libmosix.so";
  auto one = plan_job(o, in);
  ASSERT_TRUE(one);
  EXPECT_TRUE(node_daemon_options(o, *one, "9", "", 10).spread.empty());  // one node: nowhere to go
  o.vcluster = 2;
  auto many = plan_job(o, in);
  ASSERT_TRUE(many);
  EXPECT_EQ(node_daemon_options(o, *many, "9", "", 10).spread, "load");
  o.spread = "always";
  EXPECT_EQ(node_daemon_options(o, *many, "9", "", 10).spread, "always");
  o.spread = "off";
  NodeDaemonOptions off = node_daemon_options(o, *many, "9", "", 10);
  EXPECT_TRUE(off.spread.empty());
  std::vector<std::string> args = mosixd_arguments(off);
  EXPECT_EQ(std::find(args.begin(), args.end(), "--spread"), args.end());
}

}  // namespace
}  // namespace mosix
