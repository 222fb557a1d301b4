#include "runtime/core/slurm_env.h"

#include <gtest/gtest.h>

namespace mosix {
namespace {

using Env = std::map<std::string, std::string>;

TEST(SlurmAllocation, ReadsNodesAndCounts) {
  struct Case {
    const char* what;
    Env env;
    std::vector<HostSlots> hosts;
  };
  const Case cases[] = {
      {"outside an allocation", {{"SLURM_JOB_NODELIST", "n1"}, {"PATH", "/bin"}}, {}},
      {"two nodes, one task each",
       {{"SLURM_JOB_ID", "7"}, {"SLURM_JOB_NODELIST", "n[1-2]"}, {"SLURM_TASKS_PER_NODE", "1(x2)"}},
       {{"n1", 1, true}, {"n2", 1, true}}},
      {"repeat grammar and several groups",
       {{"SLURM_JOB_ID", "7"},
        {"SLURM_JOB_NODELIST", "n[01-03],gpu1"},
        {"SLURM_TASKS_PER_NODE", "2(x3),1"}},
       {{"n01", 2, true}, {"n02", 2, true}, {"n03", 2, true}, {"gpu1", 1, true}}},
      {"SLURM_NODELIST when SLURM_JOB_NODELIST is unset",
       {{"SLURM_JOB_ID", "7"}, {"SLURM_NODELIST", "a,b"}, {"SLURM_TASKS_PER_NODE", "3,4"}},
       {{"a", 3, true}, {"b", 4, true}}},
      {"SLURM_JOB_NODELIST wins over SLURM_NODELIST (a step's own list)",
       {{"SLURM_JOB_ID", "7"},
        {"SLURM_JOB_NODELIST", "n[1-2]"},
        {"SLURM_NODELIST", "n1"},
        {"SLURM_TASKS_PER_NODE", "1(x2)"}},
       {{"n1", 1, true}, {"n2", 1, true}}},
      {"SLURM_JOB_CPUS_PER_NODE when SLURM_TASKS_PER_NODE is unset",
       {{"SLURM_JOB_ID", "7"}, {"SLURM_JOB_NODELIST", "n[1-2]"}, {"SLURM_JOB_CPUS_PER_NODE", "4,2"}},
       {{"n1", 4, true}, {"n2", 2, true}}},
      {"SLURM_TASKS_PER_NODE wins over SLURM_JOB_CPUS_PER_NODE",
       {{"SLURM_JOB_ID", "7"},
        {"SLURM_JOB_NODELIST", "n1"},
        {"SLURM_TASKS_PER_NODE", "1"},
        {"SLURM_JOB_CPUS_PER_NODE", "8"}},
       {{"n1", 1, true}}},
      {"inside a step (srun -N1 -n1 in salloc -N2): the job's CPUs, not the step's tasks",
       {{"SLURM_JOB_ID", "7"},
        {"SLURM_STEP_ID", "0"},
        {"SLURM_JOB_NODELIST", "n[1-2]"},
        {"SLURM_NODELIST", "n[1-2]"},
        {"SLURM_STEP_NODELIST", "n1"},
        {"SLURM_TASKS_PER_NODE", "1"},
        {"SLURM_JOB_CPUS_PER_NODE", "1(x2)"}},
       {{"n1", 1, true}, {"n2", 1, true}}},
      {"inside a step without SLURM_JOB_CPUS_PER_NODE: SLURM_TASKS_PER_NODE still counts",
       {{"SLURM_JOB_ID", "7"},
        {"SLURM_STEPID", "0"},
        {"SLURM_JOB_NODELIST", "n1"},
        {"SLURM_TASKS_PER_NODE", "2"}},
       {{"n1", 2, true}}},
      {"no counts: every core of each node",
       {{"SLURM_JOB_ID", "7"}, {"SLURM_JOB_NODELIST", "n[1-2]"}},
       {{"n1", 1, false}, {"n2", 1, false}}},
      {"the old SLURM_JOBID marks an allocation too",
       {{"SLURM_JOBID", "7"}, {"SLURM_NODELIST", "n1"}, {"SLURM_TASKS_PER_NODE", "2"}},
       {{"n1", 2, true}}},
      {"a node named twice adds its tasks",
       {{"SLURM_JOB_ID", "7"}, {"SLURM_JOB_NODELIST", "n1,n2,n1"}, {"SLURM_TASKS_PER_NODE", "1,2,3"}},
       {{"n1", 4, true}, {"n2", 2, true}}},
  };
  for (const Case& c : cases) {
    auto hosts = slurm_allocation(c.env);
    ASSERT_TRUE(hosts.ok()) << c.what << ": " << hosts.error().message;
    EXPECT_EQ(*hosts, c.hosts) << c.what;
  }
}

TEST(SlurmAllocation, BadAllocationsNameTheVariableAndValue) {
  struct Case {
    Env env;
    std::string says;
  };
  const Case cases[] = {
      {{{"SLURM_JOB_ID", "7"}, {"SLURM_JOB_NODELIST", "n[1-2]"}, {"SLURM_TASKS_PER_NODE", "2(x3)"}},
       "SLURM_TASKS_PER_NODE '2(x3)' gives 3 counts but SLURM_JOB_NODELIST 'n[1-2]' names 2 nodes"},
      {{{"SLURM_JOB_ID", "7"}, {"SLURM_NODELIST", "a,b,c"}, {"SLURM_JOB_CPUS_PER_NODE", "4"}},
       "SLURM_JOB_CPUS_PER_NODE '4' gives 1 count but SLURM_NODELIST 'a,b,c' names 3 nodes"},
      {{{"SLURM_JOB_ID", "7"}, {"SLURM_JOB_NODELIST", "n[1-"}, {"SLURM_TASKS_PER_NODE", "1"}},
       "SLURM_JOB_NODELIST: malformed Slurm node list 'n[1-'"},
      {{{"SLURM_JOB_ID", "7"}, {"SLURM_JOB_NODELIST", ""}}, "SLURM_JOB_NODELIST: empty"},
      {{{"SLURM_JOB_ID", "7"}, {"SLURM_JOB_NODELIST", "n1"}, {"SLURM_TASKS_PER_NODE", "2(3)"}},
       "malformed SLURM_TASKS_PER_NODE '2(3)'"},
      {{{"SLURM_JOB_ID", "7"}, {"SLURM_JOB_NODELIST", "n1"}, {"SLURM_JOB_CPUS_PER_NODE", "x"}},
       "malformed SLURM_JOB_CPUS_PER_NODE 'x'"},
      {{{"SLURM_JOB_ID", "7"}, {"SLURM_JOB_NODELIST", "n[1-2]"}, {"SLURM_TASKS_PER_NODE", "1,0"}},
       "SLURM_TASKS_PER_NODE '1,0' gives node 'n2' of SLURM_JOB_NODELIST no task"},
      {{{"SLURM_JOB_ID", "7"}, {"SLURM_TASKS_PER_NODE", "1"}},
       "inside Slurm job 7 but neither SLURM_JOB_NODELIST nor SLURM_NODELIST is set"},
  };
  for (const Case& c : cases) {
    auto hosts = slurm_allocation(c.env);
    ASSERT_FALSE(hosts.ok()) << c.says;
    EXPECT_NE(hosts.error().message.find(c.says), std::string::npos)
        << "expected [" << c.says << "] in [" << hosts.error().message << "]";
  }
}

TEST(SlurmEnvironment, KeepsOnlySlurmVariables) {
  const char* block[] = {"PATH=/bin", "SLURM_JOB_ID=12", "SLURM_TASKS_PER_NODE=2(x2)",
                         "SLURM_EMPTY=", "SLURMISH=1", "SLURM_NOEQUALS", nullptr};
  Env expected{{"SLURM_JOB_ID", "12"}, {"SLURM_TASKS_PER_NODE", "2(x2)"}, {"SLURM_EMPTY", ""}};
  EXPECT_EQ(slurm_environment(block), expected);
  EXPECT_TRUE(slurm_environment(nullptr).empty());
}

TEST(SlurmEnvironment, FeedsSlurmAllocation) {
  const char* block[] = {"SLURM_JOB_ID=12", "SLURM_JOB_NODELIST=n[1-2]",
                         "SLURM_TASKS_PER_NODE=1(x2)", nullptr};
  auto hosts = slurm_allocation(slurm_environment(block));
  ASSERT_TRUE(hosts.ok()) << hosts.error().message;
  EXPECT_EQ(*hosts, (std::vector<HostSlots>{{"n1", 1, true}, {"n2", 1, true}}));
}

}  // namespace
}  // namespace mosix
