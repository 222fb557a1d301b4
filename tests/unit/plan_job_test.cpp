#include "runtime/core/plan_job.h"

#include <gtest/gtest.h>

#include "runtime/core/environment.h"

namespace mosix {
namespace {

PlanInputs here(int cores = 4) {
  PlanInputs in;
  in.cores = cores;
  in.this_node = "home.example.org";
  in.environment = {"PATH=/usr/bin", "HOME=/home/u", "FOO=outer"};
  in.wdir = "/work";
  return in;
}

RunOptions run(int np, std::vector<std::string> program = {"prog", "arg"}) {
  RunOptions o;
  o.np = np;
  o.program = std::move(program);
  return o;
}

TEST(PlanJob, WithoutHostsEveryCopyRunsHereOnePerCore) {
  auto p = plan_job(run(0), here(4));
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->copies, 4);
  EXPECT_EQ(p->slots, 4);
  EXPECT_FALSE(p->multi_node);
  EXPECT_TRUE(p->nodes.empty());
  EXPECT_EQ(p->home_node, "home.example.org");
  EXPECT_EQ(p->wdir, "/work");
}

TEST(PlanJob, MoreCopiesThanSlotsNeedOversubscribe) {
  auto refused = plan_job(run(5), here(4));
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("5 copies asked for but only 4 slots (cores of this node)"),
            std::string::npos);
  EXPECT_NE(refused.error().message.find("--oversubscribe"), std::string::npos);
  RunOptions o = run(5);
  o.oversubscribe = true;
  EXPECT_TRUE(plan_job(o, here(4)));
}

TEST(PlanJob, AVirtualClusterHasNoSlotLimit) {
  RunOptions o = run(16);
  o.vcluster = 4;
  auto p = plan_job(o, here(2));
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_TRUE(p->multi_node);
  EXPECT_EQ(p->slots, 4);
  EXPECT_TRUE(p->nodes.empty());  // mosixd --launch makes them
}

TEST(PlanJob, HostsOfThisNodeOnlyStayOneNode) {
  for (const char* name : {"localhost", "127.0.0.1", "home.example.org", "home"}) {
    PlanInputs in = here();
    in.hosts = {HostSlots{name, 2, true}};
    auto p = plan_job(run(0), in);
    ASSERT_TRUE(p) << name;
    EXPECT_FALSE(p->multi_node) << name;
    EXPECT_EQ(p->copies, 2) << name;
  }
  PlanInputs in = here();
  in.slurm_node_name = "n07";
  in.hosts = {HostSlots{"n07", 3, true}};
  auto p = plan_job(run(0), in);
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->multi_node);
}

TEST(PlanJob, OtherHostsGetADaemonEachTheHomeFirst) {
  PlanInputs in = here();
  in.hosts = {HostSlots{"a", 2, true}, HostSlots{"b", 1, false}};
  auto p = plan_job(run(0), in);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_TRUE(p->multi_node);
  EXPECT_EQ(p->remote_hosts, (std::vector<std::string>{"a", "b"}));
  // --host b is one slot; the home, not listed, only routes.
  EXPECT_EQ(p->nodes, (std::vector<std::string>{"home.example.org", "a", "b"}));
  EXPECT_EQ(p->node_slots, (std::vector<int>{0, 2, 1}));
  EXPECT_EQ(p->copies, 3);

  in.hosts = {HostSlots{"a", 1, false}, HostSlots{"localhost", 2, true}};
  p = plan_job(run(0), in);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->nodes, (std::vector<std::string>{"localhost", "a"}));
  EXPECT_EQ(p->node_slots, (std::vector<int>{2, 1}));
}

TEST(PlanJob, AHostfileLineWithoutSlotsIsEveryCore) {
  PlanInputs in = here(8);
  in.hosts = {HostSlots{"a", 1, false}, HostSlots{"b", 2, true}};
  in.host_without_slots_is_all_cores = true;
  auto p = plan_job(run(0), in);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->slots, 10);
  EXPECT_EQ(p->node_slots, (std::vector<int>{0, -1, 2}));
}

TEST(PlanJob, SlotsBeyondTheBoundNeedNp) {
  PlanInputs in = here();
  in.hosts = {HostSlots{"a", kMaxCopies, true}, HostSlots{"b", 1, true}};
  auto refused = plan_job(run(0), in);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("give -np"), std::string::npos);
  EXPECT_TRUE(plan_job(run(2), in));
}

TEST(PlanJob, APinnedRankMustExist) {
  RunOptions o = run(2);
  o.pin = {0, 2};
  auto refused = plan_job(o, here());
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("--pin: rank 2 does not exist: the job has 2 copies"), std::string::npos);
}

