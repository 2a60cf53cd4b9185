// The nanguard subcommands. Each registers its flags on the app and returns the
// function that runs it; the function returns the process exit code
// (0 clean, 1 defects, 2 usage or input error).
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace nanguard {

using CommandFn = std::function<int()>;

CommandFn add_run_command(CLI::App& app);
CommandFn add_analyze_command(CLI::App& app);
CommandFn add_soundcheck_command(CLI::App& app);
CommandFn add_ops_command(CLI::App& app);
CommandFn add_trigger_command(CLI::App& app);
CommandFn add_replay_command(CLI::App& app);
CommandFn add_validate_command(CLI::App& app);
CommandFn add_fix_command(CLI::App& app);
CommandFn add_check_command(CLI::App& app);
CommandFn add_fuzz_config_command(CLI::App& app);

}  // namespace nanguard
