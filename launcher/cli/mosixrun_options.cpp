#include "launcher/cli/mosixrun_options.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <sstream>

#include "runtime/core/printable.h"

namespace mosix {
namespace {

struct OptionSpec {
  const char* name;  // long name without dashes
  bool takes_value;
};

// Every long option mosixrun knows, with whether it takes a value. The list
// lets the splitter find the program name without CLI11's help.
constexpr std::array kLongOptions = {
    OptionSpec{"np", true},           OptionSpec{"n", true},
    OptionSpec{"host", true},         OptionSpec{"H", true},
    OptionSpec{"hostfile", true},     OptionSpec{"machinefile", true},
    OptionSpec{"x", true},            OptionSpec{"wdir", true},
    OptionSpec{"tag-output", false},  OptionSpec{"output-filename", true},
    OptionSpec{"oversubscribe", false}, OptionSpec{"bind-to", true},
    OptionSpec{"timeout", true},      OptionSpec{"keep-going", false},
    OptionSpec{"verbose", false},     OptionSpec{"v", false},
    OptionSpec{"version", false},     OptionSpec{"V", false},
    OptionSpec{"help", false},        OptionSpec{"h", false},
    OptionSpec{"vcluster", true},     OptionSpec{"vcluster-cpu", true},
    OptionSpec{"map-by", true},       OptionSpec{"ckpt-interval", true},
    OptionSpec{"ckpt-dir", true},     OptionSpec{"migrate", true},
    OptionSpec{"pin", true},          OptionSpec{"mpi", true},
    OptionSpec{"no-agent", false},    OptionSpec{"no-smp", false},    OptionSpec{"pty", false},
    OptionSpec{"spread", true},
};

// A number of seconds as the user gave it, for a message.
std::string fmt_seconds(double seconds) {
  std::ostringstream out;
  out << seconds;
  return out.str();
}

const OptionSpec* find_option(std::string_view name) {
  for (const OptionSpec& o : kLongOptions) {
    if (name == o.name) return &o;
  }
  return nullptr;
}

}  // namespace

Expected<std::vector<int>> parse_rank_list(std::string_view text) {
  std::vector<int> ranks;
  auto number = [](std::string_view s) -> std::optional<int> {
    if (s.empty() || s.size() > 7 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    return std::stoi(std::string(s));
  };
  while (true) {
    auto comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    auto dash = item.find('-');
    auto first = number(item.substr(0, dash));
    auto last = dash == std::string_view::npos ? first : number(item.substr(dash + 1));
    if (!first || !last || *last < *first) {
      return make_error(quote(item) + " is not a rank or a range of ranks: write e.g. 0,2,5-7");
    }
    if (*last >= kMaxCopies) {
      return make_error("rank " + std::to_string(*last) + " does not exist: a job has at most " +
                        std::to_string(kMaxCopies) + " copies");
    }
    for (int r = *first; r <= *last; ++r) ranks.push_back(r);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  std::sort(ranks.begin(), ranks.end());
  ranks.erase(std::unique(ranks.begin(), ranks.end()), ranks.end());
  return ranks;
}

Expected<SplitArgs> split_mosixrun_args(const std::vector<std::string>& args) {
  SplitArgs out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      out.program.assign(args.begin() + static_cast<long>(i) + 1, args.end());
      break;
    }
    if (a.size() < 2 || a[0] != '-') {
      out.program.assign(args.begin() + static_cast<long>(i), args.end());
      break;
    }
    // `-np`, `--np`, `-host=a`, `--host=a`, `-x`, `-n4`?? (no: -n 4 only).
    std::string body = a.substr(a[1] == '-' ? 2 : 1);
    std::string value;
    bool has_value = false;
    if (auto eq = body.find('='); eq != std::string::npos) {
      value = body.substr(eq + 1);
      body = body.substr(0, eq);
      has_value = true;
    }
    const OptionSpec* spec = find_option(body);
    if (!spec) {
      return make_error("unknown option " + quote(a) + ": see mosixrun --help");
    }
    std::string word = (body.size() == 1 ? "-" : "--") + body;
    if (has_value && !spec->takes_value) {
      return make_error("option " + quote(word) + " takes no value: remove " + quote("=" + value));
    }
    out.options.push_back(has_value ? word + "=" + value : word);
    if (spec->takes_value && !has_value) {
      if (i + 1 >= args.size()) {
        return make_error("option " + quote(a) + " needs a value: see mosixrun --help");
      }
      out.options.push_back(args[++i]);
    }
  }
  return out;
}

Expected<ParsedCommand> parse_mosixrun_args(const std::vector<std::string>& args) {
  auto split = split_mosixrun_args(args);
  if (!split) return split.error();

  ParsedCommand parsed;
  RunOptions& o = parsed.options;
  CLI::App app{"Usage: mosixrun [OPTIONS] PROGRAM [ARGS...]\n\n"
               "Run copies of a program on the cluster as if it were one machine.\n"
               "Options follow mpirun's spelling; they end at the program name.",
               "mosixrun"};
  app.set_version_flag("-V,--version", std::string("mosixrun ") + MOSIX_VERSION);
  app.get_formatter()->column_width(34);

  int np = -1;
  std::vector<std::string> host_lists, env_words;
  std::string bind_to = "auto";
  double timeout = 0;
  app.add_option("-n,--np", np, "Number of copies (default: one per slot)");
  app.add_option("-H,--host", host_lists, "Hosts and slots: a:2,b (repeatable)")->take_all();
  app.add_option("--hostfile,--machinefile", o.hostfile, "File of 'host slots=N' lines");
  app.add_option("-x", env_words, "Export VAR (from here) or VAR=value to the copies");
  app.add_option("--wdir", o.wdir, "Working directory of the copies");
  app.add_flag("--tag-output", o.tag_output, "Prefix each line with [1,RANK]<stdout>:");
  app.add_option("--output-filename", o.output_filename,
                 "Also write each copy's output to DIR/1/rank.N/{stdout,stderr}");
  app.add_flag("--oversubscribe", o.oversubscribe, "Allow more copies than slots");
  app.add_option("--bind-to", bind_to, "Bind each copy: auto (default: an MPI job of 1 or 2 copies to a core each, as mpirun), none or core");
  app.add_option("--timeout", timeout, "End the job after SECONDS (exit status 110)");
  app.add_flag("--keep-going", o.keep_going, "Do not end the others when one copy fails");
  app.add_flag("-v,--verbose", o.verbose, "More diagnostics (repeat for debug)");
  int vcluster = 0;
  std::string vcluster_cpu, map_by, mpi = "auto";
  app.add_option("--vcluster", vcluster, "Run on K virtual nodes of this machine");
  app.add_option("--vcluster-cpu", vcluster_cpu,
                 "CPU share of each virtual node, e.g. 0.5,0.5,1,2 (default 1 each)");
  app.add_option("--ckpt-interval", o.ckpt_interval,
                 "Checkpoint every copy every SECONDS (the newest image kept per copy)");
  app.add_option("--ckpt-dir", o.ckpt_dir, "Directory of the periodic checkpoints");
  app.add_flag("--no-agent", o.no_agent,
               "Start the copies without the guest agent (libmosix.so): they cannot be checkpointed or moved");
  app.add_option("--spread", o.spread,
                 "Children of the copies that start a program: load (default): placed on another node when theirs "
                 "has no free core; always: on the least loaded other node (to watch or test deputies); off: they "
                 "stay on their parent's node")
      ->check(CLI::IsMember({"load", "always", "off"}));
  app.add_flag("--pty", o.pty,
               "Give rank 0 a terminal of its own, as srun --pty and ssh -t do: an interactive shell under "
               "mosixrun gets job control (Ctrl-Z, fg, bg); keys go to the program, not to mosixrun");
  app.add_flag("--no-smp", o.no_smp,
               "Show the copies this node's CPUs and memory (nproc, /proc/cpuinfo, ...), not the cluster's");
  app.add_option("--map-by", map_by, "Placement: load (default), node or slot (mpirun's)");
  app.add_option("--mpi", mpi,
                 "MPI wire-up: auto (default: PMI-1 if the program links MPICH, PMIx if another MPI library), pmix, "
                 "pmi or none");
  app.add_option("--migrate", o.migrate, "on (default): the node daemons rebalance by moving guests; off: never")
      ->check(CLI::IsMember({"on", "off"}));
  std::string pin;
  CLI::Option* pin_option = app.add_option("--pin", pin, "Copies that never move, e.g. 0,2-3 (mosixctl migrate refuses them too)");

  std::vector<std::string> reversed(split->options.rbegin(), split->options.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    // CLI11's own usage line knows nothing of the program: ours opens the text.
    std::string help = app.help();
    const std::string cli11_usage = "Usage: mosixrun [OPTIONS]\n";
    if (auto at = help.find(cli11_usage); at != std::string::npos) help.erase(at, cli11_usage.size());
    parsed.print_and_exit = help + "\nSee docs/mosixrun.md for the whole manual.\n";
    return parsed;
  } catch (const CLI::CallForVersion&) {
    parsed.print_and_exit = std::string("mosixrun ") + MOSIX_VERSION + "\n";
    return parsed;
  } catch (const CLI::ParseError& e) {
    return make_error(printable(e.what()) + ": see mosixrun --help");
  }

  if (split->program.empty()) {
    return make_error("no program given: write mosixrun [OPTIONS] PROGRAM [ARGS...]");
  }
  o.program = split->program;

  if (np != -1) {
    if (np <= 0) {
      return make_error("-np " + std::to_string(np) + ": the number of copies must be at least 1");
    }
    if (np > kMaxCopies) {
      return make_error("-np " + std::to_string(np) + ": at most " + std::to_string(kMaxCopies) +
                        " copies in one job");
    }
    o.np = np;
  }
  for (const std::string& list : host_lists) {
    auto hosts = parse_host_list(list);
    if (!hosts) return make_error("--host: " + hosts.error().message);
    o.hosts.insert(o.hosts.end(), hosts->begin(), hosts->end());
  }
  o.hosts = merge_hosts(o.hosts);
  if (!o.hosts.empty() && !o.hostfile.empty()) {
    return make_error("--host and --hostfile both given: use one of them");
  }
  for (const std::string& w : env_words) {
    EnvSetting s;
    auto eq = w.find('=');
    s.name = w.substr(0, eq);
    if (eq != std::string::npos) s.value = w.substr(eq + 1);
    bool valid = !s.name.empty() && !std::isdigit(static_cast<unsigned char>(s.name[0])) &&
                 std::all_of(s.name.begin(), s.name.end(), [](char c) {
                   return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
                 });
    if (!valid) return make_error("-x " + quote(w) + ": write -x NAME or -x NAME=value");
    o.env.push_back(std::move(s));
  }
  if (bind_to == "auto") {
    o.bind_to = BindTo::kAuto;
  } else if (bind_to == "none") {
    o.bind_to = BindTo::kNone;
  } else if (bind_to == "core") {
    o.bind_to = BindTo::kCore;
  } else {
    return make_error("--bind-to " + quote(bind_to) + ": use auto, none or core");
  }
  if (mpi == "auto") {
    o.mpi = MpiMode::kAuto;
  } else if (mpi == "pmix") {
    o.mpi = MpiMode::kPmix;
  } else if (mpi == "pmi") {
    o.mpi = MpiMode::kPmi;
  } else if (mpi == "none") {
    o.mpi = MpiMode::kNone;
  } else {
    return make_error("--mpi " + quote(mpi) + ": use auto, pmix, pmi or none");
  }
  if (!(timeout >= 0) || !(timeout <= kMaxSeconds)) {
    return make_error("--timeout " + fmt_seconds(timeout) + ": give a number of seconds from 0 (none) to " +
                      fmt_seconds(kMaxSeconds) + " (a year)");
  }
  o.timeout_seconds = timeout;
  if (!(o.ckpt_interval >= 0) || !(o.ckpt_interval <= kMaxSeconds)) {
    return make_error("--ckpt-interval " + fmt_seconds(o.ckpt_interval) + ": give a number of seconds > 0, at most " +
                      fmt_seconds(kMaxSeconds) + " (a year)");
  }
  if (o.no_agent && o.ckpt_interval > 0) {
    return make_error("--no-agent with --ckpt-interval: a copy without the agent cannot be checkpointed; drop one of them");
  }
  if (!o.ckpt_dir.empty() && o.ckpt_interval == 0) {
    return make_error("--ckpt-dir without --ckpt-interval: say how often to checkpoint");
  }
  if (pin_option->count() > 0) {
    auto ranks = parse_rank_list(pin);
    if (!ranks) return make_error("--pin " + quote(pin) + ": " + ranks.error().message);
    if (o.np > 0 && ranks->back() >= o.np) {
      return make_error("--pin " + quote(pin) + ": rank " + std::to_string(ranks->back()) + " does not exist with -np " +
                        std::to_string(o.np) + " (ranks count from 0)");
    }
    o.pin = std::move(*ranks);
  }
  if (vcluster < 0 || vcluster > 256) {
    return make_error("--vcluster " + std::to_string(vcluster) + ": give 1 to 256 virtual nodes");
  }
  o.vcluster = vcluster;
  if (!vcluster_cpu.empty()) {
    std::stringstream ss(vcluster_cpu);
    for (std::string item; std::getline(ss, item, ',');) {
      char* end = nullptr;
      double share = std::strtod(item.c_str(), &end);
      if (item.empty() || *end != '\0' || !(share > 0) || share > 1024) {
        return make_error("--vcluster-cpu " + quote(vcluster_cpu) +
                          ": give a CPU share > 0 per node, e.g. 0.5,0.5,1,2");
      }
      o.vcluster_cpu.push_back(share);
    }
    if (o.vcluster == 0) o.vcluster = static_cast<int>(o.vcluster_cpu.size());
    if (static_cast<int>(o.vcluster_cpu.size()) != o.vcluster) {
      return make_error("--vcluster-cpu gives " + std::to_string(o.vcluster_cpu.size()) +
                        " shares for --vcluster " + std::to_string(o.vcluster) + ": give one per node");
    }
  }
  if (!map_by.empty() && map_by != "node" && map_by != "slot" && map_by != "load") {
    return make_error("--map-by " + quote(map_by) + ": use load, node or slot");
  }
  o.map_by = map_by;
  if (o.vcluster > 0 && (!o.hosts.empty() || !o.hostfile.empty())) {
    return make_error("--vcluster runs on this machine only: drop --host/--hostfile");
  }
  return parsed;
}

}  // namespace mosix