TEST(PlanJob, EachCopyHasMpirunsRankVariablesAndFlags) {
  RunOptions o = run(3);
  o.pin = {1};
  o.bind_to = BindTo::kCore;
  auto p = plan_job(o, here());
  ASSERT_TRUE(p);
  ASSERT_EQ(p->guests.size(), 3u);
  for (int r = 0; r < 3; ++r) {
    const SpawnGuest& g = p->guests[static_cast<size_t>(r)];
    EXPECT_EQ(g.rank, r);
    EXPECT_EQ(g.argv, (std::vector<std::string>{"prog", "arg"}));
    EXPECT_EQ(g.cwd, "/work");
    for (const char* name : {"MOSIX_RANK", "OMPI_COMM_WORLD_RANK", "MOSIX_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK",
                             "OMPI_COMM_WORLD_NODE_RANK"}) {
      EXPECT_EQ(get_env(g.env, name), std::to_string(r)) << name;
    }
    for (const char* name : {"MOSIX_SIZE", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE"}) {
      EXPECT_EQ(get_env(g.env, name), "3") << name;
    }
    EXPECT_EQ(get_env(g.env, "MOSIX_HOME_NODE"), "home.example.org");
    EXPECT_EQ(get_env(g.env, "PATH"), "/usr/bin");
    EXPECT_EQ((g.flags & kSpawnStdin) != 0, r == 0);
    EXPECT_EQ((g.flags & kSpawnPinned) != 0, r == 1);
    EXPECT_NE(g.flags & kSpawnBindCore, 0u);
  }
}

TEST(PlanJob, PtyGoesToTheCopyThatReadsStdin) {
  RunOptions o = run(3);
  o.pty = true;
  auto p = plan_job(o, here());
  ASSERT_TRUE(p);
  for (const SpawnGuest& g : p->guests) EXPECT_EQ((g.flags & kSpawnPty) != 0, g.rank == 0) << g.rank;
  o.pty = false;
  p = plan_job(o, here());
  ASSERT_TRUE(p);
  for (const SpawnGuest& g : p->guests) EXPECT_EQ(g.flags & kSpawnPty, 0u) << g.rank;
}

TEST(PlanJob, DashXSetsAndCopiesAndWarnsOfWhatIsNotSet) {
  RunOptions o = run(1);
  o.env = {EnvSetting{"FOO", std::nullopt}, EnvSetting{"BAR", "baz"}, EnvSetting{"NOPE", std::nullopt}};
  auto p = plan_job(o, here());
  ASSERT_TRUE(p);
  EXPECT_EQ(get_env(p->guests[0].env, "FOO"), "outer");
  EXPECT_EQ(get_env(p->guests[0].env, "BAR"), "baz");
  EXPECT_FALSE(get_env(p->guests[0].env, "NOPE"));
  EXPECT_EQ(p->warnings, (std::vector<std::string>{"-x NOPE: not set here, nothing to export"}));
}

TEST(PlanJob, EveryCopyHasTheAgentFirstUnlessNoAgent) {
  RunOptions o = run(1);
  PlanInputs in = here();
  in.agent = "/opt/mosix/lib/libmosix.so";
  auto p = plan_job(o, in);
  ASSERT_TRUE(p);
  EXPECT_EQ(get_env(p->guests[0].env, "LD_PRELOAD"), "/opt/mosix/lib/libmosix.so");
  in.environment.push_back("LD_PRELOAD=/usr/lib/libother.so");
  p = plan_job(o, in);
  ASSERT_TRUE(p);
  EXPECT_EQ(get_env(p->guests[0].env, "LD_PRELOAD"), "/opt/mosix/lib/libmosix.so:/usr/lib/libother.so");
  o.no_agent = true;
  p = plan_job(o, in);
  ASSERT_TRUE(p);
  EXPECT_EQ(get_env(p->guests[0].env, "LD_PRELOAD"), "/usr/lib/libother.so");
}

}  // namespace
}  // namespace mosix

