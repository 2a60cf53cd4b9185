// The nanguard command line: parses the subcommand and maps every usage error to
// one line on stderr and exit code 2.
#include <climits>
#include <cstdlib>
#include <iostream>

#include <malloc.h>

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>

#include "harness/commands.h"

namespace {

// LibTorch's TORCH_WARN messages go to glog, which on its first message also prints
// "Logging before InitGoogleLogging() is written to STDERR": for nanguard's users that
// is noise between the progress lines (e.g. the create_graph warning of the double
// backward pass that training-time witnesses take, which is deliberate). Dropped here,
// once for every subcommand; NANGUARD_TORCH_WARNINGS=1 keeps LibTorch's own handler.
// c10 keeps the handler per thread: nanguard runs its ops and backward passes on this
// one (the progress thread runs no ATen).
class DropTorchWarnings : public c10::WarningHandler {
 public:
  void process(const c10::SourceLocation&, const std::string&, const bool) override {}
};

void silence_torch_warnings() {
  const char* keep = std::getenv("NANGUARD_TORCH_WARNINGS");
  if (keep && std::string(keep) == "1") return;
  static DropTorchWarnings handler;
  c10::Warning::set_warning_handler(&handler);
}

// Bound tensors of large weights (tens to hundreds of MB, float64) are allocated and
// freed at every node: glibc serves blocks past 32 MB with mmap and unmaps them on
// free, so each allocation faulted its pages in afresh (a fifth of a GPT-2-shaped
// analysis). Kept in the heap, freed blocks are reused; the process is short-lived.
void keep_freed_memory() {
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
}

}  // namespace

int main(int argc, char** argv) {
  silence_torch_warnings();
  keep_freed_memory();
  CLI::App app{"nanguard: find, prove, reproduce and fix NaN/INF in ONNX models"};
  app.require_subcommand(1);
  std::vector<nanguard::CommandFn> commands{nanguard::add_run_command(app), nanguard::add_analyze_command(app),
                                            nanguard::add_soundcheck_command(app),
                                            nanguard::add_ops_command(app),
                                            nanguard::add_trigger_command(app),
                                            nanguard::add_replay_command(app),
                                            nanguard::add_validate_command(app),
                                            nanguard::add_fix_command(app),
                                            nanguard::add_check_command(app),
                                            nanguard::add_fuzz_config_command(app)};
  if (argc > 1 && argv[1][0] != '-') {  // else CLI11 says only "A subcommand is required"
    std::string names;
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
      known = known || sub->get_name() == argv[1];
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    if (!known) {
      std::cerr << "nanguard: unknown command '" << argv[1] << "' (commands: " << names << ")\n";
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "nanguard: " << e.what() << " (see nanguard --help)\n";
    return 2;
  }
  try {
    for (const auto& cmd : commands) {
      int rc = cmd();
      if (rc >= 0) return rc;
    }
  } catch (const std::exception& e) {
    std::cerr << "nanguard: error: " << e.what() << "\n";
    return 2;
  }
  return 2;
}
