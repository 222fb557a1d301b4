// mosixctl: inspect and tune this node. Exit status: 0 on success, 1 when a
// command fails, 2 when the command line is wrong.
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/cfg/helpers.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "launcher/mosixctl/commands.h"
#include "runtime/core/printable.h"

#ifndef MOSIX_VERSION
#define MOSIX_VERSION "unknown"
#endif

namespace {

// Logs go to stderr so that stdout stays clean for --json. MOSIX_LOG takes
// spdlog's level syntax ("debug", "info,mosix=trace"); --verbose means debug.
void setup_logging(bool verbose) {
  auto logger = spdlog::stderr_color_mt("mosixctl");
  logger->set_pattern("mosixctl: %l: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::warn);
  if (const char* levels = std::getenv("MOSIX_LOG")) spdlog::cfg::helpers::load_levels(levels);
  if (verbose) spdlog::set_level(spdlog::level::debug);
}

// The first word that is not an option, when it names no subcommand. The
// global options are flags, so that word is where the subcommand should be.
std::string unknown_command(CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") return "";
    if (arg.empty() || arg[0] == '-') continue;
    auto known = app.get_subcommands([&arg](CLI::App* sub) { return sub->check_name(arg); });
    return known.empty() ? arg : "";
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("mosixctl: inspect and tune this node of a mosixrun cluster", "mosixctl");
  app.set_version_flag("--version", std::string("mosixctl ") + MOSIX_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Log what is being done (same as MOSIX_LOG=debug)");
  app.parse_complete_callback([&verbose] { setup_logging(verbose); });

  mosix::ctl::register_tune(app);
  mosix::ctl::register_status(app);
  mosix::ctl::register_checkpoint(app);
  mosix::ctl::register_restart(app);
  mosix::ctl::register_ps(app);
  mosix::ctl::register_mon(app);
  mosix::ctl::register_migrate(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string unknown = unknown_command(app, argc, argv);
    if (!unknown.empty()) {
      std::cerr << "mosixctl: unknown command " << mosix::quote(unknown) << " (see mosixctl --help)\n";
    } else {
      std::cerr << "mosixctl: " << mosix::printable(e.what()) << " (see mosixctl --help)\n";
    }
    return 2;
  } catch (const mosix::ctl::CommandError& e) {
    std::cerr << "mosixctl: error: " << mosix::printable(e.what()) << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "mosixctl: unexpected error: " << mosix::printable(e.what()) << "\n";
    return 1;
  }
  return 0;
}