namespace mosix {
namespace {

// --bind-to auto (the default): mpirun binds a job of 2 copies or fewer to a
// core each; so is an MPI job's copy (where its node has the cores: the home
// node decides), nothing else.
TEST(PlanJob, BindAutoBindsAnMpiJobOfTwoCopiesAsMpirunDoes) {
  auto flags_of = [](int copies, bool mpi, BindTo bind) {
    RunOptions o = run(copies);
    o.bind_to = bind;
    PlanInputs in = here();
    in.program_links_mpi = mpi;
    auto p = plan_job(o, in);
    EXPECT_TRUE(p);
    return p ? p->guests.back().flags : 0u;
  };
  EXPECT_TRUE(flags_of(2, true, BindTo::kAuto) & kSpawnBindAuto);
  EXPECT_TRUE(flags_of(1, true, BindTo::kAuto) & kSpawnBindAuto);
  EXPECT_FALSE(flags_of(3, true, BindTo::kAuto) & kSpawnBindAuto);
  EXPECT_FALSE(flags_of(2, false, BindTo::kAuto) & kSpawnBindAuto);
  EXPECT_FALSE(flags_of(2, true, BindTo::kNone) & (kSpawnBindAuto | kSpawnBindCore));
  EXPECT_TRUE(flags_of(2, true, BindTo::kCore) & kSpawnBindCore);
}

// Open MPI's copies are served PMIx, MPICH's PMI (told by the library the
// program links, or by --mpi); a program that links neither is neither.
TEST(PlanJob, TheMpiFamilyPicksTheWireUp) {
  auto flags_of = [](MpiMode mode, bool links_mpi, bool links_mpich) {
    RunOptions o = run(2);
    o.mpi = mode;
    PlanInputs in = here();
    in.program_links_mpi = links_mpi;
    in.program_links_mpich = links_mpich;
    auto p = plan_job(o, in);
    EXPECT_TRUE(p);
    return p ? p->guests.back().flags & kSpawnMpi : 0u;
  };
  EXPECT_EQ(flags_of(MpiMode::kAuto, true, false), kSpawnPmix);
  EXPECT_EQ(flags_of(MpiMode::kAuto, true, true), kSpawnPmi);
  EXPECT_EQ(flags_of(MpiMode::kAuto, false, false), 0u);
  EXPECT_EQ(flags_of(MpiMode::kPmix, false, false), kSpawnPmix);
  EXPECT_EQ(flags_of(MpiMode::kPmi, false, false), kSpawnPmi);
  EXPECT_EQ(flags_of(MpiMode::kNone, true, true), 0u);
}

// The SMP view: a vcluster counts each share rounded up, real nodes their
// slots (every core: this node's count), memory this node's per node.
TEST(PlanJob, TheSmpViewIsTheClustersCpusAndMemory) {
  struct Case {
    int vcluster;
    std::vector<double> shares;
    std::vector<HostSlots> hosts;
    const char* cpus;
    const char* memory;
  };
  for (const Case& c : std::vector<Case>{
           {3, {}, {}, "3", "3000"},
           {4, {0.4, 0.4, 0.4, 0.4}, {}, "4", "4000"},
           {4, {0.5, 0.5, 1, 2}, {}, "5", "4000"},
           {2, {1.5, 1.0000000001}, {}, "3", "2000"},
           {0, {}, {HostSlots{"a", 2, true}, HostSlots{"b", 3, true}}, "5", "2000"},
           {0, {}, {HostSlots{"host", 1, true}, HostSlots{"b", 0, false}}, "5", "2000"},
       }) {
    RunOptions o = run(1);
    o.vcluster = c.vcluster;
    o.vcluster_cpu = c.shares;
    PlanInputs in = here(4);
    in.memory_kib = 1000;
    in.hosts = c.hosts;
    in.host_without_slots_is_all_cores = true;
    auto p = plan_job(o, in);
    ASSERT_TRUE(p) << p.error().message;
    ASSERT_TRUE(p->multi_node);
    EXPECT_EQ(get_env(p->guests[0].env, "MOSIX_SMP_CPUS"), c.cpus) << c.vcluster;
    EXPECT_EQ(get_env(p->guests[0].env, "MOSIX_SMP_MEMORY_KIB"), c.memory) << c.vcluster;
  }
}

TEST(PlanJob, NoSmpViewOnOneNodeForMpiOrWhenTurnedOff) {
  PlanInputs in = here(4);
  in.memory_kib = 1000;
  in.environment.push_back("MOSIX_SMP_CPUS=7");  // an outer job's view
  RunOptions o = run(1);
  auto one = plan_job(o, in);
  ASSERT_TRUE(one);
  EXPECT_EQ(get_env(one->guests[0].env, "MOSIX_SMP_CPUS"), "7");  // inherited, as the rest of the environment
  o.vcluster = 3;
  o.no_smp = true;
  auto off = plan_job(o, in);
  ASSERT_TRUE(off);
  EXPECT_FALSE(get_env(off->guests[0].env, "MOSIX_SMP_CPUS"));
  EXPECT_FALSE(get_env(off->guests[0].env, "MOSIX_SMP_MEMORY_KIB"));
  o.no_smp = false;
  o.mpi = MpiMode::kPmix;
  auto mpi = plan_job(o, in);
  ASSERT_TRUE(mpi);
  EXPECT_EQ(get_env(mpi->guests[0].env, "MOSIX_SMP_CPUS"), "7");
  o.mpi = MpiMode::kNone;
  o.no_agent = true;
  auto no_agent = plan_job(o, in);
  ASSERT_TRUE(no_agent);
  EXPECT_EQ(get_env(no_agent->guests[0].env, "MOSIX_SMP_CPUS"), "7");
}

}  // namespace
}  // namespace mosix
